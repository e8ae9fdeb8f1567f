"""Routes into a device by netlink (gostx.netlink.rtnl): route replace, and removal.

A route with a gateway of its own address family becomes `DST via GW dev IFNAME` (the gateway must
be reachable on the device, so a route can never silently leave through another interface); one
without a gateway, or whose gateway is of the other family (gost keeps such gateways for its own
peer table), becomes `DST dev IFNAME`. Synchronous functions with coroutine twins (`*_async`).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Any

from gostx.netlink.errors import NetConfigError, reason
from gostx.netlink.link import link_index
from gostx.netlink.routes import IPAddress, Route
from gostx.netlink.rtnl import NetlinkError, Rtnl, link_lookup


def os_gateway(route: Route) -> IPAddress | None:
    """The gateway the OS route uses: the route's own, if it is of the destination's family."""
    if route.gateway is not None and route.gateway.version == route.dst.version:
        return route.gateway
    return None


def route_spec(route: Route, index: int) -> dict[str, Any]:
    """The Rtnl.route arguments for one route into device `index`."""
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
    index = link_index(ifname)
    with Rtnl() as nl:
        for route in routes:
            try:
                nl.route("replace", **route_spec(route, index))
            except NetlinkError as exc:
                _remove(nl, index, applied)
                raise NetConfigError(f"add {_describe(route, ifname)}: {reason(exc.code)}") from None
            applied.append(route)
    return applied


def _remove(nl: Rtnl, index: int, routes: Iterable[Route]) -> int:
    removed = 0
    for route in routes:
        try:
            nl.route("del", str(route.dst), index)
            removed += 1
        except NetlinkError as exc:
            if exc.code not in (errno.ESRCH, errno.ENOENT, errno.ENODEV):
                raise
    return removed


def remove_routes(ifname: str, routes: Iterable[Route]) -> int:
    """Remove the routes from the device; ones already gone (or a device already gone) are fine.
    Returns how many were removed."""
    index = link_lookup(ifname)
    if index is None:
        return 0
    try:
        with Rtnl() as nl:
            return _remove(nl, index, routes)
    except NetlinkError as exc:
        raise NetConfigError(f"remove routes from {ifname!r}: {reason(exc.code)}") from None


async def add_routes_async(ifname: str, routes: Iterable[Route]) -> list[Route]:
    """add_routes from asyncio code."""
    return add_routes(ifname, routes)


async def remove_routes_async(ifname: str, routes: Iterable[Route]) -> int:
    """remove_routes from asyncio code."""
    return remove_routes(ifname, routes)
