"""socks5 / http proxies and proxy chains end to end: real gost processes in two network namespaces joined
by veth (client side a = 10.200.1.1, server side b = 10.200.1.2), real clients (curl, PySocks), a real
third-party SOCKS5 server (microsocks), and the seed's tunnel-over-chain examples."""

from __future__ import annotations

import shutil
import sys
import textwrap
import time

import pytest

from gostx.testing.gost import GostProcess, ping, start_gost, wait_ping
from gostx.testing.netns import Namespace, Pair, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

HTTP_PORT = 8000
ECHO_PORT = 9000

# A TCP echo (threads) and a UDP echo ("echo:" + data), on all addresses of the namespace.
ECHO = textwrap.dedent("""
    import socket, sys, threading
    def tcp():
        srv = socket.create_server(("::", int(sys.argv[1])), family=socket.AF_INET6, dualstack_ipv6=True)
        def serve(c):
            with c:
                while data := c.recv(65536):
                    c.sendall(data)
        while True:
            c, _ = srv.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    def udp():
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", int(sys.argv[1])))
        while True:
            data, addr = s.recvfrom(65535)
            s.sendto(b"echo:" + data, addr)
    threading.Thread(target=udp, daemon=True).start()
    print("ready", flush=True)
    tcp()
""")

# Connects to host:port, sends a payload, expects it back; prints "ok".
TCP_CHECK = textwrap.dedent("""
    import socket, sys
    payload = bytes(range(256)) * 2048
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as c:
        c.sendall(payload)
        got = b""
        while len(got) < len(payload):
            data = c.recv(65536)
            if not data:
                break
            got += data
    print("ok" if got == payload else f"mismatch {len(got)}")
""")


def python(ns: Namespace, code: str, *args: str, timeout: float = 30) -> str:
    result = ns.run([sys.executable, "-c", code, *args], check=False, timeout=timeout)
    return (result.stdout + result.stderr).strip()


def start_echo(ns: Namespace) -> None:
    proc = ns.popen([sys.executable, "-c", ECHO, str(ECHO_PORT)])
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"


def services_up(count: int):  # type: ignore[no-untyped-def]
    return lambda g: sum("listening on" in str(r.get("msg", "")) for r in g.log_records()) >= count


def gost(ns: Namespace, *args: str, services: int = 1) -> GostProcess:
    return start_gost(ns, list(args), ready=services_up(services))


