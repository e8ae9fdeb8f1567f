"""Routes into a device by netlink (pyroute2): route replace, and removal.

A route with a gateway of its own address family becomes `DST via GW dev IFNAME` (the gateway must
be reachable on the device, so a route can never silently leave through another interface); one
without a gateway, or whose gateway is of the other family (gost keeps such gateways for its own
peer table), becomes `DST dev IFNAME`. Coroutines (`*_async`) with synchronous twins.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2 import NetlinkError as _PyrouteNetlinkError

from gostx.netlink.errors import NetConfigError, reason
from gostx.netlink.link import link_index
from gostx.netlink.routes import IPAddress, Route
from gostx.netlink.sync import run_sync


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


async def add_routes_async(ifname: str, routes: Iterable[Route]) -> list[Route]:
    """Install every route (replacing one to the same destination). Returns the routes installed.
    On a failure the routes installed so far are removed again and NetConfigError names the route."""
    applied: list[Route] = []
    async with AsyncIPRoute() as ipr:
        index = await link_index(ipr, ifname)
        for route in routes:
            try:
                await ipr.route("replace", **route_spec(route, index))
            except _PyrouteNetlinkError as exc:
                await _remove(ipr, index, applied)
                raise NetConfigError(f"add {_describe(route, ifname)}: {reason(exc.code)}") from None
            applied.append(route)
    return applied


async def _remove(ipr: AsyncIPRoute, index: int, routes: Iterable[Route]) -> int:
    removed = 0
    for route in routes:
        try:
            await ipr.route("del", dst=str(route.dst), oif=index)
            removed += 1
        except _PyrouteNetlinkError as exc:
            if exc.code not in (errno.ESRCH, errno.ENOENT, errno.ENODEV):
                raise
    return removed


async def remove_routes_async(ifname: str, routes: Iterable[Route]) -> int:
    """Remove the routes from the device; ones already gone (or a device already gone) are fine.
    Returns how many were removed."""
    async with AsyncIPRoute() as ipr:
        found = await ipr.link_lookup(ifname=ifname)
        if not found:
            return 0
        try:
            return await _remove(ipr, int(found[0]), routes)
        except _PyrouteNetlinkError as exc:
            raise NetConfigError(f"remove routes from {ifname!r}: {reason(exc.code)}") from None


def add_routes(ifname: str, routes: Iterable[Route]) -> list[Route]:
    """Synchronous add_routes_async."""
    return run_sync(add_routes_async(ifname, list(routes)))


def remove_routes(ifname: str, routes: Iterable[Route]) -> int:
    """Synchronous remove_routes_async."""
    return run_sync(remove_routes_async(ifname, list(routes)))
