"""gost's four pattern matchers (go-gost/x internal/matcher) and how a pattern list is split among
them (go-gost/x bypass/bypass.go).

Classification, in this order, of each pattern:
  1. CIDR        net.ParseCIDR works: "10.0.0.0/8", "2001:db8::/32"; matched on an IP host, no port
  2. wildcard    contains '*' or '?' and compiles as a glob: "*.example.com", "*.example.com:443",
                 "*.example.com:8000-9000", "192.168.1.*"
  3. IP range    "1.2.3.4" or "1.1.1.1-1.1.1.9" (IPv6 too); any port
  4. address     anything else: "example.com" (exactly that name), ".example.com" (the domain and all
                 its subdomains), "host:80", "host:8000-9000", "192.168.1.1:80", "[::1]:53"; an
                 unparsable port means any port
Matching a "host:port" (or a bare host) tries IP range, address, CIDR (if the host is an IP) and
wildcard, case-insensitively; a missing or non-numeric port counts as 0.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from gostx.bypass.glob import GlobError, compile_glob
from gostx.bypass.goaddr import (
    IPAddress,
    IPNetwork,
    PortRange,
    as_ipv4_if_mapped,
    go_split_host_port,
    match_host_port,
    netip_key,
    parse_go_cidr,
    parse_go_ip,
    parse_netip_addr,
)

_GLOB_SPECIAL = frozenset("*?[]{}\\")


@dataclass(frozen=True)
class IPRange:
    """xnet.IPRange: "a" or "a-b" (spaces around each side allowed), compared in netip's order."""

    low: IPAddress
    high: IPAddress

    @classmethod
    def parse(cls, text: str) -> IPRange | None:
        parts = text.split("-")
        if len(parts) not in (1, 2):
            return None
        addrs = [parse_netip_addr(part.strip()) for part in parts]
        if any(a is None for a in addrs):
            return None
        low, high = addrs[0], addrs[-1]
        assert low is not None and high is not None
        return cls(low, high)

    def contains(self, addr: IPAddress) -> bool:
        key = netip_key(addr)
        return netip_key(self.low) <= key <= netip_key(self.high)


class CIDRMatcher:
    """Networks grouped by (IP version, prefix length): a lookup costs one set probe per distinct
    prefix length, however many networks there are."""

    def __init__(self, networks: list[IPNetwork]) -> None:
        self.networks = networks
        self._by_prefix: dict[tuple[int, int], set[int]] = {}
        for net in networks:
            shift = net.max_prefixlen - net.prefixlen
            self._by_prefix.setdefault((net.version, net.prefixlen), set()).add(int(net.network_address) >> shift)

    def match(self, host: str) -> bool:
        ip = parse_go_ip(host)
        if ip is None:
            return False
        ip = as_ipv4_if_mapped(ip)  # Go's cidranger files an IPv4-mapped address under IPv4
        value = int(ip)
        return any(version == ip.version and (value >> (ip.max_prefixlen - prefixlen)) in prefixes
                   for (version, prefixlen), prefixes in self._by_prefix.items())


class WildcardMatcher:
    """Globs grouped by port restriction. In each group the common `*literal` form (`*.example.com`)
    is a suffix set probed at every position of the host; the other globs are joined into one
    regular expression."""

    def __init__(self, patterns: list[str]) -> None:
        suffixes: dict[PortRange | None, set[str]] = {}
        regexes: dict[PortRange | None, list[str]] = {}
        for pattern in patterns:
            parts = go_split_host_port(pattern)
            host, port = (parts if parts and parts[0] else (pattern, ""))
            host = host.lower()
            try:
                regex = compile_glob(host).pattern
            except GlobError:
                continue
            ports = PortRange.parse(port)
            if host.startswith("*") and not any(c in _GLOB_SPECIAL for c in host.lstrip("*")):
                suffixes.setdefault(ports, set()).add(host.lstrip("*"))
            else:
                regexes.setdefault(ports, []).append(regex)
        self.groups: list[tuple[PortRange | None, set[str], re.Pattern[str] | None]] = []
        for ports in {**suffixes, **regexes}:
            joined = regexes.get(ports)
            glob = re.compile("|".join(f"(?:{r})" for r in joined), re.DOTALL) if joined else None
            self.groups.append((ports, suffixes.get(ports, set()), glob))

    def match(self, addr: str) -> bool:
        if not self.groups:
            return False
        host, port = match_host_port(addr)
        host = host.lower()
        for ports, suffixes, glob in self.groups:
            if ports is not None and not ports.contains(port):
                continue
            if suffixes and any(host[i:] in suffixes for i in range(len(host) + 1)):
                return True
            if glob is not None and glob.fullmatch(host):
                return True
        return False