@pytest.fixture
def web(pair: Pair, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A web server in b (all addresses, port 8000) serving a file; returns its content."""
    content = "gostx through socks5\n" * 100
    (tmp_path / "file.txt").write_text(content)
    pair.b.run(["ip", "-6", "addr", "add", "::1/128", "dev", "lo"], check=False)
    proc = pair.b.popen([sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", "::", "--directory",
                         str(tmp_path)])
    assert proc.stdout is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if pair.b.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{HTTP_PORT}/"], check=False).returncode == 0:
            return content
        time.sleep(0.1)
    pytest.fail("web server did not start")


def curl(ns: Namespace, *args: str) -> tuple[int, str]:
    result = ns.run(["curl", "-s", "--max-time", "10", *args], check=False, timeout=30)
    return result.returncode, result.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_socks5_with_curl_ipv4_ipv6_domain_and_auth(pair: Pair, web: str) -> None:
    server = gost(pair.b, "-L", "socks5://alice:s3cret@:1080")
    proxy = f"alice:s3cret@{pair.b_ip}:1080"
    # the targets are b's own loopback addresses: only reachable through the proxy
    assert curl(pair.a, "--socks5", proxy, f"http://127.0.0.1:{HTTP_PORT}/file.txt") == (0, web)
    assert curl(pair.a, "--socks5", proxy, f"http://[::1]:{HTTP_PORT}/file.txt") == (0, web)
    assert curl(pair.a, "--socks5-hostname", proxy, f"http://localhost:{HTTP_PORT}/file.txt") == (0, web)
    code, _ = curl(pair.a, "--socks5", f"alice:wrong@{pair.b_ip}:1080", f"http://127.0.0.1:{HTTP_PORT}/file.txt")
    assert code != 0
    # the server logs the failure after it has closed the connection: curl may be back first
    assert wait_until(lambda: server.find(lambda r: "authentication failed" in str(r.get("msg"))), timeout=5)
    assert curl(pair.a, "--socks5", proxy, f"http://127.0.0.1:{HTTP_PORT}/file.txt") == (0, web)
    assert server.alive()


PYSOCKS = textwrap.dedent("""
    import socket, sys, socks
    host, echo = sys.argv[1], int(sys.argv[2])
    t = socks.socksocket()
    t.set_proxy(socks.SOCKS5, host, 1080, username="u", password="p")
    t.settimeout(10)
    t.connect(("127.0.0.1", echo))
    t.sendall(b"tcp via pysocks")
    assert t.recv(100) == b"tcp via pysocks"
    u = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    u.set_proxy(socks.SOCKS5, host, 1080, username="u", password="p")
    u.settimeout(10)
    for i in range(3):
        u.sendto(b"udp %d" % i, ("127.0.0.1", echo))
        data, addr = u.recvfrom(100)
        assert data == b"echo:udp %d" % i and addr[1] == echo, (data, addr)
    print("ok")
""")


def test_socks5_with_pysocks_connect_and_udp_associate(pair: Pair) -> None:
    pytest.importorskip("socks")
    start_echo(pair.b)
    gost(pair.b, "-L", "socks5://u:p@:1080?udp=true")
    assert python(pair.a, PYSOCKS, pair.b_ip, str(ECHO_PORT)) == "ok"


# A SOCKS5 client for GOST's 0xF3 written from the spec (v3.md 9.3): handshake, then frames
# LEN(2) FRAG(1) ATYP ADDR PORT DATA both ways on the TCP stream.
UDP_TUN_CLIENT = textwrap.dedent("""
    import ipaddress, socket, struct, sys
    proxy, target = sys.argv[1], int(sys.argv[2])
    s = socket.create_connection((proxy, 1080), timeout=10)
    def exact(n):
        b = b""
        while len(b) < n:
            d = s.recv(n - len(b))
            assert d, "closed"
            b += d
        return b
    s.sendall(b"\\x05\\x01\\x00")
    assert exact(2) == b"\\x05\\x00"
    s.sendall(b"\\x05\\xf3\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00")
    head = exact(4)
    assert head[:2] == b"\\x05\\x00", head
    exact({1: 4, 4: 16}[head[3]] + 2)
    def frame(data, ip, port):
        addr = b"\\x01" + ipaddress.IPv4Address(ip).packed + struct.pack(">H", port)
        return struct.pack(">HB", len(data), 0) + addr + data
    s.sendall(b"".join(frame(b"dgram %d" % i, "127.0.0.1", target) for i in range(50)))
    got = set()
    for _ in range(50):
        h = exact(4)
        assert h[3] == 1, h
        addr = exact(6)
        assert (socket.inet_ntoa(addr[:4]), struct.unpack(">H", addr[4:])[0]) == ("127.0.0.1", target)
        got.add(exact(struct.unpack(">H", h[:2])[0]))
    assert got == {b"echo:dgram %d" % i for i in range(50)}, got
    print("ok")
""")


def test_socks5_udp_over_tcp_0xf3_frames(pair: Pair) -> None:
    start_echo(pair.b)
    server = gost(pair.b, "-L", "socks5://:1080")
    assert python(pair.a, UDP_TUN_CLIENT, pair.b_ip, str(ECHO_PORT)) == "ok"
    assert wait_until(lambda: server.find(lambda r: r.get("cmd") == "udp-tun"), timeout=5)


BIND_CLIENT = textwrap.dedent("""
    import socket, struct, sys
    proxy = sys.argv[1]
    c = socket.create_connection((proxy, 1080), timeout=10)
    def reply():
        head = c.recv(4)
        assert head[:2] == b"\\x05\\x00", head
        rest = c.recv({1: 4, 4: 16}[head[3]] + 2)
        return socket.inet_ntoa(rest[:4]) if head[3] == 1 else "", struct.unpack(">H", rest[-2:])[0]
    c.sendall(b"\\x05\\x01\\x00")
    assert c.recv(2) == b"\\x05\\x00"
    c.sendall(b"\\x05\\x02\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00")
    host, port = reply()
    assert host == proxy, host
    peer = socket.create_connection((host, port), timeout=10)
    phost, pport = reply()
    assert (phost, pport) == peer.getsockname(), ((phost, pport), peer.getsockname())
    peer.sendall(b"from the peer")
    assert c.recv(100) == b"from the peer"
    c.sendall(b"from the client")
    assert peer.recv(100) == b"from the client"
    print("ok")
""")


def test_socks5_bind(pair: Pair) -> None:
    gost(pair.b, "-L", "socks5://:1080?bind=true")
    assert python(pair.a, BIND_CLIENT, pair.b_ip) == "ok"


@pytest.mark.skipif(shutil.which("microsocks") is None, reason="needs microsocks (apt-get install microsocks)")
def test_socks5_connector_against_microsocks(pair: Pair) -> None:
    start_echo(pair.b)
    micro = pair.b.popen(["microsocks", "-i", "0.0.0.0", "-p", "1081", "-u", "u", "-P", "p"])
    time.sleep(0.3)
    assert micro.poll() is None
    gost(pair.a, "-L", f"tcp://127.0.0.1:8001/127.0.0.1:{ECHO_PORT}", "-F", f"socks5://u:p@{pair.b_ip}:1081")
    assert python(pair.a, TCP_CHECK, "127.0.0.1", "8001") == "ok"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_http_proxy_and_http_connector(pair: Pair, web: str) -> None:
    gost(pair.b, "-L", "http://u:p@:8080")
    proxy = f"http://u:p@{pair.b_ip}:8080"
    assert curl(pair.a, "-x", proxy, f"http://127.0.0.1:{HTTP_PORT}/file.txt") == (0, web)
    assert curl(pair.a, "-p", "-x", proxy, f"http://127.0.0.1:{HTTP_PORT}/file.txt") == (0, web)
    code, _ = curl(pair.a, "-f", "-x", f"http://u:bad@{pair.b_ip}:8080", f"http://127.0.0.1:{HTTP_PORT}/file.txt")
    assert code != 0
    # the http connector (gost's default one): a local socks5 proxy whose chain is the http proxy
    gost(pair.a, "-L", "socks5://127.0.0.1:1081", "-F", f"u:p@{pair.b_ip}:8080")
    assert curl(pair.a, "--socks5", "127.0.0.1:1081", f"http://127.0.0.1:{HTTP_PORT}/file.txt") == (0, web)


def test_two_hop_chain(pair: Pair) -> None:
    """The second hop listens on b's loopback: only the first hop can reach it."""
    start_echo(pair.b)
    gost(pair.b, "-L", "socks5://:1080", "-L", "http://127.0.0.1:8080", services=2)
    client = gost(pair.a, "-L", f"tcp://127.0.0.1:8001/127.0.0.1:{ECHO_PORT}",
                  "-F", f"socks5://{pair.b_ip}:1080", "-F", "http://127.0.0.1:8080")
    assert python(pair.a, TCP_CHECK, "127.0.0.1", "8001") == "ok"
    assert not client.find(lambda r: r.get("level") == "error")


FAILOVER_YAML = """
services:
- name: forward
  addr: 127.0.0.1:8001
  handler: {{type: tcp, chain: chain-0, retries: 1}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: target, addr: "127.0.0.1:{echo}"}}]}}
chains:
- name: chain-0
  hops:
  - name: hop-0
    selector: {{strategy: fifo, maxFails: 1, failTimeout: 60s}}
    nodes:
    - {{name: down, addr: "{b}:1999", connector: {{type: socks5}}}}
    - {{name: up, addr: "{b}:1080", connector: {{type: socks5}}}}
"""


def test_yaml_chain_fails_over_to_the_second_node(pair: Pair, tmp_path) -> None:  # type: ignore[no-untyped-def]
    start_echo(pair.b)
    gost(pair.b, "-L", "socks5://:1080")
    config = tmp_path / "gost.yaml"
    config.write_text(FAILOVER_YAML.format(echo=ECHO_PORT, b=pair.b_ip))
    client = gost(pair.a, "-C", str(config))
    for _ in range(4):  # retries=1: the first connection fails over at once; later ones skip the dead node
        assert python(pair.a, TCP_CHECK, "127.0.0.1", "8001") == "ok"
    failures = client.find(lambda r: "node down" in str(r.get("msg")))
    assert len(failures) == 1, [r.get("msg") for r in client.log_records()][-10:]


def test_cli_hop_with_two_nodes_round_robin_failover(pair: Pair) -> None:
    """-F host1,host2: one hop, two nodes; without retries the first connection to the dead node fails,
    then the fail filter keeps traffic on the live one."""
    start_echo(pair.b)
    gost(pair.b, "-L", "socks5://:1080")
    gost(pair.a, "-L", f"tcp://127.0.0.1:8001/127.0.0.1:{ECHO_PORT}",
         "-F", f"socks5://{pair.b_ip}:1999,{pair.b_ip}:1080?strategy=fifo")
    results = [python(pair.a, TCP_CHECK, "127.0.0.1", "8001") for _ in range(4)]
    assert results[0] != "ok" and results[1:] == ["ok"] * 3, results


SERVER_TUN, CLIENT_TUN = "192.168.123.1", "192.168.123.2"


def tunnel_client_up(g: GostProcess) -> bool:
    return any("tunnel client over chain" in str(r.get("msg", "")) for r in g.log_records())


def test_seed_tun_over_socks5_chain_and_redial(pair: Pair) -> None:
    """Seed "Proxy chain": server `-L tun://:8421?net=... -L socks5://:1080`, client
    `-L tun://:0/:8421?net=... -F socks5://SERVER:1080`; then the server restarts and the client redials."""
    server_args = ["-L", f"tun://:8421?net={SERVER_TUN}/24&name=gx0", "-L", "socks5://:1080"]
    server = gost(pair.b, *server_args, services=2)
    client = start_gost(pair.a, ["-L", f"tun://:0/:8421?net={CLIENT_TUN}/24&name=gx0",
                                 "-F", f"socks5://{pair.b_ip}:1080"], ready=tunnel_client_up)
    assert wait_ping(pair.a, SERVER_TUN), "no ping through the tunnel over socks5"
    assert ping(pair.b, CLIENT_TUN)
    stats = client.stats()
    assert stats["net_tx_pkts"] > 0 and stats["net_rx_pkts"] > 0
    start_echo(pair.b)
    assert python(pair.a, TCP_CHECK, SERVER_TUN, str(ECHO_PORT)) == "ok"

    server.stop()
    assert client.alive()
    time.sleep(0.5)
    gost(pair.b, *server_args, services=2)
    assert wait_ping(pair.a, SERVER_TUN, timeout=20), "the client did not redial the chain"
    assert client.find(lambda r: r.get("event") == "net_closed")


def test_seed_gost_port_forwarding(pair: Pair) -> None:
    """Seed "GOST port forwarding": client `-L tun://:8421/:8420?net=... -L udp://:8420/:8421
    -F socks5://server:1080`: the tunnel sends to the local udp forwarder, which carries it through the chain."""
    gost(pair.b, "-L", f"tun://:8421?net={SERVER_TUN}/24&name=gx0", "-L", "socks5://:1080", services=2)
    client = gost(pair.a, "-L", f"tun://:8421/:8420?net={CLIENT_TUN}/24&name=gx0", "-L", "udp://:8420/:8421",
                  "-F", f"socks5://{pair.b_ip}:1080", services=2)
    assert wait_ping(pair.a, SERVER_TUN), "no ping through tun -> udp forwarder -> socks5"
    assert ping(pair.b, CLIENT_TUN)
    assert wait_until(lambda: client.find(lambda r: r.get("network") == "udp" and "<->" in str(r.get("msg"))),
                      timeout=5)
