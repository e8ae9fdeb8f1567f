"""`tun://` and `tap://` end to end: real gost processes in two network namespaces joined by veth,
real TUN/TAP devices, real ping and iperf3. Server in namespace b (10.200.1.2), client in a."""

from __future__ import annotations

import json
import shutil
import signal
import time

import pytest

from gostx.testing.gost import GostProcess, device_up, ping, start_gost, tunnel_ready, wait_ping
from gostx.testing.netns import Lab, Namespace, Pair

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

SERVER_TUN = "192.168.123.1"
CLIENT_TUN = "192.168.123.2"


def both_ready(name: str):
    return lambda g: device_up(name)(g) and tunnel_ready(g)


def start_pair(pair: Pair, userinfo: str = "", query: str = "", client_userinfo: str | None = None,
               scheme: str = "tun", client_query: str | None = None) -> tuple[GostProcess, GostProcess]:
    cu = userinfo if client_userinfo is None else client_userinfo
    cq = query if client_query is None else client_query
    server = start_gost(pair.b, ["-L", f"{scheme}://{userinfo}:8421?net={SERVER_TUN}/24&name=gx0{query}"],
                        ready=both_ready("gx0"))
    client = start_gost(pair.a, ["-L", f"{scheme}://{cu}:8421/{pair.b_ip}:8421?net={CLIENT_TUN}/24&name=gx0{cq}"],
                        ready=both_ready("gx0"))
    return server, client


@pytest.mark.parametrize("userinfo", ["", "aes-128-gcm:s3cret@", "chacha20-ietf-poly1305:s3cret@",
                                      "AEAD_AES_256_GCM:s3cret@"])
def test_ping_both_ways(pair: Pair, userinfo: str) -> None:
    server, _client = start_pair(pair, userinfo)
    assert wait_ping(pair.a, SERVER_TUN), "client cannot ping the server through the tunnel"
    assert ping(pair.b, CLIENT_TUN), "server cannot ping the client through the tunnel"
    stats = server.stats()
    assert stats["net_rx_pkts"] > 0 and stats["dev_tx_pkts"] > 0
    assert stats["drop_auth"] == 0 and stats["drop_replay"] == 0
    if userinfo:  # on the wire every datagram is salt + ciphertext + tag: larger than the inner packet
        assert stats["net_rx_bytes"] > stats["dev_tx_bytes"]


def test_device_configured_as_gost_does(pair: Pair) -> None:
    start_pair(pair, query="&mtu=1300&route=10.77.0.0/16,10.78.1.0/24")
    link = json.loads(pair.b.run(["ip", "-j", "addr", "show", "gx0"]).stdout)[0]
    assert link["mtu"] == 1300
    assert "UP" in link["flags"]
    assert any(a["local"] == SERVER_TUN and a["prefixlen"] == 24 for a in link["addr_info"])
    routes = json.loads(pair.b.run(["ip", "-j", "route", "show", "dev", "gx0"]).stdout)
    dsts = {r["dst"] for r in routes}
    assert {"10.77.0.0/16", "10.78.1.0/24"} <= dsts


def test_default_mtu_is_1350(pair: Pair) -> None:
    start_pair(pair)
    link = json.loads(pair.a.run(["ip", "-j", "link", "show", "gx0"]).stdout)[0]
    assert link["mtu"] == 1350


SINK = (
    "import hashlib, socket, sys\n"
    "srv = socket.create_server((sys.argv[1], 5555))\n"
    "print('ready', flush=True)\n"
    "conn, _ = srv.accept()\n"
    "h, n = hashlib.sha256(), 0\n"
    "while chunk := conn.recv(1 << 16):\n"
    "    h.update(chunk); n += len(chunk)\n"
    "print(n, h.hexdigest(), flush=True)\n"
)
SOURCE = (
    "import hashlib, socket, sys\n"
    "data = hashlib.shake_256(b'gostx').digest(int(sys.argv[2]))\n"
    "s = socket.create_connection((sys.argv[1], 5555), timeout=30)\n"
    "s.sendall(data); s.close()\n"
    "print(len(data), hashlib.sha256(data).hexdigest())\n"
)


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")
def test_iperf3_tcp_through_aes_tunnel(pair: Pair) -> None:
    start_pair(pair, "aes-128-gcm:s3cret@")
    assert wait_ping(pair.a, SERVER_TUN)
    pair.b.popen(["iperf3", "-s", "-1", "-B", SERVER_TUN])
    time.sleep(0.5)
    out = pair.a.run(["iperf3", "-c", SERVER_TUN, "-t", "2", "-J"], timeout=60)
    result = json.loads(out.stdout)
    assert "error" not in result, result.get("error")
    sent, received = result["end"]["sum_sent"]["bytes"], result["end"]["sum_received"]["bytes"]
    assert sent > 1_000_000 and received > 0.9 * sent, (sent, received)


