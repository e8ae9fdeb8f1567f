"""-metrics without root: the exposition (prometheus_client's parser reads it back), gost's per-service
counters, the bounded per-peer rows, and a scrape of a tun server with 1000 peers learned in C."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gostx.metrics import ServiceCounters, register_source
from gostx.metrics.counters import chain_connected, chain_failed, service_started, service_stopped
from gostx.metrics.peers import OTHER, PeerRows
from gostx.metrics.server import make_registry, scrape
from gostx.metrics.sources import TunnelSource
from gostx.testing.fakepeers import fake_peers


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "host")))] = s.value
    return out


def test_gost_service_metrics_have_gosts_names_and_labels() -> None:
    counters = ServiceCounters("svc-a")
    service_started(counters)
    try:
        with counters.request():
            counters.add_bytes(1000, 250)
        with pytest.raises(RuntimeError), counters.request():
            raise RuntimeError("handler failed")
        with counters.request() as req:
            req.fail()
        chain_connected("chain-x", "node-1", 0.02)
        chain_failed("chain-x", "node-1")
        got = samples(scrape(make_registry()))
    finally:
        service_stopped(counters)
    svc = (("service", "svc-a"),)
    assert got[("gost_service_requests_total", svc)] == 3
    assert got[("gost_service_requests_in_flight", svc)] == 0
    assert got[("gost_service_handler_errors_total", svc)] == 2
    assert got[("gost_service_transfer_input_bytes_total", svc)] == 1000
    assert got[("gost_service_transfer_output_bytes_total", svc)] == 250
    assert got[("gost_service_request_duration_seconds_count", svc)] == 3
    assert got[("gost_service_request_duration_seconds_bucket", (("le", "+Inf"), *svc))] == 3
    node = (("chain", "chain-x"), ("node", "node-1"))
    assert got[("gost_chain_errors_total", node)] >= 1
    assert got[("gost_chain_node_connect_duration_seconds_bucket", (*node[:1], ("le", "0.025"), node[1]))] >= 1
    assert got[("gost_services", ())] >= 1
    assert any(name == "gostx_build_info" for name, _ in got)


def test_a_registered_source_is_read_at_every_scrape_until_closed() -> None:
    reads = []

    def source(sink: object) -> None:
        reads.append(1)
        sink.counters("gostx_test_src", {"frames": len(reads), "open": 2}, gauges={"open"}, service="s")  # type: ignore[attr-defined]

    handle = register_source(source)
    registry = make_registry()
    try:
        first = samples(scrape(registry))
        second = samples(scrape(registry))
    finally:
        handle.close()
    assert first[("gostx_test_src_frames_total", (("service", "s"),))] == 1
    assert second[("gostx_test_src_frames_total", (("service", "s"),))] == 2
    assert second[("gostx_test_src_open", (("service", "s"),))] == 2
    assert not any(n.startswith("gostx_test_src") for n, _ in samples(scrape(registry)))


def test_a_failing_source_does_not_break_the_scrape() -> None:
    def broken(sink: object) -> None:
        raise OSError("device gone")

    handle = register_source(broken)
    try:
        assert b"gostx_build_info" in scrape(make_registry())
    finally:
        handle.close()


def test_peer_rows_are_bounded_and_never_go_back() -> None:
    rows = PeerRows(top_n=2)
    snap = [("10.0.0.2", None, 1, 100, 1, 0, 0), ("10.0.0.3", None, 1, 50, 1, 0, 0), ("10.0.0.4", None, 1, 10, 1, 0, 0)]
    out = dict(rows.update(snap))
    assert set(out) == {"10.0.0.2", "10.0.0.3", OTHER} and out[OTHER][0] == 10
    # 10.0.0.4 becomes the biggest; 10.0.0.3 leaves the top 2: its later bytes go to `other`
    snap = [("10.0.0.2", None, 1, 120, 2, 0, 0), ("10.0.0.3", None, 1, 60, 2, 0, 0),
            ("10.0.0.4", None, 1, 500, 2, 0, 0)]
    out2 = dict(rows.update(snap))
    assert set(out2) == {"10.0.0.2", "10.0.0.4", OTHER}
    assert out2["10.0.0.2"][0] == 120 and out2["10.0.0.4"][0] == 490 and out2[OTHER][0] == 20
    # a re-learned entry (new learned_ms) starts from 0 again; the rows still only grow
    snap = [("10.0.0.2", None, 9, 5, 1, 0, 0), ("10.0.0.4", None, 1, 500, 2, 0, 0)]
    out3 = dict(rows.update(snap))
    assert out3["10.0.0.2"][0] == 125 and out3[OTHER][0] == 20
    # a scan of many sources adds no rows
    scan = [(f"10.1.{i // 256}.{i % 256}", None, 1, 1, 1, 0, 0) for i in range(5000)]
    assert len(rows.update(scan)) == 3


def test_scrape_of_a_tun_server_with_1000_peers_is_fast_and_bounded() -> None:
    fp = fake_peers(1000)
    try:
        assert fp.tunnel.stats()["peers"] == 1000
        source = TunnelSource("gw", "tun", top_n=20)
        source.attach(fp.tunnel)
        handle = register_source(source)
        registry = make_registry()
        try:
            scrape(registry)  # the first scrape builds the per-peer state
            # CPU time of this thread: what a scrape costs, whatever else the (shared) machine runs
            took = float("inf")
            for _ in range(3):
                start = time.thread_time()
                text = scrape(registry)
                took = min(took, time.thread_time() - start)
        finally:
            handle.close()
    finally:
        fp.close()
    got = samples(text)
    peers = {dict(labels).get("peer") for name, labels in got if name == "gostx_tun_peer_bytes_total"}
    assert len(peers) == 21 and OTHER in peers  # the top 20 and `other`
    assert got[("gostx_tun_peers", (("kind", "tun"), ("service", "gw")))] == 1000
    total_rx = sum(v for (name, labels), v in got.items()
                   if name == "gostx_tun_peer_bytes_total" and ("direction", "rx") in labels)
    assert total_rx == got[("gostx_tun_bytes_total", (("direction", "rx"), ("kind", "tun"), ("service", "gw"),
                                                        ("side", "net")))]
    assert took < 0.05, f"one scrape with 1000 peers took {took * 1000:.1f} ms"


def test_metrics_on_a_unix_socket_with_basic_auth(tmp_path: object) -> None:
    import asyncio
    import base64
    import os

    import aiohttp

    from gostx.config.model import AuthConfig, MetricsConfig
    from gostx.metrics.server import MetricsServer

    path = os.path.join(str(tmp_path), "m.sock")

    async def scenario() -> tuple[int, int, bytes, bool]:
        server = MetricsServer(MetricsConfig(addr=f"unix://{path}", path="/m", auth=AuthConfig("prom", "pw")))
        await server.start()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session:
                async with session.get("http://gost/m") as denied:
                    no_auth = denied.status
                basic = {"Authorization": "Basic " + base64.b64encode(b"prom:pw").decode()}
                async with session.get("http://gost/m", headers=basic) as ok:
                    return no_auth, ok.status, await ok.read(), ok.headers["Content-Type"].startswith("text/plain")
        finally:
            await server.close()

    no_auth, status, body, plain = asyncio.run(scenario())
    assert (no_auth, status, plain) == (401, 200, True)
    assert b"gost_services" in body and b"gostx_build_info" in body
    assert not os.path.exists(path)  # removed when the server closes
