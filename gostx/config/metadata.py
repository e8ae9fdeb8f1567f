"""Metadata getters with gost's rules: keys are case-insensitive, a getter takes
alternative keys and the first one present wins; bools as Go's strconv.ParseBool (or a non-zero
number); durations as an int of seconds or a Go duration string ("30s", "1m30s", "500ms")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gostx.config.numbers import parse_int

_TRUE = {"1", "t", "true"}
_FALSE = {"0", "f", "false"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class Metadata:
    """A read-only, case-insensitive view of a metadata mapping."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = {str(k).lower(): v for k, v in (data or {}).items()}

    def __contains__(self, key: str) -> bool:
        return key.lower() in self._data

    def raw(self, *keys: str) -> Any:
        for key in keys:
            if key.lower() in self._data:
                return self._data[key.lower()]
        return None

    def get_string(self, *keys: str, default: str = "") -> str:
        value = self.raw(*keys)
        if value is None or isinstance(value, (list, dict)):
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def get_bool(self, *keys: str, default: bool = False) -> bool:
        value = self.raw(*keys)
        if value is None:
            return default
        return parse_bool(value)

    def get_int(self, *keys: str, default: int = 0) -> int:
        value = self.raw(*keys)
        if value is None:
            return default
        if isinstance(value, bool):
            return int(value)
        try:
            return parse_int(str(value))
        except ValueError:
            return default

    def get_duration(self, *keys: str, default: float = 0.0) -> float:
        """Seconds, as a float."""
        value = self.raw(*keys)
        if value is None:
            return default
        seconds = parse_duration(value)
        return default if seconds is None else seconds

    def get_strings(self, *keys: str) -> list[str]:
        """A list value as is; a string split on commas (the CLI form)."""
        value = self.raw(*keys)
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return [s.strip() for s in str(value).split(",") if s.strip()]


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    try:
        return parse_int(text) != 0
    except ValueError:
        return False


def parse_duration(value: Any) -> float | None:
    """Go duration string or integer seconds -> seconds; None if unparsable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if not text:
        return None
    try:
        return float(parse_int(text))
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(body):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(body) or pos == 0:
        return None
    return sign * total
