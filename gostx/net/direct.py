"""Direct dials (no chain) with the service's `interface`, `so_mark` and `dialTimeout` metadata.

`interface`: a NIC name (SO_BINDTODEVICE), a local IP (bound as the source address), or a comma
list of these tried in order (a trailing `!` is accepted and ignored). `so_mark`: SO_MARK on the
socket, which needs CAP_NET_ADMIN. An empty host dials 127.0.0.1, as Go does (it dials 0.0.0.0).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

from gostx.config.metadata import Metadata
from gostx.errors import GostError

DEFAULT_DIAL_TIMEOUT = 15.0


@dataclass
class DialOptions:
    timeout: float = DEFAULT_DIAL_TIMEOUT
    mark: int = 0
    interfaces: list[str] = field(default_factory=list)

    @classmethod
    def from_metadata(cls, md: Metadata) -> DialOptions:
        timeout = md.get_duration("dialTimeout", default=DEFAULT_DIAL_TIMEOUT)
        return cls(timeout=timeout if timeout > 0 else DEFAULT_DIAL_TIMEOUT,
                   mark=md.get_int("so_mark", "sockopts.mark"),
                   interfaces=[i.rstrip("!") for i in md.get_strings("interface") if i.rstrip("!")])

    def check_privileges(self) -> None:
        """Fail early if SO_MARK cannot be set (every dial would fail)."""
        if not self.mark:
            return
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.mark)
            except PermissionError:
                raise GostError(
                    f"so_mark={self.mark}: operation not permitted (needs CAP_NET_ADMIN)") from None


def _prepare(sock: socket.socket, family: int, opts: DialOptions, interface: str) -> None:
    sock.setblocking(False)
    if opts.mark:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, opts.mark)
    if not interface:
        return
    try:
        ip = ipaddress.ip_address(interface)
    except ValueError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        return
    if (ip.version == 6) != (family == socket.AF_INET6):
        raise OSError(f"source address {interface} does not match the target's address family")
    sock.bind((interface, 0))


async def dial(network: str, host: str, port: int, opts: DialOptions) -> socket.socket:
    """A connected non-blocking socket to host:port ('tcp' or 'udp'); OSError/TimeoutError on failure."""
    loop = asyncio.get_running_loop()
    sock_type = socket.SOCK_STREAM if network == "tcp" else socket.SOCK_DGRAM
    async with asyncio.timeout(opts.timeout):
        infos = await loop.getaddrinfo(host or "127.0.0.1", port, type=sock_type)
        last: Exception | None = None
        for interface in opts.interfaces or [""]:
            for family, _, proto, _, sockaddr in infos:
                sock = socket.socket(family, sock_type, proto)
                try:
                    _prepare(sock, family, opts, interface)
                    await loop.sock_connect(sock, sockaddr)
                    return sock
                except OSError as exc:
                    sock.close()
                    last = exc
                except BaseException:
                    sock.close()
                    raise
        raise last or OSError(f"no address for {host}")
