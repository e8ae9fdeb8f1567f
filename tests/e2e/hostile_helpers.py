"""Pieces of the hostile-input suite (test_hostile_listeners.py): sockets made inside a test namespace
from this process, the wire formats a client needs (SOCKS5, HTTP, relay, WebSocket, TLS, IPv4), seeded
generators of junk, truncations and mutations, and /proc snapshots of the gost process under attack.

Sockets: `in_netns(ns)` switches the calling thread into the namespace (setns(2) on
/run/netns/NAME) and back; a socket keeps the namespace it was made in, so everything after its creation
runs here without child processes.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import os
import random
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gostx.testing.packets import inet_checksum

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the block with this thread in network namespace `name`; always switch back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


# -- sockets ----------------------------------------------------------------------------------------


class Client:
    """Makes sockets inside one namespace."""

    def __init__(self, ns_name: str) -> None:
        self.ns = ns_name

    def tcp(self, host: str, port: int, timeout: float = 3.0) -> socket.socket:
        with in_netns(self.ns):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def udp(self) -> socket.socket:
        with in_netns(self.ns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", 0))
        return sock

    def packet(self, ifname: str) -> socket.socket:
        """An AF_PACKET socket on a TUN device: what is sent on it is handed to the device's reader."""
        with in_netns(self.ns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
            sock.bind((ifname, 0x0800))
        return sock


def close_rst(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def close(sock: socket.socket, rst: bool) -> None:
    if rst:
        close_rst(sock)
    else:
        with contextlib.suppress(OSError):
            sock.close()


def recv_exact(sock: socket.socket | ssl.SSLSocket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"EOF after {len(out)} of {n} bytes")
        out += chunk
    return out


def recv_until(sock: socket.socket | ssl.SSLSocket, marker: bytes, limit: int = 1 << 16) -> bytes:
    out = b""
    while marker not in out:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"EOF before {marker!r} after {out[:80]!r}")
        out += chunk
        if len(out) > limit:
            raise ConnectionError("no end marker")
    return out


def peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed (EOF or reset) the connection; never blocks."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        while True:
            data = sock.recv(65536, socket.MSG_DONTWAIT)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def tls_client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_hello(server_name: str = "gost.run") -> bytes:
    """The bytes of a real TLS ClientHello (OpenSSL's, made in memory)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_client_context().wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


# -- channels: a transport (plain, TLS, WebSocket over either) carrying a handler's bytes ---------


class Chan:
    """One client connection after its transport handshake: bytes in, bytes out."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, ws: bool = False) -> None:
        self.sock = sock
        self.ws = ws
        self._inbuf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(ws_frame(data) if self.ws else data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        if not self.ws:
            return recv_exact(self.sock, n)
        while len(self._inbuf) < n:
            self._inbuf += ws_read_message(self.sock)
        out, self._inbuf = self._inbuf[:n], self._inbuf[n:]
        return out

    def recv_until(self, marker: bytes) -> bytes:
        if not self.ws:
            return recv_until(self.sock, marker)
        while marker not in self._inbuf:
            self._inbuf += ws_read_message(self.sock)
        head, _, rest = self._inbuf.partition(marker)
        self._inbuf = rest
        return head + marker

    def close(self, rst: bool = False) -> None:
        raw = self.sock
        if isinstance(raw, ssl.SSLSocket):
            if rst:
                with contextlib.suppress(OSError):
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                # a clean TLS end (close_notify, not waiting for the server's): without it the server
                # may see "EOF in violation of protocol" and drop the request that came just before
                with contextlib.suppress(OSError, ValueError):
                    raw.setblocking(False)
                    raw.unwrap()
            with contextlib.suppress(OSError):
                raw.close()
            return
        close(raw, rst)


@dataclass(frozen=True)
class Transport:
    """How a client reaches the handler: `tls` wraps TCP in TLS, `ws` adds a WebSocket upgrade."""

    tls: bool = False
    ws: bool = False
    path: str = "/ws"

    def open(self, client: Client, host: str, port: int, timeout: float = 3.0) -> Chan:
        sock: socket.socket | ssl.SSLSocket = client.tcp(host, port, timeout)
        try:
            if self.tls:
                sock = tls_client_context().wrap_socket(sock, server_hostname="gost.run")
            if self.ws:
                sock.sendall(ws_upgrade(self.path, host))
                head = recv_until(sock, b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 101"):
                    raise ConnectionError(f"WebSocket upgrade refused: {head[:60]!r}")
        except BaseException:
            sock.close()
            raise
        return Chan(sock, ws=self.ws)

    def first_bytes(self, host: str) -> bytes:
        """The bytes a client sends first on the raw TCP connection (for truncation and slowloris)."""
        if self.tls:
            return client_hello()
        if self.ws:
            return ws_upgrade(self.path, host)
        return b""


# -- WebSocket (RFC 6455) -----------------------------------------------------------------------------


def ws_upgrade(path: str, host: str) -> bytes:
    key = base64.b64encode(b"gostx-hostile-16").decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def ws_header(opcode: int, length: int, fin: bool = True, masked: bool = True, rsv: int = 0,
              force_64: bool = False) -> bytes:
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126 and not force_64:
        head = bytes([b0, mask_bit | length])
    elif length < 1 << 16 and not force_64:
        head = bytes([b0, mask_bit | 126]) + struct.pack(">H", length)
    else:
        head = bytes([b0, mask_bit | 127]) + struct.pack(">Q", length)
    return head + (b"\x11\x22\x33\x44" if masked else b"")


def ws_mask(data: bytes, key: bytes = b"\x11\x22\x33\x44") -> bytes:
    return bytes(b ^ key[i & 3] for i, b in enumerate(data))


def ws_frame(data: bytes, opcode: int = 0x2) -> bytes:
    return ws_header(opcode, len(data)) + ws_mask(data)


def ws_read_message(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """The payload of the next data frame from the server (unmasked); control frames are skipped."""
    while True:
        b0, b1 = recv_exact(sock, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", recv_exact(sock, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", recv_exact(sock, 8))[0]
        key = recv_exact(sock, 4) if b1 & 0x80 else b""
        data = recv_exact(sock, n) if n else b""
        if key:
            data = ws_mask(data, key)
        if b0 & 0x0F == 0x8:
            raise ConnectionError("WebSocket closed by the server")
        if b0 & 0x0F in (0x0, 0x1, 0x2):
            return data


# -- SOCKS5, HTTP, relay --------------------------------------------------------------------------------


def s5_addr(host: str | bytes, port: int) -> bytes:
    if isinstance(host, bytes):
        return bytes([0x03, len(host) & 0xFF]) + host + struct.pack(">H", port)
    return b"\x01" + socket.inet_aton(host) + struct.pack(">H", port)


def s5_request(cmd: int, host: str | bytes, port: int) -> bytes:
    return bytes([5, cmd, 0]) + s5_addr(host, port)


S5_GREETING = b"\x05\x01\x00"


def s5_handshake(chan: Chan, cmd: int, host: str | bytes, port: int) -> tuple[int, bytes]:
    """Greeting + request; (REP, the bound address bytes)."""
    chan.send(S5_GREETING + s5_request(cmd, host, port))
    method = chan.recv_exact(2)
    if method != b"\x05\x00":
        raise ConnectionError(f"SOCKS5 method reply {method!r}")
    head = chan.recv_exact(4)
    if head[3] == 1:
        rest = chan.recv_exact(6)
    elif head[3] == 4:
        rest = chan.recv_exact(18)
    else:
        n = chan.recv_exact(1)
        rest = n + chan.recv_exact(n[0] + 2)
    return head[1], head[3:4] + rest


def s5_udp_frame(data: bytes, host: str | bytes, port: int, length: int | None = None) -> bytes:
    """GOST 0xF3 frame: LEN(2) FRAG(1) ATYP ADDR PORT DATA (LEN may lie)."""
    return struct.pack(">HB", len(data) if length is None else length, 0) + s5_addr(host, port) + data


def relay_request(host: str | bytes, port: int, cmd: int = 0x01) -> bytes:
    feature = relay_addr_feature(host, port)
    return struct.pack(">BBH", 1, cmd, len(feature)) + feature


def relay_addr_feature(host: str | bytes, port: int) -> bytes:
    addr = s5_addr(host, port)
    return struct.pack(">BH", 0x02, len(addr)) + addr


def relay_read_response(chan: Chan) -> int:
    ver, status, fealen = struct.unpack(">BBH", chan.recv_exact(4))
    if ver != 1:
        raise ConnectionError(f"relay response version {ver}")
    if fealen:
        chan.recv_exact(fealen)
    return int(status)


# -- IPv4 packets (for the TUN devices) ---------------------------------------------------------------


checksum = inet_checksum


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64, ident: int = 1, frag: int = 0) -> bytes:
    head = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))
    head = head[:10] + struct.pack(">H", checksum(head)) + head[12:]
    return head + payload


def tcp_segment(src: str, dst: str, sport: int, dport: int, flags: int, seq: int = 1000, ack: int = 0,
                data: bytes = b"", options: bytes = b"") -> bytes:
    off = (20 + len(options)) // 4
    head = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, 65535, 0, 0) + options
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">BBH", 0, 6, len(head) + len(data))
    csum = checksum(pseudo + head + data)
    return ipv4(src, dst, 6, head[:16] + struct.pack(">H", csum) + head[18:] + data)


