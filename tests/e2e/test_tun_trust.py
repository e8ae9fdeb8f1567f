"""What a tun/tap server trusts, end to end (real gost processes in namespaces joined by veth):

* a client holding the key cannot make the server learn a route for the server's own address, for
  0.0.0.0, loopback, multicast, broadcast or an address outside `net`, and owns at most `peerRoutes`
  routes; the refusals are counted in the tunnel stats;
* SHADOWSOCKS_SF_CAPACITY sizes (or turns off) the replay filter of the real tunnel;
* a peer whose datagrams fail authentication is logged: one warning per peer per 10 s with a count.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import pytest

from gostx.testing.gost import GostProcess, device_up, ping, start_gost, tunnel_ready, wait_ping
from gostx.testing.netns import Lab, Namespace, Pair, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

SERVER_TUN = "192.168.123.1"
HONEST_TUN = "192.168.123.2"
PORT = 8421

# Seals IPv4 ICMP echo requests with the tunnel's key and sends them from UDP port 8421 to the server:
# argv = server_ip, method, password, repeat, source addresses...; each source gets one datagram, sent
# `repeat` times (the same bytes: a replay after the first).
CRAFT = r"""
import socket, struct, sys
from gostx import _engine
from gostx.testing.packets import inet_checksum as csum

def echo(src, dst, seq):
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + b"gostx-trust"
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + icmp

server, method, password, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
aead = _engine.Aead(method, password.encode())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 8421))
for seq, src in enumerate(sys.argv[5:]):
    datagram = aead.seal(echo(src, "192.168.123.1", seq))
    for _ in range(repeat):
        s.sendto(datagram, (server, 8421))
"""


def craft(ns: Namespace, server: str, sources: list[str], repeat: int = 1, method: str = "aes-128-gcm",
          password: str = "pw") -> None:
    """Run CRAFT in ns with this checkout's gostx (the cwd is the worktree root)."""
    ns.run([sys.executable, "-c", CRAFT, server, method, password, str(repeat), *sources])


def both_ready(name: str):
    return lambda g: device_up(name)(g) and tunnel_ready(g)


def learned_keys(g: GostProcess) -> set[str]:
    return {str(r.get("route")) for r in g.find(lambda r: r.get("event") in ("peer_learned", "peer_moved"))}


def three_namespaces(lab: Lab) -> tuple[Namespace, Namespace, Namespace]:
    """Server s; the honest client c on 10.200.1.0/24; the hostile one h on 10.200.2.0/24."""
    s, c, h = lab.namespace("s"), lab.namespace("c"), lab.namespace("h")
    lab.link(c, "10.200.1.1/24", s, "10.200.1.2/24")
    lab.link(h, "10.200.2.1/24", s, "10.200.2.2/24")
    return s, c, h


BAD_SOURCES = [SERVER_TUN, "0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "10.1.2.3",
               "192.168.123.255"]
IN_NET = [f"192.168.123.{i}" for i in range(50, 60)]


@pytest.mark.parametrize(("query", "cap"), [("", 4), ("&peerRoutes=12", 12)])
def test_hostile_client_cannot_hijack_routes(lab: Lab, query: str, cap: int) -> None:
    s, c, h = three_namespaces(lab)
    server = start_gost(s, ["-L", f"tun://aes-128-gcm:pw@:{PORT}?net={SERVER_TUN}/24&name=gx0{query}"],
                        ready=both_ready("gx0"))
    start_gost(c, ["-L", f"tun://aes-128-gcm:pw@:{PORT}/10.200.1.2:{PORT}?net={HONEST_TUN}/24&name=gx0"],
               ready=both_ready("gx0"))
    assert wait_ping(c, SERVER_TUN)

    craft(h, "10.200.2.2", BAD_SOURCES + IN_NET)
    time.sleep(0.5)
    # packets to the server's own address still reach the server (before: relayed to the hostile peer)
    assert ping(c, SERVER_TUN, count=3, timeout=1), "the honest client lost the server after the hostile datagrams"
    assert ping(s, HONEST_TUN, count=2, timeout=1), "the server cannot reach the honest client"

    stats = server.stats()
    assert stats["learn_refused"] >= len(BAD_SOURCES), stats
    learned_in_net = min(cap, len(IN_NET))
    assert stats["learn_capped"] == len(IN_NET) - learned_in_net, stats
    assert stats["peers"] == 1 + learned_in_net, stats
    keys = learned_keys(server)
    assert keys == {HONEST_TUN, *IN_NET[:learned_in_net]}, keys
    if cap < len(IN_NET):
        # the cap is logged once, naming the peer and the count, not once per packet
        assert wait_until(lambda: server.find(lambda r: r.get("event") == "routes_capped"), 5)
        (rec,) = server.find(lambda r: r.get("event") == "routes_capped")
        assert rec["peer"] == f"10.200.2.1:{PORT}" and rec["count"] == len(IN_NET) - cap, rec
        assert rec["level"] == "warning"



