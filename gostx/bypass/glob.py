"""Glob patterns as gobwas/glob compiles them without separators (what gost's bypass uses), so `*`
and `?` match dots too: `*.example.com` matches a.b.example.com, not example.com.

Syntax: `*` (and `**`) any run of characters, `?` one character, `[abc]` / `[!abc]` one of (not
one of) the characters, `[a-z]` / `[!a-z]` one range, `{a,b*}` alternatives (nestable), `\\c` the
character c. `}` and `,` outside braces and `]` outside brackets are plain characters; an unclosed
`{` is closed at the end (gobwas v0.2.3 does that). An unclosed `[`, an empty class, a range whose
hi is below its lo, or a class with more than one range is a compile error (GlobError), as in
gobwas; gost then treats the pattern as something other than a wildcard.
"""

from __future__ import annotations

import re


class GlobError(ValueError):
    pass


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The pattern as a regular expression to `fullmatch`; GlobError if gobwas would reject it."""
    regex, pos = _sequence(pattern, 0, depth=0)
    if pos != len(pattern):  # only a stray '}' or ',' at depth 0 could stop _sequence, and it doesn't
        raise GlobError(f"unexpected {pattern[pos]!r} at {pos}")
    return re.compile(regex, re.DOTALL)


def _sequence(p: str, pos: int, depth: int) -> tuple[str, int]:
    """Terms up to the end, or (inside braces) up to an unescaped ',' or '}'."""
    out: list[str] = []
    while pos < len(p):
        c = p[pos]
        if depth and c in ",}":
            return "".join(out), pos
        if c == "*":
            while pos < len(p) and p[pos] == "*":
                pos += 1
            out.append(".*")
        elif c == "?":
            out.append(".")
            pos += 1
        elif c == "[":
            regex, pos = _char_class(p, pos + 1)
            out.append(regex)
        elif c == "{":
            regex, pos = _alternatives(p, pos + 1, depth + 1)
            out.append(regex)
        elif c == "\\":
            if pos + 1 < len(p):
                out.append(re.escape(p[pos + 1]))
            pos += 2
        else:
            out.append(re.escape(c))
            pos += 1
    return "".join(out), pos


def _alternatives(p: str, pos: int, depth: int) -> tuple[str, int]:
    options: list[str] = []
    while True:
        regex, pos = _sequence(p, pos, depth)
        options.append(regex)
        if pos >= len(p) or p[pos] == "}":  # gobwas closes an unclosed '{' at the end
            pos = min(pos + 1, len(p))
            return "(?:" + "|".join(options) + ")", pos
        pos += 1  # ','


def _char_class(p: str, pos: int) -> tuple[str, int]:
    """After '[': `!`? then either `lo-hi` or literal characters (with escapes), then ']'."""
    negate = pos < len(p) and p[pos] == "!"
    if negate:
        pos += 1
    if pos + 2 < len(p) and p[pos + 1] == "-":
        lo, hi = p[pos], p[pos + 2]
        if pos + 3 >= len(p) or p[pos + 3] != "]":
            raise GlobError("expected ']' after a character range")
        if lo > hi:
            raise GlobError(f"range {lo}-{hi}: hi is below lo")
        body = f"\\U{ord(lo):08x}-\\U{ord(hi):08x}"
        return f"[{'^' if negate else ''}{body}]", pos + 4
    chars: list[str] = []
    while pos < len(p) and p[pos] != "]":
        if p[pos] == "\\":
            pos += 1
            if pos >= len(p):
                break
        chars.append(p[pos])
        pos += 1
    if pos >= len(p):
        raise GlobError("unclosed '['")
    if not chars:
        raise GlobError("empty character class")
    body = "".join(f"\\U{ord(c):08x}" for c in chars)
    return f"[{'^' if negate else ''}{body}]", pos + 1
