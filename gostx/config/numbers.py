"""Integers from user text without Python's pitfalls: int() refuses a string of more than 4300 digits
with a ValueError (sys.get_int_max_str_digits), and takes time quadratic in the digits below that. No
Go integer has more than 20 digits, so a longer digit string is out of range here before int() sees it.
"""

from __future__ import annotations

MAX_DIGITS = 24  # uint64 has 20 decimal digits: anything longer is out of range for every Go integer


def parse_int(text: str, base: int = 10) -> int:
    """int(text, base) for ASCII text of at most MAX_DIGITS significant digits (sign, base prefix,
    underscores and leading zeros aside); ValueError for anything else."""
    shown = repr(text[:24]) + ("..." if len(text) > 24 else "")
    stripped = text.strip()
    body = stripped[1:] if stripped[:1] in ("+", "-") else stripped
    if body[:2].lower() in ("0x", "0o", "0b"):
        body = body[2:]
    body = body.replace("_", "").lstrip("0")
    if not text.isascii():
        raise ValueError(f"invalid integer {shown}")
    if len(body) > MAX_DIGITS * (1 if base in (0, 10) else 4):
        raise ValueError(f"integer {shown} out of range")
    if base == 10 and len(text) > 64:  # leading zeros: int() counts them against its 4300-digit limit
        text = ("-" if stripped.startswith("-") else "") + (body or "0")
    try:
        return int(text, base)
    except ValueError:
        raise ValueError(f"invalid integer {shown}") from None
