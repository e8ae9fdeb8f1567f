"""Tiny encoders for the sniffing tests: TLS ClientHello records (RFC 8446 4.1.2) and DNS messages
(RFC 1035 4.1). They build wire bytes from parts so edge cases can be made on purpose."""

from __future__ import annotations

import struct
from collections.abc import Sequence


def u8(n: int) -> bytes:
    return struct.pack("!B", n)


def u16(n: int) -> bytes:
    return struct.pack("!H", n)


def u24(n: int) -> bytes:
    return struct.pack("!I", n)[1:]


def vec8(data: bytes) -> bytes:
    return u8(len(data)) + data


def vec16(data: bytes) -> bytes:
    return u16(len(data)) + data


# ----------------------------------------------------------------------------------------------
# TLS

GREASE = [0x0A0A + 0x1010 * i for i in range(16)]


def ext(ext_type: int, data: bytes) -> bytes:
    return u16(ext_type) + vec16(data)


def sni_ext(*names: bytes, name_type: int = 0) -> bytes:
    entries = b"".join(u8(name_type) + vec16(n) for n in names)
    return ext(0, vec16(entries))


def tls13_extensions(server_name: bytes | None, grease: bool = True) -> list[bytes]:
    """What a modern browser-like TLS 1.3 client sends: GREASE first and last, supported_versions,
    key_share (a GREASE share and X25519), groups, signature algorithms, ALPN, PSK modes."""
    exts: list[bytes] = []
    if grease:
        exts.append(ext(GREASE[1], b""))
    if server_name is not None:
        exts.append(sni_ext(server_name))
    groups = ([GREASE[2]] if grease else []) + [0x001D, 0x0017, 0x0018]
    exts.append(ext(10, vec16(b"".join(u16(g) for g in groups))))
    exts.append(ext(11, vec8(b"\x00")))  # ec_point_formats
    exts.append(ext(13, vec16(b"".join(u16(s) for s in (0x0403, 0x0804, 0x0401)))))
    exts.append(ext(16, vec16(vec8(b"h2") + vec8(b"http/1.1"))))  # ALPN
    shares = (u16(GREASE[2]) + vec16(b"\x00") if grease else b"") + u16(0x001D) + vec16(bytes(range(32)))
    exts.append(ext(51, vec16(shares)))  # key_share
    exts.append(ext(45, vec8(b"\x01")))  # psk_key_exchange_modes: psk_dhe_ke
    versions = ([GREASE[3]] if grease else []) + [0x0304, 0x0303]
    exts.append(ext(43, vec8(b"".join(u16(v) for v in versions))))  # supported_versions
    if grease:
        exts.append(ext(GREASE[4], b"\x00"))
    return exts


def client_hello(extensions: Sequence[bytes] | None, *, version: int = 0x0303, session_id: bytes = bytes(32),
                 suites: Sequence[int] = (0x1301, 0x1302, 0xC02F), compression: bytes = b"\x00") -> bytes:
    """The handshake message (type 1 + 24-bit length + body); extensions None = no extensions block."""
    body = u16(version) + bytes(range(32)) + vec8(session_id)
    body += vec16(b"".join(u16(s) for s in suites)) + vec8(compression)
    if extensions is not None:
        body += vec16(b"".join(extensions))
    return b"\x01" + u24(len(body)) + body


def records(handshake: bytes, sizes: Sequence[int] = (), record_version: int = 0x0301) -> bytes:
    """The handshake bytes in TLS records: one record, or records of the given payload sizes (the
    last size repeats until everything is sent)."""
    out = bytearray()
    pos = 0
    i = 0
    while pos < len(handshake):
        size = sizes[min(i, len(sizes) - 1)] if sizes else len(handshake)
        chunk = handshake[pos:pos + size]
        out += u8(22) + u16(record_version) + vec16(chunk)
        pos += len(chunk)
        i += 1
    return bytes(out)


def handshake_payload(data: bytes) -> bytes:
    """The concatenated payloads of the TLS records in `data` (to re-fragment a captured hello)."""
    out = bytearray()
    pos = 0
    while pos + 5 <= len(data):
        length = struct.unpack("!H", data[pos + 3:pos + 5])[0]
        out += data[pos + 5:pos + 5 + length]
        pos += 5 + length
    return bytes(out)


# ----------------------------------------------------------------------------------------------
# DNS

def dns_name(name: str) -> bytes:
    if name in ("", "."):
        return b"\x00"
    return b"".join(vec8(label.encode()) for label in name.rstrip(".").split(".")) + b"\x00"


def dns_header(ident: int = 0x1234, flags: int = 0x0120, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!6H", ident, flags, qd, an, ns, ar)


def dns_query(name: str, qtype: int = 1, qclass: int = 1, *, ident: int = 0x1234, edns: bool = True) -> bytes:
    """A query as `dig` sends it: RD and AD set, one question, an EDNS0 OPT record (4096-byte
    payload, DO clear) with a cookie option."""
    question = dns_name(name) + struct.pack("!HH", qtype, qclass)
    if not edns:
        return dns_header(ident, 0x0120, 1) + question
    cookie = struct.pack("!HH", 10, 8) + bytes(range(8))
    opt = b"\x00" + struct.pack("!HHIH", 41, 4096, 0, len(cookie)) + cookie
    return dns_header(ident, 0x0120, 1, 0, 0, 1) + question + opt


def dns_answer_a(name: str, ip: bytes, *, ident: int = 0x1234) -> bytes:
    """A response whose answer names the question by a compression pointer (0xC00C)."""
    question = dns_name(name) + struct.pack("!HH", 1, 1)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, len(ip)) + ip
    return dns_header(ident, 0x8180, 1, 1) + question + answer


def hello_complete(data: bytes) -> bool:
    """Whether the records in `data` hold a whole handshake message (for stopping a capture)."""
    payload = handshake_payload(data)
    return len(payload) >= 4 and len(payload) >= 4 + int.from_bytes(payload[1:4], "big")
