"""`tungo://` end to end (tun2socks): gost in namespace A with the default route into its tungo device,
servers in namespace B on addresses that A reaches only through tungo (B's loopback), direct dials out
through A's veth (service `interface`), real curl, iperf3, ping, UDP and 200 concurrent TCP connections.

    A: tungo (192.168.123.1/24, fd00:123::1/64)    B: lo 10.201.0.1/32, fd00:201::1/128
       veth 10.200.1.1/24, fd00:200::1/64  =======  veth 10.200.1.2/24, fd00:200::2/64
       default dev tungo metric 1; default via B metric 10 (the seed's routing)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from relay_helpers import dns_query, log_tail, udp_exchange

from gostx.testing.gost import GostProcess, start_gost
from gostx.testing.netns import Lab, Namespace, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

BEHIND4 = "10.201.0.1"
BEHIND6 = "fd00:201::1"
TUNGO_NET = "192.168.123.1/24,fd00:123::1/64"
HTTP_PORT = 8080
ECHO_PORT = 7007
UDP_PORT = 5353


@dataclass
class TungoLab:
    lab: Lab
    a: Namespace
    b: Namespace
    a_if: str
    b_ip: str
    b_ip6: str
    www: Path


@pytest.fixture
def tlab(lab: Lab, tmp_path: Path) -> TungoLab:
    a = lab.namespace("a")
    b = lab.namespace("b")
    a_if, b_if = lab.link(a, "10.200.1.1/24", b, "10.200.1.2/24")
    a.run(["ip", "-6", "addr", "add", "fd00:200::1/64", "dev", a_if, "nodad"])
    b.run(["ip", "-6", "addr", "add", "fd00:200::2/64", "dev", b_if, "nodad"])
    b.run(["ip", "addr", "add", f"{BEHIND4}/32", "dev", "lo"])
    b.run(["ip", "-6", "addr", "add", f"{BEHIND6}/128", "dev", "lo"])
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.txt").write_text("hello through tungo\n")
    b.popen(["python3", "-m", "http.server", "--bind", "::", "--directory", str(www), str(HTTP_PORT)])
    b.popen(["python3", "-c", ECHO_SERVER])
    assert wait_until(lambda: _listening(b, HTTP_PORT) and _listening(b, ECHO_PORT) and _listening(b, UDP_PORT),
                      timeout=15), "servers in B did not start"
    return TungoLab(lab, a, b, a_if, "10.200.1.2", "fd00:200::2", www)


ECHO_SERVER = textwrap.dedent(f"""
    import socket, threading
    def tcp():
        srv = socket.create_server(("::", {ECHO_PORT}), family=socket.AF_INET6, dualstack_ipv6=True, backlog=512)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    def serve(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
    def udp(family, addr):  # bound to the address: replies come from it (a wildcard socket would not)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((addr, {UDP_PORT}))
        while True:
            data, peer = sock.recvfrom(65536)
            sock.sendto(data, peer)
    threading.Thread(target=tcp, daemon=True).start()
    threading.Thread(target=udp, args=(socket.AF_INET6, "{BEHIND6}"), daemon=True).start()
    udp(socket.AF_INET, "{BEHIND4}")
""")


def _listening(ns: Namespace, port: int) -> bool:
    out = ns.run(["ss", "-Hltun"], check=False).stdout
    return f":{port} " in out


def stack_up(g: GostProcess) -> bool:
    return any(str(r.get("msg", "")).startswith("tungo stack on ") for r in g.log_records())


def start_tungo(t: TungoLab, query: str = "", extra: tuple[str, ...] = ()) -> GostProcess:
    url = f"tungo://:0?name=tungo&net={TUNGO_NET}&interface={t.a_if}{query}"
    return start_gost(t.a, ["-L", url, *extra], ready=stack_up)


def route_default_into_tungo(t: TungoLab) -> None:
    """The seed's routing: tungo is the primary gateway, the veth the backup."""
    t.a.run(["ip", "route", "add", "default", "via", t.b_ip, "dev", t.a_if, "metric", "10"])
    t.a.run(["ip", "route", "add", "default", "dev", "tungo", "metric", "1"])
    t.a.run(["ip", "-6", "route", "add", "default", "via", t.b_ip6, "dev", t.a_if, "metric", "10"])
    t.a.run(["ip", "-6", "route", "add", "default", "dev", "tungo", "metric", "1"])


@pytest.fixture
def tungo(tlab: TungoLab) -> Iterator[GostProcess]:
    gost = start_tungo(tlab, "&udpTimeout=2s")
    route_default_into_tungo(tlab)
    yield gost


def curl(ns: Namespace, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return ns.run(["curl", "-sS", "--max-time", "20", *args, url], check=False, timeout=40)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_through_tungo_direct(tlab: TungoLab, tungo: GostProcess) -> None:
    result = curl(tlab.a, f"http://{BEHIND4}:{HTTP_PORT}/index.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello through tungo\n"
    stats = tungo.stats()
    assert stats["tcp_flows"] >= 1 and stats["tcp_down_bytes"] > len(result.stdout), stats
    assert tungo.find(lambda r: r.get("dst") == f"{BEHIND4}:{HTTP_PORT}")


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_ipv6_inner_traffic(tlab: TungoLab, tungo: GostProcess) -> None:
    result = curl(tlab.a, f"http://[{BEHIND6}]:{HTTP_PORT}/index.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello through tungo\n"
    assert tungo.find(lambda r: r.get("dst") == f"[{BEHIND6}]:{HTTP_PORT}")
    ping6 = tlab.a.run(["ping", "-6", "-n", "-c", "2", "-W", "2", "2001:db8::99"], check=False)
    assert ping6.returncode == 0, ping6.stdout


def test_ping_to_any_address_is_answered(tlab: TungoLab, tungo: GostProcess) -> None:
    for ip in ("10.123.45.67", "203.0.113.9", BEHIND4):
        result = tlab.a.run(["ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", ip], check=False)
        assert result.returncode == 0, f"no echo reply from {ip}: {result.stdout}"
        assert "ttl=64" in result.stdout  # lwIP's answer, not a host's
    assert tungo.stats()["tun_tx_pkts"] >= 6


IPERF_TIMEOUT = 90


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")
@pytest.mark.parametrize("reverse", [False, True], ids=["upload", "download"])
def test_iperf3_tcp_completes(tlab: TungoLab, tungo: GostProcess, reverse: bool) -> None:
    tlab.b.popen(["iperf3", "-s", "-1", "-B", BEHIND4])
    assert wait_until(lambda: _listening(tlab.b, 5201), timeout=10)
    argv = ["iperf3", "-c", BEHIND4, "-t", "2", "-J", *(["-R"] if reverse else [])]
    out = tlab.a.run(argv, timeout=IPERF_TIMEOUT, check=False)
    result = json.loads(out.stdout)
    assert "error" not in result, result.get("error")
    sent, received = result["end"]["sum_sent"]["bytes"], result["end"]["sum_received"]["bytes"]
    assert sent > 5_000_000 and received > 0.9 * sent, (sent, received)
    stats = tungo.stats()
    moved = stats["tcp_down_bytes"] if reverse else stats["tcp_up_bytes"]
    assert moved >= received, (moved, received)


ECHO_CHECK = textwrap.dedent("""
    import hashlib, socket, sys, threading
    host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = hashlib.shake_256(b"tungo").digest(size)
    s = socket.create_connection((host, port), timeout=60)
    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    threading.Thread(target=send, daemon=True).start()
    h, n = hashlib.sha256(), 0
    while chunk := s.recv(1 << 20):
        h.update(chunk)
        n += len(chunk)
    print(n, h.hexdigest() == hashlib.sha256(data).hexdigest())
""")


@pytest.mark.parametrize("dst", [BEHIND4, BEHIND6])
def test_bytes_arrive_exactly_both_ways(tlab: TungoLab, tungo: GostProcess, dst: str) -> None:
    """32 MiB to an echo server and back through tungo (TSO in, GSO out): every byte, in order."""
    size = 32 * 1024 * 1024
    out = tlab.a.run(["python3", "-c", ECHO_CHECK, dst, str(ECHO_PORT), str(size)], timeout=120)
    assert out.stdout.split() == [str(size), "True"], out.stdout + out.stderr
    stats = tungo.stats()
    assert stats["tcp_up_bytes"] >= size and stats["tcp_down_bytes"] >= size, stats


UDP_CLIENT = textwrap.dedent("""
    import socket, sys
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    ok = 0
    for i in range(count):
        msg = f"ping {i} ".encode() * (1 + i * 97 % 600)
        s.sendto(msg, (host, port))
        data, peer = s.recvfrom(65536)
        ok += data == msg and peer[0] == host and peer[1] == port
    print(ok, s.getsockname()[1])
""")


def test_udp_echo_and_session_expiry(tlab: TungoLab, tungo: GostProcess) -> None:
    out = tlab.a.run(["python3", "-c", UDP_CLIENT, BEHIND4, str(UDP_PORT), "20"], timeout=60)
    ok, _port = out.stdout.split()
    assert ok == "20", out.stdout  # every reply came back, from the original destination address and port
    stats = tungo.stats()
    assert stats["udp_sessions"] == 1 and stats["udp_up_pkts"] >= 20 and stats["udp_down_pkts"] >= 20, stats
    # udpTimeout=2s: the idle session ends (the sweep runs every second)
    assert wait_until(lambda: tungo.stats()["udp_expired"] >= 1, timeout=10), tungo.stats()
    assert tungo.stats()["udp_active"] == 0
    out6 = tlab.a.run(["python3", "-c", UDP_CLIENT, BEHIND6, str(UDP_PORT), "3"], timeout=60)
    assert out6.stdout.split()[0] == "3", out6.stdout


CONCURRENT_CLIENT = textwrap.dedent("""
    import asyncio, hashlib, sys
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    async def one(i):
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 60)
        payload = hashlib.sha256(str(i).encode()).digest() * (64 + i)
        writer.write(payload)
        await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 60)
        writer.close()
        return got == payload
    async def main():
        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        print(sum(r is True for r in results), [repr(r) for r in results if r is not True][:3])
    asyncio.run(main())
""")


def test_200_concurrent_tcp_connections(tlab: TungoLab, tungo: GostProcess) -> None:
    out = tlab.a.run(["python3", "-c", CONCURRENT_CLIENT, BEHIND4, str(ECHO_PORT), "200"], timeout=150)
    assert out.stdout.startswith("200 "), out.stdout + out.stderr
    stats = tungo.stats()
    assert stats["tcp_flows"] >= 200, stats
    assert wait_until(lambda: tungo.stats()["tcp_active"] == 0, timeout=20), tungo.stats()


SEED_YAML = """\
services:
- name: service-0
  addr: :0
  handler:
    type: tungo
    chain: chain-0
    metadata:
      udpTimeout: 30s   # UDP session timeout
  listener:
    type: tungo
    metadata:
      name: tungo    # default name is tungo
      net: 192.168.123.1/24
      mtu: 1420      # default mtu is 1420
      dns: 1.1.1.1   # dns server
  metadata:
    postUp:   # Automatically update the routing table through service postUp
    - ip route delete default
    - ip route add default via 192.168.1.1 dev eth0 metric 10
    - ip route add default dev tungo metric 1
    # - ip -6 route add default dev tungo metric 1

chains:
- name: chain-0
  hops:
  - name: hop-0
    metadata:
      interface: eth0
    nodes:
    - name: node-0
      addr: SERVER_IP:443
      connector:
        type: relay
      dialer:
        type: wss
"""


def seed_yaml(t: TungoLab, with_chain: bool) -> str:
    """The seed's Linux YAML with this lab's names: eth0 -> A's veth, 192.168.1.1 -> B, SERVER_IP -> B.
    Without a chain (its relay+wss is not in this project yet), the handler's `chain:` and the `chains:`
    section are left out and the chain hop's `interface` becomes the service's, so direct dials leave
    through the veth."""
    text = SEED_YAML.replace("eth0", t.a_if).replace("192.168.1.1", t.b_ip).replace("SERVER_IP", t.b_ip)
    if with_chain:
        return text
    text = text.replace("    chain: chain-0\n", "").split("\nchains:")[0]
    return text.replace("  metadata:\n    postUp:", f"  metadata:\n    interface: {t.a_if}\n    postUp:")


def test_seed_yaml_postup_routes_are_in_place(tlab: TungoLab, tmp_path: Path) -> None:
    tlab.a.run(["ip", "route", "add", "default", "via", tlab.b_ip, "dev", tlab.a_if])  # the default it deletes
    config = tmp_path / "gost.yaml"
    config.write_text(seed_yaml(tlab, with_chain=False))
    gost = start_gost(tlab.a, ["-C", str(config)], ready=stack_up)
    routes = json.loads(tlab.a.run(["ip", "-j", "route", "show", "default"]).stdout)
    by_dev = {r["dev"]: r for r in routes}
    assert by_dev["tungo"].get("metric") == 1, routes
    assert by_dev[tlab.a_if].get("gateway") == tlab.b_ip and by_dev[tlab.a_if].get("metric") == 10, routes
    assert len(routes) == 2, routes  # the old default route is gone
    link = json.loads(tlab.a.run(["ip", "-j", "addr", "show", "tungo"]).stdout)[0]
    assert link["mtu"] == 1420
    assert any(a["local"] == "192.168.123.1" and a["prefixlen"] == 24 for a in link["addr_info"])
    # no systemd-resolved in a test namespace: the dns option says it is not applied
    assert gost.find(lambda r: "dns 1.1.1.1 is not applied" in str(r.get("msg", "")))
    result = curl(tlab.a, f"http://{BEHIND4}:{HTTP_PORT}/index.txt")
    assert result.returncode == 0 and result.stdout == "hello through tungo\n", result.stderr


def test_seed_yaml_with_its_relay_wss_chain(tlab: TungoLab, tmp_path: Path) -> None:
    """The seed's YAML as it stands (chain relay+wss to B with the hop's `interface`): postUp routes in
    place, and a fetch from a host behind B goes through B's relay+wss server."""
    relay = start_gost(tlab.b, ["-L", "relay+wss://:443"],
                       ready=lambda g: any("listening" in str(r.get("msg", "")) for r in g.log_records()))
    tlab.a.run(["ip", "route", "add", "default", "via", tlab.b_ip, "dev", tlab.a_if])  # the default it deletes
    config = tmp_path / "gost.yaml"
    config.write_text(seed_yaml(tlab, with_chain=True))
    start_gost(tlab.a, ["-C", str(config)], ready=stack_up)
    routes = {r["dev"]: r for r in json.loads(tlab.a.run(["ip", "-j", "route", "show", "default"]).stdout)}
    assert routes["tungo"].get("metric") == 1 and routes[tlab.a_if].get("metric") == 10, routes
    result = curl(tlab.a, f"http://{BEHIND4}:{HTTP_PORT}/index.txt")
    assert result.returncode == 0 and result.stdout == "hello through tungo\n", result.stderr
    assert any(BEHIND4 in str(r.get("msg", "")) for r in relay.log_records()), relay.log_lines()[-10:]


def start_socks5_server(t: TungoLab) -> GostProcess:
    return start_gost(t.b, ["-L", "socks5://:1080"],
                      ready=lambda g: any("listening" in str(r.get("msg", "")) for r in g.log_records()))


def socks5_targets(server: GostProcess) -> list[str]:
    """The targets B's SOCKS5 server connected to (its `<->` / `>-<` log lines)."""
    return [str(r.get("msg", "")).split(" ", 2)[-1] for r in server.log_records()
            if "<->" in str(r.get("msg", "")) or ">-<" in str(r.get("msg", ""))]


def test_through_a_socks5_chain(tlab: TungoLab) -> None:
    """`-F socks5://B:1080`: TCP (CONNECT, spliced in C) and UDP (GOST's UDP-over-TCP frames) through B."""
    server = start_socks5_server(tlab)
    gost = start_tungo(tlab, "&udpTimeout=2s", ("-F", f"socks5://{tlab.b_ip}:1080?interface={tlab.a_if}"))
    route_default_into_tungo(tlab)
    assert gost.find(lambda r: "(chain chain-0)" in str(r.get("msg", "")))
    result = curl(tlab.a, f"http://{BEHIND4}:{HTTP_PORT}/index.txt")
    assert result.returncode == 0 and result.stdout == "hello through tungo\n", result.stderr
    size = 4 * 1024 * 1024
    out = tlab.a.run(["python3", "-c", ECHO_CHECK, BEHIND4, str(ECHO_PORT), str(size)], timeout=120)
    assert out.stdout.split() == [str(size), "True"], out.stdout + out.stderr
    udp = tlab.a.run(["python3", "-c", UDP_CLIENT, BEHIND4, str(UDP_PORT), "5"], timeout=60)
    assert udp.stdout.split()[0] == "5", udp.stdout + udp.stderr
    assert wait_until(lambda: any(BEHIND4 in t for t in socks5_targets(server)), timeout=10), server.log_lines()[-5:]
    assert wait_until(lambda: gost.stats()["udp_expired"] >= 1, timeout=15), gost.stats()


# ---- the seed's "Traffic Sniffing and Bypass" example (issue 9) ------------------------------------------
#
# tungo in A with sniffing, chained to a real relay+wss server in B, hop bypass `example.com`. The far side
# is a server in B (on 10.201.0.1, which A reaches only through tungo) that answers every request with the
# source address it saw: a flow tungo dials directly (bypassed) leaves A through its veth and arrives from
# 10.200.1.1; a flow through the chain is dialed by the relay server from inside B and arrives from a B
# address. example.com and other.test both resolve to 10.201.0.1 (in A and in B), so the destination IP of
# the flows is the same and only the sniffed name (TLS SNI, HTTP Host) decides the route.

SNIFF_SEED_CLI = ("tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&dns=1.1.1.1&interface={eth0}"
                  "&sniffing=true&sniffing.udp=true",
                  "relay+wss://{server}:443?interface={eth0}&bypass=example.com")

SNIFF_SEED_YAML = """\
services:
- name: service-0
  addr: :0
  handler:
    type: tungo
    chain: chain-0
    metadata:
      sniffing: true
      sniffing.udp: true
      sniffing.timeout: 1s
      sniffing.fallback: true
  listener:
    type: tungo
    metadata:
      name: tungo    # default name is tungo
      net: 192.168.123.1/24
      mtu: 1420      # default mtu is 1420
      dns: 1.1.1.1   # dns server
  metadata:
    interface: eth0

chains:
- name: chain-0
  hops:
  - name: hop-0
    bypass: bypass-0
    metadata:
      interface: eth0
    nodes:
    - name: node-0
      addr: SERVER_IP:443
      connector:
        type: relay
      dialer:
        type: wss

bypasses:
- name: bypass-0
  matchers:
  - example.com
"""

A_IP = "10.200.1.1"   # A's veth: the source of tungo's direct dials
B_ADDRESSES = {BEHIND4, "10.200.1.2"}  # where a connection dialed by B's relay server comes from
BYPASSED, OTHER = "example.com", "other.test"
PEER_HTTP, PEER_HTTPS, PEER_DNS = 8081, 8443, 53

PEER_SERVER = textwrap.dedent("""
    import socket, ssl, struct, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    host, http_port, https_port, dns_port, cert, key = sys.argv[1:7]

    class Peer(BaseHTTPRequestHandler):  # the body is the client's address as this server saw it
        def do_GET(self):
            body = self.client_address[0].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass

    class TlsPeer(Peer):
        def setup(self):
            self.request.do_handshake()  # in the handler's thread, not in accept()
            super().setup()

    def dns(sock):  # answers every question with an A record holding the querier's address
        while True:
            query, peer = sock.recvfrom(4096)
            if len(query) < 12:
                continue
            head = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
            answer = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(peer[0])
            sock.sendto(head + query[12:] + answer, peer)

    plain = ThreadingHTTPServer((host, int(http_port)), Peer)
    tls = ThreadingHTTPServer((host, int(https_port)), TlsPeer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True, do_handshake_on_connect=False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, int(dns_port)))
    threading.Thread(target=dns, args=(udp,), daemon=True).start()
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    plain.serve_forever()
""")


@dataclass
class SniffLab:
    t: TungoLab
    gost: GostProcess    # tungo in A
    relay: GostProcess   # relay+wss in B
    fallback: bool       # sniffing.fallback (the YAML sets it, the CLI does not)

    def relay_targets(self, network: str = "tcp") -> set[str]:
        return {str(r["dst"]) for r in self.relay.log_records()
                if r.get("network") == network and "<->" in str(r.get("msg", ""))}


@pytest.fixture
def sniff_hosts(tlab: TungoLab) -> Iterator[None]:
    """example.com and other.test resolve to B's loopback address in A (curl, tungo's direct dials) and in B
    (the relay server's dials): `ip netns exec NS` bind-mounts /etc/netns/NS/hosts over /etc/hosts."""
    made = []
    for ns in (tlab.a, tlab.b):
        directory = Path("/etc/netns") / ns.name
        directory.mkdir(parents=True, exist_ok=True)
        made.append(directory)
        (directory / "hosts").write_text(f"127.0.0.1 localhost\n{BEHIND4} {BYPASSED} {OTHER}\n")
    try:
        yield
    finally:
        for directory in made:
            (directory / "hosts").unlink(missing_ok=True)
            directory.rmdir()


def self_signed_cert(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture(params=["cli", "yaml"])
def sniff_lab(request: pytest.FixtureRequest, tlab: TungoLab, sniff_hosts: None, tmp_path: Path) -> SniffLab:
    """The seed's example as CLI (`-L tungo://...&sniffing=true -F relay+wss://...&bypass=example.com`) or
    as its YAML, with eth0 -> A's veth and SERVER_IP -> B's veth address; then the seed's routing."""
    cert, key = self_signed_cert(tmp_path, BYPASSED)
    tlab.b.popen(["python3", "-c", PEER_SERVER, BEHIND4, str(PEER_HTTP), str(PEER_HTTPS), str(PEER_DNS),
                  str(cert), str(key)])
    assert wait_until(lambda: all(_listening(tlab.b, p) for p in (PEER_HTTP, PEER_HTTPS, PEER_DNS)), timeout=15), \
        "the peer-reporting servers in B did not start"
    relay = start_gost(tlab.b, ["-L", "relay+wss://:443"],
                       ready=lambda g: any("listening" in str(r.get("msg", "")) for r in g.log_records()))
    if request.param == "cli":
        listen, chain = (part.format(eth0=tlab.a_if, server=tlab.b_ip) for part in SNIFF_SEED_CLI)
        args = ["-L", listen, "-F", chain]
    else:
        config = tmp_path / "gost.yaml"
        config.write_text(SNIFF_SEED_YAML.replace("eth0", tlab.a_if).replace("SERVER_IP", tlab.b_ip))
        args = ["-C", str(config)]
    gost = start_gost(tlab.a, args, ready=stack_up)
    tlab.a.run(["ip", "route", "add", "default", "via", tlab.b_ip, "dev", tlab.a_if, "metric", "10"])
    tlab.a.run(["ip", "route", "add", "default", "dev", "tungo", "metric", "1"])
    assert gost.find(lambda r: "(chain chain-0)" in str(r.get("msg", "")) and r.get("sniffing") is True)
    return SniffLab(tlab, gost, relay, fallback=request.param == "yaml")


def peer_seen(s: SniffLab, url: str) -> str:
    """The source address the far side saw for a fetch of url from A (curl -k: TLS by name sends SNI)."""
    result = curl(s.t.a, url, "-k")
    assert result.returncode == 0, f"{url}: {result.stderr}\n" + "\n".join(s.gost.log_lines()[-10:])
    return result.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_sniffed_bypassed_name_goes_direct(sniff_lab: SniffLab) -> None:
    """HTTP Host and TLS SNI `example.com` match the hop bypass: tungo dials the name itself, directly
    through the service interface, so the far side sees A's veth address and the relay server sees nothing."""
    s = sniff_lab
    assert peer_seen(s, f"http://{BYPASSED}:{PEER_HTTP}/") == A_IP       # Host sniffed
    assert peer_seen(s, f"https://{BYPASSED}:{PEER_HTTPS}/") == A_IP     # SNI sniffed
    hosts = {r.get("host") for r in s.gost.log_records() if r.get("host")}
    assert {f"{BYPASSED}:{PEER_HTTP}", f"{BYPASSED}:443"} <= hosts, hosts  # SNI has no port: gost's :443
    dialed = {r.get("dst") for r in s.gost.log_records() if r.get("src")}
    assert {f"{BYPASSED}:{PEER_HTTP}", f"{BYPASSED}:{PEER_HTTPS}"} <= dialed, dialed  # the name, original port
    assert not any(BYPASSED in t for t in s.relay_targets()), s.relay_targets()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_other_traffic_goes_through_the_relay_wss_chain(sniff_lab: SniffLab) -> None:
    """The same servers by IP (Host is the IP; no SNI) and by a name that is not bypassed: through the chain,
    so they arrive from B's side, and the relay server dialed the target (the sniffed name where there
    is one)."""
    s = sniff_lab
    for url in (f"http://{BEHIND4}:{PEER_HTTP}/", f"https://{BEHIND4}:{PEER_HTTPS}/",
                f"http://{OTHER}:{PEER_HTTP}/", f"https://{OTHER}:{PEER_HTTPS}/"):
        seen = peer_seen(s, url)
        assert seen in B_ADDRESSES, f"{url} arrived from {seen}"
    expected = {f"{BEHIND4}:{PEER_HTTP}", f"{BEHIND4}:{PEER_HTTPS}", f"{OTHER}:{PEER_HTTP}", f"{OTHER}:{PEER_HTTPS}"}
    assert wait_until(lambda: expected <= s.relay_targets(), timeout=10), s.relay_targets()
    assert {f"{OTHER}:{PEER_HTTP}", f"{OTHER}:443"} <= {r.get("host") for r in s.gost.log_records()}


def test_dns_query_is_sniffed_and_routed_by_its_address(sniff_lab: SniffLab) -> None:
    """A DNS query over UDP for the bypassed name. gost (spec v3.md 3.4, 4, 5) records a sniffed DNS question
    but never routes on it: a UDP session is dialed to its destination IP:port, and the hop bypass is matched
    on that address (10.201.0.1:53, no rule), so the query for example.com still goes through the chain (the
    relay server's UDP path) and the answer comes back to A. The far side answers with an A record holding
    the address it saw the query from: a B address."""
    s = sniff_lab
    answer = udp_exchange(s.t.a, BEHIND4, PEER_DNS, dns_query(0x5151, BYPASSED))
    assert answer[:2] == b"\x51\x51" and len(answer) >= 16, answer.hex() + log_tail(s.gost, s.relay)
    seen = ".".join(str(b) for b in answer[-4:])
    assert seen in B_ADDRESSES, f"the query arrived from {seen}"
    assert wait_until(lambda: s.gost.find(lambda r: r.get("dns") == BYPASSED), timeout=10)  # sniffed
    assert f"{BEHIND4}:{PEER_DNS}" in s.relay_targets("udp"), s.relay.log_lines()[-10:]  # routed by address



@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_sniffing_fallback_dials_the_original_address(sniff_lab: SniffLab) -> None:
    """example.com now resolves (in A) to an address where nothing listens, and a client connects to the
    server's IP with `Host: example.com`: the bypassed direct dial of the sniffed name is refused. The YAML
    has `sniffing.fallback: true`: tungo then dials the original IP:port (through the chain, as it is not
    bypassed); the CLI form has no fallback: the flow is closed (gost spec v3.md 4)."""
    s = sniff_lab
    hosts = Path("/etc/netns") / s.t.a.name / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{s.t.b_ip} {BYPASSED}\n")  # in place: the bind mount sees it
    result = curl(s.t.a, f"http://{BEHIND4}:{PEER_HTTP}/", "-H", f"Host: {BYPASSED}:{PEER_HTTP}")
    assert s.gost.find(lambda r: r.get("host") == f"{BYPASSED}:{PEER_HTTP}")
    direct = f"dial tcp {BYPASSED}:{PEER_HTTP} via direct"
    assert s.gost.find(lambda r: direct in str(r.get("msg", "")) and "refused" in str(r.get("msg", ""))), \
        s.gost.log_lines()[-5:]
    if s.fallback:
        assert result.returncode == 0 and result.stdout in B_ADDRESSES, result.stderr
        assert f"{BEHIND4}:{PEER_HTTP}" in s.relay_targets()
    else:
        assert result.returncode != 0, result.stdout
        assert not s.relay_targets(), s.relay_targets()

def test_routing_loop_is_refused_with_a_hint(tlab: TungoLab) -> None:
    """Without `interface`, a direct dial follows the default route back into tungo: refused, not looped."""
    gost = start_gost(tlab.a, ["-L", f"tungo://:0?name=tungo&net={TUNGO_NET}"], ready=stack_up)
    tlab.a.run(["ip", "route", "add", "default", "dev", "tungo"])
    result = curl(tlab.a, f"http://{BEHIND4}:{HTTP_PORT}/index.txt", "--max-time", "5")
    assert result.returncode != 0
    assert wait_until(lambda: gost.find(lambda r: "comes back into tungo" in str(r.get("msg", ""))), timeout=10)
    time.sleep(0.5)
    stats = gost.stats()
    assert stats["tcp_flows"] <= 4, stats  # the original flow and its echo, not an avalanche
    assert gost.alive()


def test_sigterm_removes_the_device(tlab: TungoLab, tungo: GostProcess) -> None:
    assert curl(tlab.a, f"http://{BEHIND4}:{HTTP_PORT}/index.txt").returncode == 0
    assert tungo.stop() == 0
    assert "tungo" not in tlab.a.run(["ip", "link"]).stdout
    assert tungo.find(lambda r: "tungo device tungo removed" in str(r.get("msg", "")))


def test_route_option_routes_into_the_device(tlab: TungoLab) -> None:
    """The seed's macOS form (`route=1.0.0.0/8,2.0.0.0/8`) on Linux: routes through the tungo device."""
    start_tungo(tlab, "&route=10.77.0.0/16,10.78.1.0/24&mtu=1300")
    routes = json.loads(tlab.a.run(["ip", "-j", "route", "show", "dev", "tungo"]).stdout)
    assert {"10.77.0.0/16", "10.78.1.0/24"} <= {r["dst"] for r in routes}, routes
    assert json.loads(tlab.a.run(["ip", "-j", "link", "show", "tungo"]).stdout)[0]["mtu"] == 1300
    ping = tlab.a.run(["ping", "-n", "-c", "1", "-W", "2", "10.77.3.4"], check=False)
    assert ping.returncode == 0, ping.stdout  # answered by the stack: the route leads into tungo
