"""The C relays' counters reach -metrics: a `udp://` forwarder's live counters (with its UDP GSO sends),
and the totals of the SOCKS5 UDP ASSOCIATE, relay-UDP and TLS/WebSocket flows that ended. In-process gost
on loopback, read back through prometheus_client's parser."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

from gostx.metrics.server import make_registry, scrape
from gostx.metrics.sources import ENDED_RELAY_TOTALS
from tests.unit.relaytest import echo_tcp, echo_udp, free_port, gost, http_connect

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), timeout))  # type: ignore[arg-type]


def values(prefix: str) -> dict[str, float]:
    """Every sample whose name starts with prefix, by name (one service per test, so labels are left out)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(scrape(make_registry()).decode()):
        for sample in family.samples:
            if sample.name.startswith(prefix) and not sample.name.endswith("_created"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


async def echoed(sock: socket.socket, count: int) -> list[bytes]:
    loop = asyncio.get_running_loop()
    return [await asyncio.wait_for(loop.sock_recv(sock, 2048), 5) for _ in range(count)]


def test_udp_forwarder_counters_and_its_gso_sends_are_scraped() -> None:
    """Bursts of 40 equal datagrams through a `udp://` forwarder: every counter is scraped, and a burst the
    C thread reads as one batch leaves in one UDP GSO send to the connected upstream, counted (how the
    kernel hands the forwarder a burst is timing: up to 20 bursts are sent until one was a batch)."""

    async def scenario() -> tuple[int, dict[str, float]]:
        fwd = free_port(socket.SOCK_DGRAM)
        async with echo_udp() as echo, gost([f"udp://127.0.0.1:{fwd}/127.0.0.1:{echo}"]):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                for burst in range(1, 21):
                    for i in range(40):  # no await in between
                        sock.sendto(b"%04d" % i + b"x" * 996, ("127.0.0.1", fwd))
                    got = await echoed(sock, 40)
                    assert sorted(got) == sorted(b"echo:" + b"%04d" % i + b"x" * 996 for i in range(40))
                    scraped = values("gostx_udp_forward_")
                    if scraped["gostx_udp_forward_gso_sends_total"] > 0:
                        return burst, scraped
                return burst, scraped
            finally:
                sock.close()

    bursts, got = run(scenario)
    assert got["gostx_udp_forward_gso_sends_total"] >= 1, f"no GSO send in {bursts} bursts: {got}"
    assert got["gostx_udp_forward_up_pkts_total"] == 40 * bursts
    assert got["gostx_udp_forward_up_bytes_total"] == 40_000 * bursts
    assert got["gostx_udp_forward_down_pkts_total"] == 40 * bursts
    assert got["gostx_udp_forward_sessions_open"] == 1 and got["gostx_udp_forward_sessions_total"] == 1
    assert got["gostx_udp_forward_gso_fallbacks_total"] == 0  # loopback takes UDP GSO
    assert got["gostx_udp_forward_drop_size_total"] == 0 and got["gostx_udp_forward_drop_send_total"] == 0
    assert not values("gostx_udp_forward_"), "the forwarder's source outlived its service"


def test_ended_udp_associate_and_relay_udp_flows_are_totalled() -> None:
    """udp:// through a SOCKS5 hop (relay=udp: UDP ASSOCIATE on the server) and through a relay hop (the
    relay server frames the datagrams in C): when the client's services stop, each server-side C relay
    ends and its counters are added to gostx_socks_assoc_* and gostx_dgram_frames_*."""

    def totals(kind: str) -> dict[str, int]:
        return dict(ENDED_RELAY_TOTALS.get(kind, {}))

    async def through(hop_server: str, hop: str, kind: str) -> tuple[dict[str, int], dict[str, int]]:
        server, fwd = free_port(), free_port(socket.SOCK_DGRAM)
        before = totals(kind)
        async with echo_udp() as echo, gost([hop_server.format(port=server)]):
            async with gost([f"udp://127.0.0.1:{fwd}/127.0.0.1:{echo}"], [hop.format(port=server)]):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setblocking(False)
                try:
                    for i in range(5):
                        sock.sendto(b"d%d" % i, ("127.0.0.1", fwd))
                        assert await echoed(sock, 1) == [b"echo:d%d" % i]
                finally:
                    sock.close()
            for _ in range(500):  # the client stopped: the server's relay ends with its connection
                if totals(kind).get("relays", 0) > before.get("relays", 0):
                    break
                await asyncio.sleep(0.01)
            return before, totals(kind)

    async def scenario() -> list[tuple[dict[str, int], dict[str, int]]]:
        return [await through("socks5://127.0.0.1:{port}?udp=true", "socks5://127.0.0.1:{port}?relay=udp",
                              "socks_assoc"),
                await through("relay://127.0.0.1:{port}", "relay://127.0.0.1:{port}", "dgram_frames")]

    (assoc0, assoc1), (frames0, frames1) = run(scenario, 40)
    assert assoc1["relays"] - assoc0.get("relays", 0) == 1
    assert assoc1["up_pkts"] - assoc0.get("up_pkts", 0) == 5 and assoc1["down_pkts"] - assoc0.get("down_pkts", 0) == 5
    assert frames1["relays"] - frames0.get("relays", 0) == 1
    # on the relay server the datagram side is its UDP socket to the target: frames from the client go
    # out there ("down", from the stream to datagrams), the echoes come back up onto the stream
    assert frames1["down_pkts"] - frames0.get("down_pkts", 0) == 5
    assert frames1["up_pkts"] - frames0.get("up_pkts", 0) == 5
    scraped = values("gostx_")
    assert scraped["gostx_socks_assoc_relays_total"] == assoc1["relays"]
    assert scraped["gostx_socks_assoc_gso_sends_total"] == assoc1["gso_sends"]
    assert scraped["gostx_dgram_frames_up_pkts_total"] == frames1["up_pkts"]


def test_ended_tls_and_websocket_streams_are_totalled() -> None:
    """One echo through `-F relay+wss://` (a C stream at each end), then a client that refuses gost's
    self-signed certificate (secure=true): gostx_xstream_* count the streams, their bytes and the
    handshake failure."""

    def totals() -> dict[str, int]:
        return dict(ENDED_RELAY_TOTALS.get("xstream", {}))

    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        before = totals()
        server, proxy, strict = free_port(), free_port(), free_port()
        payload = b"p" * 100_000
        async with echo_tcp() as echo, gost([f"relay+wss://127.0.0.1:{server}"]), \
                gost([f"http://127.0.0.1:{proxy}"], [f"relay+wss://127.0.0.1:{server}"]), \
                gost([f"http://127.0.0.1:{strict}"], [f"relay+wss://127.0.0.1:{server}?secure=true"]):
            reader, writer = await http_connect(proxy, f"127.0.0.1:{echo}")
            writer.write(payload)
            assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                reader, writer = await http_connect(strict, f"127.0.0.1:{echo}")
                writer.close()
            for _ in range(500):
                now = totals()
                if now.get("streams", 0) - before.get("streams", 0) >= 4 and now.get("tls_failures", 0) > \
                        before.get("tls_failures", 0):
                    break
                await asyncio.sleep(0.01)
        return before, totals()

    before, after = run(scenario, 40)

    def delta(key: str) -> int:
        return after.get(key, 0) - before.get(key, 0)

    # the echo's two ends, and the refused handshake's two ends
    assert delta("streams") >= 4 and delta("tls_failures") >= 1, (before, after)
    assert delta("app_in") >= 2 * 100_000 and delta("app_out") >= 2 * 100_000  # both ends, both ways
    assert delta("frames_in") >= 2 and delta("ws_errors") == 0
    scraped = values("gostx_xstream_")
    assert scraped["gostx_xstream_streams_total"] == after["streams"]
    assert scraped["gostx_xstream_tls_failures_total"] == after["tls_failures"]
