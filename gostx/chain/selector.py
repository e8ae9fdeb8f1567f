"""Node selection within a hop (gost's selector): strategy + fail filter + backup filter.

Strategies: round|rr (default), random|rand (weighted by node metadata `weight`), fifo|ha (the first
usable), hash (crc32 of a hash key such as the client host, else random). Fail filter: a node that failed
`maxFails` times (default 1) is skipped for `failTimeout` (default 10s) after its last failure; node
metadata `maxFails`/`failTimeout` override the selector's. Not applied when there is one candidate.
Backup filter: nodes with metadata `backup: true` are used only when no other node is left.

Where gost would then return no node (every candidate filtered out), which silently sends the traffic
direct, gostx fails closed: it tries the filtered nodes anyway (README: Differences from gost).
"""

from __future__ import annotations

import itertools
import random
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from gostx.config.metadata import Metadata, parse_duration
from gostx.config.model import SelectorConfig
from gostx.errors import GostError

STRATEGIES = ("round", "rr", "random", "rand", "fifo", "ha", "hash")
DEFAULT_MAX_FAILS = 1
DEFAULT_FAIL_TIMEOUT = 10.0


@dataclass
class FailMarker:
    """Failures of one node since its last success."""

    fails: int = 0
    last_fail: float = 0.0

    def mark(self) -> None:
        self.fails += 1
        self.last_fail = time.monotonic()

    def reset(self) -> None:
        self.fails = 0


class Selectable(Protocol):
    marker: FailMarker
    metadata: Metadata


S = TypeVar("S", bound=Selectable)


class Selector:
    def __init__(self, config: SelectorConfig | None = None, where: str = "selector") -> None:
        cfg = config or SelectorConfig()
        self.strategy = (cfg.strategy or "round").lower()
        if self.strategy not in STRATEGIES:
            raise GostError(f"{where}: unknown selector strategy '{cfg.strategy}' "
                            "(supported: round, random, fifo, hash)")
        self.max_fails = cfg.max_fails if cfg.max_fails > 0 else DEFAULT_MAX_FAILS
        timeout = parse_duration(cfg.fail_timeout) if cfg.fail_timeout not in (None, "") else None
        self.fail_timeout = timeout if timeout and timeout > 0 else DEFAULT_FAIL_TIMEOUT
        self._counter = itertools.count()

    def _failed(self, node: Selectable, now: float) -> bool:
        max_fails = node.metadata.get_int("maxFails", default=self.max_fails) or self.max_fails
        timeout = node.metadata.get_duration("failTimeout", default=self.fail_timeout) or self.fail_timeout
        return node.marker.fails >= max_fails and now - node.marker.last_fail < timeout

    def usable(self, nodes: Sequence[S]) -> list[S]:
        candidates = list(nodes)
        if len(candidates) > 1:
            now = time.monotonic()
            alive = [n for n in candidates if not self._failed(n, now)]
            candidates = alive or candidates
        primary = [n for n in candidates if not n.metadata.get_bool("backup")]
        return primary or candidates

    def select(self, nodes: Sequence[S], key: str = "") -> S | None:
        usable = self.usable(nodes)
        if not usable:
            return None
        if len(usable) == 1:
            return usable[0]
        if self.strategy in ("random", "rand"):
            weights = [max(n.metadata.get_int("weight", default=1), 1) for n in usable]
            return random.choices(usable, weights=weights)[0]
        if self.strategy in ("fifo", "ha"):
            return usable[0]
        if self.strategy == "hash":
            if key:
                return usable[zlib.crc32(key.encode()) % len(usable)]
            return random.choice(usable)
        return usable[next(self._counter) % len(usable)]
