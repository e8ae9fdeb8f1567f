"""The stats sources of gostx's own C parts: tun/tap tunnels (with per-peer rows and fake TCP), the
tungo stack, `udp://` forwarders, the UDP relays (totals of those that ended), the shared relay engine,
the name resolver, and the build info.

Each reads its C counters with one call per scrape; the per-service ones are registered by their
handler while it runs (`register_source(...)`, closed when it stops).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from gostx import GOST_COMPAT_VERSION, __version__
from gostx.metrics.peers import PeerRows, top_n_from_env
from gostx.metrics.registry import MetricSink, register_source

if TYPE_CHECKING:
    from gostx._engine import FakeTcp, Tunnel

# tun/tap counters by meaning (names of struct gx_tunnel_stats)
_TUN_TRAFFIC = {  # field -> (metric, side, direction)
    "dev_rx_pkts": ("packets", "device", "rx"), "dev_rx_bytes": ("bytes", "device", "rx"),
    "dev_tx_pkts": ("packets", "device", "tx"), "dev_tx_bytes": ("bytes", "device", "tx"),
    "net_rx_pkts": ("packets", "net", "rx"), "net_rx_bytes": ("bytes", "net", "rx"),
    "net_tx_pkts": ("packets", "net", "tx"), "net_tx_bytes": ("bytes", "net", "tx"),
}
_TUN_DROPS = {  # field -> reason
    "drop_short": "short", "drop_auth": "auth", "drop_replay": "replay", "drop_malformed": "malformed",
    "drop_no_route": "no_route", "drop_dev_full": "device_full", "drop_send": "send",
    "drop_control": "control",
}
_TUN_LEARN = {"learn_refused": "refused", "learn_capped": "capped"}


class TunnelSource:
    """One tun/tap service: its running tunnel (replaced on redials) and fake-TCP endpoint. Counters of
    tunnels that ended are kept, so the service's totals never go back."""

    def __init__(self, service: str, kind: str, top_n: int | None = None) -> None:
        self.service = service
        self.kind = kind
        self.tunnel: Tunnel | None = None
        self.faketcp: FakeTcp | None = None
        self.info: dict[str, str] = {}
        self._base: dict[str, int] = {}
        self._ftcp_base: dict[str, int] = {}
        self.started = 0
        self.peers = PeerRows(top_n_from_env() if top_n is None else top_n)

    def attach(self, tunnel: Tunnel, faketcp: FakeTcp | None = None) -> None:
        self.tunnel, self.faketcp = tunnel, faketcp
        self.started += 1

    def requests(self) -> tuple[int, int]:
        """gost's requests of a tun service: its tunnels (one per start or redial), and 1 in flight while
        one runs."""
        return self.started, int(self.tunnel is not None)

    def detach(self) -> None:
        """The tunnel stopped: keep its final counters in the base."""
        if self.tunnel is not None:
            for k, v in self.tunnel.stats().items():
                if k != "peers":
                    self._base[k] = self._base.get(k, 0) + v
        if self.faketcp is not None:
            for k, v in self.faketcp.stats().items():
                if k != "flows":
                    self._ftcp_base[k] = self._ftcp_base.get(k, 0) + v
        self.tunnel = self.faketcp = None

    def stats(self) -> dict[str, int]:
        live: Mapping[str, int] = self.tunnel.stats() if self.tunnel is not None else {}
        out = dict(self._base)
        for k, v in live.items():
            out[k] = v if k == "peers" else out.get(k, 0) + v
        out.setdefault("peers", 0)
        return out

    def faketcp_stats(self) -> dict[str, int] | None:
        if self.faketcp is None and not self._ftcp_base:
            return None
        live: Mapping[str, int] = self.faketcp.stats() if self.faketcp is not None else {}
        out = dict(self._ftcp_base)
        for k, v in live.items():
            out[k] = v if k == "flows" else out.get(k, 0) + v
        return out

    def device_bytes(self) -> tuple[int, int]:
        """gost's service input/output for a tun service: bytes read from / written to its device."""
        s = self.stats()
        return s.get("dev_rx_bytes", 0), s.get("dev_tx_bytes", 0)

    def collect(self, sink: MetricSink) -> None:
        base = {"service": self.service, "kind": self.kind}
        s = self.stats()
        for field, (metric, side, direction) in _TUN_TRAFFIC.items():
            sink.counter(f"gostx_tun_{metric}_total", f"tun/tap {metric} by side (device, net) and direction",
                         s.get(field, 0), side=side, direction=direction, **base)
        for field, reason in _TUN_DROPS.items():
            sink.counter("gostx_tun_drops_total", "tun/tap packets dropped, by reason", s.get(field, 0),
                         reason=reason, **base)
        for field, reason in _TUN_LEARN.items():
            sink.counter("gostx_tun_learn_refused_total", "inner sources not learned (refused: not allowed or"
                         " pinned elsewhere; capped: over peerRoutes)", s.get(field, 0), reason=reason, **base)
        sink.counter("gostx_tun_relayed_packets_total", "packets relayed client to client", s.get("relayed_pkts", 0),
                     **base)
        for direction in ("rx", "tx"):
            sink.counter("gostx_tun_control_messages_total", "gost v3 control messages (keepalives)",
                         s.get(f"control_{direction}", 0), direction=direction, **base)
            sink.counter("gostx_tun_offload_super_packets_total", "GSO super-packets split (rx) and GRO"
                         " super-packets written (tx) on the device", s.get(f"dev_{direction}_supers", 0),
                         direction=direction, **base)
        sink.gauge("gostx_tun_peers", "learned routes (inner address -> peer) now", s.get("peers", 0), **base)
        if self.info:
            sink.gauge("gostx_tun_info", "the tun/tap service's device, cipher and offload mode", 1,
                       **base, **self.info)
        if self.tunnel is not None:
            rows = self.peers.update(self.tunnel.peers())
            for peer, (rx_b, rx_p, tx_b, tx_p) in rows:
                for direction, nbytes, npkts in (("rx", rx_b, rx_p), ("tx", tx_b, tx_p)):
                    sink.counter("gostx_tun_peer_bytes_total", "inner bytes from (rx) and to (tx) a peer: the"
                                 " top N peers by bytes and `other`", nbytes, peer=peer, direction=direction, **base)
                    sink.counter("gostx_tun_peer_packets_total", "inner packets from (rx) and to (tx) a peer",
                                 npkts, peer=peer, direction=direction, **base)
        ftcp = self.faketcp_stats()
        if ftcp is not None:
            sink.counters("gostx_faketcp", ftcp, gauges={"flows"}, service=self.service)


