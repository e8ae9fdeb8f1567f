"""Go's address parsing, as gost's matchers use it (go-gost/x internal/net, Go net and net/netip).

The differences from Python's ipaddress that matter here: net.ParseIP takes no IPv6 zone, netip
takes one; Go orders addresses IPv4 before IPv6 and compares zones last; strconv.Atoi takes a sign
and leading zeros; and a PortRange "a-b" is not range-checked (only a single port is).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from gostx.config.gourl import URLError, split_host_port

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_ATOI = re.compile(r"[+-]?[0-9]+")
_DTOI = re.compile(r"[0-9]+")
_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)
MAX_PORT = 65535


def go_split_host_port(addr: str) -> tuple[str, str] | None:
    """net.SplitHostPort; None where Go returns an error."""
    try:
        return split_host_port(addr)
    except URLError:
        return None


def match_host_port(addr: str) -> tuple[str, int]:
    """How gost's matchers split the address they test: the host, or the whole string when it does
    not split; the port as strconv.Atoi reads it, 0 when missing or not a number."""
    parts = go_split_host_port(addr)
    if parts is None:
        return addr, 0
    port = go_atoi(parts[1])
    return parts[0] or addr, 0 if port is None else port


def go_atoi(text: str) -> int | None:
    """strconv.Atoi: optional sign, decimal digits; out of int64 range clamps (Go returns the clamped
    value with its error, which the matchers ignore); None for anything else."""
    if not _ATOI.fullmatch(text):
        return None
    return max(_INT64_MIN, min(_INT64_MAX, int(text)))


@dataclass(frozen=True)
class PortRange:
    """xnet.PortRange: "80" (0-65535) or "min-max" (not range-checked, so 9000-8000 matches nothing)."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> PortRange | None:
        parts = text.split("-")
        if len(parts) == 1:
            port = go_atoi(text)
            if port is None or not 0 <= port <= MAX_PORT:
                return None
            return cls(port, port)
        if len(parts) == 2:
            low, high = go_atoi(parts[0]), go_atoi(parts[1])
            if low is None or high is None:
                return None
            return cls(low, high)
        return None

    def contains(self, port: int) -> bool:
        return self.low <= port <= self.high


def parse_netip_addr(text: str) -> IPAddress | None:
    """netip.ParseAddr: IPv4 dotted quad or IPv6 (a zone such as %eth0 allowed)."""
    if not text or text != text.strip():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_go_ip(text: str) -> IPAddress | None:
    """net.ParseIP: like netip but no zone."""
    if "%" in text:
        return None
    return parse_netip_addr(text)


def parse_go_cidr(text: str) -> IPNetwork | None:
    """net.ParseCIDR: ADDR/BITS with a zone-less address and 0 <= BITS <= its length (host bits are
    masked off, as Go's IPNet does)."""
    addr_text, slash, bits_text = text.partition("/")
    if not slash or not _DTOI.fullmatch(bits_text):
        return None
    addr = parse_go_ip(addr_text)
    if addr is None:
        return None
    bits = int(bits_text)
    if bits > addr.max_prefixlen:
        return None
    return ipaddress.ip_network(f"{addr}/{bits}", strict=False)


def netip_key(addr: IPAddress) -> tuple[int, int, str]:
    """netip.Addr.Compare's order: IPv4 before IPv6, then the address, then the zone."""
    zone = getattr(addr, "scope_id", None) or ""
    return (addr.version, int(addr), zone)


def as_ipv4_if_mapped(addr: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address, as Go's To4() sees it."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr
