"""Upstream dials for tungo flows: the service's router (its chain), whose direct dials also guard
against routing loops.

A direct dial uses the service's `interface` (a NIC name: SO_BINDTODEVICE; an IP: the source address;
a comma list: tried in order, a trailing `!` accepted and ignored), `so_mark` and `dialTimeout`, as the
forward handler's direct dials do.

Routing loop: when the route to a flow's destination leads back into the tungo device (a default route
into tungo and no `interface`), every dial would come back as a new flow. Each dial's local address is
recorded (OwnSockets) from the moment connect() is issued; a new flow whose source is one of them is
our own dial coming back, and is dropped with a hint instead of being dialed again.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ipaddress
import os
import socket
import time
from typing import Any

from gostx.addr import split_host_port
from gostx.chain import Router, build_chain
from gostx.chain.router import Conn
from gostx.handler.tungo.ports import PORT_TRIES, SourcePorts, bind_port, retry_with_next_port
from gostx.net.direct import DEFAULT_DIAL_TIMEOUT, DialOptions
from gostx.net.packet import DirectPacketConn
from gostx.net.stream import SocketStream
from gostx.service import ServiceContext

OWN_SOCKET_MEMORY = 30.0   # seconds a dial's local address stays recognisable as ours
OWN_SOCKET_CAP = 1 << 17   # addresses remembered at most (a dial's own SYN comes back within milliseconds)


def address_key(host: str, port: int) -> tuple[str, int]:
    """One spelling per address, whoever formatted it (the C library's inet_pton/inet_ntop round trip,
    much cheaper than ipaddress, which ran twice per flow)."""
    host = host.split("%", 1)[0]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, host)), port
    except (OSError, ValueError):
        return host, port


class OwnSockets:
    """Local addresses of our recent upstream dials.

    Every entry lives `memory` seconds, so entries expire in the order they were added: a queue in that
    order is trimmed from its old end on every add (amortized O(1) a dial; a flow rate of thousands a
    second keeps thousands of entries, never rescanned). At most `cap` entries are kept (the oldest go
    first), which bounds the memory whatever the rate."""

    def __init__(self, memory: float = OWN_SOCKET_MEMORY, cap: int = OWN_SOCKET_CAP) -> None:
        self.memory = memory
        self.cap = cap
        self._until: dict[tuple[str, int], float] = {}
        self._order: collections.deque[tuple[float, tuple[str, int]]] = collections.deque()

    def add(self, sock: socket.socket) -> None:
        try:
            local = sock.getsockname()
        except OSError:
            return
        now = time.monotonic()
        until, order = self._until, self._order
        while order and (order[0][0] <= now or len(order) >= self.cap):
            expiry, key = order.popleft()
            if until.get(key) == expiry:  # not renewed by a later dial from the same address
                del until[key]
        key = (local[0], local[1])  # getsockname() spells the address with inet_ntop: address_key's spelling
        until[key] = now + self.memory
        order.append((now + self.memory, key))

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, addr: tuple[str, int]) -> bool:
        return self.has_key(address_key(*addr))

    def has_key(self, key: tuple[str, int]) -> bool:
        """addr in self, for an address already spelled as address_key spells it (the stack's flow
        addresses and getsockname() are: inet_ntop)."""
        until = self._until.get(key)
        return until is not None and until > time.monotonic()


@functools.lru_cache(maxsize=64)
def _interface_version(interface: str) -> int:
    """4 or 6 when an `interface` item is an IP address (the dial's source address), 0 for a NIC name."""
    try:
        return ipaddress.ip_address(interface).version
    except ValueError:
        return 0


def _bind(sock: socket.socket, family: int, opts: DialOptions, interface: str, port: int = 0) -> None:
    if opts.mark:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, opts.mark)
    local_ip = ""
    if interface:
        version = _interface_version(interface)
        if not version:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        elif (version == 6) != (family == socket.AF_INET6):
            raise OSError(f"source address {interface} does not match the target's address family")
        else:
            local_ip = interface
    bind_port(sock, family, local_ip, port)


