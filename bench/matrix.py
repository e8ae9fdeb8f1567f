"""The rows of the bench: which tunnel each one puts between the namespaces, and which tests it runs.

Rows for features that do not work yet stay in the list: they report "n/a (<reason>)" until the
feature lands, and then start reporting numbers with no change here.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bench.peers import HEV_ENV, UDP2RAW_ENV, WIREGUARD_GO_ENV, hev_socks5, udp2raw_tun, wireguard_go
from bench.relay_rows import http_over_relay_wss, relay_wss_forward, tungo_over_relay_wss
from bench.rig import Rig
from bench.tls_rows import StunnelTunnel, socks5_tls_forward
from bench.tunnels import (
    Endpoint,
    OpenVpnTunnel,
    TunnelDown,
    gost_socks5_connect,
    gost_tun,
    gost_tun_over_socks5,
    gost_tungo,
    gost_tungo_direct,
)

TCP_TESTS = ("ping", "tcp1", "tcp4")
CHURN = ("churn400", "churn2000", "churnudp", "churnmix")  # short flows always in flight (bench/churn.py)
BARE_TESTS = ("ping", "tcp1", "tcp4", "udp", "tcp1r", "tcp4r", *CHURN)
BOTH_WAYS_TESTS = ("tcp1", "tcp4", "tcp1r", "tcp4r")
TUNGO_TESTS = (*BOTH_WAYS_TESTS, "flows1000", *CHURN)  # flows1000: the tunnel's peak RSS with 1000 open TCP flows
GO_GOST_ENV = "BENCH_GO_GOST"


class Tunnel(Protocol):
    def start(self, rig: Rig, timeout: float) -> Endpoint: ...

    def stop(self) -> None: ...


@dataclass
class Unavailable:
    """A tunnel that cannot be tried here; starting it reports why."""

    reason: str

    def start(self, rig: Rig, timeout: float) -> Endpoint:
        raise TunnelDown(self.reason)

    def stop(self) -> None:
        pass


@dataclass(frozen=True)
class Row:
    key: str  # for BENCH_ROWS filters and the JSON
    title: str  # for the table
    make_tunnel: Callable[[], Tunnel] | None  # None: the bare veth, no tunnel
    tests: tuple[str, ...] = TCP_TESTS
    peer: str | None = None  # the key of the row a user would pick instead: the table shows the ratio to it

    @property
    def bare(self) -> bool:
        return self.make_tunnel is None


def _go_gost(method: str | None) -> Callable[[], Tunnel]:
    def make() -> Tunnel:
        path = os.environ.get(GO_GOST_ENV, "")
        if not path:
            return Unavailable(f"set {GO_GOST_ENV}=/path/to/gost to compare with Go gost")
        if not os.access(path, os.X_OK):
            return Unavailable(f"{GO_GOST_ENV}={path} is not an executable")
        return gost_tun(method, command=[path])

    return make


def _go_gost_make(make: Callable[[list[str] | None], Tunnel]) -> Callable[[], Tunnel]:
    """A relay row run by a Go gost binary ($BENCH_GO_GOST)."""

    def build() -> Tunnel:
        path = os.environ.get(GO_GOST_ENV, "")
        if not path:
            return Unavailable(f"set {GO_GOST_ENV}=/path/to/gost to compare with Go gost")
        if not os.access(path, os.X_OK):
            return Unavailable(f"{GO_GOST_ENV}={path} is not an executable")
        return make([path])

    return build


ROWS: tuple[Row, ...] = (
    Row("bare", "bare veth", None, BARE_TESTS),
    Row("tun-plain", "tun:// plaintext", lambda: gost_tun(None), peer="wireguard-go"),
    Row("tun-aes-128-gcm", "tun:// aes-128-gcm", lambda: gost_tun("aes-128-gcm"), peer="wireguard-go"),
    Row("tun-aes-256-gcm", "tun:// aes-256-gcm", lambda: gost_tun("aes-256-gcm"), peer="wireguard-go"),
    Row("tun-chacha20", "tun:// chacha20-ietf-poly1305", lambda: gost_tun("chacha20-ietf-poly1305"),
        peer="wireguard-go"),
    Row("tap-aes-128-gcm", "tap:// aes-128-gcm", lambda: gost_tun("aes-128-gcm", scheme="tap"), peer="openvpn"),
    Row("openvpn", "OpenVPN p2p UDP AES-256-GCM", OpenVpnTunnel),
    Row("wireguard-go", "wireguard-go (Debian) ChaCha20-Poly1305", wireguard_go()),
    Row("wireguard-go-current", f"wireguard-go ${WIREGUARD_GO_ENV} (offloads)", wireguard_go(WIREGUARD_GO_ENV)),
    Row(
        "tun-faketcp",
        "tun:// fake TCP (tcp=true)",
        lambda: gost_tun(None, extra=["tcp=true"], client_listen=":0"),
        peer="udp2raw-faketcp",
    ),
    Row("udp2raw-faketcp", f"tun:// plaintext over udp2raw faketcp (${UDP2RAW_ENV})", udp2raw_tun),
    Row("tun-socks5", "tun:// over -F socks5://", gost_tun_over_socks5),
    Row("socks5-connect", "socks5 CONNECT (tcp:// -F socks5://)", gost_socks5_connect, ("tcp1", "tcp4", "srvcpu")),
    Row("stunnel", "stunnel TLS 1.3 (C, OpenSSL)", StunnelTunnel, ("tcp1", "tcp4")),
    Row("socks5-tls", "socks5+tls (tcp:// -F socks5+tls://)", socks5_tls_forward, ("tcp1", "tcp4", "srvcpu"),
        peer="stunnel"),
    Row("tungo-direct", "tungo:// direct (no chain)", gost_tungo_direct, TUNGO_TESTS),
    Row("tungo-socks5", "tungo:// -F socks5://", gost_tungo, ("tcp1", "tcp4", "churn400"), peer="hev-socks5"),
    Row("hev-socks5", f"hev-socks5-tunnel -> socks5:// (${HEV_ENV})", hev_socks5, ("tcp1", "tcp4", "churn400")),
    Row("relay-wss", "relay+wss (tcp:// -F relay+wss://)", relay_wss_forward, ("tcp1", "tcp4", "srvcpu"),
        peer="stunnel"),
    Row("http-relay-wss", "http -F relay+wss:// (tcp:// -F http://)", http_over_relay_wss, ("tcp1", "tcp4"),
        peer="go-gost-http-relay-wss"),
    Row("tungo-relay-wss", "tungo:// -F relay+wss://?interface=", tungo_over_relay_wss, ("tcp1",),
        peer="go-gost-tungo-relay-wss"),
    Row("go-gost-tun-plain", "Go gost tun:// plaintext", _go_gost(None)),
    Row("go-gost-tun-aes-128-gcm", "Go gost tun:// aes-128-gcm", _go_gost("aes-128-gcm")),
    Row("go-gost-relay-wss", "Go gost relay+wss (tcp:// -F relay+wss://)", _go_gost_make(relay_wss_forward),
        ("tcp1", "tcp4")),
    Row("go-gost-http-relay-wss", "Go gost http -F relay+wss://", _go_gost_make(http_over_relay_wss),
        ("tcp1", "tcp4")),
    Row("go-gost-tungo-relay-wss", "Go gost tungo:// -F relay+wss://", _go_gost_make(tungo_over_relay_wss),
        ("tcp1",)),
)


def select_rows(patterns: Sequence[str], rows: Sequence[Row] = ROWS) -> list[Row]:
    """Rows whose key matches any pattern (a substring or a shell glob).

    The bare row always comes first, since every ratio is measured against it in the same run; a
    chosen row's peer row comes along for the same reason.
    Raises ValueError for a pattern that matches no row."""
    if not patterns:
        return list(rows)
    chosen: list[Row] = []
    for pattern in patterns:
        matched = [r for r in rows if pattern in r.key or fnmatch.fnmatchcase(r.key, pattern)]
        if not matched:
            raise ValueError(f"no bench row matches {pattern!r} (rows: {', '.join(r.key for r in rows)})")
        chosen += [r for r in matched if r not in chosen]
    peers = {r.peer for r in chosen if r.peer}  # a row's peer runs beside it: its ratio needs the same run
    chosen += [r for r in rows if r.key in peers and r not in chosen]
    bare = [r for r in rows if r.bare]
    return [*bare, *(r for r in rows if r in chosen and not r.bare)]
