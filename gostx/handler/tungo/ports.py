"""Source ports for tungo's direct TCP dials: taken in turn over the kernel's ephemeral range, so that a
port still in TIME_WAIT from an earlier dial is reused instead of piling up.

Why: tungo passes a client's FIN on as shutdown(SHUT_WR), so its upstream socket is the one that closes
first and keeps the connection in TIME_WAIT for 60 s. Under connection churn to one destination (a
browser's short requests, a DNS-over-TCP resolver) that is thousands of TIME_WAIT connections: with
the kernel's own port choice, connect() first searches the range for a port without one (its cost grows
with their number), then fails with EADDRNOTAVAIL once
the range (28 232 ports by default) is full, about 470 new flows a second sustained. The client itself
never needs this: it got the echo of its last bytes after its close and ended with a reset.

With an explicit port (bind() with SO_REUSEADDR, then connect()), Linux takes over a TIME_WAIT
connection of the same four addresses when it used TCP timestamps, as RFC 6191 allows (the new
connection starts above the old one's sequence numbers); without timestamps, or when the four addresses
are in use by a live connection, connect() fails with EADDRNOTAVAIL and the next port is tried. After
PORT_TRIES such failures the kernel chooses (port 0), as before. The ports come from a window of
PORT_WINDOW ports (see SourcePorts), so TIME_WAIT stays below PORT_WINDOW per destination.
"""

from __future__ import annotations

import errno
import random
import socket

PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
RESERVED_PORTS_FILE = "/proc/sys/net/ipv4/ip_local_reserved_ports"
DEFAULT_RANGE = (32768, 60999)
PORT_TRIES = 4   # explicit ports tried for one dial before the kernel's own choice
PORT_WINDOW = 4096   # ports tungo cycles over (at most a quarter of the range)
RETRY_ERRNOS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL)


def parse_port_list(text: str) -> frozenset[int]:
    """ip_local_reserved_ports: "8080,9000-9010" -> the ports; malformed parts are skipped."""
    ports: set[int] = set()
    for part in text.replace("\n", ",").split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            continue
        if 0 < first <= last <= 65535:
            ports.update(range(first, last + 1))
    return frozenset(ports)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return ""


class SourcePorts:
    """The next source port for a dial, in turn over a window of `window` ports of [low, high] (minus the
    reserved ports), starting at a random place in the range.

    Only a window: Linux's own port choice for connect() skips a port that a socket bound explicitly (and
    the TIME_WAIT it leaves) holds, so cycling over the whole range would leave nothing for the other
    programs of the namespace, the clients behind tungo among them (measured: their connect() failed with
    EADDRNOTAVAIL). The window bounds what tungo takes; a port comes round again after `window` dials,
    by then its connection has ended (else connect() says EADDRNOTAVAIL and the next one is tried)."""

    def __init__(self, low: int = DEFAULT_RANGE[0], high: int = DEFAULT_RANGE[1],
                 reserved: frozenset[int] = frozenset(), start: int | None = None,
                 window: int = PORT_WINDOW) -> None:
        if not 0 < low <= high <= 65535:
            low, high = DEFAULT_RANGE
        self.low, self.high = low, high
        self.reserved = reserved
        size = high - low + 1
        self.window = max(1, min(window, size // 4 or 1))
        first = start if start is not None and low <= start <= high else random.randint(low, high)
        self._first = first - low          # offset of the window in the range
        self._i = 0                        # the next offset within the window

    @classmethod
    def from_kernel(cls) -> SourcePorts:
        """The range and reserved ports this network namespace gives connect() (read once)."""
        fields = _read(PORT_RANGE_FILE).split()
        try:
            low, high = int(fields[0]), int(fields[1])
        except (IndexError, ValueError):
            low, high = DEFAULT_RANGE
        return cls(low, high, parse_port_list(_read(RESERVED_PORTS_FILE)))

    def take(self) -> int:
        """A port (0 when the whole window is reserved: the kernel chooses)."""
        size = self.high - self.low + 1
        for _ in range(self.window):
            port = self.low + (self._first + self._i) % size
            self._i = (self._i + 1) % self.window
            if port not in self.reserved:
                return port
        return 0


def bind_port(sock: socket.socket, family: int, local_ip: str, port: int) -> None:
    """Bind sock to local_ip (the wildcard when empty) and port; with a port, SO_REUSEADDR (a TIME_WAIT
    connection on it does not block the bind)."""
    if port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if local_ip or port:
        sock.bind((local_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))


def retry_with_next_port(exc: OSError, port: int) -> bool:
    """An explicit port's bind or connect failed because of that port: try another one."""
    return bool(port) and exc.errno in RETRY_ERRNOS
