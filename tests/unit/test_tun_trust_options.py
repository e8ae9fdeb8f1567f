"""The tun/tap server's trust options: peerRoutes (routes one client may own) and peerPins (an inner
address learned only from one outer IP)."""

from __future__ import annotations

import pytest

from gostx.config.metadata import Metadata
from gostx.errors import GostError
from gostx.tunnel.options import DEFAULT_PEER_ROUTES, TunnelOptions, parse_pins


def options(kind: str = "tun", **md: object) -> TunnelOptions:
    return TunnelOptions.from_config(kind, Metadata(md), "", "")


def test_peer_routes_default_and_keys() -> None:
    assert options().peer_routes == DEFAULT_PEER_ROUTES == 4
    assert options(peerRoutes="16").peer_routes == 16
    assert options(peerroutes=8).peer_routes == 8           # v3 keys are case-insensitive
    assert options(**{"tun.peerRoutes": "2"}).peer_routes == 2


@pytest.mark.parametrize("bad", ["0", "-1", "100000"])
def test_peer_routes_out_of_range_is_a_one_line_error(bad: str) -> None:
    with pytest.raises(GostError, match=r"peerRoutes must be 1\.\.4096"):
        options(peerRoutes=bad)


def test_peer_pins_parse() -> None:
    assert options().pins == []
    assert options(peerPins="192.168.123.2@10.0.0.5, fd00::2@[2001:db8::1]").pins == [
        ("192.168.123.2", "10.0.0.5"), ("fd00::2", "2001:db8::1")]
    assert options(peerPins=["192.168.123.3@10.0.0.6"]).pins == [("192.168.123.3", "10.0.0.6")]
    assert parse_pins("tap", "02:00:00:00:00:0A@10.0.0.5") == [("02:00:00:00:00:0a", "10.0.0.5")]


@pytest.mark.parametrize(("kind", "bad", "why"), [
    ("tun", "192.168.123.2", "expected INNER@OUTER_IP"),
    ("tun", "192.168.123.2@host.example", "is not an IP address"),
    ("tun", "nope@10.0.0.1", "is not an IP address"),
    ("tap", "192.168.123.2@10.0.0.1", "is not a MAC address"),
])
def test_peer_pins_errors(kind: str, bad: str, why: str) -> None:
    with pytest.raises(GostError, match=why):
        parse_pins(kind, bad)
