"""The server name (SNI) of a TLS ClientHello, parsed from the raw records (RFC 8446 5.1, 4.1.2;
RFC 6066 3; RFC 8701 GREASE).

The ClientHello may span several handshake records (record fragmentation) and each record is
checked: content type 22, version 3.x (the first one 3.1-3.4, as gost's classifier wants), length
1..2^14. Every length field is checked against its enclosing structure; anything inconsistent is
NOT_THIS (the flow takes the normal path, bytes untouched). A complete ClientHello without a
server_name extension is FOUND with host None. GREASE extension types (0x?A?A) are skipped.
"""

from __future__ import annotations

from gostx.addr import AddressError, check_host
from gostx.sniffing.result import SniffResult, found, need_more, not_this
from gostx.sniffing.wire import Reader, Truncated

TLS_DEFAULT_PORT = 443
MAX_CLIENT_HELLO_BYTES = 64 * 1024  # records included; real ones are 0.2-2 KiB (PQ key shares ~1.2 KiB)

RECORD_HEADER = 5
MAX_RECORD_PAYLOAD = 1 << 14
CONTENT_HANDSHAKE = 22
HANDSHAKE_CLIENT_HELLO = 1
EXT_SERVER_NAME = 0
NAME_TYPE_HOST = 0
MAX_HOST_NAME = 255


def is_grease(value: int) -> bool:
    """RFC 8701: 0x0A0A, 0x1A1A, ..., 0xFAFA."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def parse_tls_sni(buf: bytes | bytearray | memoryview) -> SniffResult:
    """Parse the ClientHello at the start of `buf`; NEED_MORE until all its records are there."""
    data = memoryview(buf)
    handshake = bytearray()
    pos = 0
    while True:
        if len(data) - pos < RECORD_HEADER:
            return need_more("record header")
        content_type, major, minor = data[pos], data[pos + 1], data[pos + 2]
        length = (data[pos + 3] << 8) | data[pos + 4]
        if content_type != CONTENT_HANDSHAKE:
            return not_this("not a handshake record" if pos == 0 else "a non-handshake record inside the ClientHello")
        lowest_minor = 1 if pos == 0 else 0
        if major != 3 or not lowest_minor <= minor <= 4:
            return not_this(f"record version {major}.{minor}")
        if length == 0 or length > MAX_RECORD_PAYLOAD:
            return not_this(f"record length {length}")
        end = pos + RECORD_HEADER + length
        if end > MAX_CLIENT_HELLO_BYTES:
            return not_this("ClientHello over the size limit")
        if len(data) < end:
            return need_more("record payload")
        handshake += data[pos + RECORD_HEADER:end]
        pos = end
        if len(handshake) < 4:
            continue
        if handshake[0] != HANDSHAKE_CLIENT_HELLO:
            return not_this(f"handshake type {handshake[0]} is not a ClientHello")
        body_len = int.from_bytes(handshake[1:4], "big")
        if 4 + body_len > MAX_CLIENT_HELLO_BYTES:
            return not_this("ClientHello over the size limit")
        if len(handshake) < 4 + body_len:
            continue
        if len(handshake) > 4 + body_len:
            return not_this("data after the ClientHello in its record")
        return _parse_client_hello(memoryview(handshake)[4:], consumed=pos)


def _parse_client_hello(body: memoryview, consumed: int) -> SniffResult:
    try:
        r = Reader(body)
        major = r.u8()
        r.u8()  # legacy_version minor
        if major != 3:
            return not_this(f"ClientHello version major {major}")
        r.take(32)  # random
        if len(r.vec8()) > 32:
            return not_this("session id over 32 bytes")
        suites = r.vec16()
        if len(suites) < 2 or len(suites) % 2:
            return not_this("bad cipher suite list")
        if not r.vec8():
            return not_this("no compression methods")
        if r.remaining == 0:
            return found(None, None, consumed, "no extensions")
        extensions = r.vec16()
        if r.remaining:
            return not_this("bytes after the extensions")
        return _server_name(extensions, consumed)
    except Truncated as exc:
        return not_this(f"truncated ClientHello field ({exc})")


def _server_name(extensions: bytes, consumed: int) -> SniffResult:
    r = Reader(extensions)
    seen: set[int] = set()
    host: str | None = None
    reason = "no server_name extension"
    while r.remaining:
        ext_type = r.u16()
        ext_data = r.vec16()
        if is_grease(ext_type):
            continue
        if ext_type in seen:
            return not_this(f"duplicate extension {ext_type}")
        seen.add(ext_type)
        if ext_type == EXT_SERVER_NAME:
            host, reason = _host_name(ext_data)
    return found(host, TLS_DEFAULT_PORT, consumed, reason)


def _host_name(ext_data: bytes) -> tuple[str | None, str]:
    """The first host_name entry of a server_name extension (RFC 6066 3)."""
    if not ext_data:
        return None, "empty server_name extension"
    r = Reader(ext_data)
    names = r.vec16()
    if r.remaining:
        raise Truncated("bytes after the server name list")
    lr = Reader(names)
    entries: list[tuple[int, bytes]] = []
    while lr.remaining:  # read the whole list, so a wrong length anywhere in it is caught
        name_type = lr.u8()
        entries.append((name_type, lr.vec16()))
    for name_type, name in entries:
        if name_type == NAME_TYPE_HOST:
            host = _valid_host_name(name)
            return (host, "") if host else (None, "invalid server name")
    return None, "no host_name in server_name"


def _valid_host_name(name: bytes) -> str | None:
    """A DNS name or IP literal in ASCII letters, digits, '-', '_', '.', ':' (one trailing dot dropped),
    that gostx.addr.check_host accepts."""
    if name.endswith(b"."):
        name = name[:-1]
    if not name or len(name) > MAX_HOST_NAME:
        return None
    if not all(c in _HOST_CHARS for c in name) or name.startswith(b".") or b".." in name:
        return None
    try:  # labels of 1..63 bytes: what getaddrinfo will take (a 64-byte label would be a UnicodeError)
        return check_host(name.decode("ascii"))
    except AddressError:
        return None


_HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
