"""A small rtnetlink client: the handful of requests gostx sends (link set/delete, address replace,
route replace/delete, address dump), on a plain AF_NETLINK socket with the standard library only.

pyroute2 covers all of netlink but costs much memory and import time (its package imports every
module it has; bench/README.md, "Figures behind design choices"); a tungo/tun process needs these eight
message types. Requests are synchronous: the kernel handles rtnetlink requests inside sendmsg, so the
acknowledgement is there at once.

Errors are NetlinkError (an OSError) with the kernel's errno in `.code` (and `.errno`).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address

# message types (linux/rtnetlink.h)
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLMSG_ERROR, NLMSG_DONE = 2, 3
# request flags (linux/netlink.h)
NLM_F_REQUEST, NLM_F_ACK, NLM_F_ROOT, NLM_F_MATCH = 0x01, 0x04, 0x100, 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400
# attributes
IFLA_MTU, IFLA_TXQLEN = 4, 13
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4        # what pyroute2 (and so gostx before) installs routes with
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

_NLMSGHDR = struct.Struct("=IHHII")      # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")    # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBi")     # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")     # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTATTR = struct.Struct("=HH")


class NetlinkError(OSError):
    """The kernel refused a request: `.code` is its errno."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))
        self.code = code


def _attr(kind: int, data: bytes) -> bytes:
    length = _RTATTR.size + len(data)
    return _RTATTR.pack(length, kind) + data + b"\0" * (-length % 4)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _attrs(data: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            return
        yield kind & 0x3FFF, data[offset + _RTATTR.size:offset + length]
        offset += (length + 3) & ~3


class Rtnl:
    """One rtnetlink socket; a context manager (closes the socket)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags | NLM_F_REQUEST, self.seq, 0) + body)
        return self.seq

    def _replies(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """(type, payload) of each reply to seq until the ack or NLMSG_DONE; NetlinkError on an error."""
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, got_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    break
                payload = data[offset + _NLMSGHDR.size:offset + length]
                offset += (length + 3) & ~3
                if got_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise NetlinkError(-code)
                    return
                yield kind, payload

    def request(self, kind: int, flags: int, body: bytes) -> None:
        """Send one request and wait for its acknowledgement."""
        for _ in self._replies(self._send(kind, flags | NLM_F_ACK, body)):
            pass

    # links

    def link_set(self, index: int, *, mtu: int = 0, txqlen: int = 0, up: bool | None = None) -> None:
        flags = change = 0
        if up is not None:
            flags, change = (IFF_UP if up else 0), IFF_UP
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)
        if mtu:
            body += _u32(IFLA_MTU, mtu)
        if txqlen:
            body += _u32(IFLA_TXQLEN, txqlen)
        self.request(RTM_NEWLINK, 0, body)

    def link_del(self, index: int) -> None:
        self.request(RTM_DELLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0))

    # addresses

    def addr_replace(self, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        ip = ip_address(address)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        body = _IFADDRMSG.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index)
        body += _attr(IFA_LOCAL, ip.packed) + _attr(IFA_ADDRESS, ip.packed)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, body)

    def addresses(self, index: int = 0) -> list[tuple[int, str]]:
        """(interface index, address) of every address (of one interface if index), in the kernel's
        order: IPv4 first. The address is IFA_ADDRESS (the peer's on a point-to-point link, like pyroute2)."""
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        found = []
        for kind, payload in self._replies(self._send(RTM_GETADDR, NLM_F_DUMP, body)):
            if kind != RTM_NEWADDR or len(payload) < _IFADDRMSG.size:
                continue
            _family, _prefix, _flags, _scope, ifindex = _IFADDRMSG.unpack_from(payload)
            if index and ifindex != index:
                continue
            attrs = dict(_attrs(payload, _IFADDRMSG.size))
            raw = attrs.get(IFA_ADDRESS) or attrs.get(IFA_LOCAL)
            if raw is None:
                continue
            ip: IPv4Address | IPv6Address = ip_address(raw)
            found.append((ifindex, str(ip)))
        return found

    # routes

    def route(self, command: str, dst: str, oif: int, gateway: str | None = None) -> None:
        """command "replace" (create or replace) or "del": `dst via gateway dev oif` in the main table."""
        net_ip, _, prefix = dst.partition("/")
        ip = ip_address(net_ip)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        dst_len = int(prefix) if prefix else ip.max_prefixlen
        if command == "replace":
            kind, flags, proto, rtype = RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, RTPROT_STATIC, RTN_UNICAST
        elif command == "del":
            kind, flags, proto, rtype = RTM_DELROUTE, 0, 0, 0
        else:
            raise ValueError(f"bad route command {command!r}")
        body = _RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, proto, RT_SCOPE_UNIVERSE, rtype, 0)
        body += _attr(RTA_DST, ip.packed) + _u32(RTA_OIF, oif) + _u32(RTA_TABLE, RT_TABLE_MAIN)
        if gateway is not None:
            body += _attr(RTA_GATEWAY, ip_address(gateway).packed)
        self.request(kind, flags, body)


def link_lookup(ifname: str) -> int | None:
    """The interface index of ifname, or None."""
    try:
        return socket.if_nametoindex(ifname)
    except (OSError, ValueError):
        return None


def link_name(index: int) -> str | None:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return None


__all__ = ["NetlinkError", "Rtnl", "link_lookup", "link_name"]