def udp_datagram(src: str, dst: str, sport: int, dport: int, data: bytes, length: int | None = None) -> bytes:
    n = 8 + len(data) if length is None else length
    return ipv4(src, dst, 17, struct.pack(">HHHH", sport, dport, n, 0) + data)


# -- seeded hostile inputs --------------------------------------------------------------------------------

JUNK_SIZES = (1, 2, 3, 7, 16, 64, 255, 256, 1024, 4096, 16384, 65536, 1 << 20)


def junk(rng: random.Random, sizes: tuple[int, ...] = JUNK_SIZES) -> list[bytes]:
    return [rng.randbytes(n) for n in sizes]


def prefixes(valid: bytes, limit: int = 64) -> list[bytes]:
    """valid cut at every length 1..len-1, or at `limit` lengths spread over it (always the short ones)."""
    cuts = list(range(1, len(valid)))
    if len(cuts) > limit:
        step = len(cuts) / limit
        cuts = sorted({*range(1, 9), *(cuts[int(i * step)] for i in range(limit))})
    return [valid[:n] for n in cuts]


def prefix_then_junk(rng: random.Random, valid: bytes, count: int = 24) -> list[bytes]:
    out = []
    for _ in range(count):
        cut = rng.randrange(1, len(valid) + 1)
        out.append(valid[:cut] + rng.randbytes(rng.choice((1, 8, 100, 3000))))
    return out


