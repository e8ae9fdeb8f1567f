"""Resource caps of a whole gost process (README "Limits"): 0xF3 relays share the relay engine's few
threads, a service caps its concurrent connections (climiter), and a listener closes connections that do
not finish their handshake in time (handshakeTimeout)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from gostx.testing.gostproc import GostProcess, start_gost, wait_for_text

pytestmark = pytest.mark.e2e

F3_REQUEST = b"\x05\x01\x00" + b"\x05\xf3\x00\x01\x00\x00\x00\x00\x00\x00"  # greeting + 0xF3 (relay mode)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_connections(pid: int) -> int:
    """The process's fds that are TCP sockets (a TLS or WebSocket stream in C holds a socketpair and
    eventfds besides its TCP socket: the cap is on connections, so count those)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    tcp = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
                next(f)
                tcp |= {line.split()[9] for line in f}
        except OSError:
            continue
    return len(inodes & tcp)


def wait_for(cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def udp_echo() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sock.sendto(data, addr)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    thread.join()
    sock.close()


def gost_at(url: str) -> GostProcess:
    gost = start_gost("-L", url)
    assert wait_for_text(gost, "listening on"), gost.stderr()
    return gost


def test_300_udp_over_tcp_connections_share_a_few_threads(udp_echo: int) -> None:
    port = free_port()
    n = 300
    with gost_at(f"socks5://127.0.0.1:{port}?climiter={n + 50}") as gost:  # a low ulimit -n lowers the default
        pid = gost.gost_pid()
        threads_before = proc_status(pid, "Threads")
        conns = []
        try:
            for _ in range(n):
                c = socket.create_connection(("127.0.0.1", port), timeout=10)
                c.sendall(F3_REQUEST)
                conns.append(c)
            for c in conns:
                assert recv_exact(c, 2) == b"\x05\x00"
                read_reply(c)
            time.sleep(0.5)
            threads = proc_status(pid, "Threads")
            assert threads < 20, f"{threads} threads with {n} open 0xF3 relays (before: {threads_before})"
            # every relay still works: one datagram each through the echo, answered on its own stream
            # (50 at a time: the test's echo is one Python thread, its socket buffer must not overflow)
            for first in range(0, n, 50):
                batch = list(enumerate(conns))[first:first + 50]
                for i, c in batch:
                    payload = struct.pack(">I", i)
                    c.sendall(struct.pack(">H", len(payload)) + b"\x00\x01" + socket.inet_aton("127.0.0.1")
                              + struct.pack(">H", udp_echo) + payload)
                for i, c in batch:
                    head = recv_exact(c, 10)
                    assert struct.unpack(">H", head[:2])[0] == 4 and head[3] == 1
                    assert struct.unpack(">H", head[8:10])[0] == udp_echo
                    assert recv_exact(c, 4) == struct.pack(">I", i)
            assert proc_status(pid, "Threads") < 20
        finally:
            for c in conns:
                c.close()
        assert "Traceback" not in gost.stderr()


def read_reply(sock: socket.socket) -> None:
    head = recv_exact(sock, 4)
    assert head[:2] == b"\x05\x00", head
    recv_exact(sock, {1: 4, 4: 16}[head[3]] + 2)


def socks5_greeted(port: int) -> socket.socket:
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"\x05\x01\x00")
    assert recv_exact(c, 2) == b"\x05\x00"
    return c


def refused(port: int) -> bool:
    """A new connection is closed by the server at once. Its reset can even beat the end of our connect()
    (ECONNRESET there): that is the refusal too."""
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionResetError:
        return True
    try:
        return closed_by_peer(conn, 3)
    finally:
        conn.close()


def test_climiter_caps_concurrent_connections_and_frees_a_slot_when_one_closes() -> None:
    port = free_port()
    with gost_at(f"socks5://127.0.0.1:{port}?climiter=3") as gost:
        held = [socks5_greeted(port) for _ in range(3)]
        start = time.monotonic()
        assert refused(port), "the 4th connection was not closed"
        assert time.monotonic() - start < 2
        for _ in range(5):  # more refused ones: still one log line (rate-limited), all counted
            assert refused(port)
        held.pop().close()
        time.sleep(0.3)
        again = socks5_greeted(port)  # a slot is free again
        again.close()
        for c in held:
            c.close()
        assert gost.stop() == 0
        records = [json.loads(line) for line in gost.stderr().splitlines()]
        warned = [r for r in records if "connection limit reached" in r["msg"]]
        assert len(warned) == 1 and warned[0]["refused"] == 1, warned  # rate-limited: one line
        summary = [r for r in records if "refused over the connection limit" in r["msg"]]
        assert len(summary) == 1 and summary[0]["refused"] == 6, summary  # but every one counted


