"""A bypass (go-gost/x bypass/bypass.go): named patterns in blacklist or whitelist mode, and the
group that several bypasses on one object form.

`Bypass.contains(addr)` is gost's `Contains`: "does this address bypass?". Blacklist (default): it
does when a pattern matches. Whitelist (`whitelist: true`, `reverse: true`, or a leading `~` on the
command line): it does when no pattern matches. An empty address never bypasses. What "bypass"
means depends on where it is attached: see gostx.bypass.levels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from gostx.bypass.matchers import PatternSet
from gostx.log import FieldLogger, get_logger


class BypassLike(Protocol):
    @property
    def whitelist(self) -> bool: ...

    def contains(self, addr: str) -> bool: ...


class Bypass:
    def __init__(self, name: str, patterns: Iterable[str], whitelist: bool = False) -> None:
        self.name = name
        self.patterns = list(patterns)
        self._whitelist = whitelist
        self._set = PatternSet.parse(self.patterns)
        self._log: FieldLogger = get_logger(kind="bypass", bypass=name)

    @property
    def whitelist(self) -> bool:
        return self._whitelist

    def matches(self, addr: str) -> bool:
        """Whether any pattern matches `addr` ("host:port", "[v6]:port" or a bare host)."""
        return bool(addr) and self._set.matches(addr)

    def contains(self, addr: str) -> bool:
        if not addr:
            return False
        bypassed = self._set.matches(addr) != self._whitelist
        if self._log.isEnabledFor(logging.DEBUG):
            verdict = "bypass" if bypassed else "pass"
            self._log.debug(f"{verdict}: {addr}, whitelist: {str(self._whitelist).lower()}")
        return bypassed

    def __repr__(self) -> str:
        mode = "whitelist" if self._whitelist else "blacklist"
        return f"Bypass({self.name!r}, {mode}, {len(self.patterns)} patterns)"


class BypassGroup:
    """Several bypasses on one service, hop or node (`bypass` + `bypasses`). The address bypasses if
    there are whitelist members and all of them say so; otherwise if any blacklist member says so.
    An empty group never bypasses. A group counts as a blacklist member when nested."""

    def __init__(self, members: Sequence[BypassLike]) -> None:
        self.members = list(members)

    @property
    def whitelist(self) -> bool:
        return False

    def contains(self, addr: str) -> bool:
        results = [(m.whitelist, m.contains(addr)) for m in self.members]
        white = [r for is_white, r in results if is_white]
        if white and all(white):
            return True
        return any(r for is_white, r in results if not is_white)

    def __bool__(self) -> bool:
        return bool(self.members)

    def __repr__(self) -> str:
        return f"BypassGroup({self.members!r})"


def parse_pattern_lines(text: str) -> list[str]:
    """A bypass file: one pattern a line; '#' starts a comment; lines are trimmed, empty ones skipped."""
    patterns = []
    for line in text.splitlines():
        pattern = line.split("#", 1)[0].strip()
        if pattern:
            patterns.append(pattern)
    return patterns
