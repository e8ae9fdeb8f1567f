"""Go `time.Duration` text: parse like `time.ParseDuration`, print like `Duration.String()`.

The config model keeps every duration field as the canonical Go text ("30s", "1m30s", "500ms"),
so `-O yaml` prints what gost prints and `-O json` can print gost's nanosecond integers.
"""

from __future__ import annotations

import re

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # micro sign
    "\u03bcs": MICROSECOND,  # Greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")
_MAX = (1 << 63) - 1


def parse_go_duration(text: str) -> int:
    """Go duration text -> nanoseconds. Raises ValueError with Go's wording on bad input."""
    orig = text
    if not text:
        raise ValueError(f"invalid duration {orig!r}")
    sign = 1
    if text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise ValueError(f"invalid duration {orig!r}")
    total = 0
    pos = 0
    while pos < len(text):
        m = _PART.match(text, pos)
        if m is None or (m.group(1) == "" and not m.group(2)):
            raise ValueError(f"invalid duration {orig!r}")
        whole, frac, unit = m.group(1), m.group(2) or "", m.group(3)
        if unit == "":
            raise ValueError(f"missing unit in duration {orig!r}")
        if unit not in _UNITS:
            if unit.isalpha() or unit in ("µ", "μ"):
                raise ValueError(f"unknown unit {unit!r} in duration {orig!r}")
            raise ValueError(f"invalid duration {orig!r}")
        scale = _UNITS[unit]
        if len(whole) > 24:  # more than any duration holds (and int() of 5000 digits fails)
            raise ValueError(f"invalid duration {orig[:40]!r}")
        value = int(whole or "0") * scale
        if frac:
            frac = frac[:24]  # digits below a nanosecond change nothing
            value += int(frac) * scale // (10 ** len(frac))
        total += value
        if total > _MAX:
            raise ValueError(f"invalid duration {orig!r}")
        pos = m.end()
    return sign * total


def _fraction(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if rest == 0:
        return str(whole)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def format_go_duration(ns: int) -> str:
    """Nanoseconds -> Go's `Duration.String()` ("0s", "1.5ms", "1m30s", "1h0m0s")."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < MICROSECOND:
        return f"{sign}{u}ns"
    if u < MILLISECOND:
        return f"{sign}{_fraction(u, MICROSECOND)}\u00b5s"
    if u < SECOND:
        return f"{sign}{_fraction(u, MILLISECOND)}ms"
    hours, rest = divmod(u, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    seconds = _fraction(rest, SECOND) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"


def canonical_duration(value: object) -> str:
    """A config-file duration (Go text, or an integer of nanoseconds as mapstructure reads it)
    -> canonical Go text. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int):
        return format_go_duration(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a duration, got {value!r}")
        return format_go_duration(int(value))
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return ""
        return format_go_duration(parse_go_duration(text))
    raise ValueError(f"expected a duration, got {type(value).__name__}")


def duration_seconds(text: str) -> float:
    """Canonical Go text ("" = 0) -> seconds."""
    return 0.0 if not text else parse_go_duration(text) / SECOND
