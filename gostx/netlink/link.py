"""Device configuration by netlink (gostx.netlink.rtnl, no `ip` subprocess): MTU, addresses, up, removal.

Each operation has a coroutine form (`*_async`, for the asyncio control plane) and a synchronous
one. rtnetlink answers at once, so the coroutines do the work in place.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

from gostx.netlink.errors import NetConfigError, netlink_action, reason
from gostx.netlink.routes import IPInterface
from gostx.netlink.rtnl import NetlinkError, Rtnl, link_lookup

IFA_F_NODAD = 0x02   # the address is usable at once, without duplicate address detection (IPv6)
MIN_MTU = 68


def link_index(ifname: str) -> int:
    """The interface index of ifname, or NetConfigError naming it."""
    index = link_lookup(ifname)
    if index is None:
        raise NetConfigError(f"device {ifname!r}: {reason(errno.ENODEV)}")
    return index


def configure_link(
    ifname: str, mtu: int | None, addresses: Iterable[IPInterface], up: bool = True, txqueuelen: int = 0
) -> None:
    """Set the MTU (None or 0: leave it) and the transmit queue length (0: leave it), add every
    address (IPv4 and IPv6; IPv6 without DAD so it is usable at once; an address that is there already
    is kept), then bring the device up."""
    if mtu is not None and mtu != 0 and mtu < MIN_MTU:
        raise NetConfigError(f"mtu {mtu} for {ifname!r} is too small (at least {MIN_MTU})")
    index = link_index(ifname)
    with Rtnl() as nl:
        if mtu:
            with netlink_action(f"set mtu {mtu} on {ifname!r}"):
                nl.link_set(index, mtu=mtu)
        if txqueuelen:
            with netlink_action(f"set txqueuelen {txqueuelen} on {ifname!r}"):
                nl.link_set(index, txqlen=txqueuelen)
        for address in addresses:
            flags = IFA_F_NODAD if address.version == 6 else 0
            with netlink_action(f"add address {address} to {ifname!r}"):
                nl.addr_replace(index, str(address.ip), address.network.prefixlen, flags)
        if up:
            with netlink_action(f"bring {ifname!r} up"):
                nl.link_set(index, up=True)


async def configure_link_async(
    ifname: str, mtu: int | None, addresses: Iterable[IPInterface], up: bool = True, txqueuelen: int = 0
) -> None:
    """configure_link from asyncio code."""
    configure_link(ifname, mtu, addresses, up, txqueuelen)


def remove_link(ifname: str, missing_ok: bool = True) -> bool:
    """Delete the device. Returns False when it was not there (an error unless missing_ok)."""
    index = link_lookup(ifname)
    if index is None:
        if missing_ok:
            return False
        raise NetConfigError(f"remove device {ifname!r}: {reason(errno.ENODEV)}")
    try:
        with Rtnl() as nl:
            nl.link_del(index)
    except NetlinkError as exc:
        if missing_ok and exc.code == errno.ENODEV:
            return False
        raise NetConfigError(f"remove device {ifname!r}: {reason(exc.code)}") from None
    return True


async def remove_link_async(ifname: str, missing_ok: bool = True) -> bool:
    """remove_link from asyncio code."""
    return remove_link(ifname, missing_ok)
