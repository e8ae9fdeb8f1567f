"""Network device configuration by netlink: addresses, MTU, up, routes; gost's route parameters."""

from gostx.netlink.errors import NetConfigError
from gostx.netlink.link import configure_link, remove_link
from gostx.netlink.routes import Route, parse_nets, parse_route_option, parse_routes_option
from gostx.netlink.routing import add_routes, remove_routes

__all__ = [
    "NetConfigError",
    "Route",
    "add_routes",
    "configure_link",
    "parse_nets",
    "parse_route_option",
    "parse_routes_option",
    "remove_link",
    "remove_routes",
]
