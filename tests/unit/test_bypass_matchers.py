"""Bypass matchers, table-driven: the cases of go-gost/x internal/matcher/matcher_test.go, the
examples of the gost docs (concepts/bypass.md) and of spec v3.md section 5, gost's pattern
classification, and the Go parsing rules underneath (net.SplitHostPort, strconv.Atoi, netip)."""

from __future__ import annotations

import ipaddress
import random

import pytest

from gostx.bypass import Bypass, classify_pattern
from gostx.bypass.glob import GlobError, compile_glob
from gostx.bypass.goaddr import PortRange, go_atoi, match_host_port, parse_go_cidr, parse_go_ip, parse_netip_addr
from gostx.bypass.matchers import IPRange

# (patterns, address, matched) -- from go-gost/x internal/matcher/matcher_test.go
GOST_MATCHER_TESTS = [
    # AddrMatcher
    (["example.com:80", "192.168.1.1:443"], "example.com:80", True),
    (["example.com:80", "192.168.1.1:443"], "192.168.1.1:443", True),
    (["example.com:80", "192.168.1.1:443"], "example.com:443", False),
    (["example.com:80", "192.168.1.1:443"], "other.com:80", False),
    (["example.com:8000-9000"], "example.com:8000", True),
    (["example.com:8000-9000"], "example.com:9000", True),
    (["example.com:8000-9000"], "example.com:8500", True),
    (["example.com:8000-9000"], "example.com:7999", False),
    (["example.com"], "example.com:80", True),
    (["example.com"], "example.com:443", True),
    (["example.com"], "example.com", True),
    ([".example.com:80"], "example.com:80", True),
    ([".example.com:80"], "sub.example.com:80", True),
    ([".example.com:80"], "deep.sub.example.com:80", True),
    ([".example.com:80"], "other.com:80", False),
    (["example.com:80", "example.com:443"], "example.com:80", True),
    (["example.com:80", "example.com:443"], "example.com:443", True),
    (["example.com:80", "example.com:443"], "example.com:8080", False),
    (["Example.COM:80"], "EXAMPLE.COM:80", True),
    (["Example.COM:80"], "example.com:80", True),
    ([".Example.COM:80"], "SUB.EXAMPLE.COM:80", True),
    ([".Example.COM:80"], "sub.example.com:80", True),
    ([], "example.com:80", False),
    (["[::1]:80"], "[::1]:80", True),
    # CIDRMatcher
    (["192.168.0.0/16"], "192.168.1.1", True),
    (["192.168.0.0/16"], "192.168.255.255", True),
    (["192.168.0.0/16"], "10.0.0.1", False),
    (["192.168.0.0/16"], "not-an-ip", False),
    # DomainMatcher (as address patterns without ports)
    (["example.com", "test.org"], "example.com", True),
    (["example.com", "test.org"], "test.org", True),
    (["example.com", "test.org"], "other.com", False),
    ([".example.com"], "example.com", True),
    ([".example.com"], "sub.example.com", True),
    ([".example.com"], "deep.sub.example.com", True),
    ([".example.com"], "notexample.com", False),
    ([".example.com"], "a.b.c.example.com", True),
    (["Example.COM"], "EXAMPLE.COM", True),
    # WildcardMatcher
    (["*.example.com"], "foo.example.com", True),
    (["*.example.com"], "bar.example.com", True),
    (["*.example.com"], "example.com", False),
    (["*.example.com"], "foo.other.com", False),
    (["*.example.com:443"], "foo.example.com:443", True),
    (["*.example.com:443"], "foo.example.com:80", False),
    (["*.example.com:8000-9000"], "foo.example.com:8000", True),
    (["*.example.com:8000-9000"], "foo.example.com:8500", True),
    (["*.example.com:8000-9000"], "foo.example.com:7999", False),
    (["*.Example.COM"], "FOO.EXAMPLE.COM", True),
    (["[invalid-glob"], "anything", False),
    # IPRangeMatcher
    (["192.168.1.1-192.168.1.10"], "192.168.1.1", True),
    (["192.168.1.1-192.168.1.10"], "192.168.1.5", True),
    (["192.168.1.1-192.168.1.10"], "192.168.1.10", True),
    (["192.168.1.1-192.168.1.10"], "192.168.1.11", False),
    (["192.168.1.1-192.168.1.10"], "10.0.0.1", False),
    (["192.168.1.1-192.168.1.10"], "192.168.1.1:8080", True),
]

