"""Device configuration by netlink (pyroute2, no `ip` subprocess): MTU, addresses, up, removal."""

from __future__ import annotations

import errno
from collections.abc import Iterable

from pyroute2 import IPRoute
from pyroute2 import NetlinkError as _PyrouteNetlinkError

from gostx.netlink.errors import NetConfigError, netlink_action, reason
from gostx.netlink.routes import IPInterface

IFA_F_NODAD = 0x02   # the address is usable at once, without duplicate address detection (IPv6)
MIN_MTU = 68


def link_index(ipr: IPRoute, ifname: str) -> int:
    """The interface index of ifname, or NetConfigError naming it."""
    with netlink_action(f"device {ifname!r}"):
        found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise NetConfigError(f"device {ifname!r}: {reason(errno.ENODEV)}")
    return int(found[0])


def configure_link(ifname: str, mtu: int | None, addresses: Iterable[IPInterface], up: bool = True) -> None:
    """Set the MTU (None or 0: leave it), add every address (IPv4 and IPv6; IPv6 without DAD so
    it is usable at once; an address that is there already is kept), then bring the device up."""
    if mtu is not None and mtu != 0 and mtu < MIN_MTU:
        raise NetConfigError(f"mtu {mtu} for {ifname!r} is too small (at least {MIN_MTU})")
    with IPRoute() as ipr:
        index = link_index(ipr, ifname)
        if mtu:
            with netlink_action(f"set mtu {mtu} on {ifname!r}"):
                ipr.link("set", index=index, mtu=mtu)
        for address in addresses:
            flags = IFA_F_NODAD if address.version == 6 else 0
            with netlink_action(f"add address {address} to {ifname!r}"):
                ipr.addr(
                    "replace", index=index, address=str(address.ip),
                    prefixlen=address.network.prefixlen, flags=flags,
                )
        if up:
            with netlink_action(f"bring {ifname!r} up"):
                ipr.link("set", index=index, state="up")


def remove_link(ifname: str, missing_ok: bool = True) -> bool:
    """Delete the device. Returns False when it was not there (an error unless missing_ok)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            if missing_ok:
                return False
            raise NetConfigError(f"remove device {ifname!r}: {reason(errno.ENODEV)}")
        try:
            ipr.link("del", index=found[0])
        except _PyrouteNetlinkError as exc:
            if missing_ok and exc.code == errno.ENODEV:
                return False
            raise NetConfigError(f"remove device {ifname!r}: {reason(exc.code)}") from None
    return True
