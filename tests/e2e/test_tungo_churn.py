"""tungo under connection churn (a browser's many short connections, a resolver's short UDP sessions):
every new flow is answered (the rate against direct flows is measured by the bench), and a client that
reuses a port lwIP still holds in TIME_WAIT gets a new connection.

    A: client, tungo (route 10.201.0.1/32 into it)      B: echo server on 10.201.0.1 (lo) and its veth
       veth 10.200.1.1/24  ==========================     veth 10.200.1.2/24

The churn client and echo server are bench/churn_client.py and bench/churn_server.py (single-threaded
epoll); `python3 -m bench.churn` runs the long versions, bench/README.md has the measured rows.
"""

from __future__ import annotations

import textwrap
import time

import pytest

from bench.churn import BEHIND, ChurnLab, ChurnResult, churn, gost_stats
from gostx.testing.netns import Lab, make_pair, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

SYN_RETRANSMIT_MS = 1000.0   # Linux's first SYN retransmission: a p99 at or above it means lost SYNs


@pytest.fixture
def clab(lab: Lab) -> ChurnLab:
    return ChurnLab(make_pair(lab))


def _no_failures(result: ChurnResult, what: str) -> None:
    assert result.ok > 0 and result.failed == 0, f"{what}: {result.line()}"


def test_tcp_churn_through_tungo_answers_every_flow(clab: ChurnLab) -> None:
    """200 clients in flight for 10 s, each connect / write 64 B / read the echo / write / close: no
    flow fails, no SYN is lost (p99 connect under Linux's 1 s SYN retransmission), every flow reached
    the stack and was dialed. (The rate against direct flows is a bench row: `python3 -m bench.churn`.)"""
    gost = clab.tungo("tungo")
    through = churn(clab.a, clab.b, BEHIND, inflight=200, seconds=10)
    stats = gost_stats(gost)
    print(f"tungo: {through.line()}")
    _no_failures(through, "through tungo")
    p99 = through.p("tcp", "p99_ms")
    assert p99 is not None and p99 < SYN_RETRANSMIT_MS, f"SYNs were lost: {through.line()}"
    assert stats["tcp_flows"] >= through.ok and stats["tcp_refused"] == 0 and stats["event_overflows"] == 0, stats
    assert wait_until(lambda: gost_stats(gost)["tcp_active"] == 0, timeout=20), gost_stats(gost)


def test_udp_and_mixed_churn_through_tungo(clab: ChurnLab) -> None:
    """DNS-like sessions (a new socket, one datagram, its echo) and TCP flows together: none lost."""
    gost = clab.tungo("tungo", "&udpTimeout=2s")
    udp = churn(clab.a, clab.b, BEHIND, inflight=100, seconds=5, mode="udp")
    _no_failures(udp, "udp")
    mix = churn(clab.a, clab.b, BEHIND, inflight=100, seconds=5, mode="mix")
    _no_failures(mix, "mix")
    assert mix.kind("tcp")["ok"] > 0 and mix.kind("udp")["ok"] > 0, mix.line()
    stats = gost_stats(gost)
    # a new socket often gets the port of one just closed: its datagram joins that session (same addresses)
    sent = udp.ok + int(mix.kind("udp")["ok"])
    assert stats["udp_up_pkts"] >= sent and stats["udp_down_pkts"] >= sent, stats
    assert stats["udp_sessions"] > 0 and stats["udp_drops"] == 0 and stats["flow_limit_hits"] == 0, stats


def test_tcp_churn_through_a_socks5_chain(clab: ChurnLab) -> None:
    """The same churn through `-F socks5://B:1080` (gost's SOCKS5 server in B): no flow fails."""
    gost = clab.tungo("tungo-socks5")
    through = churn(clab.a, clab.b, BEHIND, inflight=100, seconds=6)
    _no_failures(through, "through tungo -F socks5")
    assert gost_stats(gost)["tcp_refused"] == 0


CLOSE_FIRST_SERVER = textwrap.dedent("""
    import socket, sys
    srv = socket.create_server((sys.argv[1], int(sys.argv[2])), backlog=64)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        conn.sendall(b"bye\\n")
        conn.close()   # the server closes first: tungo's side of the flow ends in TIME_WAIT
""")

REUSE_CLIENT = textwrap.dedent("""
    import socket, sys, time
    host, port, local_port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    took = []
    for _ in range(rounds):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", local_port))   # the same client port every time
        s.settimeout(10)
        t0 = time.monotonic()
        s.connect((host, port))
        took.append(time.monotonic() - t0)
        data = b""
        while chunk := s.recv(64):
            data += chunk
        assert data == b"bye\\n", data
        s.close()
        time.sleep(0.2)   # the client is done at once (it got the FIN first); lwIP holds TIME_WAIT
    print(max(took))
""")


def test_reused_client_port_in_time_wait_gets_a_new_connection(clab: ChurnLab) -> None:
    """A client bound to one local port: connect, the server closes first, close, connect again. lwIP
    holds the first connection in TIME_WAIT; the new SYN (above its sequence numbers) gets a new
    connection at once, as the Linux kernel would give it (RFC 6191), not an ACK for the old one and a
    SYN retransmission (lwIP's 2 MSL is 120 s)."""
    gost = clab.tungo("tungo")
    server = clab.b.popen(["python3", "-c", CLOSE_FIRST_SERVER, BEHIND, "7400"])
    assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
    out = clab.a.run(["python3", "-c", REUSE_CLIENT, BEHIND, "7400", "40555", "5"], check=False, timeout=90)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) < SYN_RETRANSMIT_MS / 1000, f"a connect waited for a retransmission: {out.stdout}"
    # the stack publishes lwIP's TIME_WAIT counts on its 250 ms tick: the last recycle may be that far behind
    deadline = time.monotonic() + 3.0
    while (stats := gost_stats(gost)).get("tcp_tw_recycled") != 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stats["tcp_flows"] == 5 and stats["tcp_tw_recycled"] == 4, stats