def mutations(rng: random.Random, valid: bytes, count: int = 40) -> list[bytes]:
    """valid with 1..3 random bytes flipped to random values (the header fields in the first 16 bytes
    are hit most), sometimes an inserted or dropped byte."""
    out = []
    for _ in range(count):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(min(len(data), 16)) if rng.random() < 0.7 else rng.randrange(len(data))
            data[i] = rng.randrange(256)
        if rng.random() < 0.2:
            i = rng.randrange(len(data))
            if rng.random() < 0.5:
                data.insert(i, rng.randrange(256))
            elif len(data) > 1:
                del data[i]
        out.append(bytes(data))
    return out


BAD_NAMES: tuple[bytes, ...] = (
    b"a" * 64 + b".test",              # a label over 63 bytes (the idna codec refuses it)
    b"a..b",                            # an empty label
    b"\xff\xfe.test",                   # not UTF-8
    b"\xc3\xa9" * 40,                  # a non-ASCII name of 80 bytes
    b"xn--" + b"\xff" * 10,
    b"x\x00y.test",                     # NUL
    b"." * 255,
    b"a" * 255,                         # the longest name SOCKS5 can carry
    b"\xe2\x80\xae" * 20,              # bidi override
    b"[::1",                            # a broken IPv6 literal
)


# -- driving connections ----------------------------------------------------------------------------------


def feed(open_chan: Callable[[], Chan], payloads: list[bytes], wait_reply: float = 0.0) -> int:
    """For each payload: a fresh connection, the payload, optionally a short read, then a close that
    alternates between FIN and RST. Returns how many connections could not even be opened."""
    refused = 0
    for i, payload in enumerate(payloads):
        try:
            chan = open_chan()
        except (OSError, ConnectionError):
            refused += 1
            continue
        try:
            chan.send(payload)
            if wait_reply:
                chan.sock.settimeout(wait_reply)
                with contextlib.suppress(OSError, ConnectionError, struct.error):
                    chan.recv_exact(1)
        except (OSError, ConnectionError):
            pass
        finally:
            chan.close(rst=bool(i % 2))
    return refused


