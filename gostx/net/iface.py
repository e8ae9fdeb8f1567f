"""Network interfaces for `interface=` (gost's internal/net ParseInterfaceAddr): a NIC name gives the NIC
and each of its addresses; an IP gives the NIC that holds it and that one address."""

from __future__ import annotations

import ipaddress

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


async def resolve_interface(item: str) -> tuple[str, list[str]]:
    """(NIC name, local addresses to try) for one `interface` item (no trailing `!`); ("", [""]) for ""."""
    if not item:
        return "", [""]
    try:
        ip = ipaddress.ip_address(item)
    except ValueError:
        return item, await interface_addresses(item)
    return await interface_of(str(ip)), [str(ip)]


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
