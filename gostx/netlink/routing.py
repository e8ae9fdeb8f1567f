"""Routes into a device by netlink (pyroute2): route replace, and removal.

A route with a gateway of its own address family becomes `DST via GW dev IFNAME` (the gateway must
be reachable on the device, so a route can never silently leave through another interface); one
without a gateway, or whose gateway is of the other family (gost keeps such gateways for its own
peer table), becomes `DST dev IFNAME`.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Any

from pyroute2 import IPRoute
from pyroute2 import NetlinkError as _PyrouteNetlinkError

from gostx.netlink.errors import NetConfigError, reason
from gostx.netlink.link import link_index
from gostx.netlink.routes import IPAddress, Route


def os_gateway(route: Route) -> IPAddress | None:
    """The gateway the OS route uses: the route's own, if it is of the destination's family."""
    if route.gateway is not None and route.gateway.version == route.dst.version:
        return route.gateway
    return None


def route_spec(route: Route, index: int) -> dict[str, Any]:
    """The pyroute2 arguments for one route into device `index`."""
    spec: dict[str, Any] = {"dst": str(route.dst), "oif": index}
    gateway = os_gateway(route)
    if gateway is not None:
        spec["gateway"] = str(gateway)
    return spec


def _describe(route: Route, ifname: str) -> str:
    gateway = os_gateway(route)
    return f"route {route.dst}" + (f" via {gateway}" if gateway else "") + f" dev {ifname}"


def add_routes(ifname: str, routes: Iterable[Route]) -> list[Route]:
    """Install every route (replacing one to the same destination). Returns the routes installed.
    On a failure the routes installed so far are removed again and NetConfigError names the route."""
    applied: list[Route] = []
    with IPRoute() as ipr:
        index = link_index(ipr, ifname)
        for route in routes:
            try:
                ipr.route("replace", **route_spec(route, index))
            except _PyrouteNetlinkError as exc:
                _remove(ipr, index, applied)
                raise NetConfigError(f"add {_describe(route, ifname)}: {reason(exc.code)}") from None
            applied.append(route)
    return applied


def _remove(ipr: IPRoute, index: int, routes: Iterable[Route]) -> int:
    removed = 0
    for route in routes:
        spec = {"dst": str(route.dst), "oif": index}
        try:
            ipr.route("del", **spec)
            removed += 1
        except _PyrouteNetlinkError as exc:
            if exc.code not in (errno.ESRCH, errno.ENOENT, errno.ENODEV):
                raise
    return removed


def remove_routes(ifname: str, routes: Iterable[Route]) -> int:
    """Remove the routes from the device; ones already gone (or a device already gone) are fine.
    Returns how many were removed."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return 0
        try:
            return _remove(ipr, int(found[0]), routes)
        except _PyrouteNetlinkError as exc:
            raise NetConfigError(f"remove routes from {ifname!r}: {reason(exc.code)}") from None
