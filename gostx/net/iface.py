"""Network interfaces for `interface=` (gost's internal/net ParseInterfaceAddr): a NIC name gives the NIC
and each of its addresses; an IP gives the NIC that holds it and that one address.

A dial resolves its `interface` items every time, and an address dump over netlink costs ~0.4 ms: a
burst of dials (connection churn through a chain) would pay it per dial. `resolve_interface` therefore
keeps each item's answer for CACHE_SECONDS, and a failure (no such NIC, no address) only for
MISSING_SECONDS, so an interface that appears is used, and one that is gone reported, promptly."""

from __future__ import annotations

import ipaddress
import time

from gostx.netlink.rtnl import Rtnl, link_lookup, link_name


async def interface_addresses(name: str) -> list[str]:
    """The addresses of NIC `name`, in the kernel's order (IPv4 first); OSError when there is no such NIC
    or it has no address."""
    index = link_lookup(name)
    if index is None:
        raise OSError(19, f"no such network interface: {name}")
    with Rtnl() as nl:
        addrs = [addr for _, addr in nl.addresses(index)]
    if not addrs:
        raise OSError(99, f"addr not found for interface {name}")
    return addrs


async def interface_of(ip: str) -> str:
    """The NIC holding address ip; OSError when none does."""
    with Rtnl() as nl:
        index = next((i for i, addr in nl.addresses() if addr == ip), None)
    name = link_name(index) if index is not None else None
    if name is None:
        raise OSError(99, f"no network interface has the address {ip}")
    return name


CACHE_SECONDS = 1.0
MISSING_SECONDS = 0.2
CACHE_MAX = 256  # items come from the configuration: a handful; the cap only bounds a pathological one
_clock = time.monotonic
# item -> (valid until, (NIC, addresses) or the (errno, message) of the failure)
_cache: dict[str, tuple[float, tuple[str, list[str]] | tuple[int | None, str]]] = {}


def clear_cache() -> None:
    _cache.clear()


async def _resolve_uncached(item: str) -> tuple[str, list[str]]:
    try:
        ip = ipaddress.ip_address(item)
    except ValueError:
        return item, await interface_addresses(item)
    return await interface_of(str(ip)), [str(ip)]


async def resolve_interface(item: str) -> tuple[str, list[str]]:
    """(NIC name, local addresses to try) for one `interface` item (no trailing `!`); ("", [""]) for "".
    OSError when the item does not resolve. Answers are cached briefly (see the module's docstring)."""
    if not item:
        return "", [""]
    now = _clock()
    cached = _cache.get(item)
    if cached is not None and cached[0] > now:
        answer = cached[1]
        if isinstance(answer[1], list):
            return answer[0], list(answer[1])
        # a fresh exception each time (each dial has its own traceback)
        raise OSError(answer[0], answer[1]) if answer[0] is not None else OSError(answer[1])
    if len(_cache) >= CACHE_MAX:
        _cache.clear()
    try:
        name, addresses = await _resolve_uncached(item)
    except OSError as exc:
        failure = (exc.errno, exc.strerror) if exc.errno is not None and exc.strerror else (None, str(exc))
        _cache[item] = (now + MISSING_SECONDS, failure)
        raise
    _cache[item] = (now + CACHE_SECONDS, (name, list(addresses)))
    return name, addresses


def binds_device(host: str) -> bool:
    """gost binds the device (SO_BINDTODEVICE) only for a host name or a global-unicast IP (Go's
    IsGlobalUnicast: not unspecified, loopback, multicast, link-local or the IPv4 broadcast)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return True
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local:
        return False
    return not (ip.version == 4 and str(ip) == "255.255.255.255")
