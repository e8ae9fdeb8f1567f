"""gost's tun/tap options, read once from metadata. Each key also takes the v3
`tun.` prefix. Where v2 and v3 differ, gostx follows the v2 seed (README: Differences from gost)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from gostx.config.metadata import Metadata
from gostx.errors import GostError
from gostx.netlink.routes import Route, parse_nets, parse_route_option, parse_routes_option

DEFAULT_MTU = 1350            # gost v2 and the TUN/TAP seed; v3 uses 1420
DEFAULT_KEEPALIVE_TTL = 10.0  # seconds, v3 `ttl`
DEFAULT_PEER_TIMEOUT = 300.0  # seconds a learned route lives without traffic (gost: forever)
DEFAULT_PEER_ROUTES = 4       # routes (inner addresses/MACs) one client may own on a server (gost: no cap)
MAX_PEER_ROUTES = 4096

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass
class DeviceOptions:
    """What the tun/tap listener needs to create and configure its device."""

    kind: str                 # "tun" or "tap"
    name: str
    mtu: int
    nets: list[IPInterface]
    routes: list[Route] = field(default_factory=list)
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    @classmethod
    def from_metadata(cls, kind: str, md: Metadata) -> DeviceOptions:
        nets = parse_nets(md.raw("net", "tun.net") or "")
        if kind == "tun" and not nets:
            raise GostError("tun: the `net` option is required, e.g. net=192.168.123.1/24")
        mtu = md.get_int("mtu", "tun.mtu", default=0)
        gw_text = md.get_string("gw", "tun.gw")
        try:
            gateway = ipaddress.ip_address(gw_text) if gw_text else None
        except ValueError:
            raise GostError(f"{kind}: bad gw {gw_text!r}: not an IP address") from None
        routes = parse_route_option(md.get_string("route", "tun.route"), gw_text or None)
        routes += parse_routes_option(md.raw("routes", "tun.routes") or [], gw_text or None)
        return cls(kind=kind, name=md.get_string("name", "tun.name"), mtu=mtu if mtu > 0 else DEFAULT_MTU,
                   nets=nets, routes=routes, gateway=gateway)


@dataclass
class TunnelOptions:
    """What the tun/tap handler needs: cipher, keepalive (v3 client), p2p (v3 server)."""

    method: str | None
    password: str
    keepalive: bool
    ttl: float
    passphrase: bytes
    p2p: bool
    fake_tcp: bool
    peer_timeout: float
    peer_routes: int = DEFAULT_PEER_ROUTES
    pins: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_config(cls, kind: str, md: Metadata, username: str, password: str) -> TunnelOptions:
        ttl = md.get_duration("ttl", "tun.ttl", default=DEFAULT_KEEPALIVE_TTL)
        passphrase = md.get_string("passphrase", "token", "tun.token").encode()[:16]
        peer_routes = md.get_int("peerRoutes", "tun.peerRoutes", default=DEFAULT_PEER_ROUTES)
        if not 1 <= peer_routes <= MAX_PEER_ROUTES:
            raise GostError(f"{kind}: peerRoutes must be 1..{MAX_PEER_ROUTES}, got {peer_routes}")
        pins = parse_pins(kind, md.raw("peerPins", "tun.peerPins"))
        return cls(
            method=username or None,
            password=password,
            keepalive=kind == "tun" and md.get_bool("keepalive", "tun.keepalive"),
            ttl=ttl if ttl > 0 else DEFAULT_KEEPALIVE_TTL,
            passphrase=passphrase,
            p2p=md.get_bool("p2p", "tun.p2p"),
            fake_tcp=md.get_bool("tcp"),
            peer_timeout=md.get_duration("peerTimeout", default=DEFAULT_PEER_TIMEOUT),
            peer_routes=peer_routes,
            pins=pins,
        )


_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def parse_pins(kind: str, value: object) -> list[tuple[str, str]]:
    """`peerPins=INNER@OUTER_IP[,...]` (or a YAML list): the server learns INNER (an address in `net`;
    a MAC for tap) only from a client whose outer IP is OUTER_IP. -> [(inner, outer)], normalised."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        inner, sep, outer = text.rpartition("@")
        if not sep or not inner or not outer:
            raise GostError(f"{kind}: bad peerPins entry {text!r}: expected INNER@OUTER_IP")
        try:
            outer_ip = ipaddress.ip_address(outer.strip("[]"))
        except ValueError:
            raise GostError(f"{kind}: bad peerPins entry {text!r}: {outer!r} is not an IP address") from None
        if kind == "tap":
            if not _MAC.match(inner):
                raise GostError(f"{kind}: bad peerPins entry {text!r}: {inner!r} is not a MAC address")
            out.append((inner.lower(), str(outer_ip)))
            continue
        try:
            inner_ip = ipaddress.ip_address(inner.strip("[]"))
        except ValueError:
            raise GostError(f"{kind}: bad peerPins entry {text!r}: {inner!r} is not an IP address") from None
        out.append((str(inner_ip), str(outer_ip)))
    return out
