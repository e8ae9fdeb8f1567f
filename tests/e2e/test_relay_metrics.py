"""Whole gost processes on loopback, scraped with curl: a `udp://` forwarder's live counters and the TLS
streams' totals (an echo through `-F relay+wss://`, and a client that is not TLS at all) reach -metrics."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gostx.testing.gostproc import start_gost, wait_tcp_port

pytestmark = pytest.mark.e2e


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo_servers() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP echo on loopback, each in a daemon thread (closed by the caller)."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.create_server(("127.0.0.1", 0))

    def serve_udp() -> None:
        while True:
            try:
                data, addr = udp.recvfrom(65535)
                udp.sendto(data, addr)
            except OSError:
                return

    def serve_tcp() -> None:
        while True:
            try:
                conn, _ = tcp.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    for target in (serve_udp, serve_tcp):
        threading.Thread(target=target, daemon=True).start()
    return udp, tcp


def scrape(port: int) -> dict[str, float]:
    out = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/metrics"], capture_output=True, timeout=10,
                         check=True).stdout.decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(out):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_udp_forwarder_and_tls_stream_counters_scraped_with_curl() -> None:
    udp_echo, tcp_echo = echo_servers()
    fwd, wss, metrics, local = free_port(socket.SOCK_DGRAM), free_port(), free_port(), free_port()
    try:
        with start_gost("-L", f"udp://127.0.0.1:{fwd}/127.0.0.1:{udp_echo.getsockname()[1]}",
                        "-L", f"relay+wss://127.0.0.1:{wss}", "-metrics", f"127.0.0.1:{metrics}") as server, \
                start_gost("-L", f"tcp://127.0.0.1:{local}/127.0.0.1:{tcp_echo.getsockname()[1]}",
                           "-F", f"relay+wss://127.0.0.1:{wss}") as client:
            assert wait_tcp_port("127.0.0.1", metrics) and wait_tcp_port("127.0.0.1", wss), server.stderr()
            assert wait_tcp_port("127.0.0.1", local), client.stderr()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(5)
                for i in range(10):
                    sock.sendto(b"d%d" % i, ("127.0.0.1", fwd))
                    assert sock.recv(100) == b"d%d" % i
            payload = b"x" * 50_000
            with socket.create_connection(("127.0.0.1", local), timeout=5) as conn:
                conn.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    got += conn.recv(65536)
                assert got == payload
            with socket.create_connection(("127.0.0.1", wss), timeout=5) as junk:  # not TLS: a failed handshake
                junk.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                junk.recv(100)
            deadline, seen = time.monotonic() + 10, {}
            while time.monotonic() < deadline:
                seen = scrape(metrics)
                if seen.get("gostx_xstream_tls_failures_total", 0) >= 1 and \
                        seen.get("gostx_xstream_streams_total", 0) >= 2:
                    break
                time.sleep(0.2)
            assert "Traceback" not in server.stderr() + client.stderr()
    finally:
        udp_echo.close()
        tcp_echo.close()
    assert seen["gostx_udp_forward_up_pkts_total"] == 10 and seen["gostx_udp_forward_down_pkts_total"] == 10
    assert seen["gostx_udp_forward_sessions_open"] == 1
    assert seen["gostx_xstream_tls_failures_total"] >= 1, seen
    assert seen["gostx_xstream_streams_total"] >= 2  # the refused one, and the echo's once its client closed