@pytest.mark.parametrize("pinned", [False, True])
def test_pinned_address_cannot_be_taken_over(lab: Lab, pinned: bool) -> None:
    """As in gost, any key holder can claim an address in `net` that another client uses (the server
    then sends that client's traffic to it); `peerPins=INNER@OUTER_IP` stops that for listed addresses."""
    s, c, h = three_namespaces(lab)
    pins = f"&peerPins={HONEST_TUN}@10.200.1.1" if pinned else ""
    server = start_gost(s, ["-L", f"tun://aes-128-gcm:pw@:{PORT}?net={SERVER_TUN}/24&name=gx0{pins}"],
                        ready=both_ready("gx0"))
    start_gost(c, ["-L", f"tun://aes-128-gcm:pw@:{PORT}/10.200.1.2:{PORT}?net={HONEST_TUN}/24&name=gx0"],
               ready=both_ready("gx0"))
    assert wait_ping(c, SERVER_TUN)
    craft(h, "10.200.2.2", [HONEST_TUN])
    time.sleep(0.3)
    reached = ping(s, HONEST_TUN, count=2, timeout=1)
    if not pinned:
        assert not reached, "expected the takeover gost allows (the test's premise)"
        return
    assert reached, "the pinned client's address was taken over"
    assert wait_until(lambda: server.find(lambda r: r.get("event") == "pin_refused"), 3)
    (rec,) = server.find(lambda r: r.get("event") == "pin_refused")
    assert rec["peer"] == f"10.200.2.1:{PORT}" and rec["route"] == HONEST_TUN and rec["count"] == 1, rec
    assert server.stats()["learn_refused"] >= 1

def test_tap_server_never_learns_its_own_mac_or_multicast(pair: Pair) -> None:
    """tap: the inner source is the Ethernet source MAC. Frames claiming the server's own MAC, broadcast
    or multicast are not learned; the client still reaches the server."""
    server = start_gost(pair.b, ["-L", f"tap://aes-128-gcm:pw@:{PORT}?net={SERVER_TUN}/24&name=gx0"],
                        ready=both_ready("gx0"))
    start_gost(pair.a, ["-L", f"tap://aes-128-gcm:pw@:{PORT}/{pair.b_ip}:{PORT}?net={HONEST_TUN}/24&name=gx1"],
               ready=both_ready("gx1"))
    assert wait_ping(pair.a, SERVER_TUN)
    own = bytes.fromhex(pair.b.run(["cat", "/sys/class/net/gx0/address"]).stdout.strip().replace(":", ""))
    code = (
        "import socket, sys\n"
        "from gostx import _engine\n"
        "aead = _engine.Aead('aes-128-gcm', b'pw')\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for src in sys.argv[2:]:\n"
        "    frame = bytes.fromhex('ffffffffffff') + bytes.fromhex(src) + b'\\x08\\x06' + bytes(46)\n"
        "    s.sendto(aead.seal(frame), (sys.argv[1], 8421))\n"
    )
    sources = [own.hex(), "ffffffffffff", "01005e000001", "333300000001", "000000000000"]
    before = server.stats()
    pair.a.run([sys.executable, "-c", code, pair.b_ip, *sources])
    assert ping(pair.a, SERVER_TUN, count=2, timeout=1), "the client lost the server"
    after = server.stats()
    assert after["learn_refused"] - before["learn_refused"] >= len(sources), (before, after)
    assert after["peers"] == before["peers"] == 1, after


@pytest.mark.parametrize(("capacity", "accepted", "replays"), [(None, 1, 2), ("0", 3, 0), ("1000", 1, 2)])
def test_replay_filter_capacity_from_environment(pair: Pair, monkeypatch: pytest.MonkeyPatch,
                                                 capacity: str | None, accepted: int, replays: int) -> None:
    """One captured datagram sent three times: by default (and with a capacity) the copies are dropped as
    replays; SHADOWSOCKS_SF_CAPACITY=0 turns the filter off, as in go-shadowsocks2, and all three pass."""
    if capacity is None:
        monkeypatch.delenv("SHADOWSOCKS_SF_CAPACITY", raising=False)
    else:
        monkeypatch.setenv("SHADOWSOCKS_SF_CAPACITY", capacity)
    server = start_gost(pair.b, ["-L", f"tun://aes-128-gcm:pw@:{PORT}?net={SERVER_TUN}/24&name=gx0"],
                        ready=both_ready("gx0"))
    craft(pair.a, pair.b_ip, [HONEST_TUN], repeat=3)
    assert wait_until(lambda: server.stats()["net_rx_pkts"] >= 3, 5)
    stats = server.stats()
    assert stats["drop_replay"] == replays, stats
    assert stats["dev_tx_pkts"] == accepted, stats


def test_bad_replay_capacity_is_a_one_line_error(pair: Pair) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", pair.b.name, "env", "SHADOWSOCKS_SF_CAPACITY=lots", sys.executable, "-m", "gostx",
         "-L", f"tun://aes-128-gcm:pw@:{PORT}?net={SERVER_TUN}/24&name=gx0"],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "SHADOWSOCKS_SF_CAPACITY" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def record_time(r: dict) -> float:
    return dt.datetime.fromisoformat(str(r["time"]).replace("Z", "+00:00")).timestamp()