def transfer_exactly(pair: Pair, nbytes: int) -> None:
    """nbytes over TCP from a to the server's tunnel address; every byte arrives, in order (count +
    sha256)."""
    sink = pair.b.popen(["python3", "-c", SINK, SERVER_TUN])
    assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
    sent = pair.a.run(["python3", "-c", SOURCE, SERVER_TUN, str(nbytes)], timeout=120).stdout.split()
    got = sink.stdout.readline().split()
    assert sent[0] == str(nbytes), sent
    assert [g.decode() for g in got] == sent, f"received {got}, sent {sent}"


@pytest.mark.parametrize("scheme", ["tun", "tap"])
def test_tcp_bytes_arrive_exactly(pair: Pair, scheme: str) -> None:
    """Every byte of a TCP transfer through the encrypted tunnel arrives, in order. Both devices use
    offloads (TAP too): the sender's device hands over TSO super-packets (frames), split before they
    are sealed; the receiver's device takes coalesced (GRO) super-packets."""
    server, client = start_pair(pair, "chacha20-ietf-poly1305:s3cret@", scheme=scheme)
    assert wait_ping(pair.a, SERVER_TUN)
    transfer_exactly(pair, 32 * 1024 * 1024)
    sent, taken = client.stats(), server.stats()
    assert sent["dev_rx_supers"] > 0, f"the client's {scheme} device handed over no super-packet: {sent}"
    assert taken["dev_tx_supers"] > 0, f"the server's {scheme} device took no coalesced super-packet: {taken}"


