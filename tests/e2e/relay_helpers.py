"""Shared pieces of the relay/ws e2e tests: a web server and a DNS-like UDP responder inside a namespace,
readiness checks for gost processes, and a curl through a proxy."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile

from gostx.testing.gost import GostProcess
from gostx.testing.netns import Namespace, wait_until

BEHIND = "10.201.0.1"  # an address on the server namespace's loopback: reachable only through the relay

DNS_RESPONDER = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    qid, = struct.unpack(">H", q[:2])
    # answer: same id, QR=1 RD RA, 1 question, 1 answer: A 192.0.2.53 for whatever was asked
    head = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 53])
    s.sendto(head + q[12:] + answer, peer)
"""


def listening(ns: Namespace, port: int, udp: bool = False) -> bool:
    out = ns.run(["ss", "-Hlnu" if udp else "-Hltn", f"sport = :{port}"], check=False).stdout
    return bool(out.strip())


def gost_listening(port: int):  # type: ignore[no-untyped-def]
    return lambda g: any("listening on" in str(r.get("msg", "")) and str(r.get("msg", "")).endswith(f":{port}")
                         for r in g.log_records())


def start_web_server(ns: Namespace, host: str, port: int, size: int = 2 << 20) -> tuple[str, str]:
    """python3 -m http.server in ns serving one file of random bytes; (file name, its sha256)."""
    folder = tempfile.mkdtemp(prefix="gostx-web-")
    data = os.urandom(size)
    with open(os.path.join(folder, "blob.bin"), "wb") as f:
        f.write(data)
    ns.popen([sys.executable, "-m", "http.server", "--bind", host, str(port), "--directory", folder],
             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: listening(ns, port), 10), "http.server did not start"
    return "blob.bin", hashlib.sha256(data).hexdigest()


def start_dns_responder(ns: Namespace, host: str, port: int) -> None:
    ns.popen([sys.executable, "-c", DNS_RESPONDER, host, str(port)],
             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: listening(ns, port, udp=True), 10), "DNS responder did not start"


def curl(ns: Namespace, url: str, proxy: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess[bytes]:
    argv = ["curl", "-sS", "--max-time", str(timeout), "-o", "-", *(["-x", proxy] if proxy else []), url]
    return subprocess.run(ns.argv(argv), capture_output=True, timeout=timeout + 10)


def dns_query(qid: int, name: str) -> bytes:
    import struct

    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def udp_exchange(ns: Namespace, host: str, port: int, payload: bytes, timeout: float = 5) -> bytes:
    """Send one datagram from inside ns and return the answer (hex through a child python)."""
    code = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(float(sys.argv[4]));"
            "s.sendto(bytes.fromhex(sys.argv[3]),(sys.argv[1],int(sys.argv[2])));print(s.recv(65535).hex())")
    out = ns.run([sys.executable, "-c", code, host, str(port), payload.hex(), str(timeout)], check=False,
                 timeout=timeout + 10)
    return bytes.fromhex(out.stdout.strip()) if out.returncode == 0 else b""


def log_tail(*procs: GostProcess) -> str:
    return "\n".join("\n".join(p.log_lines()[-15:]) for p in procs)
