"""Every handler x transport pair gost allows among relay, socks5, http over tcp, tls, ws, wss, end to end
with real gost processes in two namespaces, checked by behaviour (bytes in == bytes out), not by which
code moves them.

One rig for the module: namespace b runs ONE gost with twelve `-L HANDLER+TRANSPORT://` servers, a TCP
echo server and an https server on 10.201.0.1 (b's loopback: reachable from a only through gost), and an
iperf3 server there too. Namespace a runs ONE gost whose config has, per pair, a `tcp://` forward to the
echo server chained through that pair as its hop (what `-L tcp://:P/ECHO -F HANDLER+TRANSPORT://b:PORT`
makes; one process instead of twelve through `-C`), plus the entry proxies curl uses.

Half-close (the client shuts its write side; the shutdown must reach the echo server and the echo's
own EOF must come back) is checked where the protocol carries it: a plain `tcp://` forward and every
handler over the tcp transport. TLS and WebSocket transports cannot: gost closes the whole stream when
either side ends (no TLS half-close, no WebSocket half-close frame), and gostx does as gost."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from relay_helpers import BEHIND, log_tail
from transport_helpers import (
    ECHO_PORT,
    MIB,
    Certs,
    echo,
    make_certs,
    module_pair,
    python_thread_percent,
    start_echo_server,
    wait_listening,
)

from gostx.testing import iperf
from gostx.testing.gost import GostProcess, start_gost
from gostx.testing.netns import Namespace, Pair

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

HANDLERS = ("relay", "socks5", "http")
TRANSPORTS = ("tcp", "tls", "ws", "wss")
ECHO_SIZE = 32 * MIB
HTTPS_PORT = 8443
HTTP_ENTRY = 8080  # a's http proxy chained to relay+wss (the tungo seed's chain)
SOCKS_ENTRY = 1080  # a's socks5 proxy chained to socks5+tls
DIRECT_FORWARD = 6099  # a's plain tcp:// forward to b's veth, no chain
IPERF_FORWARD = 6201  # a's tcp:// forward to b's iperf3 through relay+wss
PYTHON_BUDGET_PERCENT = 5.0


def server_port(handler: str, transport: str) -> int:
    return 7100 + 10 * HANDLERS.index(handler) + TRANSPORTS.index(transport)


def forward_port(handler: str, transport: str) -> int:
    return 6100 + 10 * HANDLERS.index(handler) + TRANSPORTS.index(transport)


PAIRS = [(h, t) for h in HANDLERS for t in TRANSPORTS]

HTTPS_SERVER = textwrap.dedent("""
    import http.server, ssl, sys
    host, port, cert, key, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=folder, **k)
    srv = http.server.ThreadingHTTPServer((host, port), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()
""")


def client_config(b_ip: str) -> dict[str, object]:
    """a's gost config: per pair a tcp:// forward to the echo server with that pair as its one hop."""
    services: list[dict[str, object]] = []
    chains: list[dict[str, object]] = []

    def chain(name: str, handler: str, transport: str) -> None:
        chains.append({"name": name, "hops": [{"name": f"hop-{name}", "nodes": [{
            "name": f"node-{name}", "addr": f"{b_ip}:{server_port(handler, transport)}",
            "connector": {"type": handler}, "dialer": {"type": transport}}]}]})

    for handler, transport in PAIRS:
        name = f"{handler}-{transport}"
        chain(name, handler, transport)
        services.append({"name": f"fwd-{name}", "addr": f"127.0.0.1:{forward_port(handler, transport)}",
                         "handler": {"type": "tcp", "chain": name}, "listener": {"type": "tcp"},
                         "forwarder": {"nodes": [{"name": "echo", "addr": f"{BEHIND}:{ECHO_PORT}"}]}})
    services.append({"name": "direct", "addr": f"127.0.0.1:{DIRECT_FORWARD}", "handler": {"type": "tcp"},
                     "listener": {"type": "tcp"},
                     "forwarder": {"nodes": [{"name": "echo", "addr": f"{b_ip}:{ECHO_PORT}"}]}})
    services.append({"name": "iperf-relay-wss", "addr": f"127.0.0.1:{IPERF_FORWARD}",
                     "handler": {"type": "tcp", "chain": "relay-wss"}, "listener": {"type": "tcp"},
                     "forwarder": {"nodes": [{"name": "iperf", "addr": f"{BEHIND}:{iperf.DEFAULT_PORT}"}]}})
    services.append({"name": "http-entry", "addr": f"127.0.0.1:{HTTP_ENTRY}",
                     "handler": {"type": "http", "chain": "relay-wss"}, "listener": {"type": "tcp"}})
    services.append({"name": "socks-entry", "addr": f"127.0.0.1:{SOCKS_ENTRY}",
                     "handler": {"type": "socks5", "chain": "socks5-tls"}, "listener": {"type": "tcp"}})
    return {"services": services, "chains": chains}


def services_listening(count: int):  # type: ignore[no-untyped-def]
    return lambda g: sum("listening on" in str(r.get("msg", "")) for r in g.log_records()) >= count


@dataclass
class Rig:
    pair: Pair
    server: GostProcess
    client: GostProcess
    certs: Certs
    https_file: str
    https_digest: str

    @property
    def a(self) -> Namespace:
        return self.pair.a

    def tail(self) -> str:
        return log_tail(self.client, self.server)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    for pair in module_pair("gxtr"):
        folder = tempfile.mkdtemp(prefix="gostx-transports-")
        certs = make_certs(folder)
        b = pair.b
        b.run(["ip", "addr", "add", f"{BEHIND}/32", "dev", "lo"])
        start_echo_server(b, "0.0.0.0")
        blob = os.urandom(2 * MIB)
        with open(os.path.join(folder, "blob.bin"), "wb") as f:
            f.write(blob)
        b.popen([sys.executable, "-c", HTTPS_SERVER, BEHIND, str(HTTPS_PORT), *certs.good, folder],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        b.popen([*iperf.server_argv(), "-B", BEHIND], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(b, HTTPS_PORT)
        wait_listening(b, iperf.DEFAULT_PORT)
        server_args = [arg for h, t in PAIRS for arg in ("-L", f"{h}+{t}://:{server_port(h, t)}")]
        server = start_gost(b, server_args, ready=services_listening(len(PAIRS)), timeout=30)
        config = os.path.join(folder, "client.json")
        with open(config, "w", encoding="utf-8") as f:
            json.dump(client_config(pair.b_ip), f)
        client = start_gost(pair.a, ["-C", config], ready=services_listening(len(PAIRS) + 4), timeout=30)
        yield Rig(pair, server, client, certs, "blob.bin", hashlib.sha256(blob).hexdigest())
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("handler", "transport"), PAIRS, ids=[f"{h}+{t}" for h, t in PAIRS])
def test_echo_32mib_both_directions(rig: Rig, handler: str, transport: str) -> None:
    result = echo(rig.a, "127.0.0.1", forward_port(handler, transport), ECHO_SIZE)
    assert not result.error, f"{result}\n{rig.tail()}"
    assert result.sent == ECHO_SIZE and result.intact, f"{result}\n{rig.tail()}"


HALF_CLOSE = [("direct", "tcp"), *[(h, "tcp") for h in HANDLERS]]


@pytest.mark.parametrize(("handler", "transport"), HALF_CLOSE, ids=[f"{h}+{t}" for h, t in HALF_CLOSE])
def test_half_close_travels_both_ways(rig: Rig, handler: str, transport: str) -> None:
    """The client's FIN reaches the echo server after the last byte, which answers the rest and its own
    FIN: the client reads every byte back and then EOF."""
    port = DIRECT_FORWARD if handler == "direct" else forward_port(handler, transport)
    result = echo(rig.a, "127.0.0.1", port, 4 * MIB, half_close=True, timeout=10)
    assert not result.error, f"{result}\n{rig.tail()}"
    assert result.eof and result.intact, f"{result}\n{rig.tail()}"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("proxy", [f"http://127.0.0.1:{HTTP_ENTRY}", f"socks5h://127.0.0.1:{SOCKS_ENTRY}"],
                         ids=["http-F-relay+wss", "socks5-F-socks5+tls"])
def test_curl_https_through_chain(rig: Rig, proxy: str) -> None:
    url = f"https://{BEHIND}:{HTTPS_PORT}/{rig.https_file}"
    argv = ["curl", "-sS", "--max-time", "20", "-k", "-x", proxy, "-o", "-", url]
    result = subprocess.run(rig.a.argv(argv), capture_output=True, timeout=40)
    assert result.returncode == 0, result.stderr.decode() + rig.tail()
    assert hashlib.sha256(result.stdout).hexdigest() == rig.https_digest


def test_python_thread_is_off_the_relay_wss_path(rig: Rig) -> None:
    """While iperf3 pushes bytes through `tcp:// -F relay+wss://`, the Python (main) thread of either gost
    process may use at most 5% of a core: every chunk must move in C. Measured over the 2 s in the middle
    of a 4 s run (the flows' setup, once per flow, stays out of the window)."""
    pids = {"client": rig.client.proc.pid, "server": rig.server.proc.pid}
    used, out = python_thread_percent(pids, rig.a, iperf.client_argv("127.0.0.1", 4, port=IPERF_FORWARD))
    result = iperf.parse_tcp(out)
    assert result.gbps > 0.2, f"too little traffic to judge ({result.gbps:.2f} Gbit/s)"
    over = {name: f"{pct:.0f}%" for name, pct in used.items() if pct >= PYTHON_BUDGET_PERCENT}
    assert not over, (f"gost's Python thread is on the data path: {over} of a core while relay+wss carried "
                      f"{result.gbps:.2f} Gbit/s (budget {PYTHON_BUDGET_PERCENT:.0f}%)")


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def test_held_relay_wss_connections_cost_no_thread_each(rig: Rig) -> None:
    """300 relay+wss connections (TLS, WebSocket upgrade, relay CONNECT to the echo server) held open at
    once: the server's thread count stays what it was, give or take a few (no thread per connection)."""
    pid = rig.server.proc.pid
    before = thread_count(pid)
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "bench", "conns_client.py")
    count = 300
    client = rig.a.popen([sys.executable, script, rig.pair.b_ip, str(server_port("relay", "wss")),
                          f"{BEHIND}:{ECHO_PORT}", str(count), "50"], stdin=subprocess.PIPE)
    assert client.stdout is not None and client.stdin is not None
    try:
        line = client.stdout.readline().decode().split()
        assert line[:2] == ["held", str(count)], f"{line}\n{rig.tail()}"
        during = thread_count(pid)
    finally:
        client.stdin.close()
        rig.a.stop(client)
    assert during - before <= 4, f"the server went from {before} to {during} threads for {count} connections"
