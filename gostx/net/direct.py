"""Dials with `interface`, `so_mark` and `dialTimeout`, placed as gost places them: a
service's values for its direct dials, a hop's / node's for the connection to the node.

`interface`: a NIC name, an IP, or a comma list of these, tried in order. A NIC name tries each of its
addresses as the local address, with SO_BINDTODEVICE on the NIC; an IP binds that address and the NIC
that holds it. SO_BINDTODEVICE is set only when the destination is a host name or a global-unicast IP
(not loopback, link-local, multicast), as gost. After a failure the next address / item is tried, unless
the item ends in `!` (strict): then the dial fails at once (an address of the other family is always
skipped). `so_mark`: SO_MARK on the socket, which needs CAP_NET_ADMIN. An empty host dials 127.0.0.1,
as Go does (it dials 0.0.0.0).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from gostx.config.metadata import Metadata
from gostx.errors import GostError
from gostx.net.iface import binds_device, resolve_interface

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
                   interfaces=[i for i in md.get_strings("interface") if i.rstrip("!")])

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


def _prepare(sock: socket.socket, opts: DialOptions, ifname: str, local_ip: str, host: str) -> None:
    sock.setblocking(False)
    if opts.mark:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, opts.mark)
    if ifname and binds_device(host):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    if local_ip:
        sock.bind((local_ip, 0))


def _family_matches(local_ip: str, family: int) -> bool:
    if not local_ip:
        return True
    return (ipaddress.ip_address(local_ip).version == 6) == (family == socket.AF_INET6)


async def _interface_candidates(item: str) -> tuple[bool, str, list[str]]:
    """(strict, NIC name, local addresses) of one `interface` item."""
    strict = item.endswith("!")
    ifname, addresses = await resolve_interface(item.rstrip("!"))
    return strict, ifname, addresses


class _Failures:
    """The last error of a dial over several interfaces and addresses."""

    last: Exception | None = None


async def _each_interface(opts: DialOptions, failed: _Failures) -> AsyncIterator[tuple[bool, str, list[str]]]:
    """(strict, NIC, local addresses) of each `interface` item in turn ("" = any). An item that does
    not resolve is skipped (its error kept in `failed`) unless it ends in '!', which raises."""
    for item in opts.interfaces or [""]:
        try:
            found = await _interface_candidates(item)
        except OSError as exc:
            if item.endswith("!"):
                raise
            failed.last = exc
            continue
        yield found


async def dial(network: str, host: str, port: int, opts: DialOptions) -> socket.socket:
    """A connected non-blocking socket to host:port ('tcp' or 'udp'); OSError/TimeoutError on failure."""
    loop = asyncio.get_running_loop()
    sock_type = socket.SOCK_STREAM if network == "tcp" else socket.SOCK_DGRAM
    async with asyncio.timeout(opts.timeout):
        infos = await _resolve(loop, host or "127.0.0.1", port, sock_type)
        failed = _Failures()
        async for strict, ifname, addresses in _each_interface(opts, failed):
            for local_ip in addresses:
                matched = False
                for family, _, proto, _, sockaddr in infos:
                    if not _family_matches(local_ip, family):
                        continue
                    matched = True
                    sock = socket.socket(family, sock_type, proto)
                    try:
                        _prepare(sock, opts, ifname, local_ip, host or "127.0.0.1")
                        await loop.sock_connect(sock, sockaddr)
                        return sock
                    except OSError as exc:
                        sock.close()
                        failed.last = exc
                        if strict:
                            raise
                    except BaseException:
                        sock.close()
                        raise
                if not matched and failed.last is None:
                    failed.last = OSError(f"no suitable address for {host} from local address {local_ip}")
        raise failed.last or OSError(f"no address for {host}")


_PROTO: dict[int, int] = {socket.SOCK_STREAM: socket.IPPROTO_TCP, socket.SOCK_DGRAM: socket.IPPROTO_UDP}


def _literal_infos(host: str, port: int, sock_type: int) -> list[Any] | None:
    """getaddrinfo's answer for an IP literal (dotted-quad IPv4, or IPv6 without a %zone), built without
    the resolver; None for anything else (a name, a zone, a short form such as 127.1)."""
    if not 0 <= port <= 0xFFFF or "%" in host:
        return None  # getaddrinfo's own error; a zone needs its interface index
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 4:
        return [(socket.AF_INET, sock_type, _PROTO.get(sock_type, 0), "", (str(ip), port))]
    return [(socket.AF_INET6, sock_type, _PROTO.get(sock_type, 0), "", (str(ip), port, 0, 0))]


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int, sock_type: int) -> list[Any]:
    """getaddrinfo, with a name it cannot even encode (a 64-byte label: UnicodeError) as an OSError, so a
    bad name from anywhere (a peer, a sniffer, a config) is a dial failure, not an internal error. An IP
    literal is answered here: asyncio's getaddrinfo always goes through the thread pool (two thread
    hand-offs per dial), even for a literal."""
    infos = _literal_infos(host, port, sock_type)
    if infos is not None:
        return infos
    try:
        return await loop.getaddrinfo(host, port, type=sock_type)
    except UnicodeError:
        raise OSError(errno.EINVAL, f"invalid host name {host[:64]!r}") from None


async def listen_udp(opts: DialOptions) -> socket.socket:
    """An unconnected UDP socket (dual-stack when it can) for "udp" to any destination, with the
    interface's first usable address, its NIC and the mark, as gost's direct UDP association."""
    failed = _Failures()
    async for strict, ifname, addresses in _each_interface(opts, failed):
        for local_ip in addresses:
            v6 = not local_ip or ipaddress.ip_address(local_ip).version == 6
            sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if v6 and not local_ip:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                _prepare(sock, opts, ifname, "", "")  # a host name as destination: the device is bound
                sock.bind((local_ip or "::", 0))
                return sock
            except OSError as exc:
                sock.close()
                failed.last = exc
                if strict:
                    raise
    raise failed.last or OSError("no address to listen on")
