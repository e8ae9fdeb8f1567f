"""`tun://...&tcp=true` (fake TCP) end to end: real gost processes in namespaces joined by veth, the
seed's commands (server `tun://:8421?...&tcp=true`, client `tun://:0/SERVER:8421?...&tcp=true`), real
ping and iperf3, tcpdump on the veth, nftables inspected in each namespace."""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import time

import pytest

from gostx.testing.gost import GostProcess, ping, start_gost, wait_ping
from gostx.testing.netns import Lab, Namespace, Pair, wait_until
from gostx.testing.pcap import PROTO_TCP, TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN, tcpdump

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

SERVER_TUN = "192.168.123.1"
CLIENT_TUN = "192.168.123.2"
PORT = 8421


def connected_record(r: dict) -> bool:
    return "tunnel" in str(r.get("msg", "")) and " on fake tcp " in str(r.get("msg", ""))


def fake_tcp_up(g: GostProcess) -> bool:
    return bool(g.find(connected_record))


def start_server(ns: Namespace, userinfo: str = "", scheme: str = "tun", query: str = "",
                 net: str = f"{SERVER_TUN}/24") -> GostProcess:
    return start_gost(ns, ["-L", f"{scheme}://{userinfo}:{PORT}?net={net}&name=gx0&tcp=true{query}"],
                      ready=fake_tcp_up)


def start_client(ns: Namespace, server: str, userinfo: str = "", scheme: str = "tun", query: str = "",
                 net: str = f"{CLIENT_TUN}/24") -> GostProcess:
    return start_gost(ns, ["-L", f"{scheme}://{userinfo}:0/{server}:{PORT}?net={net}&name=gx0&tcp=true{query}"],
                      ready=fake_tcp_up)


def gostx_tables(ns: Namespace) -> list[str]:
    out = json.loads(ns.run(["nft", "-j", "list", "tables"]).stdout)["nftables"]
    return [i["table"]["name"] for i in out if "table" in i and i["table"]["name"].startswith("gostx_")]


