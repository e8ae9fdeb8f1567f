"""Forward targets of a service and how one is picked (gost's forwarder + node selector).

Targets come from `forwarder.nodes`, or from the top-level hop named by `forwarder.hop`. Strategies
(`forwarder.selector.strategy`): round|rr (default), random|rand (weighted by node metadata
`weight`), fifo|ha (first usable), hash (crc32 of the client host). Fail filter: a target that
failed `maxFails` times (default 1) is skipped for `failTimeout` (default 10s) unless nothing else
is left.
"""

from __future__ import annotations

import itertools
import random
import time
import zlib
from dataclasses import dataclass

from gostx.addr import AddressError, check_host, split_host_port
from gostx.config.metadata import Metadata, parse_duration
from gostx.config.model import Config, ForwarderConfig, SelectorConfig
from gostx.errors import GostError


@dataclass
class Target:
    name: str
    addr: str
    host: str
    port: int
    weight: int = 1
    fails: int = 0
    last_fail: float = 0.0


def forward_targets(forwarder: ForwarderConfig | None, config: Config) -> list[Target]:
    """The forwarder's targets; GostError when there is none or an address is malformed."""
    if forwarder is None:
        return []
    entries = [(n.name, n.addr, Metadata(n.metadata)) for n in forwarder.nodes]
    if not entries and forwarder.hop:
        hop = next((h for h in config.hops if h.name == forwarder.hop), None)
        if hop is None:
            raise GostError(f"forwarder: hop '{forwarder.hop}' not found")
        entries = [(n.name, n.addr, Metadata(n.metadata)) for n in hop.nodes]
    targets = []
    for name, addr, md in entries:
        host, port = split_host_port(addr if ":" in addr else f"{addr}:0")
        if port == 0:
            raise GostError(f"forward target {name or addr}: address {addr} has no port")
        if host:  # a name no resolver takes fails here, at start, not in every connection's dial
            try:
                check_host(host)
            except AddressError as exc:
                raise GostError(f"forward target {name or addr}: {exc}") from None
        targets.append(Target(name=name, addr=addr, host=host, port=port,
                              weight=max(md.get_int("weight", default=1), 1)))
    return targets


class TargetPicker:
    """Chooses a target per connection/session and remembers failures."""

    def __init__(self, targets: list[Target], selector: SelectorConfig | None = None) -> None:
        if not targets:
            raise ValueError("no targets")
        sel = selector or SelectorConfig()
        self.targets = targets
        self.strategy = (sel.strategy or "round").lower()
        if self.strategy not in ("round", "rr", "random", "rand", "fifo", "ha", "hash"):
            raise GostError(f"forwarder: unknown selector strategy '{sel.strategy}' "
                            "(supported: round, random, fifo, hash)")
        self.max_fails = sel.max_fails if sel.max_fails > 0 else 1
        timeout = parse_duration(sel.fail_timeout) if sel.fail_timeout not in (None, "") else None
        self.fail_timeout = timeout if timeout and timeout > 0 else 10.0
        self._counter = itertools.count()

    def _usable(self) -> list[Target]:
        if len(self.targets) <= 1:
            return self.targets
        now = time.monotonic()
        alive = [t for t in self.targets
                 if t.fails < self.max_fails or now - t.last_fail >= self.fail_timeout]
        return alive or self.targets

    def pick(self, client_host: str = "") -> Target:
        usable = self._usable()
        if len(usable) == 1:
            return usable[0]
        if self.strategy in ("random", "rand"):
            return random.choices(usable, weights=[t.weight for t in usable])[0]
        if self.strategy in ("fifo", "ha"):
            return usable[0]
        if self.strategy == "hash" and client_host:
            return usable[zlib.crc32(client_host.encode()) % len(usable)]
        if self.strategy == "hash":
            return random.choice(usable)
        return usable[next(self._counter) % len(usable)]

    def mark_failed(self, target: Target) -> None:
        target.fails += 1
        target.last_fail = time.monotonic()

    def mark_ok(self, target: Target) -> None:
        target.fails = 0