def auth_warnings(g: GostProcess) -> list[dict]:
    return g.find(lambda r: r.get("event") == "auth_failed")


def test_wrong_password_is_logged_once_per_peer_per_10s(pair: Pair) -> None:
    server = start_gost(pair.b, ["-L", f"tun://aes-128-gcm:right@:{PORT}?net={SERVER_TUN}/24&name=gx0"],
                        ready=both_ready("gx0"))
    start_gost(pair.a, ["-L", f"tun://aes-128-gcm:wrong@:{PORT}/{pair.b_ip}:{PORT}?net={HONEST_TUN}/24&name=gx0"],
               ready=both_ready("gx0"))
    # 60 pings over 12 s: one warning about a second after the first, the next 10 s after it
    pinger = pair.a.popen(["ping", "-n", "-c", "60", "-i", "0.2", "-W", "1", SERVER_TUN])
    start = time.monotonic()
    assert wait_until(lambda: auth_warnings(server), 4), "no warning for a peer with the wrong password"
    time.sleep(max(0.0, start + 6 - time.monotonic()))
    first = auth_warnings(server)
    assert len(first) == 1, first  # not one line per datagram (about 30 so far)
    rec = first[0]
    assert rec["level"] == "warning" and rec["peer"] == f"{pair.a_ip}:{PORT}", rec
    assert 1 <= rec["count"] <= 15, rec
    assert "failed authentication" in rec["msg"] and f"{pair.a_ip}:{PORT}" in rec["msg"], rec
    pinger.wait(timeout=30)
    assert wait_until(lambda: len(auth_warnings(server)) >= 2, 5)
    time.sleep(0.5)
    lines = auth_warnings(server)
    assert len(lines) == 2, lines
    assert record_time(lines[1]) - record_time(lines[0]) >= 9.5, lines
    stats = server.stats()
    assert lines[0]["count"] + lines[1]["count"] <= stats["drop_auth"], (lines, stats)
    assert lines[0]["count"] + lines[1]["count"] >= 40, lines


def test_right_password_logs_no_auth_warning(pair: Pair) -> None:
    server = start_gost(pair.b, ["-L", f"tun://aes-128-gcm:pw@:{PORT}?net={SERVER_TUN}/24&name=gx0"],
                        ready=both_ready("gx0"))
    start_gost(pair.a, ["-L", f"tun://aes-128-gcm:pw@:{PORT}/{pair.b_ip}:{PORT}?net={HONEST_TUN}/24&name=gx0"],
               ready=both_ready("gx0"))
    assert wait_ping(pair.a, SERVER_TUN)
    assert ping(pair.a, SERVER_TUN, count=10, timeout=1)
    time.sleep(1.5)
    assert not auth_warnings(server)
    assert not server.find(lambda r: r.get("level") == "warning"), server.log_lines()[-10:]


def test_keepalive_client_announcing_the_servers_address_is_logged_once(pair: Pair) -> None:
    """A v3 keepalive peer whose handshakes are refused (it announces the server's own address): one
    warning with a count, not one per handshake."""
    server = start_gost(pair.b, ["-L", f"tun://:{PORT}?net={SERVER_TUN}/24&name=gx0"], ready=both_ready("gx0"))
    start_gost(pair.a, ["-L", f"tun://:{PORT}/{pair.b_ip}:{PORT}?net={SERVER_TUN}/24&name=gx0&keepalive=true"
                        "&ttl=200ms"], ready=both_ready("gx0"))
    assert wait_until(lambda: server.find(lambda r: r.get("event") == "control_rejected"), 4)
    time.sleep(3)
    (rec,) = server.find(lambda r: r.get("event") == "control_rejected")
    assert rec["peer"] == f"{pair.a_ip}:{PORT}" and rec["count"] >= 1 and rec["level"] == "warning", rec
    assert server.stats()["drop_control"] >= 10


def fake_tcp_up(g: GostProcess) -> bool:
    return bool(g.find(lambda r: "tunnel" in str(r.get("msg", "")) and " on fake tcp " in str(r.get("msg", ""))))


def test_wrong_password_over_fake_tcp_is_logged_once(pair: Pair) -> None:
    server = start_gost(pair.b, ["-L", f"tun://aes-128-gcm:right@:{PORT}?net={SERVER_TUN}/24&name=gx0&tcp=true"],
                        ready=fake_tcp_up)
    start_gost(pair.a, ["-L", f"tun://aes-128-gcm:wrong@:0/{pair.b_ip}:{PORT}?net={HONEST_TUN}/24&name=gx0"
                        "&tcp=true"], ready=fake_tcp_up)
    assert not ping(pair.a, SERVER_TUN, count=15, timeout=1, interval=0.2)
    assert wait_until(lambda: auth_warnings(server), 3), "no warning for a fake-TCP peer with the wrong password"
    (rec,) = auth_warnings(server)
    assert rec["peer"].startswith(f"{pair.a_ip}:") and rec["count"] >= 1, rec
    assert server.stats()["drop_auth"] >= 15