class IPRangeMatcher:
    """Ranges sorted by their low end, with the running maximum of the high ends: a lookup is one
    binary search."""

    def __init__(self, ranges: list[IPRange]) -> None:
        self.ranges = sorted(ranges, key=lambda r: netip_key(r.low))
        self._lows = [netip_key(r.low) for r in self.ranges]
        self._max_high: list[tuple[int, int, str]] = []
        for r in self.ranges:
            high = netip_key(r.high)
            self._max_high.append(max(self._max_high[-1], high) if self._max_high else high)

    def match(self, addr: str) -> bool:
        if not self.ranges:
            return False
        host, _ = match_host_port(addr)
        ip = parse_netip_addr(host)
        if ip is None:
            return False
        key = netip_key(ip)
        i = bisect.bisect_right(self._lows, key) - 1  # the last range starting at or below the address
        return i >= 0 and self._max_high[i] >= key


class AddrMatcher:
    """Host (lowercased) -> port ranges; None in the list means any port."""

    def __init__(self, patterns: list[str]) -> None:
        self.hosts: dict[str, list[PortRange | None]] = {}
        for pattern in patterns:
            parts = go_split_host_port(pattern)
            if parts is None or parts[0] == "":
                self.hosts.setdefault(pattern.lower(), []).append(None)
                continue
            self.hosts.setdefault(parts[0].lower(), []).append(PortRange.parse(parts[1]))

    def match(self, addr: str) -> bool:
        host, port = match_host_port(addr)
        host = host.lower()
        if self._ports_match(host, port) or self._ports_match("." + host, port):
            return True
        while (dot := host.find(".")) > 0:  # each parent domain as ".parent"
            if self._ports_match(host[dot:], port):
                return True
            host = host[dot + 1:]
        return False

    def _ports_match(self, key: str, port: int) -> bool:
        ranges = self.hosts.get(key)
        return ranges is not None and any(r is None or r.contains(port) for r in ranges)


@dataclass
class PatternSet:
    """A pattern list split among the four matchers, matched in gost's order."""

    cidr: CIDRMatcher = field(default_factory=lambda: CIDRMatcher([]))
    wildcard: WildcardMatcher = field(default_factory=lambda: WildcardMatcher([]))
    ip_range: IPRangeMatcher = field(default_factory=lambda: IPRangeMatcher([]))
    address: AddrMatcher = field(default_factory=lambda: AddrMatcher([]))

    @classmethod
    def parse(cls, patterns: list[str]) -> PatternSet:
        kinds: dict[str, list[str]] = {"cidr": [], "wildcard": [], "iprange": [], "address": []}
        for pattern in patterns:
            kinds[classify_pattern(pattern)].append(pattern)
        networks = [net for p in kinds["cidr"] if (net := parse_go_cidr(p)) is not None]
        ranges = [r for p in kinds["iprange"] if (r := IPRange.parse(p)) is not None]
        return cls(CIDRMatcher(networks), WildcardMatcher(kinds["wildcard"]), IPRangeMatcher(ranges),
                   AddrMatcher(kinds["address"]))

    def matches(self, addr: str) -> bool:
        if self.ip_range.match(addr) or self.address.match(addr):
            return True
        host, _ = match_host_port(addr)
        if parse_go_ip(host) is not None and self.cidr.match(host):
            return True
        return self.wildcard.match(addr)


def classify_pattern(pattern: str) -> str:
    """'cidr', 'wildcard', 'iprange' or 'address': which matcher gost files the pattern under."""
    if parse_go_cidr(pattern) is not None:
        return "cidr"
    if any(c in pattern for c in "*?") and _compiles(pattern):
        return "wildcard"
    if IPRange.parse(pattern) is not None:
        return "iprange"
    return "address"


def _compiles(pattern: str) -> bool:
    try:
        compile_glob(pattern)
    except GlobError:
        return False
    return True
