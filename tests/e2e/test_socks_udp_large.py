"""A real `gost -L socks5://` and one GOST UDP-over-TCP (0xF3) frame carrying a datagram larger than the
UDP transport's GSO run limit (60000 bytes): it reaches its target, gost goes idle afterwards and SIGTERM
stops it. A 60001-byte datagram once made the relay's up thread loop forever (sendmsg with no iovec,
returning 0): 100% CPU, empty datagrams sprayed at the target, and a gost that SIGTERM no longer stopped."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import struct
import time

import pytest

from gostx.testing.gostproc import start_gost, wait_tcp_port

pytestmark = pytest.mark.e2e

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_ticks(pid: int) -> int:
    """utime + stime of the process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "the proxy closed the connection"
        out += chunk
    return out


def udp_tun(port: int) -> socket.socket:
    """A SOCKS5 connection in GOST's UDP-over-TCP mode (spec v3.md 9.3: CMD 0xF3)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert exact(s, 2) == b"\x05\x00"
    s.sendall(b"\x05\xf3\x00\x01\x00\x00\x00\x00\x00\x00")
    head = exact(s, 4)
    assert head[:2] == b"\x05\x00", head
    exact(s, {1: 4, 4: 16}[head[3]] + 2)
    return s


def frame(data: bytes, ip: str, port: int) -> bytes:
    """LEN(2) FRAG(1) ATYP ADDR PORT DATA."""
    return struct.pack(">HB", len(data), 0) + b"\x01" + ipaddress.IPv4Address(ip).packed + \
        struct.pack(">H", port) + data


@pytest.mark.parametrize("size", [60001, 65000])
def test_one_large_0xf3_datagram_is_delivered_and_gost_stays_idle_and_stoppable(size: int) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target, \
            start_gost("-L", f"socks5://127.0.0.1:{port}") as gost:
        target.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        target.bind(("127.0.0.1", 0))
        target.settimeout(5)
        assert wait_tcp_port("127.0.0.1", port), gost.stderr()
        payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
        with udp_tun(port) as client:
            client.sendall(frame(payload, "127.0.0.1", target.getsockname()[1]))
            got, _ = target.recvfrom(65536)
            assert len(got) == size and got == payload
            client.sendall(frame(b"after", "127.0.0.1", target.getsockname()[1]))
            assert target.recvfrom(65536)[0] == b"after"   # the relay goes on, nothing in between
        time.sleep(0.3)                                      # the client is gone: the relay ends
        pid = gost.gost_pid()
        before = cpu_ticks(pid)
        time.sleep(1.0)
        busy = (cpu_ticks(pid) - before) / CLK_TCK
        assert busy < 0.2, f"gost used {busy:.2f} s of CPU in 1 s after the client left"
        target.setblocking(False)
        with pytest.raises(BlockingIOError):
            target.recvfrom(65536)                           # no stray (empty) datagrams
        start = time.monotonic()
        gost.proc.send_signal(signal.SIGTERM)
        try:
            code = gost.proc.wait(timeout=2)
        except Exception:
            code = None
        assert code == 0, f"gost did not stop within 2 s of SIGTERM ({time.monotonic() - start:.1f} s)"
