"""gost's route parameters, parsed: `net=`, v2 `route=` (a file or a list), v3 `routes=`.

Nothing here touches the system; gostx.netlink.routing installs what these functions return.
Bad route entries are skipped with a warning, as gost skips them; a bad `net` entry is an error,
because an address the user asked for would otherwise silently be missing.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from gostx.netlink.errors import NetConfigError

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class Route:
    """A destination network, and the gateway (a tunnel peer's IP) that traffic to it goes to."""

    dst: IPNetwork
    gateway: IPAddress | None = None

    def __str__(self) -> str:
        return f"{self.dst} via {self.gateway}" if self.gateway else str(self.dst)


def _items(value: object) -> list[str]:
    """A comma list (or a YAML list) as stripped, non-empty items; any other YAML scalar (`net: 1.5`)
    as its text, which the caller then rejects or skips like any bad entry."""
    if value is None:
        return []
    parts = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value).split(",")
    return [p.strip() for p in parts if p.strip()]


def _is_file(text: str) -> bool:
    """A route list is a file path only when such a file exists (a 300-character list is not a path:
    ENAMETOOLONG reads as no file)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def parse_cidr(text: str) -> IPNetwork | None:
    """'10.1.2.3/16' -> 10.1.0.0/16 (host bits dropped, like Go's ParseCIDR); None if not a CIDR."""
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def parse_gateway(text: str | None, what: str = "gw") -> IPAddress | None:
    """An IP address, or None (with a warning when text was given but is not one)."""
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        log.warning("%s '%s' is not an IP address: ignored", what, text)
        return None


def _route(cidr: str, gateway: IPAddress | None, source: str) -> Route | None:
    dst = parse_cidr(cidr)
    if dst is None:
        log.warning("%s: '%s' is not a CIDR (e.g. 10.0.0.0/8): skipped", source, cidr)
        return None
    return Route(dst, gateway)


def _route_file_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise NetConfigError(f"cannot read route file {path}: {exc}") from None


def parse_route_option(value: object, gw: str | None = None) -> list[Route]:
    """gost `route=`: a path to an existing file first, else a comma list of CIDRs.

    File lines are `CIDR [GATEWAY]` (spaces or tabs); '#' lines and blank lines are ignored.
    Entries without their own gateway get `gw`. Entries that are not CIDRs are skipped.
    """
    default_gw = parse_gateway(gw)
    if isinstance(value, str) and value.strip() and _is_file(value.strip()):
        path = Path(value.strip())
        routes = []
        for number, line in enumerate(_route_file_lines(path), start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            gateway = parse_gateway(fields[1], f"{path}:{number}: gateway") if len(fields) > 1 else None
            route = _route(fields[0], gateway or default_gw, f"{path}:{number}")
            if route:
                routes.append(route)
        return routes
    return [r for item in _items(value) if (r := _route(item, default_gw, "route"))]


def parse_routes_option(value: object, gw: str | None = None) -> list[Route]:
    """gost v3 `routes=`: items "CIDR [GATEWAY]" (a YAML list, or a comma list on the command
    line); an item without a gateway gets `gw`."""
    default_gw = parse_gateway(gw)
    routes = []
    for item in _items(value):
        fields = item.split()
        gateway = parse_gateway(fields[1], f"routes: '{item}': gateway") if len(fields) > 1 else None
        route = _route(fields[0], gateway or default_gw, "routes")
        if route:
            routes.append(route)
    return routes


def parse_nets(value: object) -> list[IPInterface]:
    """gost `net=`: a comma list of address/prefix (IPv4 or IPv6), in order, duplicates dropped."""
    nets: list[IPInterface] = []
    for item in _items(value):
        try:
            if "/" not in item:
                raise ValueError
            net = ipaddress.ip_interface(item)
        except ValueError:
            raise NetConfigError(
                f"net: '{item}' is not an address with a prefix length (e.g. 192.168.123.1/24)"
            ) from None
        if net not in nets:
            nets.append(net)
    return nets
