"""gost's tungo listener metadata, read once. Every key also takes the `tun.` prefix."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from gostx.config.metadata import Metadata
from gostx.errors import GostError
from gostx.netlink.routes import IPAddress, IPInterface, Route, parse_nets, parse_route_option, parse_routes_option

DEFAULT_NAME = "tungo"
DEFAULT_MTU = 1420
MIN_MTU = 576     # the stack's minimum (IPv4's minimum datagram size)
MAX_MTU = 65535


@dataclass
class TungoOptions:
    name: str = DEFAULT_NAME
    mtu: int = DEFAULT_MTU
    nets: list[IPInterface] = field(default_factory=list)
    gateway: IPAddress | None = None
    routes: list[Route] = field(default_factory=list)
    dns: list[IPAddress] = field(default_factory=list)

    @classmethod
    def from_metadata(cls, md: Metadata) -> TungoOptions:
        mtu_text = md.get_string("mtu", "tun.mtu").strip()
        try:
            mtu = int(mtu_text) if mtu_text else DEFAULT_MTU
        except ValueError:
            raise GostError(f"tungo: mtu {mtu_text!r} is not a number") from None
        if mtu <= 0:
            mtu = DEFAULT_MTU
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise GostError(f"tungo: mtu {mtu} is out of range ({MIN_MTU}..{MAX_MTU})")
        gw_text = md.get_string("gw", "tun.gw").strip()
        try:
            gateway = ipaddress.ip_address(gw_text) if gw_text else None
        except ValueError:
            raise GostError(f"tungo: gw {gw_text!r} is not an IP address") from None
        routes = parse_route_option(md.get_string("route", "tun.route"), gw_text or None)
        routes += parse_routes_option(md.raw("routes", "tun.routes") or [], gw_text or None)
        return cls(
            name=md.get_string("name", "tun.name").strip() or DEFAULT_NAME,
            mtu=mtu,
            nets=parse_nets(md.raw("net", "tun.net") or ""),
            gateway=gateway,
            routes=routes,
            dns=parse_dns(md.raw("dns", "tun.dns")),
        )


def parse_dns(value: object) -> list[IPAddress]:
    """`dns`: a comma list of IPs, or a list (the command line turns `dns=a,b` into one)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    servers: list[IPAddress] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            servers.append(ipaddress.ip_address(item))
        except ValueError:
            raise GostError(f"tungo: dns {item!r} is not an IP address") from None
    return servers