# tungo stack fields that are levels, not counts
TUNGO_GAUGES = frozenset({"tcp_active", "udp_active", "tcp_closing", "tcp_time_wait", "lwip_mem_used",
                          "lwip_mem_max"})


def tungo_source(service: str, stats: Callable[[], dict[str, int]]) -> Callable[[MetricSink], None]:
    """tungo: every stack counter as gostx_tungo_<field>[_total] (flows open/total, drops, lwIP heap)."""
    def collect(sink: MetricSink) -> None:
        sink.counters("gostx_tungo", stats(), gauges=TUNGO_GAUGES, service=service)
    return collect


def udp_forward_source(service: str, stats: Callable[[], dict[str, int]]) -> Callable[[MetricSink], None]:
    """`-L udp://` in C: every forwarder counter as gostx_udp_forward_<field>[_total] (datagrams and bytes
    both ways, sessions, drops by reason, UDP GSO sends and fallbacks)."""
    def collect(sink: MetricSink) -> None:
        sink.counters("gostx_udp_forward", stats(), gauges={"sessions_open"}, service=service)
    return collect


# The C relays made per flow, counted when each ends: kind -> field -> total
#   socks_relay   SOCKS5 UDP-over-TCP (0xF3) served by a socks5 listener
#   socks_assoc   SOCKS5 UDP ASSOCIATE served by a socks5 listener
#   dgram_frames  datagrams framed on a chain's stream (tungo UDP over SOCKS5 0xF3 or relay, relay UDP)
#   xstream       TLS / WebSocket streams run in C (gostx/net/xstream.py), client and server side
ENDED_RELAY_HELP = {
    "socks_relay": "SOCKS5 UDP-over-TCP (0xF3) relays run in C, counted when each ends",
    "socks_assoc": "SOCKS5 UDP ASSOCIATE relays run in C, counted when each ends",
    "dgram_frames": "datagrams framed on a chain's stream in C (tungo and relay UDP), counted when each flow ends",
    "xstream": "TLS and WebSocket streams run in C, counted when each ends",
}
ENDED_RELAY_TOTALS: dict[str, dict[str, int]] = {}


def relay_ended(kind: str, stats: Mapping[str, int], count: str = "relays") -> None:
    """A C relay of `kind` (ENDED_RELAY_HELP) ended with these counters; the field `count` counts them."""
    totals = ENDED_RELAY_TOTALS.setdefault(kind, {})
    for key, value in stats.items():
        totals[key] = totals.get(key, 0) + int(value)
    totals[count] = totals.get(count, 0) + 1


def _process_sources(sink: MetricSink) -> None:
    from gostx import _engine

    sink.counters("gostx_relay_engine", _engine.relay_engine_stats(), gauges={"threads", "relays"})
    for kind, totals in ENDED_RELAY_TOTALS.items():
        sink.counters(f"gostx_{kind}", totals, help_text=ENDED_RELAY_HELP[kind])
    sink.counters("gostx_resolver", _engine.resolve_stats())
    impls = _engine.crypto_impls()
    sink.gauge("gostx_build_info", "gostx version, the gost version it follows, and the crypto code paths"
               " this CPU uses", 1, version=__version__, gost_version=GOST_COMPAT_VERSION,
               python=platform.python_version(), aes_gcm=str(impls.get("aes-gcm", "")),
               hkdf_sha1=str(impls.get("hkdf-sha1", "")), simd=str(bool(impls.get("simd", False))).lower())


register_source(_process_sources)
