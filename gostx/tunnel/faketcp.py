"""Fake TCP endpoints for the tun/tap tunnel (`tcp=true`): the server listens, the client dials, both
behind their nftables mute rule (gostx.tunnel.nft). The segments themselves are C (_engine.FakeTcp).

As gost v2 (tcpraw.Dial), the client ignores its service address: it connects from an ephemeral
port. The server listens on the service address: dual-stack unless the host is an IPv4 literal.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket

from gostx import _engine
from gostx.errors import GostError
from gostx.tunnel.nft import MuteRule, MuteTable
from gostx.tunnel.udp import split_host_port

DIAL_TIMEOUT = 5.0


def _os_error(action: str, exc: OSError) -> GostError:
    if exc.errno == errno.EADDRINUSE:
        return GostError(f"{action}: address already in use")
    if exc.errno == errno.EADDRNOTAVAIL:
        return GostError(f"{action}: address not available on this host")
    if exc.errno == errno.EPERM:
        return GostError(f"{action}: fake TCP needs raw sockets (CAP_NET_RAW: run as root)")
    return GostError(f"{action}: {(exc.strerror or str(exc)).lower()}")


def listen_host(host: str) -> tuple[str, bool]:
    """gost's listen host -> (IP literal, dual_stack)."""
    if not host:
        return ("::", True) if socket.has_ipv6 else ("0.0.0.0", False)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            info = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise GostError(f"cannot resolve {host}: {exc.strerror}") from None
        ip = ipaddress.ip_address(info[0][4][0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), False


def server_rules(host: str, dual_stack: bool, port: int) -> list[MuteRule]:
    versions = [4, 6] if dual_stack else [ipaddress.ip_address(host).version]
    return [MuteRule(version=v, sport=port) for v in versions]


def client_rules(server_ip: str, port: int) -> list[MuteRule]:
    ip = ipaddress.ip_address(server_ip)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return [MuteRule(version=ip.version, daddr=str(ip), dport=port)]


class FakeTcpServer:
    """The listening side: rule first, then the listening socket; close() undoes both."""

    def __init__(self, addr: str, flow_timeout: float) -> None:
        host, self.port = split_host_port(addr)
        self.host, self.dual_stack = listen_host(host)
        self.addr = addr
        self.flow_timeout = flow_timeout
        self.table = MuteTable(server_rules(self.host, self.dual_stack, self.port))
        self.endpoint: _engine.FakeTcp | None = None

    async def open(self) -> _engine.FakeTcp:
        if self.port == 0:
            raise GostError(f"fake TCP server {self.addr}: needs a port")
        await self.table.install()
        try:
            self.endpoint = _engine.FakeTcp.listen(self.host, self.port, self.dual_stack, self.flow_timeout)
        except OSError as exc:
            if exc.errno != errno.EAFNOSUPPORT or not self.dual_stack:
                raise _os_error(f"listen tcp {self.addr}", exc) from None
            self.host, self.dual_stack = "0.0.0.0", False   # no IPv6 here
            try:
                self.endpoint = _engine.FakeTcp.listen(self.host, self.port, False, self.flow_timeout)
            except OSError as exc2:
                raise _os_error(f"listen tcp {self.addr}", exc2) from None
        return self.endpoint

    async def close(self) -> None:
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            await asyncio.to_thread(endpoint.close)
        await self.table.remove()


class FakeTcpClient:
    """The dialing side: the rule for the server's ip:port stays for the handler's life; each
    dial() gives a new connected endpoint (the caller closes it)."""

    def __init__(self, server_ip: str, port: int, idle_timeout: float) -> None:
        self.server_ip, self.port = server_ip, port
        self.idle_timeout = idle_timeout
        self.table = MuteTable(client_rules(server_ip, port))

    async def open(self) -> None:
        await self.table.install()

    async def dial(self, timeout: float = DIAL_TIMEOUT) -> _engine.FakeTcp:
        """Connect (the kernel handshake), mute, return the endpoint. OSError/TimeoutError on failure."""
        endpoint = _engine.FakeTcp.dial(self.server_ip, self.port, self.idle_timeout)
        try:
            await wait_writable(endpoint.conn_fd, timeout)
            endpoint.finish_dial()
        except BaseException:
            endpoint.close()
            raise
        return endpoint

    async def close(self) -> None:
        await self.table.remove()


async def wait_writable(fd: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, lambda: None if ready.done() else ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout)
    finally:
        loop.remove_writer(fd)
