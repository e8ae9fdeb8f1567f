"""The tungo seed's Linux example end to end: `gost -L "tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420
&dns=1.1.1.1" -F "relay+wss://SERVER_IP:443?interface=eth0"` in namespace a, `gost -L relay+wss://:443` in b,
then the seed's routing (default route into tungo, metric 1; the old default via eth0 kept as metric 10).

Traffic to a host behind b (10.201.0.1) enters the TUN, and tungo carries it through the relay+wss chain;
the chain's own connection to SERVER_IP:443 is bound to "eth0" (a's veth), so it does not loop back into
the TUN even though the TUN holds the preferred default route."""

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

from gostx.plugins import load_builtin_plugins
from gostx.registry import handlers
from gostx.testing.gost import start_gost
from gostx.testing.netns import Pair, wait_until

load_builtin_plugins()

TUNGO_BUILT = "tungo" in handlers
# Until the tungo branch is merged this is a plain skip; once tungo exists it is a netns test, which CI must
# run (the CI hook turns a skipped netns test into a failure).
pytestmark = [
    *([pytest.mark.netns] if TUNGO_BUILT else []), pytest.mark.e2e,
    pytest.mark.skipif(not TUNGO_BUILT, reason="tungo not built yet (branch tungo is merged separately)"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]


def test_seed_tungo_over_relay_wss_with_interface(pair: Pair) -> None:
    b = pair.b
    b.run(["ip", "addr", "add", f"{BEHIND}/32", "dev", "lo"])
    server = start_gost(b, ["-L", "relay+wss://:443"], ready=gost_listening(443))
    name, digest = start_web_server(b, BEHIND, 8000)
    start_dns_responder(b, BEHIND, 53)
    a = pair.a
    a.run(["ip", "route", "add", "default", "via", pair.b_ip, "dev", pair.a_if])  # "via 192.168.1.1 dev eth0"
    client = start_gost(a, [
        "-L", "tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&dns=1.1.1.1",
        "-F", f"relay+wss://{pair.b_ip}:443?interface={pair.a_if}"])
    assert wait_until(lambda: a.run(["ip", "link", "show", "tungo"], check=False).returncode == 0, 15), \
        log_tail(client)
    # the seed's routing table update
    a.run(["ip", "route", "delete", "default"])
    a.run(["ip", "route", "add", "default", "via", pair.b_ip, "dev", pair.a_if, "metric", "10"])
    a.run(["ip", "route", "add", "default", "dev", "tungo", "metric", "1"])
    assert "dev tungo" in a.run(["ip", "route", "get", BEHIND]).stdout  # the route goes into the TUN

    result = curl(a, f"http://{BEHIND}:8000/{name}", timeout=30)
    assert result.returncode == 0, result.stderr.decode() + log_tail(client, server)
    assert hashlib.sha256(result.stdout).hexdigest() == digest
    # the transport to the server left by the veth (its address), not through the TUN
    assert wait_until(lambda: server.find(
        lambda r: str(r.get("remote", "")).startswith(pair.a_ip) and r.get("dst") == f"{BEHIND}:8000"), timeout=5)

    answer = udp_exchange(a, BEHIND, 53, dns_query(0x4242, "example.com"))
    assert answer[:2] == b"\x42\x42" and answer.endswith(bytes([192, 0, 2, 53])), log_tail(client, server)