# The matchers of the docs' "Bypass Controller" example (bypass-1) and the spec's examples.
DOCS_PATTERNS = ["127.0.0.1", "172.20.0.1-172.30.0.255", "172.10.0.0/16", "localhost", "*.example.com", ".example.org"]
DOCS_TESTS = [
    ("127.0.0.1:8080", True), ("127.0.0.2:8080", False),
    ("172.20.0.1:80", True), ("172.25.9.9:443", True), ("172.30.0.255:1", True), ("172.30.1.0:1", False),
    ("172.10.200.3:22", True), ("172.11.0.1:22", False),
    ("localhost:80", True), ("localhost", True), ("sub.localhost:80", False),
    ("www.example.com:443", True), ("a.b.example.com:443", True), ("example.com:443", False),
    ("example.org:80", True), ("www.example.org:80", True), ("example.org.evil.test:80", False),
    ("10.0.0.1:80", False), ("", False),
]
SPEC_TESTS = [
    (["*.example.com"], "a.b.example.com:80", True),
    (["*.example.com"], "example.com:80", False),
    (["*.example.com:443"], "a.example.com:443", True),
    (["*.example.com:443"], "a.example.com:80", False),
    (["*.example.com:0-65535"], "a.example.com", True),  # no port counts as port 0
    (["*.example.com:1-65535"], "a.example.com", False),
    (["example.com"], "example.com:443", True),
    (["example.com"], "www.example.com:443", False),  # exact name only
    ([".example.com"], "example.com:443", True),
    ([".example.com"], "www.example.com:443", True),
    (["192.168.1.1:80"], "192.168.1.1:80", True),
    (["192.168.1.1:80"], "192.168.1.1:81", False),
    (["192.168.1.1"], "192.168.1.1:81", True),
    (["1.1.1.1-1.1.1.9"], "1.1.1.9:53", True),
    (["1.1.1.1-1.1.1.9"], "1.1.1.10:53", False),
    (["2001:db8::1-2001:db8::ff"], "[2001:db8::80]:443", True),
    (["2001:db8::1-2001:db8::ff"], "[2001:db8::100]:443", False),
    (["2001:db8::/32"], "[2001:db8:1::1]:443", True),
    (["10.0.0.0/8"], "10.1.2.3:443", True),
    (["10.0.0.0/8"], "10.1.2.3", True),
    (["10.0.0.0/8"], "[::ffff:10.1.2.3]:443", True),
    (["10.1.2.3/8"], "10.200.0.1:1", True),  # host bits are masked off
    (["10.1.0.0/16", "10.2.0.0/16", "192.168.0.0/24"], "10.2.255.1:1", True),
    (["10.1.0.0/16", "10.2.0.0/16", "192.168.0.0/24"], "10.3.0.1:1", False),
    (["0.0.0.0/0"], "8.8.8.8:53", True),
    (["0.0.0.0/0"], "[2001:db8::1]:53", False),
    (["::/0"], "[::ffff:1.2.3.4]:1", False),
    (["::/0"], "[2001:db8::1]:53", True),  # Go's cidranger sees an IPv4-mapped address as IPv4
    (["192.168.1.*"], "192.168.1.77:80", True),  # a glob, matched on the text
    (["10.0.0.1-10.0.0.5"], "[::ffff:10.0.0.3]:80", False),  # netip keeps 4in6 as IPv6
    (["example.com:http"], "example.com:8080", True),  # an unparsable port means any port
    (["example.com:70000"], "example.com:1", True),  # a single port over 65535 too
    (["example.com:9000-8000"], "example.com:8500", False),  # a reversed range matches nothing
    (["host.example:080"], "host.example:80", True),  # Atoi reads leading zeros
    (["*.Example.com", "Mixed.Example.Org"], "WWW.EXAMPLE.COM:1", True),
    (["mixed.example.org"], "MIXED.example.ORG:1", True),
    (["fe80::1%eth0"], "[fe80::1%eth0]:22", True),
    (["fe80::1%eth0"], "[fe80::1]:22", False),
]


@pytest.mark.parametrize(("patterns", "addr", "matched"), GOST_MATCHER_TESTS + SPEC_TESTS)
def test_patterns_match_like_gost(patterns: list[str], addr: str, matched: bool) -> None:
    assert Bypass("t", patterns).matches(addr) is matched


