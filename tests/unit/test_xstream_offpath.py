"""TLS and WebSocket run in C (gostx/net/xstream.py): during a transfer through `-F relay+wss://` and
`-F relay+tls://` the gost processes' Python threads stay idle (their CPU is read from
/proc/PID/task/PID/stat), the bytes arrive exactly, and the C streams carried them."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time

import pytest

from gostx.testing.gostproc import start_gost, wait_tcp_port
from tests.unit.proxytest import free_port

TOTAL = 96 << 20
CHUNK = 1 << 16


def python_thread_cpu(pid: int) -> float:
    """CPU seconds of the process's main (Python) thread."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sink_server() -> tuple[socket.socket, list[bytes]]:
    """Reads TOTAL bytes from a connection, answers their SHA-256 (connections that end earlier, such as
    the readiness probes' through the chain, are ignored)."""
    srv = socket.create_server(("127.0.0.1", 0))
    result: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            h, got = hashlib.sha256(), 0
            while got < TOTAL:
                data = conn.recv(1 << 18)
                if not data:
                    return
                h.update(data)
                got += len(data)
            result.append(h.digest())
            conn.sendall(result[-1])

    def run() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=run, daemon=True).start()
    return srv, result


@pytest.mark.parametrize("transport", ["relay+wss", "relay+tls"])
def test_python_is_off_the_data_path(transport: str) -> None:
    sink, result = sink_server()
    sport = sink.getsockname()[1]
    server_port, client_port = free_port(), free_port()
    with start_gost("-L", f"{transport}://127.0.0.1:{server_port}") as server, \
            start_gost("-L", f"tcp://127.0.0.1:{client_port}/127.0.0.1:{sport}",
                       "-F", f"{transport}://127.0.0.1:{server_port}") as client:
        assert wait_tcp_port("127.0.0.1", server_port) and wait_tcp_port("127.0.0.1", client_port)
        payload = os.urandom(CHUNK)
        expect = hashlib.sha256()
        with socket.create_connection(("127.0.0.1", client_port)) as conn:
            conn.sendall(payload)  # the handshakes, and the flow moves into C
            expect.update(payload)
            time.sleep(0.5)
            pids = [server.gost_pid(), client.gost_pid()]
            cpu0, t0 = [python_thread_cpu(p) for p in pids], time.monotonic()
            sent = CHUNK
            while sent < TOTAL:
                conn.sendall(payload)
                expect.update(payload)
                sent += CHUNK
            digest = b""
            conn.settimeout(30)
            while len(digest) < 32:
                data = conn.recv(32 - len(digest))
                assert data, "the connection ended before the digest came back"
                digest += data
            wall = time.monotonic() - t0
            cpu = [python_thread_cpu(p) - c for p, c in zip(pids, cpu0, strict=True)]
    sink.close()
    assert result and digest == expect.digest() == result[0], "bytes differ"
    # < 5% of a core each, with two clock ticks of slack for a short transfer: /proc charges a whole tick
    # to whichever thread runs when it fires, so a thread that wakes twice can be charged two (a Python
    # relay would use most of a core over this wall time)
    slack = 2 / os.sysconf("SC_CLK_TCK")
    for name, used in zip(("server", "client"), cpu, strict=True):
        assert used <= 0.05 * wall + slack, f"{name}'s Python thread used {used:.3f}s of {wall:.3f}s"