@pytest.mark.parametrize("half", [b"", b"\x05", b"\x05\x02\x00"], ids=["nothing", "one byte", "half greeting"])
def test_a_silent_or_half_greeting_client_is_closed_at_the_handshake_timeout(half: bytes) -> None:
    port = free_port()
    with gost_at(f"socks5://127.0.0.1:{port}?handshakeTimeout=1s") as gost:
        pid = gost.gost_pid()
        time.sleep(0.2)
        fds_before = open_fds(pid)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
        for c in clients:
            if half:
                c.sendall(half)
        start = time.monotonic()
        for c in clients:
            assert closed_by_peer(c, 6), "still open after the handshake timeout"
        assert time.monotonic() - start < 6  # 1 s + the linger after a protocol error (1 s) + slack; was 15 s
        for c in clients:
            c.close()
        assert wait_for(lambda: open_fds(pid) <= fds_before, 5), (open_fds(pid), fds_before)


def full_tls_handshake(port: int) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="gost.run") as tls:
        tls.do_handshake()
    time.sleep(0.3)  # the server saw the close and let the stream go


def half_client_hello() -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="gost.run")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 100
    return hello[: len(hello) // 2]


@pytest.mark.parametrize("scheme", ["socks5+tls", "relay+wss"])
def test_200_half_open_tls_handshakes_are_capped_and_closed_at_the_timeout(scheme: str) -> None:
    port = free_port()
    with gost_at(f"{scheme}://127.0.0.1:{port}?handshakeTimeout=2s&climiter=150") as gost:
        pid = gost.gost_pid()
        time.sleep(0.2)
        full_tls_handshake(port)  # the C engine's threads and their fds exist from the first TLS stream on
        fds_before = open_fds(pid)
        tcp_before = tcp_connections(pid)
        hello = half_client_hello()
        clients = []
        for _ in range(200):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(hello)
            clients.append(c)
        time.sleep(0.5)
        held = tcp_connections(pid) - tcp_before
        assert 100 <= held <= 150 + 5, held  # held open for now, but no more than the cap
        start = time.monotonic()
        for c in clients:
            assert closed_by_peer(c, 8)
        assert time.monotonic() - start < 7  # 2 s + the 1 s linger + slack
        for c in clients:
            c.close()
        assert wait_for(lambda: open_fds(pid) <= fds_before, 5), (open_fds(pid), fds_before)
        assert "Traceback" not in gost.stderr()


def relay_wss_connect(port: int, target: tuple[str, int], ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """A relay+wss connection to target, held: TLS, the WebSocket upgrade, a relay CONNECT in one masked
    frame and its reply (as bench/conns_client.py)."""
    tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="gost.run")
    tls.sendall(b"GET /ws HTTP/1.1\r\nHost: gost.run\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = tls.recv(4096)
        assert chunk, head
        head += chunk
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    addr = b"\x01" + socket.inet_aton(target[0]) + struct.pack(">H", target[1])
    request = struct.pack(">BBH", 1, 1, 3 + len(addr)) + struct.pack(">BH", 2, len(addr)) + addr
    mask = os.urandom(4)
    tls.sendall(bytes([0x82, 0x80 | len(request)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(request)))
    rest = head.split(b"\r\n\r\n", 1)[1]
    frame = rest + recv_exact(tls, 2 - len(rest)) if len(rest) < 2 else rest
    reply = frame[2:] + recv_exact(tls, (frame[1] & 0x7F) - len(frame[2:]))
    assert reply[:2] == b"\x01\x00", reply
    return tls


def test_a_joined_relay_wss_connection_holds_three_fds_in_the_server() -> None:
    """After the join a relay+wss flow in C holds its TCP socket, the peer socket and the engine's done
    eventfd: no socketpair end (C's or Python's), no eventfd of the stream's own."""
    sink = socket.create_server(("127.0.0.1", 0), backlog=512)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sink.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sink.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    target = sink.getsockname()
    port = free_port()
    n = 200
    conns: list[ssl.SSLSocket] = []
    try:
        with gost_at(f"relay+wss://127.0.0.1:{port}") as gost:
            pid = gost.gost_pid()
            relay_wss_connect(port, target, ctx).close()  # the engine's threads and fds exist from now on
            assert wait_for(lambda: len(held) == 1, 5)
            held.pop().close()
            time.sleep(0.3)
            fds_before = open_fds(pid)
            for _ in range(n):
                conns.append(relay_wss_connect(port, target, ctx))
            assert wait_for(lambda: len(held) == n, 5), len(held)

            def per_conn() -> float:
                return (open_fds(pid) - fds_before) / n

            assert wait_for(lambda: per_conn() <= 3.2, 3), (per_conn(), open_fds(pid), fds_before)
            assert "Traceback" not in gost.stderr()
    finally:
        for c in conns:
            c.close()
        stop.set()
        thread.join()
        for s in held:
            s.close()
        sink.close()