def rule_drops(ns: Namespace) -> int:
    """Packets the gostx mute rules dropped in ns (the kernel connection's own segments)."""
    ruleset = json.loads(ns.run(["nft", "-j", "list", "ruleset"]).stdout)["nftables"]
    total = 0
    for item in ruleset:
        rule = item.get("rule")
        if rule and rule["table"].startswith("gostx_"):
            total += sum(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
    return total


@pytest.mark.parametrize("userinfo", ["", "aes-128-gcm:s3cret@"])
def test_ping_both_ways(pair: Pair, userinfo: str) -> None:
    server = start_server(pair.b, userinfo)
    client = start_client(pair.a, pair.b_ip, userinfo)
    assert wait_ping(pair.a, SERVER_TUN), "client cannot ping the server through fake TCP"
    assert ping(pair.b, CLIENT_TUN), "server cannot ping the client through fake TCP"
    stats = server.stats()
    assert stats["faketcp"]["accepted"] == 1 and stats["faketcp"]["flows"] == 1, stats["faketcp"]
    assert stats["faketcp"]["rx_datagrams"] == stats["net_rx_pkts"] > 0
    assert stats["drop_auth"] == 0 and stats["drop_short"] == 0
    if userinfo:  # sealed on the wire: every datagram is larger than the packet inside
        assert stats["net_rx_bytes"] > stats["dev_tx_bytes"]
    assert client.alive() and server.alive()
    assert len(gostx_tables(pair.a)) == 1 and len(gostx_tables(pair.b)) == 1


@pytest.mark.skipif(shutil.which("iperf3") is None or shutil.which("tcpdump") is None,
                    reason="needs iperf3 and tcpdump")
def test_capture_shows_only_tcp_segments_no_rst(pair: Pair) -> None:
    """During ping + iperf3 through the tunnel the veth carries only TCP between the hosts: PSH|ACK
    segments of the one flow, no UDP, no RST, nothing with TTL 1, and no kernel ACKs."""
    server = start_server(pair.b, "aes-128-gcm:s3cret@")
    start_client(pair.a, pair.b_ip, "aes-128-gcm:s3cret@")
    assert wait_ping(pair.a, SERVER_TUN)
    pair.b.popen(["iperf3", "-s", "-1", "-B", SERVER_TUN])
    time.sleep(0.5)
    with tcpdump(pair.b, pair.b_if) as packets:
        assert ping(pair.a, SERVER_TUN, count=5, interval=0.05)
        result = json.loads(pair.a.run(["iperf3", "-c", SERVER_TUN, "-t", "2", "-J"], timeout=60).stdout)
    assert "error" not in result, result.get("error")
    sent, received = result["end"]["sum_sent"]["bytes"], result["end"]["sum_received"]["bytes"]
    assert sent > 1_000_000 and received > 0.9 * sent, (sent, received)

    hosts = {pair.a_ip, pair.b_ip}
    between = [p for p in packets if {p.src, p.dst} == hosts]
    assert len(between) > 1000, f"captured only {len(between)} packets between the hosts"
    assert all(p.proto == PROTO_TCP for p in between), {p.proto for p in between}
    assert not any(p.proto == 17 for p in packets), "UDP on the wire"
    assert not [p for p in between if p.flags & TCP_RST], "RST on the wire"
    assert all(p.ttl > 1 for p in between), "a muted (TTL 1) segment left the host"
    ports = {(p.sport, p.dport) if p.dport == PORT else (p.dport, p.sport) for p in between}
    assert len(ports) == 1 and next(iter(ports))[1] == PORT, ports   # one flow: client port <-> 8421
    assert all(p.flags == TCP_PSH | TCP_ACK and p.payload_len > 0 for p in between), \
        {(p.flags, p.payload_len) for p in between if p.flags != TCP_PSH | TCP_ACK or not p.payload_len}
    # seq advances by the payload length from one segment of a direction to the next, except where
    # the sender has taken the peer's ack as its seq (tcpraw's rule): then it is an ack the peer sent
    for direction in ((pair.a_ip, pair.b_ip), (pair.b_ip, pair.a_ip)):
        segs = [p for p in between if (p.src, p.dst) == direction]
        peer_acks = {p.ack for p in between if (p.dst, p.src) == direction}
        wrong = [(x.seq, x.payload_len, y.seq) for x, y in itertools.pairwise(segs)
                 if (x.seq + x.payload_len) % 2**32 != y.seq and y.seq not in peer_acks]
        assert not wrong, (direction, len(wrong), wrong[:5])
    # the muted kernel connections stay quiet: the rules drop at most a stray packet from the setup
    # (an ACK of data that arrived before the server accepted), not one per segment
    fstats = server.stats()["faketcp"]
    assert fstats["rx_datagrams"] > 10_000
    assert rule_drops(pair.a) + rule_drops(pair.b) <= 5, "kernel ACKs for the fake segments"
    assert fstats["rx_bad"] == 0


def test_handshake_is_a_real_tcp_handshake(pair: Pair) -> None:
    with tcpdump(pair.b, pair.b_if) as packets:
        start_server(pair.b)
        start_client(pair.a, pair.b_ip)
        assert wait_ping(pair.a, SERVER_TUN)
    flow = [p for p in packets if p.proto == PROTO_TCP and PORT in (p.sport, p.dport)]
    syn, syn_ack, ack = flow[0], flow[1], flow[2]
    assert syn.flags == TCP_SYN and syn.dport == PORT and syn.src == pair.a_ip
    assert syn_ack.flags == TCP_SYN | TCP_ACK and syn_ack.ack == (syn.seq + 1) % 2**32
    assert ack.flags == TCP_ACK and ack.seq == syn_ack.ack and ack.ack == (syn_ack.seq + 1) % 2**32
    first_data = next(p for p in flow[3:] if p.src == pair.a_ip)
    assert first_data.flags == TCP_PSH | TCP_ACK
    assert first_data.seq == ack.seq and first_data.ack == ack.ack, "data does not continue the handshake"


def test_tap_with_aead(pair: Pair) -> None:
    start_server(pair.b, "chacha20-ietf-poly1305:pw@", scheme="tap")
    start_client(pair.a, pair.b_ip, "chacha20-ietf-poly1305:pw@", scheme="tap")
    assert wait_ping(pair.a, SERVER_TUN), "no ping over tap with fake TCP"
    assert ping(pair.b, CLIENT_TUN)


def test_ipv6_outer_addresses(lab: Lab) -> None:
    a, b = lab.namespace("a"), lab.namespace("b")
    lab.link(a, "fd00:200::1/64", b, "fd00:200::2/64")
    server = start_server(b)   # `:8421` listens dual-stack
    start_client(a, "[fd00:200::2]")
    assert wait_ping(a, SERVER_TUN), "no ping through fake TCP over IPv6"
    assert ping(b, CLIENT_TUN)
    assert server.stats()["faketcp"]["accepted"] == 1


def test_rules_removed_after_sigterm(pair: Pair) -> None:
    server = start_server(pair.b)
    client = start_client(pair.a, pair.b_ip)
    assert wait_ping(pair.a, SERVER_TUN)
    rules_b = pair.b.run(["nft", "list", "ruleset"]).stdout
    assert "ip ttl 1 tcp sport 8421" in rules_b and "ip6 hoplimit 1 tcp sport 8421" in rules_b
    assert f"ip daddr {pair.b_ip} ip ttl 1 tcp dport 8421" in pair.a.run(["nft", "list", "ruleset"]).stdout
    assert server.stop(signal.SIGTERM) == 0
    assert gostx_tables(pair.b) == [], "server left its nftables table behind"
    # the server's FIN (sent with a normal TTL on the way out) ends the client's connection
    assert wait_until(lambda: client.find(lambda r: r.get("event") == "net_closed"), 5)
    assert client.stop(signal.SIGTERM) == 0
    assert gostx_tables(pair.a) == [], "client left its nftables table behind"
    assert "gx0" not in pair.a.run(["ip", "link", "show"]).stdout


def test_client_recovers_after_server_restart(pair: Pair) -> None:
    server = start_server(pair.b)
    client = start_client(pair.a, pair.b_ip)
    assert wait_ping(pair.a, SERVER_TUN)
    assert server.stop(signal.SIGKILL) is not None
    stale = gostx_tables(pair.b)
    assert len(stale) == 1, "a killed server cannot remove its table"
    server = start_server(pair.b)
    assert stale[0] not in gostx_tables(pair.b), "the new server did not remove the dead one's table"
    # the client's next segment meets the new server's kernel, which resets it: the client redials
    assert wait_ping(pair.a, SERVER_TUN, timeout=15), "client did not recover after the server restart"
    assert ping(pair.b, CLIENT_TUN)
    assert client.alive()
    assert client.find(lambda r: r.get("event") == "net_closed")
    assert len(client.find(connected_record)) >= 2, "client did not reconnect"


def test_client_waits_for_a_server_that_is_not_there_yet(pair: Pair) -> None:
    client = start_gost(pair.a, ["-L", f"tun://:0/{pair.b_ip}:{PORT}?net={CLIENT_TUN}/24&name=gx0&tcp=true"],
                        ready=lambda g: bool(g.find(lambda r: "retrying" in str(r.get("msg", "")))))
    assert "connection refused" in str(client.find(lambda r: "retrying" in str(r.get("msg", "")))[0]["msg"])
    start_server(pair.b)
    assert wait_until(lambda: fake_tcp_up(client), 10), "client never connected"
    assert wait_ping(pair.a, SERVER_TUN)


def test_many_clients_through_one_server(lab: Lab) -> None:
    s = lab.namespace("s")
    clients = [lab.namespace(tag) for tag in ("c", "d", "e")]
    for i, c in enumerate(clients, start=1):
        lab.link(c, f"10.200.{i}.1/24", s, f"10.200.{i}.2/24")
    server = start_server(s, "aes-256-gcm:pw@")
    for i, c in enumerate(clients, start=1):
        start_client(c, f"10.200.{i}.2", "aes-256-gcm:pw@", net=f"192.168.123.{10 + i}/24")
    for i, c in enumerate(clients, start=1):
        assert wait_ping(c, SERVER_TUN), f"client {i} cannot reach the server"
    assert wait_ping(clients[0], "192.168.123.13"), "client 1 cannot reach client 3 through the server"
    assert ping(clients[2], "192.168.123.12")
    fstats = server.stats()["faketcp"]
    assert fstats["accepted"] == 3 and fstats["flows"] == 3, fstats


def test_server_that_cannot_listen_fails_cleanly(pair: Pair) -> None:
    holder = pair.b.popen(["python3", "-c", "import socket,time\ns=socket.create_server(('', 8421))\n"
                           "print('ready', flush=True)\ntime.sleep(60)"])
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"ready"
    proc = pair.b.run(["python3", "-m", "gostx", "-L", f"tun://:{PORT}?net={SERVER_TUN}/24&name=gx0&tcp=true"],
                      check=False, timeout=30)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert lines and "address already in use" in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert gostx_tables(pair.b) == [], "the failed start left its nftables table behind"


def test_keepalive_client_redials_a_silent_server(pair: Pair) -> None:
    """With keepalive the client ends a connection that gets no reply for 3 x ttl (here the server is
    stopped: no FIN, no RST) and redials; once the server runs again the tunnel works."""
    server = start_server(pair.b)
    client = start_client(pair.a, pair.b_ip, query="&keepalive=true&ttl=1s")
    assert wait_ping(pair.a, SERVER_TUN)
    def timed_out() -> bool:
        return bool(client.find(lambda r: r.get("event") == "net_closed" and "errno 110" in r["msg"]))

    server.proc.send_signal(signal.SIGSTOP)
    try:
        assert wait_until(timed_out, 8), "no idle timeout while the server was silent"
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert wait_ping(pair.a, SERVER_TUN, timeout=15), "client did not recover once the server answered again"
    assert client.find(lambda r: r.get("event") == "keepalive_reply")