def test_ipv6_inner_traffic(pair: Pair) -> None:
    start_gost(pair.b, ["-L", f"tun://aes-256-gcm:pw@:8421?net={SERVER_TUN}/24,fd00:123::1/64&name=gx0"],
               ready=both_ready("gx0"))
    start_gost(pair.a, ["-L", f"tun://aes-256-gcm:pw@:8421/{pair.b_ip}:8421?net={CLIENT_TUN}/24,fd00:123::2/64"
                        "&name=gx0"], ready=both_ready("gx0"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if pair.a.run(["ping", "-6", "-n", "-c", "1", "-W", "1", "fd00:123::1"], check=False).returncode == 0:
            break
    else:
        pytest.fail("no IPv6 ping through the tunnel")
    assert pair.b.run(["ping", "-6", "-n", "-c", "2", "-W", "2", "fd00:123::2"], check=False).returncode == 0


def test_tap_ping(pair: Pair) -> None:
    start_pair(pair, "aes-128-gcm:s3cret@", scheme="tap")
    assert wait_ping(pair.a, SERVER_TUN), "no ping over tap"
    assert ping(pair.b, CLIENT_TUN)


def test_wrong_password_drops_and_server_stays_up(pair: Pair) -> None:
    server, client = start_pair(pair, "aes-128-gcm:right@", client_userinfo="aes-128-gcm:wrong@")
    assert not ping(pair.a, SERVER_TUN, count=3, timeout=1), "wrong password must give no connectivity"
    stats = server.stats()
    assert stats["drop_auth"] >= 3, stats
    assert stats["dev_tx_pkts"] == 0
    assert server.alive()
    # a client with the right password is served by the same server
    client.stop()
    start_gost(pair.a, ["-L", f"tun://aes-128-gcm:right@:8421/{pair.b_ip}:8421?net={CLIENT_TUN}/24&name=gx0"],
               ready=both_ready("gx0"))
    assert wait_ping(pair.a, SERVER_TUN)


def send_junk(ns: Namespace, ip: str, port: int) -> None:
    code = (
        "import os, socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"dst = ({ip!r}, {port})\n"
        "for n in (0, 1, 5, 19, 20, 31, 32, 33, 40, 100, 1400, 2000, 4000):\n"
        "    s.sendto(os.urandom(n), dst)\n"
        "s.sendto(b'GOST' + bytes(17), dst)\n"
        "s.sendto(b'GOST' + bytes(16), dst)\n"
        "s.sendto(bytes([0x45]) + bytes(30), dst)\n"
        "s.sendto(bytes([0x4f]) + bytes(30), dst)\n"
        "s.sendto(bytes([0x60]) + bytes(10), dst)\n"
    )
    ns.run(["python3", "-c", code])


@pytest.mark.parametrize("userinfo", ["", "aes-128-gcm:s3cret@"])
def test_junk_datagrams_are_dropped(pair: Pair, userinfo: str) -> None:
    server, _ = start_pair(pair, userinfo)
    assert wait_ping(pair.a, SERVER_TUN)
    before = server.stats()
    send_junk(pair.a, pair.b_ip, 8421)
    assert wait_ping(pair.a, SERVER_TUN), "server stopped serving after junk datagrams"
    after = server.stats()
    dropped = sum(after[k] - before[k] for k in ("drop_short", "drop_auth", "drop_malformed", "drop_control"))
    assert dropped >= 10, (before, after)
    assert server.alive()


def test_keepalive_client_recovers_after_server_restart(pair: Pair) -> None:
    query = "&keepalive=true&ttl=1s"
    server, client = start_pair(pair, "aes-128-gcm:pw@", client_query=query)
    assert wait_ping(pair.a, SERVER_TUN)
    assert server.stop(signal.SIGKILL) is not None
    assert not ping(pair.a, SERVER_TUN, count=1, timeout=1)
    server = start_gost(pair.b, ["-L", f"tun://aes-128-gcm:pw@:8421?net={SERVER_TUN}/24&name=gx0"],
                        ready=both_ready("gx0"))
    # the server learns the client from its next keepalive (every ttl): server -> client works within 3 x ttl
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and not ping(pair.b, CLIENT_TUN, count=1, timeout=0.5):
        pass
    assert time.monotonic() < deadline, "server could not reach the client within 3 x ttl of its restart"
    assert client.alive()
    assert client.find(lambda r: r.get("event") == "keepalive_reply")


def test_two_clients_ping_each_other_through_the_server(lab: Lab) -> None:
    s = lab.namespace("s")
    c1 = lab.namespace("c")
    c2 = lab.namespace("d")
    lab.link(c1, "10.200.1.1/24", s, "10.200.1.2/24")
    lab.link(c2, "10.200.2.1/24", s, "10.200.2.2/24")
    start_gost(s, ["-L", "tun://chacha20-ietf-poly1305:pw@:8421?net=192.168.123.1/24&name=gx0"],
               ready=both_ready("gx0"))
    start_gost(c1, ["-L", "tun://chacha20-ietf-poly1305:pw@:8421/10.200.1.2:8421?net=192.168.123.2/24&name=gx0"
                    "&keepalive=true&ttl=1s"], ready=both_ready("gx0"))
    start_gost(c2, ["-L", "tun://chacha20-ietf-poly1305:pw@:8421/10.200.2.2:8421?net=192.168.123.3/24&name=gx0"
                    "&keepalive=true&ttl=1s"], ready=both_ready("gx0"))
    assert wait_ping(c1, "192.168.123.3"), "client 1 cannot reach client 2 through the server"
    assert ping(c2, "192.168.123.2")


def test_sigterm_removes_device_and_routes_and_restart_works(pair: Pair) -> None:
    _server, client = start_pair(pair, query="&route=10.77.0.0/16")
    assert wait_ping(pair.a, SERVER_TUN)
    assert client.stop(signal.SIGTERM) == 0
    links = pair.a.run(["ip", "-j", "link", "show"]).stdout
    assert "gx0" not in links, "device left behind after SIGTERM"
    assert "10.77.0.0" not in pair.a.run(["ip", "route"]).stdout
    assert client.find(lambda r: "removed" in str(r.get("msg", "")))
    start_gost(pair.a, ["-L", f"tun://:8421/{pair.b_ip}:8421?net={CLIENT_TUN}/24&name=gx0&route=10.77.0.0/16"],
               ready=both_ready("gx0"))
    assert wait_ping(pair.a, SERVER_TUN)


def test_route_via_gateway_reaches_a_subnet_behind_a_client(pair: Pair) -> None:
    """gost's route/gw: the server routes 10.88.0.0/24 to whichever client owns gw 192.168.123.2."""
    pair.a.run(["ip", "addr", "add", "10.88.0.1/32", "dev", "lo"])  # a host "behind" the client
    start_pair(pair, "aes-128-gcm:pw@", query="&route=10.88.0.0/24&gw=192.168.123.2", client_query="")
    assert wait_ping(pair.a, SERVER_TUN)  # the server learns 192.168.123.2 -> the client's UDP address
    assert "10.88.0.0/24 dev gx0" in pair.b.run(["ip", "route"]).stdout
    assert ping(pair.b, "10.88.0.1"), "the server cannot reach the subnet behind the client"