@pytest.mark.parametrize(("addr", "bypassed"), DOCS_TESTS)
def test_docs_bypass_controller_example(addr: str, bypassed: bool) -> None:
    assert Bypass("bypass-1", DOCS_PATTERNS).contains(addr) is bypassed


@pytest.mark.parametrize(("addr", "bypassed"), [(a, b) for a, b in DOCS_TESTS if a])
def test_whitelist_is_the_reverse(addr: str, bypassed: bool) -> None:
    assert Bypass("w", DOCS_PATTERNS, whitelist=True).contains(addr) is (not bypassed)


def test_empty_address_never_bypasses() -> None:
    assert not Bypass("w", DOCS_PATTERNS, whitelist=True).contains("")
    assert not Bypass("b", ["*"]).contains("")


@pytest.mark.parametrize(("pattern", "kind"), [
    ("10.0.0.0/8", "cidr"), ("10.1.2.3/8", "cidr"), ("::/0", "cidr"), ("2001:db8::/32", "cidr"),
    ("10.0.0.0/33", "address"), ("10.0.0.0/8x", "address"), ("fe80::/10%eth0", "address"),
    ("*.example.com", "wildcard"), ("*.example.com:443", "wildcard"), ("192.168.1.?", "wildcard"),
    ("*", "wildcard"), ("[invalid*", "address"),
    ("1.2.3.4", "iprange"), ("1.1.1.1-1.1.1.9", "iprange"), ("::1", "iprange"), (" 1.2.3.4 - 1.2.3.5", "iprange"),
    ("fe80::1%eth0", "iprange"), ("01.2.3.4", "address"), ("1.2.3.4-", "address"),
    ("example.com", "address"), (".example.com", "address"), ("example.com:443", "address"),
    ("example.com:8000-9000", "address"), ("192.168.1.1:80", "address"), ("[::1]:53", "address"),
    ("my-host", "address"), ("localhost", "address"),
])
def test_pattern_classification(pattern: str, kind: str) -> None:
    assert classify_pattern(pattern) == kind


@pytest.mark.parametrize(("pattern", "text", "matched"), [
    ("*.github.com", "api.github.com", True),
    ("*.github.com", "api.gi.hub.com", False),
    ("api.*.com", "api.gi.hub.com", True),  # no separators: '*' spans dots
    ("api.**.com", "api.gi.hub.com", True),
    ("?at", "cat", True), ("?at", "at", False), ("?at", "flat", False),
    ("[abc]at", "bat", True), ("[!abc]at", "bat", False), ("[!abc]at", "rat", True),
    ("[a-c]x", "cx", True), ("[a-c]x", "dx", False), ("[!a-c]x", "dx", True),
    ("{api,www}.example.com", "www.example.com", True), ("{api,www}.example.com", "ftp.example.com", False),
    ("{a,b{c,d}}", "bd", True), ("{a,b", "b", True),  # an unclosed brace closes at the end
    ("a\\*b", "a*b", True), ("a\\*b", "axb", False), ("a}b,c]", "a}b,c]", True),
    ("x.example.com", "x.example.com", True), ("x.example.com", "xyexample.com", False),
])
def test_glob_without_separators(pattern: str, text: str, matched: bool) -> None:
    assert bool(compile_glob(pattern).fullmatch(text)) is matched


@pytest.mark.parametrize("pattern", ["[abc", "[]", "[!]", "[a-z0-9]", "[z-a]", "x[a-"])
def test_glob_compile_errors(pattern: str) -> None:
    with pytest.raises(GlobError):
        compile_glob(pattern)


@pytest.mark.parametrize(("text", "value"), [
    ("80", 80), ("+80", 80), ("-5", -5), ("0080", 80), ("", None), ("8 0", None), (" 80", None),
    ("0x50", None), ("99999999999999999999", (1 << 63) - 1), ("٨٠", None),
])
def test_go_atoi(text: str, value: int | None) -> None:
    assert go_atoi(text) == value


