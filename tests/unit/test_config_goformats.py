"""The Go behaviours the command line depends on: time.ParseDuration / Duration.String, url.Parse,
net.SplitHostPort. Expected values are Go's documented results."""

from __future__ import annotations

import pytest

from gostx.config.duration import canonical_duration, duration_seconds, format_go_duration, parse_go_duration
from gostx.config.gourl import URLError, join_host_port, parse_url, split_host_port


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("30s", 30_000_000_000), ("1m30s", 90_000_000_000), ("1.5h", 5_400_000_000_000),
    ("500ms", 500_000_000), ("300us", 300_000), ("300\u00b5s", 300_000), ("1ns", 1), ("-2s", -2_000_000_000),
    ("+5m", 300_000_000_000), (".5s", 500_000_000), ("1.s", 1_000_000_000), ("2h45m", 9_900_000_000_000),
])
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(("text", "words"), [
    ("", "invalid duration"), ("30", "missing unit"), ("3x", "unknown unit"), (".s", "invalid duration"),
    ("-", "invalid duration"), ("1e3s", "unknown unit"),
])
def test_parse_go_duration_errors(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_go_duration(text)


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (1, "1ns"), (1500, "1.5\u00b5s"), (1_500_000, "1.5ms"), (30_000_000_000, "30s"),
    (60_000_000_000, "1m0s"), (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h0m0s"),
    (3_661_500_000_000, "1h1m1.5s"), (-2_000_000_000, "-2s"),
])
def test_format_go_duration(ns: int, text: str) -> None:
    assert format_go_duration(ns) == text


def test_canonical_duration_and_seconds() -> None:
    assert canonical_duration("90s") == "1m30s"
    assert canonical_duration(5) == "5ns"  # an integer is nanoseconds, as mapstructure reads it
    assert canonical_duration("") == ""
    assert duration_seconds("1m30s") == 90.0
    assert duration_seconds("") == 0.0
    with pytest.raises(ValueError):
        canonical_duration(True)


def test_parse_url_parts() -> None:
    u = parse_url("relay+wss://us%40r:p%3Ass@host.example:443/a,b?x=1&y=a+b&x=2&z#frag")
    assert (u.scheme, u.username, u.password, u.host) == ("relay+wss", "us@r", "p:ss", "host.example:443")
    assert (u.path, u.escaped_path(), u.fragment) == ("/a,b", "/a,b", "frag")
    assert u.query() == {"x": "1", "y": "a b", "z": ""}
    assert u.hostname() == "host.example"


def test_parse_url_scheme_is_lowercased_and_userinfo_may_lack_a_password() -> None:
    u = parse_url("SOCKS5://user@h:1")
    assert (u.scheme, u.username, u.password, u.has_user) == ("socks5", "user", None, True)
    assert not parse_url("socks5://h:1").has_user


def test_hostname_of_ipv6_and_multi_host() -> None:
    assert parse_url("x://[::1]:80").hostname() == "::1"
    assert parse_url("x://h1:1080,h2:1080").hostname() == "h1:1080,h2"  # Go's own answer


def test_escaped_path_reescapes_invalid_characters() -> None:
    assert parse_url("x://h/a b").escaped_path() == "/a%20b"
    assert parse_url("x://h/[::1]:80").escaped_path() == "/[::1]:80"


@pytest.mark.parametrize(("raw", "words"), [
    ("x://h:abc", "invalid port"), ("x://[::1", "missing ']'"), ("x://h b:1", "invalid character"),
    ("x://a[b@h:1", "invalid userinfo"), ("x://h/%zz", "invalid URL escape"),
    (":x", "missing protocol scheme"),
    ("1x://h", "first path segment"), ("x://h\x7f", "control character"),
])
def test_parse_url_errors(raw: str, words: str) -> None:
    with pytest.raises(URLError, match=words):
        parse_url(raw)


@pytest.mark.parametrize(("hostport", "expected"), [
    (":8080", ("", "8080")), ("h:80", ("h", "80")), ("[::1]:80", ("::1", "80")),
    ("h:8000-8002", ("h", "8000-8002")),
])
def test_split_host_port(hostport: str, expected: tuple[str, str]) -> None:
    assert split_host_port(hostport) == expected


@pytest.mark.parametrize(("hostport", "words"), [
    ("h", "missing port"), ("a:b:c", "too many colons"), ("[::1]", "missing port"), ("[::1", "missing ']'"),
])
def test_split_host_port_errors(hostport: str, words: str) -> None:
    with pytest.raises(URLError, match=words):
        split_host_port(hostport)


def test_join_host_port() -> None:
    assert join_host_port("::1", "80") == "[::1]:80"
    assert join_host_port("", "80") == ":80"
