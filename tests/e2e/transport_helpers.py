"""Shared pieces of the transport tests (test_transports.py, test_tls_failures.py, test_transport_interop.py):
a module-scoped namespace pair, a TCP echo server and a checksumming echo client run inside namespaces,
throwaway certificates, and the CPU time of a process's main (Python) thread."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

from gostx.testing.netns import Lab, Namespace, Pair, make_pair, netns_unavailable_reason, wait_until

ECHO_PORT = 9000
MIB = 1 << 20

# A threaded TCP echo: each connection is echoed until the peer's EOF, then its write side is shut
# (so a half-close travels back), then it is closed.
ECHO_SERVER = textwrap.dedent("""
    import socket, sys, threading
    srv = socket.create_server((sys.argv[1], int(sys.argv[2])), backlog=256)
    def serve(c):
        with c:
            try:
                while data := c.recv(1 << 18):
                    c.sendall(data)
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
""")

# Sends SIZE random bytes while reading the echo in parallel (both directions at once). half_close:
# shut the write side after the last byte and read until EOF (an EOF must come back); otherwise read
# SIZE bytes and close. Prints one JSON line: sha256 of what was sent and of what came back.
ECHO_CLIENT = textwrap.dedent("""
    import hashlib, json, os, socket, sys, threading, time
    host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    half_close, timeout = sys.argv[4] == "1", float(sys.argv[5])
    data = memoryview(os.urandom(size))  # distinct bytes all through: a reordered or repeated chunk shows
    out = {"sent": 0, "got": 0, "eof": False, "error": ""}
    c = socket.create_connection((host, port), timeout=timeout)
    def send():
        try:
            for at in range(0, size, 1 << 18):
                c.sendall(data[at:at + (1 << 18)])
                out["sent"] += len(data[at:at + (1 << 18)])
            if half_close:
                c.shutdown(socket.SHUT_WR)
        except OSError as exc:
            out["error"] = f"send: {exc}"
    t = threading.Thread(target=send, daemon=True)
    started = time.monotonic()
    t.start()
    got = hashlib.sha256()
    try:
        while half_close or out["got"] < size:
            chunk = c.recv(1 << 18)
            if not chunk:
                out["eof"] = True
                break
            got.update(chunk)
            out["got"] += len(chunk)
    except OSError as exc:
        out["error"] = out["error"] or f"recv: {exc}"
    t.join(timeout)
    out["seconds"] = round(time.monotonic() - started, 3)
    out["sent_sha"], out["got_sha"] = hashlib.sha256(data[:out["sent"]]).hexdigest(), got.hexdigest()
    c.close()
    print(json.dumps(out), flush=True)
""")


def module_pair(prefix: str) -> Iterator[Pair]:
    """For a module-scoped fixture: one namespace pair (a 10.200.1.1, b 10.200.1.2) for every case of a
    module, removed (with every process started in it) when the module ends."""
    import pytest

    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with Lab(prefix) as lab:
        yield make_pair(lab)


def start_echo_server(ns: Namespace, host: str, port: int = ECHO_PORT) -> None:
    proc = ns.popen([sys.executable, "-c", ECHO_SERVER, host, str(port)])
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready", "echo server did not start"


@dataclass(frozen=True)
class EchoResult:
    sent: int
    got: int
    eof: bool
    error: str
    seconds: float
    sent_sha: str
    got_sha: str

    @property
    def intact(self) -> bool:
        return self.sent == self.got and self.sent_sha == self.got_sha


def echo(ns: Namespace, host: str, port: int, size: int, half_close: bool = False,
         timeout: float = 20) -> EchoResult:
    """Run the echo client inside ns against host:port (an echo server, possibly through gost)."""
    argv = [sys.executable, "-c", ECHO_CLIENT, host, str(port), str(size), "1" if half_close else "0",
            str(timeout)]
    proc = ns.run(argv, check=False, timeout=timeout + 15)
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"echo client printed nothing: {proc.stderr.strip()[-400:]}")
    return EchoResult(**json.loads(lines[-1]))


def start_popen(ns: Namespace, argv: list[str]) -> subprocess.Popen[bytes]:
    return ns.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def listening(ns: Namespace, port: int) -> bool:
    return bool(ns.run(["ss", "-Hltn", f"sport = :{port}"], check=False).stdout.strip())


def wait_listening(ns: Namespace, port: int, timeout: float = 10) -> None:
    assert wait_until(lambda: listening(ns, port), timeout), f"nothing listens on port {port} in {ns.name}"


# -- certificates ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: str  # the CA that signed good and expired
    other_ca: str  # an unrelated CA
    good: tuple[str, str]  # (cert, key) for SERVER_NAME, valid now
    expired: tuple[str, str]  # (cert, key) for SERVER_NAME, expired yesterday


SERVER_NAME = "relay.gostx.test"


def make_certs(folder: str) -> Certs:
    """A CA, an unrelated CA, a valid and an expired server certificate for SERVER_NAME (EC P-256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(path: str, data: bytes) -> str:
        full = os.path.join(folder, path)
        with open(full, "wb") as f:
            f.write(data)
        return full

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - day).not_valid_after(now + 30 * day)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    def leaf(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, start: datetime.datetime,
             end: datetime.datetime) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(SERVER_NAME)).issuer_name(ca_cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    ca_key, ca_cert = ca("gostx test CA")
    _, other_cert = ca("gostx other CA")
    good = leaf(ca_key, ca_cert, now - day, now + 30 * day)
    expired = leaf(ca_key, ca_cert, now - 30 * day, now - day)
    pem = serialization.Encoding.PEM
    return Certs(
        ca=write("ca.pem", ca_cert.public_bytes(pem)),
        other_ca=write("other-ca.pem", other_cert.public_bytes(pem)),
        good=(write("good.pem", good[0]), write("good.key", good[1])),
        expired=(write("expired.pem", expired[0]), write("expired.key", expired[1])),
    )


# -- CPU of the Python thread -----------------------------------------------------------------------------


def main_thread_ticks(pid: int) -> int:
    """utime + stime (clock ticks) of pid's main thread, /proc/PID/task/PID/stat: gost's Python thread
    (asyncio runs in the main thread; the C engine's threads are other tasks of the process)."""
    with open(f"/proc/{pid}/task/{pid}/stat", encoding="utf-8") as f:
        text = f.read()
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def python_thread_percent(pids: dict[str, int], ns: Namespace, argv: list[str], settle: float = 1.5,
                          window: float = 2.0) -> tuple[dict[str, float], str]:
    """Run argv (a transfer of a few seconds) in ns; over `window` seconds after `settle` (the flows' setup
    stays out), the CPU of each named process's main thread in % of a core. Returns (percents, stdout)."""
    clk = os.sysconf("SC_CLK_TCK")
    run = ns.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(settle)
    before = {name: main_thread_ticks(pid) for name, pid in pids.items()}
    started = time.monotonic()
    time.sleep(window)
    used = {name: 100.0 * (main_thread_ticks(pid) - before[name]) / clk / (time.monotonic() - started)
            for name, pid in pids.items()}
    out, _ = run.communicate(timeout=60)
    return used, out.decode(errors="replace")