def start_connect(network: str, family: int, address: tuple[str, int], opts: DialOptions, interface: str,
                  ports: SourcePorts | None) -> socket.socket:
    """A non-blocking socket for `network` with connect() to address issued (a TCP one still
    connecting), from `interface`; TCP takes its source port from `ports` (see ports.py) when given.
    Raises OSError."""
    tcp = network == "tcp"
    tries = PORT_TRIES if tcp and ports is not None else 0
    attempt = 0
    while True:
        port = ports.take() if ports is not None and attempt < tries else 0
        attempt += 1
        sock = socket.socket(family, (socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) | socket.SOCK_NONBLOCK)
        try:
            _bind(sock, family, opts, interface, port)
            try:
                sock.connect(address)
            except BlockingIOError:
                pass
            return sock
        except OSError as exc:
            sock.close()
            if not retry_with_next_port(exc, port):
                raise
        except BaseException:
            sock.close()
            raise


async def _connected(sock: socket.socket) -> None:
    """Wait until a TCP connect() issued on sock finishes; raises its OSError."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_writer(sock.fileno(), lambda: None if done.done() else done.set_result(None))
    try:
        await done
    finally:
        loop.remove_writer(sock.fileno())
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))


async def dial_direct(network: str, host: str, port: int, opts: DialOptions, own: OwnSockets,
                      ports: SourcePorts | None = None) -> socket.socket:
    """A connected non-blocking socket to host:port (an IP, or a name: a sniffed host) for `network`
    'tcp' or 'udp', each address and each `interface` tried in turn; TCP source ports from `ports`."""
    loop = asyncio.get_running_loop()
    sock_type = socket.SOCK_STREAM if network == "tcp" else socket.SOCK_DGRAM
    last: OSError | None = None
    async with asyncio.timeout(opts.timeout):
        try:
            ip = ipaddress.ip_address(host)
            infos: list[tuple[socket.AddressFamily, tuple[str, int]]] = [
                (socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]
        except ValueError:
            found = await loop.getaddrinfo(host, port, type=sock_type)
            # an IPv4/IPv6 sockaddr starts (host, port); typeshed also allows (int, bytes) for IPv6 disabled
            infos = [(family, (str(sockaddr[0]), int(sockaddr[1]))) for family, _, _, _, sockaddr in found]
        for interface in opts.interfaces or [""]:
            for family, address in infos:
                try:
                    sock = start_connect(network, family, address, opts, interface, ports)
                except OSError as exc:
                    last = exc
                    continue
                own.add(sock)  # before any answer can come back through the device
                try:
                    if network == "tcp":
                        await _connected(sock)
                    return sock
                except OSError as exc:
                    sock.close()
                    last = exc
                except BaseException:
                    sock.close()
                    raise
    raise last or OSError(f"cannot dial {host}:{port}")


class TungoRouter(Router):
    """The service's Router, whose direct dials (no chain, or a route cut by a bypass) go through
    dial_direct, so tungo recognises them if they come back into the device."""

    def __init__(self, *args: Any, own: OwnSockets, ports: SourcePorts | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.own = own
        self.ports = ports

    async def dial_direct(self, network: str, address: str) -> Conn:
        host, port = split_host_port(address)
        sock = await dial_direct(network, host, port, self.direct, self.own, self.ports)
        if network == "udp":
            return DirectPacketConn(sock, connected=True)
        return SocketStream(sock)


def build_tungo_router(ctx: ServiceContext, retries: int, own: OwnSockets,
                       ports: SourcePorts | None = None) -> TungoRouter:
    """As gostx.chain.build_router: the handler's chain, `retries`, the service's dialTimeout, interface
    and so_mark; direct TCP dials take their source ports from `ports`."""
    direct = DialOptions.from_metadata(ctx.metadata)
    direct.check_privileges()
    timeout = ctx.metadata.get_duration("dialTimeout", default=DEFAULT_DIAL_TIMEOUT)
    chain = build_chain(ctx.chain, ctx.config) if ctx.chain is not None else None
    return TungoRouter(chain, retries=retries, timeout=timeout, direct=direct, log=ctx.log, own=own, ports=ports)