@pytest.mark.parametrize(("text", "bounds"), [
    ("80", (80, 80)), ("0", (0, 0)), ("65535", (65535, 65535)), ("65536", None), ("8000-9000", (8000, 9000)),
    ("9000-8000", (9000, 8000)), ("0-99999", (0, 99999)), ("1-2-3", None), ("a-b", None), ("", None), ("http", None),
])
def test_port_range_parse(text: str, bounds: tuple[int, int] | None) -> None:
    parsed = PortRange.parse(text)
    assert (None if parsed is None else (parsed.low, parsed.high)) == bounds


@pytest.mark.parametrize(("addr", "host", "port"), [
    ("example.com:443", "example.com", 443), ("example.com", "example.com", 0), ("[::1]:53", "::1", 53),
    ("::1", "::1", 0), (":80", ":80", 80), ("example.com:http", "example.com", 0), ("a:b:c", "a:b:c", 0),
])
def test_how_matchers_split_the_address(addr: str, host: str, port: int) -> None:
    assert match_host_port(addr) == (host, port)


def test_go_ip_parsers() -> None:
    assert parse_go_ip("fe80::1%eth0") is None and parse_netip_addr("fe80::1%eth0") is not None
    assert parse_go_ip("1.2.3.04") is None and parse_go_ip("1.2.3") is None
    assert parse_go_cidr("10.1.2.3/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_go_cidr("10.0.0.0/08") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_go_cidr("10.0.0.0") is None and parse_go_cidr("::/129") is None


def test_ip_range_orders_ipv4_before_ipv6_as_netip_does() -> None:
    mixed = IPRange.parse("1.1.1.1-::5")
    assert mixed is not None
    assert mixed.contains(ipaddress.ip_address("200.0.0.1")) and mixed.contains(ipaddress.ip_address("::1"))
    assert not mixed.contains(ipaddress.ip_address("::6"))


def test_indexed_matchers_agree_with_a_plain_scan() -> None:
    """The matchers index their patterns (suffix sets, joined regexes, sorted ranges, prefix
    tables); on random patterns and addresses they must say what testing each pattern alone says."""
    rng = random.Random(7)
    labels = ["a", "b", "ex", "example", "w1", "com", "org", "x-y"]

    def name() -> str:
        return ".".join(rng.choice(labels) for _ in range(rng.randint(1, 4)))

    def ip4() -> str:
        return ".".join(str(rng.choice([0, 1, 10, 127, 172, 192, 255, rng.randrange(256)])) for _ in range(4))

    def pattern() -> str:
        kind = rng.randrange(6)
        if kind == 0:
            return "*" + rng.choice(["", "."]) + name() + rng.choice(["", ":443", ":80-90"])
        if kind == 1:
            return rng.choice(["?", "[abx]", "{a,ex}"]) + name() + rng.choice(["", "*"])
        if kind == 2:
            return f"{ip4()}/{rng.randint(0, 32)}"
        if kind == 3:
            low, high = sorted([ip4(), ip4()], key=lambda t: ipaddress.ip_address(t))
            return f"{low}-{high}"
        if kind == 4:
            return rng.choice(["", "."]) + name() + rng.choice(["", ":443", ":1-100"])
        return ip4()

    for _ in range(40):
        patterns = [pattern() for _ in range(rng.randint(1, 30))]
        together = Bypass("all", patterns)
        singles = [Bypass(f"one{i}", [p]) for i, p in enumerate(patterns)]
        for _ in range(60):
            host = name() if rng.random() < 0.5 else ip4()
            addr = host + rng.choice(["", ":443", ":85", ":8080"])
            assert together.matches(addr) == any(b.matches(addr) for b in singles), (patterns, addr)


@pytest.mark.parametrize(("patterns", "addr", "matched"), [
    (["1.0.0.0-1.0.0.100", "1.0.0.5-1.0.0.6"], "1.0.0.50", True),  # overlapping ranges
    (["1.0.0.5-1.0.0.6", "1.0.0.0-1.0.0.100"], "1.0.0.101", False),
    (["*example.com"], "myexample.com:1", True),  # '*' may be empty or span any characters
    (["*example.com"], "example.com:1", True),
    (["*.example.com", "*.example.com:443"], "a.example.com:80", True),
    (["*.example.com:443", "?.example.com:80"], "a.example.com:80", True),
    (["*.example.com:443", "?.example.com:80"], "ab.example.com:80", False),
])
def test_indexed_matcher_corner_cases(patterns: list[str], addr: str, matched: bool) -> None:
    assert Bypass("t", patterns).matches(addr) is matched
