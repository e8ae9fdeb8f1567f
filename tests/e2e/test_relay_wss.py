"""relay+wss end to end, as the tungo seed's chain: real gost processes in two namespaces. Server in b
runs `-L relay+wss://:443`; a web server and a DNS-like responder sit on b's loopback (10.201.0.1), which a
cannot reach except through the relay. Client in a: `-L http://` or `-L udp://` with `-F relay+wss://`."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from relay_helpers import (
    BEHIND,
    curl,
    dns_query,
    gost_listening,
    log_tail,
    start_dns_responder,
    start_web_server,
    udp_exchange,
)

from gostx.testing.gost import start_gost
from gostx.testing.netns import Pair

pytestmark = [pytest.mark.netns, pytest.mark.e2e]


@pytest.fixture
def server(pair: Pair):  # type: ignore[no-untyped-def]
    pair.b.run(["ip", "addr", "add", f"{BEHIND}/32", "dev", "lo"])
    return start_gost(pair.b, ["-L", "relay+wss://:443"], ready=gost_listening(443))


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("node_query", ["", "?nodelay=true"])
def test_curl_through_http_chained_to_relay_wss(pair: Pair, server, node_query: str) -> None:  # type: ignore[no-untyped-def]
    name, digest = start_web_server(pair.b, BEHIND, 8000)
    assert curl(pair.a, f"http://{BEHIND}:8000/{name}", timeout=3).returncode != 0, "reachable without the relay"
    client = start_gost(pair.a, ["-L", "http://127.0.0.1:8080", "-F", f"relay+wss://{pair.b_ip}:443{node_query}"],
                        ready=gost_listening(8080))
    for _ in range(2):  # two downloads: every flow opens its own WebSocket
        result = curl(pair.a, f"http://{BEHIND}:8000/{name}", proxy="http://127.0.0.1:8080")
        assert result.returncode == 0, result.stderr.decode() + log_tail(client, server)
        assert hashlib.sha256(result.stdout).hexdigest() == digest
    opened = client.find(lambda r: f"{BEHIND}:8000" in str(r.get("msg", "")) and "<->" in str(r.get("msg", "")))
    assert len(opened) == 2
    relayed = server.find(lambda r: r.get("dst") == f"{BEHIND}:8000" and r.get("listener") == "wss")
    assert relayed, log_tail(server)


def test_relay_udp_dns_exchange(pair: Pair, server) -> None:  # type: ignore[no-untyped-def]
    start_dns_responder(pair.b, BEHIND, 53)
    client = start_gost(pair.a, ["-L", f"udp://127.0.0.1:5353/{BEHIND}:53", "-F", f"relay+wss://{pair.b_ip}:443"],
                        ready=gost_listening(5353))
    for qid in (0x1234, 0xBEEF):
        answer = udp_exchange(pair.a, "127.0.0.1", 5353, dns_query(qid, "example.com"))
        assert answer, log_tail(client, server)
        assert answer[:2] == qid.to_bytes(2, "big") and answer[2] & 0x80  # the same id, a response
        assert answer.endswith(bytes([192, 0, 2, 53]))
    udp_flows = server.find(lambda r: r.get("dst") == f"{BEHIND}:53" and r.get("network") == "udp")
    assert udp_flows, log_tail(server)
