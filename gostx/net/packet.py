"""Datagram connections, whatever carries them: a UDP socket, or frames on a stream (SOCKS5 0xF3).

`Router.dial("udp", address)` returns a PacketConn. `recvfrom()` gives (datagram, "host:port" of the
peer); `sendto(data, address)` sends to address ("" = the destination the conn was dialed for).
"""

from __future__ import annotations

import abc
import asyncio
import errno
import ipaddress
import socket
from typing import Any

from gostx.addr import format_sockaddr, split_host_port

MAX_DATAGRAM = 65535


class PacketConn(abc.ABC):
    @abc.abstractmethod
    async def recvfrom(self) -> tuple[bytes, str]:
        """The next datagram and its peer; ConnectionError once the conn is finished."""

    @abc.abstractmethod
    async def sendto(self, data: bytes, address: str = "") -> None:
        """Send one datagram to address ("" = the dialed destination)."""

    async def sendmany(self, datagrams: list[bytes]) -> None:
        """Several datagrams to the dialed destination (a conn may send them in one go)."""
        for data in datagrams:
            await self.sendto(data)

    @abc.abstractmethod
    def close(self) -> None:
        """Idempotent."""


def numeric_sockaddr(address: str, family: int) -> Any:
    """'ip:port' -> a sockaddr for family (v4 addresses mapped for AF_INET6); ValueError for a name."""
    host, port = split_host_port(address)
    ip = ipaddress.ip_address(host or "127.0.0.1")
    if family == socket.AF_INET6:
        text = f"::ffff:{ip}" if ip.version == 4 else str(ip)
        return (text, port, 0, 0)
    if ip.version != 4:
        raise ValueError(f"{address}: IPv6 address on an IPv4 socket")
    return (str(ip), port)


class DirectPacketConn(PacketConn):
    """A UDP socket: connected to the dialed destination, or unconnected (dialed for address "")."""

    def __init__(self, sock: socket.socket, connected: bool) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.connected = connected
        self._loop = asyncio.get_running_loop()

    async def recvfrom(self) -> tuple[bytes, str]:
        if self.sock.fileno() < 0:
            raise ConnectionError("closed")
        data, addr = await self._loop.sock_recvfrom(self.sock, MAX_DATAGRAM)
        return data, format_sockaddr(addr)

    async def sendto(self, data: bytes, address: str = "") -> None:
        if self.connected and not address:
            await self._loop.sock_sendall(self.sock, data)
            return
        try:
            target = numeric_sockaddr(address, self.sock.family)
        except ValueError:
            host, port = split_host_port(address)
            try:
                infos = await self._loop.getaddrinfo(host, port, family=self.sock.family, type=socket.SOCK_DGRAM)
            except UnicodeError:  # a name IDNA cannot encode: as a failed lookup (the datagram is dropped)
                raise OSError(errno.EINVAL, f"invalid host name {host[:64]!r}") from None
            target = infos[0][4]
        await self._loop.sock_sendto(self.sock, data, target)

    def close(self) -> None:
        self.sock.close()
