"""Device configuration by netlink (pyroute2, no `ip` subprocess): MTU, addresses, up, removal.

Each operation is a coroutine (`*_async`, for the asyncio control plane) with a synchronous twin.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

from pyroute2 import AsyncIPRoute
from pyroute2 import NetlinkError as _PyrouteNetlinkError

from gostx.netlink.errors import NetConfigError, netlink_action, reason
from gostx.netlink.routes import IPInterface
from gostx.netlink.sync import run_sync

IFA_F_NODAD = 0x02   # the address is usable at once, without duplicate address detection (IPv6)
MIN_MTU = 68


async def link_index(ipr: AsyncIPRoute, ifname: str) -> int:
    """The interface index of ifname, or NetConfigError naming it."""
    with netlink_action(f"device {ifname!r}"):
        found = await ipr.link_lookup(ifname=ifname)
    if not found:
        raise NetConfigError(f"device {ifname!r}: {reason(errno.ENODEV)}")
    return int(found[0])


async def configure_link_async(
    ifname: str, mtu: int | None, addresses: Iterable[IPInterface], up: bool = True, txqueuelen: int = 0
) -> None:
    """Set the MTU (None or 0: leave it) and the transmit queue length (0: leave it), add every
    address (IPv4 and IPv6; IPv6 without DAD so it is usable at once; an address that is there already
    is kept), then bring the device up."""
    if mtu is not None and mtu != 0 and mtu < MIN_MTU:
        raise NetConfigError(f"mtu {mtu} for {ifname!r} is too small (at least {MIN_MTU})")
    async with AsyncIPRoute() as ipr:
        index = await link_index(ipr, ifname)
        if mtu:
            with netlink_action(f"set mtu {mtu} on {ifname!r}"):
                await ipr.link("set", index=index, mtu=mtu)
        if txqueuelen:
            with netlink_action(f"set txqueuelen {txqueuelen} on {ifname!r}"):
                await ipr.link("set", index=index, txqlen=txqueuelen)
        for address in addresses:
            flags = IFA_F_NODAD if address.version == 6 else 0
            with netlink_action(f"add address {address} to {ifname!r}"):
                await ipr.addr(
                    "replace", index=index, address=str(address.ip),
                    prefixlen=address.network.prefixlen, flags=flags,
                )
        if up:
            with netlink_action(f"bring {ifname!r} up"):
                await ipr.link("set", index=index, state="up")


async def remove_link_async(ifname: str, missing_ok: bool = True) -> bool:
    """Delete the device. Returns False when it was not there (an error unless missing_ok)."""
    async with AsyncIPRoute() as ipr:
        found = await ipr.link_lookup(ifname=ifname)
        if not found:
            if missing_ok:
                return False
            raise NetConfigError(f"remove device {ifname!r}: {reason(errno.ENODEV)}")
        try:
            await ipr.link("del", index=found[0])
        except _PyrouteNetlinkError as exc:
            if missing_ok and exc.code == errno.ENODEV:
                return False
            raise NetConfigError(f"remove device {ifname!r}: {reason(exc.code)}") from None
    return True


def configure_link(ifname: str, mtu: int | None, addresses: Iterable[IPInterface], up: bool = True) -> None:
    """Synchronous configure_link_async."""
    run_sync(configure_link_async(ifname, mtu, list(addresses), up))


def remove_link(ifname: str, missing_ok: bool = True) -> bool:
    """Synchronous remove_link_async."""
    return run_sync(remove_link_async(ifname, missing_ok))
