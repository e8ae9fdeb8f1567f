"""What every listener bounds: concurrent connections (gost's `climiter`) and the handshake time.

Concurrent connections: gost's connection limiter (`-L "socks5://:1080?climiter=100"`, or a top-level
`climiters:` entry named by the service's `climiter:`), one limit per line:

    "$ N"          at most N connections in the whole service
    "$$ N"         at most N connections from any one client IP
    "IP N"         at most N from that IP; "CIDR N" from each IP in that network (the narrowest match wins
                   over "$$")

Without a `$` line the service still has a cap (gost has none): DEFAULT_MAX_CONNS, lowered to a quarter
of the process's open-file limit (raised to its hard limit first, as Go programs do) when that is small
(each relayed connection holds 2 to 4 fds), never below MIN_DEFAULT_CONNS. A connection over a cap is
closed at once (with a reset), counted, and logged at most once per LOG_INTERVAL with the number refused
since the last line.

Handshake time: a listener's `handshakeTimeout` (default DEFAULT_HANDSHAKE_TIMEOUT) bounds everything a
connection does before its handler has read the request: the TLS / WebSocket handshake of tls, ws, wss,
and the proxy protocol's greeting and request (handlers call `handshake_done()` when they have it).
"""

from __future__ import annotations

import contextvars
import ipaddress
import resource
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gostx.errors import GostError

if TYPE_CHECKING:
    import asyncio

    from gostx.config.model import Config, LimiterConfig

DEFAULT_MAX_CONNS = 4096
MIN_DEFAULT_CONNS = 64
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
LOG_INTERVAL = 5.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def raise_open_file_limit() -> None:
    """Lift the soft RLIMIT_NOFILE to the hard one, as every Go program (so gost) does at start (Go 1.19+):
    the default connection cap follows it."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        pass


def default_max_conns() -> int:
    """DEFAULT_MAX_CONNS, or a quarter of RLIMIT_NOFILE when that is lower (at least MIN_DEFAULT_CONNS)."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return DEFAULT_MAX_CONNS
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNS
    return max(MIN_DEFAULT_CONNS, min(DEFAULT_MAX_CONNS, soft // 4))


def find_climiter(name: str, config: Config) -> LimiterConfig | None:
    if not name:
        return None
    for limiter in config.climiters:
        if limiter.name == name:
            return limiter
    raise GostError(f"climiter '{name}' not found")


def _client_ip(peer: str) -> str:
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return host.strip("[]").removeprefix("::ffff:")


@dataclass
class ConnLimiter:
    """Counts the live connections of one listener against its caps."""

    total: int = field(default_factory=default_max_conns)
    per_ip: int = 0  # 0: no per-IP cap
    networks: list[tuple[Network, int]] = field(default_factory=list)
    active: int = 0
    refused: int = 0
    by_ip: dict[str, int] = field(default_factory=dict)
    _logged_at: float = 0.0
    _refused_logged: int = 0

    @classmethod
    def from_config(cls, limiter: LimiterConfig | None) -> ConnLimiter:
        lim = cls()
        if limiter is None:
            return lim
        if limiter.file or limiter.redis or limiter.http or limiter.plugin:
            raise GostError(f"climiter {limiter.name}: only inline limits are supported")
        for line in limiter.limits:
            parts = line.split()
            if not parts:
                continue
            try:
                if len(parts) != 2:
                    raise ValueError
                n = int(parts[1])
                if n <= 0:
                    raise ValueError
            except ValueError:
                raise GostError(f"climiter {limiter.name}: bad limit {line!r} (want '<$|$$|IP|CIDR> N')") from None
            key = parts[0]
            if key == "$":
                lim.total = n
            elif key == "$$":
                lim.per_ip = n
            else:
                try:
                    lim.networks.append((ipaddress.ip_network(key, strict=False), n))
                except ValueError:
                    raise GostError(f"climiter {limiter.name}: bad address {key!r}") from None
        lim.networks.sort(key=lambda item: item[0].prefixlen, reverse=True)
        return lim

    def _ip_cap(self, ip: str) -> int:
        if self.networks:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                addr = None
            if addr is not None:
                for net, n in self.networks:
                    if addr.version == net.version and addr in net:
                        return n
        return self.per_ip

    def acquire(self, peer: str) -> bool:
        """Count a new connection from peer ('ip:port'); False (and counted as refused) over a cap."""
        ip = _client_ip(peer)
        cap = self._ip_cap(ip)
        if self.active >= self.total or (cap and self.by_ip.get(ip, 0) >= cap):
            self.refused += 1
            return False
        self.active += 1
        if cap:
            self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        return True

    def release(self, peer: str) -> None:
        self.active = max(self.active - 1, 0)
        ip = _client_ip(peer)
        left = self.by_ip.get(ip)
        if left is not None:
            if left <= 1:
                del self.by_ip[ip]
            else:
                self.by_ip[ip] = left - 1

    def log_refused(self, log: Any, peer: str) -> None:
        """One warning per LOG_INTERVAL at most, with the count refused since the previous one."""
        now = time.monotonic()
        if now - self._logged_at < LOG_INTERVAL and self._logged_at:
            return
        since = self.refused - self._refused_logged
        self._logged_at, self._refused_logged = now, self.refused
        log.warning(f"{peer}: connection limit reached ({self.active} open, cap {self.total}"
                    + (f", {self.per_ip} per client" if self.per_ip else "")
                    + f"): {since} refused since the last report, {self.refused} in all",
                    extra={"remote": peer, "refused": self.refused})


# The handshake deadline of the connection being handled (one per connection task).
_HANDSHAKE: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar("gostx_handshake",
                                                                                     default=None)


def set_handshake_deadline(timeout: asyncio.Timeout) -> None:
    _HANDSHAKE.set(timeout)


def handshake_done() -> None:
    """The handler has read its request: the handshake deadline no longer applies to this connection."""
    timeout = _HANDSHAKE.get()
    if timeout is not None:
        timeout.reschedule(None)
        _HANDSHAKE.set(None)