def feed_udp(sock: socket.socket, target: tuple[str, int], payloads: list[bytes], pace: int = 64) -> None:
    """Send every payload as one datagram (those the kernel refuses as too large are skipped); pauses
    briefly every `pace` datagrams so the receiver's buffer is not simply overrun."""
    for i, payload in enumerate(payloads):
        try:
            sock.sendto(payload, target)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ECONNREFUSED, errno.ENOBUFS):
                raise
        if i % pace == pace - 1:
            time.sleep(0.01)


@dataclass
class Slowloris:
    """`count` connections that each send one byte of `prefix` per `interval`, never finishing."""

    socks: list[socket.socket]
    prefix: bytes

    @classmethod
    def open(cls, client: Client, host: str, port: int, prefix: bytes, count: int = 50) -> Slowloris:
        socks = []
        for _ in range(count):
            with contextlib.suppress(OSError):
                socks.append(client.tcp(host, port))
        return cls(socks, prefix or b"\x05")

    def drip(self, rounds: int, interval: float = 1.0) -> None:
        for r in range(rounds):
            start = time.monotonic()
            byte = self.prefix[r % len(self.prefix):r % len(self.prefix) + 1]
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.send(byte, socket.MSG_DONTWAIT)
            time.sleep(max(0.0, interval - (time.monotonic() - start)))

    def closed_by_server(self) -> int:
        return sum(peer_closed(s) for s in self.socks)

    def close(self) -> None:
        for i, sock in enumerate(self.socks):
            close(sock, rst=bool(i % 2))
        self.socks.clear()


# -- the process under attack -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    threads: int
    fds: int
    rss_kib: int
    peak_rss_kib: int  # VmHWM: the largest RSS the process ever had

    def __str__(self) -> str:
        rss, peak = self.rss_kib // 1024, self.peak_rss_kib // 1024
        return f"threads={self.threads} fds={self.fds} rss={rss}MiB peak={peak}MiB"


def _status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name == key:
                return int(rest.split()[0])
    raise KeyError(key)


def fd_kinds(pid: int) -> str:
    """What the process's fds are, counted by kind (socket, anon_inode:[eventfd], pipe, ...), for a message."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":[")[0] if target.startswith(("socket:", "pipe:")) else target
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))


def snapshot(pid: int) -> Snapshot:
    return Snapshot(threads=_status(pid, "Threads"), fds=len(os.listdir(f"/proc/{pid}/fd")),
                    rss_kib=_status(pid, "VmRSS"), peak_rss_kib=_status(pid, "VmHWM"))


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        text = f.read()
    fields = text[text.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float = 1.0) -> float:
    """CPU seconds the process used over `seconds` of wall time."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def settle(pid: int, base: Snapshot, thread_slack: int, fd_slack: int, timeout: float) -> Snapshot:
    """Poll until threads and fds are back within the slack of `base` (or timeout); the last snapshot."""
    deadline = time.monotonic() + timeout
    while True:
        now = snapshot(pid)
        if (now.threads <= base.threads + thread_slack and now.fds <= base.fds + fd_slack) \
                or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


# -- gost's tun cipher (Shadowsocks AEAD UDP, /work/shared/spec/tuntap.md): authentic datagrams with junk inside


def ss_key(password: bytes, size: int = 16) -> bytes:
    """EVP_BytesToKey with MD5, one iteration, no salt."""
    import hashlib

    out, block = b"", b""
    while len(out) < size:
        block = hashlib.md5(block + password).digest()
        out += block
    return out[:size]


def ss_seal(key: bytes, plaintext: bytes, salt: bytes) -> bytes:
    """salt || AES-GCM(HKDF-SHA1(key, salt, "ss-subkey"), nonce 0, plaintext) for aes-128-gcm."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.hashes import SHA1
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    subkey = HKDF(algorithm=SHA1(), length=len(key), salt=salt, info=b"ss-subkey").derive(key)
    return salt + AESGCM(subkey).encrypt(b"\0" * 12, plaintext, None)
