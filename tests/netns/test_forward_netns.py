"""`gost -L tcp://` and `udp://` forwarding across a veth: gost in namespace a, servers and clients in b."""

from __future__ import annotations

import json
import sys
import time

import pytest

from gostx.testing.gostproc import start_gost, wait_for_text, wait_tcp_port
from gostx.testing.netns import Pair

pytestmark = pytest.mark.netns

TCP_ECHO = r"""
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen()
print("ready", flush=True)
def serve(c):
    with c:
        while data := c.recv(65536):
            c.sendall(data)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

TCP_CLIENT = r"""
import socket, sys, threading
payload = bytes(range(256)) * 4096  # 1 MiB
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)), daemon=True).start()
got = bytearray()
while data := c.recv(65536):
    got += data
print("ok" if bytes(got) == payload else f"mismatch {len(got)}")
"""

# Replies "<port the datagram came from>|<data>": the client sees which upstream socket carried it.
UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, addr = s.recvfrom(65535)
    s.sendto(str(addr[1]).encode() + b"|" + data, addr)
"""

UDP_CLIENTS = r"""
import json, socket, sys, time
host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def ask(sock, data):
    sock.sendto(data, (host, port))
    reply, src = sock.recvfrom(65535)
    assert src == (host, port), src
    upstream, _, echoed = reply.partition(b"|")
    return int(upstream), echoed.decode()
c1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c1.settimeout(5)
c2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c2.settimeout(5)
out = {"c1": [ask(c1, b"one-a"), ask(c1, b"one-b")], "c2": [ask(c2, b"two-a"), ask(c2, b"two-b")]}
time.sleep(wait)
out["c1_after_idle"] = ask(c1, b"one-c")
print(json.dumps(out))
"""


def python_in(ns, code: str, *args: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return ns.popen([sys.executable, "-c", code, *args], **kwargs)


def test_tcp_forward_across_veth(pair: Pair) -> None:
    echo = python_in(pair.b, TCP_ECHO, pair.b_ip, "9001")
    assert echo.stdout is not None and echo.stdout.readline().strip() == b"ready"
    with start_gost("-L", f"tcp://:8001/{pair.b_ip}:9001", ns=pair.a) as gost:
        assert wait_tcp_port(pair.a_ip, 8001, ns=pair.b), gost.stderr()
        # b -> a:8001 -> gost -> b:9001 and back: the veth is crossed four times.
        result = pair.b.run([sys.executable, "-c", TCP_CLIENT, pair.a_ip, "8001"], timeout=60)
        assert result.stdout.strip() == "ok", result.stdout + result.stderr
        assert gost.stop() == 0
        records = [json.loads(line) for line in gost.stderr().splitlines()]
    assert any(r["msg"].endswith(f"<-> {pair.b_ip}:9001") for r in records)
    closed = [r for r in records if ">-<" in r["msg"]]  # the readiness probe is one of them
    assert any(r["inputBytes"] == r["outputBytes"] == 256 * 4096 for r in closed), closed


def test_udp_forward_two_clients_own_replies_and_idle_expiry(pair: Pair) -> None:
    python_in(pair.b, UDP_ECHO, pair.b_ip, "9053")
    time.sleep(0.3)
    with start_gost("-L", f"udp://:8053/{pair.b_ip}:9053?ttl=1s", "-D", ns=pair.a) as gost:
        assert wait_for_text(gost, "listening on"), gost.stderr()
        result = pair.b.run([sys.executable, "-c", UDP_CLIENTS, pair.a_ip, "8053", "2.5"], timeout=60)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        (p1a, e1a), (p1b, e1b) = out["c1"]
        (p2a, e2a), (p2b, e2b) = out["c2"]
        assert (e1a, e1b, e2a, e2b) == ("one-a", "one-b", "two-a", "two-b")  # each got its own replies
        assert p1a == p1b and p2a == p2b  # one upstream socket per client session
        assert p1a != p2a  # and different sessions for different clients
        p1c, e1c = out["c1_after_idle"]
        assert e1c == "one-c" and p1c != p1a  # the idle session expired; a new one was made
        assert gost.stop() == 0
        assert "session idle for 1s, closed" in gost.stderr()


def test_interface_metadata_binds_direct_dials(pair: Pair) -> None:
    echo = python_in(pair.b, TCP_ECHO, pair.b_ip, "9002")
    assert echo.stdout is not None and echo.stdout.readline().strip() == b"ready"
    # Through the veth the target is reachable; bound to lo it is not (the dial fails, the client sees EOF).
    with start_gost("-L", f"tcp://:8002/{pair.b_ip}:9002?interface={pair.a_if}",
                    "-L", f"tcp://:8003/{pair.b_ip}:9002?interface=lo&dialTimeout=2s", ns=pair.a) as gost:
        assert wait_tcp_port(pair.a_ip, 8002, ns=pair.b), gost.stderr()
        ok = pair.b.run([sys.executable, "-c", TCP_CLIENT, pair.a_ip, "8002"], timeout=60)
        assert ok.stdout.strip() == "ok", ok.stdout + ok.stderr
        bad = pair.b.run([sys.executable, "-c", TCP_CLIENT, pair.a_ip, "8003"], timeout=60, check=False)
        assert bad.stdout.strip() != "ok"
        assert gost.stop() == 0
        records = [json.loads(line) for line in gost.stderr().splitlines()]
    errors = [r["msg"] for r in records if r["level"] == "error" and r["service"] == "service-1"]
    assert any(f"dial tcp {pair.b_ip}:9002" in msg for msg in errors), records
