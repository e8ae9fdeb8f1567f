"""Network device configuration by netlink: addresses, MTU, up, routes; gost's route parameters.

Every operation has a coroutine form (`*_async`, for asyncio code) and a synchronous form.
"""

from gostx.netlink.errors import NetConfigError
from gostx.netlink.link import configure_link, configure_link_async, remove_link, remove_link_async
from gostx.netlink.routes import Route, parse_nets, parse_route_option, parse_routes_option
from gostx.netlink.routing import add_routes, add_routes_async, remove_routes, remove_routes_async

__all__ = [
    "NetConfigError",
    "Route",
    "add_routes",
    "add_routes_async",
    "configure_link",
    "configure_link_async",
    "parse_nets",
    "parse_route_option",
    "parse_routes_option",
    "remove_link",
    "remove_link_async",
    "remove_routes",
    "remove_routes_async",
]
