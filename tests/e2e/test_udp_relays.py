"""The UDP relays in C, end to end in namespaces: `-L udp://` forwarding (direct, and through a SOCKS5 UDP
ASSOCIATE, 0xF3 or relay hop whose server relays in C too), with real clients: dig, iperf3 -u. Python is called per
session (open and close lines in the log), never per datagram; the counters come from C."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from relay_helpers import gost_listening, listening, log_tail, start_dns_responder, udp_exchange

from gostx.testing import iperf
from gostx.testing.gost import GostProcess, start_gost
from gostx.testing.netns import Pair, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

IPERF_PORT = 5201
DATAGRAMS = 450  # iperf3 -u at 5 Mbit/s for 1 s, 1400-byte datagrams


def _stats(gost: GostProcess, msg: str) -> dict[str, int]:
    records = gost.find(lambda r: r.get("msg") == msg and "stats" in r)
    assert records, log_tail(gost)
    return dict(records[-1]["stats"])


@pytest.mark.skipif(shutil.which("dig") is None, reason="needs dig (apt dnsutils)")
def test_dig_through_udp_forward_and_ttl_ends_the_session(pair: Pair) -> None:
    start_dns_responder(pair.b, pair.b_ip, 53)
    client = start_gost(pair.a, ["-L", f"udp://127.0.0.1:53/{pair.b_ip}:53?ttl=1s"], ready=gost_listening(53))
    # +noedns: the test responder echoes no OPT record
    dig = ["dig", "@127.0.0.1", "-p", "53", "+short", "+noedns", "+tries=1", "+time=3", "example.com"]
    out = pair.a.run(dig, check=False)
    assert out.stdout.strip() == "192.0.2.53", out.stdout + out.stderr + log_tail(client)
    # the idle session ends after ttl, and Python hears of it: the close line with C's byte counts
    closed = lambda: client.find(lambda r: ">-<" in str(r.get("msg", "")) and r.get("network") == "udp")  # noqa: E731
    assert wait_until(lambda: bool(closed()), 5), log_tail(client)
    record = closed()[0]
    assert record["inputBytes"] > 12 and record["outputBytes"] > record["inputBytes"], record
    assert client.find(lambda r: "session idle for 1s, closed" in str(r.get("msg", "")))
    client.stop()
    stats = _stats(client, "udp forwarder stats")
    assert stats["sessions_total"] == 1 and stats["up_pkts"] == stats["down_pkts"] >= 1, stats


def _iperf_udp(pair: Pair) -> dict[str, int]:
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(IPERF_PORT), "-J", "-u", "-b", "5M", "-l", "1400", "-t", "1",
            "--connect-timeout", "3000"]
    doc = json.loads(iperf.run_client(pair.a, argv, 1))
    summary = doc["end"]["sum_received"] if "sum_received" in doc["end"] else doc["end"]["sum"]
    return {"packets": int(summary["packets"]), "lost": int(summary["lost_packets"])}


@pytest.mark.parametrize("hop", ["direct", "associate", "f3", "relay", "associate-chained", "f3-chained"])
def test_iperf3_udp_exact_counts(pair: Pair, hop: str) -> None:
    server = pair.b.popen(iperf.server_argv(IPERF_PORT))
    assert wait_until(lambda: listening(pair.b, IPERF_PORT), 10), "iperf3 -s did not start"
    forward = ["-L", f"udp://127.0.0.1:{IPERF_PORT}/{pair.b_ip}:{IPERF_PORT}",
               "-L", f"tcp://127.0.0.1:{IPERF_PORT}/{pair.b_ip}:{IPERF_PORT}"]
    socks = None
    if hop == "relay":  # the relay protocol's UDP frames, both ends in C
        start_gost(pair.b, ["-L", "relay://:8443"], ready=gost_listening(8443))
        forward += ["-F", f"relay://{pair.b_ip}:8443"]
    elif hop != "direct":  # UDP ASSOCIATE (relay=udp) or GOST's 0xF3 UDP-over-TCP (the default)
        chain = []
        last = None
        if hop.endswith("-chained"):  # the server's own upstream: a SOCKS5 hop (0xF3) whose relay is C
            last = start_gost(pair.b, ["-L", "socks5://127.0.0.1:1081"], ready=gost_listening(1081))
            chain = ["-F", "socks5://127.0.0.1:1081"]
        socks = start_gost(pair.b, ["-L", "socks5://:1080?udp=true", *chain], ready=gost_listening(1080))
        socks = last or socks  # the relay whose counters are checked: the one that sends the datagrams
        forward += ["-F", f"socks5://{pair.b_ip}:1080" + ("" if hop.startswith("f3") else "?relay=udp")]
    client = start_gost(pair.a, forward, ready=gost_listening(IPERF_PORT))
    result = _iperf_udp(pair)
    pair.b.stop(server)
    client.stop()
    assert result["packets"] >= DATAGRAMS // 2 and result["lost"] == 0, result  # iperf3 paces loosely when busy
    stats = _stats(client, "udp forwarder stats")
    # iperf3 adds a few datagrams of its own (the UDP "connect" exchange, the end marks), and its server
    # stops counting at the end message, which on a busy machine overtakes a few datagrams still in flight
    assert 0 <= stats["up_pkts"] - result["packets"] <= max(10, result["packets"] // 20), (stats, result)
    assert stats["up_bytes"] >= result["packets"] * 1400
    assert not any(v for k, v in stats.items() if k.startswith("drop_")), stats
    if socks is not None:
        socks.stop()
        relay = _stats(socks, next(str(r["msg"]) for r in socks.log_records()
                                   if str(r.get("msg", "")).endswith("udp relay stats")))
        assert relay["up_pkts"] == stats["up_pkts"] and relay["down_pkts"] == stats["down_pkts"], (relay, stats)
        assert not any(v for k, v in relay.items() if k.startswith("drop_")), relay


def test_session_cap_refuses_and_counts(pair: Pair) -> None:
    start_dns_responder(pair.b, pair.b_ip, 53)
    client = start_gost(pair.a, ["-L", f"udp://127.0.0.1:5353/{pair.b_ip}:53?climiter=1&ttl=30s"],
                        ready=gost_listening(5353))
    query = bytes.fromhex("1234010000010000000000000765786d706c6503636f6d0000010001")
    assert udp_exchange(pair.a, "127.0.0.1", 5353, query), log_tail(client)  # the one session
    # a second client (another source port) is over the cap: no answer, refused and counted
    assert udp_exchange(pair.a, "127.0.0.1", 5353, query, timeout=1) == b""
    assert client.find(lambda r: "connection limit reached" in str(r.get("msg", ""))), log_tail(client)
    client.stop()
    stats = _stats(client, "udp forwarder stats")
    assert stats["sessions_total"] == 2 and stats["drop_refused"] >= 1 and stats["down_pkts"] == 1, stats


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
