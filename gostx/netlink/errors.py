"""The one error of device and route configuration, and how netlink errnos read to a user."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from gostx.errors import GostError


class NetConfigError(GostError):
    """A network device, address or route could not be set up (or a net/route value is invalid)."""


_REASONS = {
    errno.EPERM: "needs CAP_NET_ADMIN (run as root)",
    errno.EACCES: "needs CAP_NET_ADMIN (run as root)",
    errno.EEXIST: "it already exists",
    errno.ENODEV: "no such device",
    errno.ENETUNREACH: "the gateway is not reachable through the device",
    errno.ENETDOWN: "the device is down",
    errno.EADDRNOTAVAIL: "address not available",
    errno.ESRCH: "no such route",
}


def reason(code: int) -> str:
    """A short, lower-case explanation of a netlink errno."""
    return _REASONS.get(code) or os.strerror(code).lower()


@contextmanager
def netlink_action(action: str) -> Iterator[None]:
    """Run one netlink step; its failure becomes NetConfigError("<action>: <reason>")."""
    try:
        yield
    except OSError as exc:  # gostx.netlink.rtnl.NetlinkError is one
        raise NetConfigError(f"{action}: {reason(exc.errno or errno.EIO)}") from None
