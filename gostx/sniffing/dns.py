"""The question of a DNS message carried in one UDP datagram (RFC 1035 4.1; gost records it with
miekg/dns when `sniffing` is on, queries and responses alike).

The whole message is walked: header, every question, and the answer, authority and additional
records as far as their counts say, so a datagram of another protocol that happens to start like a
DNS header is refused. Names may use compression pointers; each pointer must point before itself
(no loops) and a name is at most 255 bytes. Anything malformed gives None.
"""

from __future__ import annotations

from dataclasses import dataclass

from gostx.sniffing.wire import Reader, Truncated

HEADER_BYTES = 12
MAX_NAME_BYTES = 255
MAX_POINTERS = 127  # more than any legal name can need (255 bytes, 2-byte labels)


@dataclass(frozen=True)
class DnsQuestion:
    name: str       # presentation form without the final dot ("example.com"; the root is ".")
    qtype: int      # 1 = A, 28 = AAAA, ...
    qclass: int     # 1 = IN
    response: bool  # the QR bit: this datagram is an answer
    id: int


def parse_dns_question(datagram: bytes | bytearray | memoryview) -> DnsQuestion | None:
    """The first question of a well-formed DNS message, or None."""
    data = bytes(datagram)
    try:
        r = Reader(data)
        ident, flags = r.u16(), r.u16()
        qdcount, ancount, nscount, arcount = r.u16(), r.u16(), r.u16(), r.u16()
        if qdcount == 0:
            return None
        first: DnsQuestion | None = None
        for _ in range(qdcount):
            name = _read_name(data, r)
            qtype, qclass = r.u16(), r.u16()
            if first is None:
                first = DnsQuestion(name, qtype, qclass, bool(flags & 0x8000), ident)
        for _ in range(ancount + nscount + arcount):
            _read_name(data, r)
            r.take(8)  # type, class, ttl
            r.vec16()  # rdata
        return first
    except (Truncated, ValueError):
        return None


def _read_name(data: bytes, r: Reader) -> str:
    """Read a (possibly compressed) name at the reader's position; advance past its in-place part."""
    labels: list[str] = []
    total = 1  # the root label's length byte
    pos = r.pos
    end_of_inline: int | None = None
    pointers = 0
    while True:
        if pos >= len(data):
            raise Truncated("name runs past the message")
        length = data[pos]
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= len(data):
                raise Truncated("truncated compression pointer")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            pointers += 1
            if target >= pos or pointers > MAX_POINTERS:
                raise ValueError("compression pointer loop")
            if end_of_inline is None:
                end_of_inline = pos + 2
            pos = target
            continue
        if kind:
            raise ValueError("reserved label type")
        if length == 0:
            pos += 1
            break
        label = data[pos + 1:pos + 1 + length]
        if len(label) != length:
            raise Truncated("label runs past the message")
        total += length + 1
        if total > MAX_NAME_BYTES:
            raise ValueError("name over 255 bytes")
        labels.append(_escape_label(label))
        pos += 1 + length
    r.take((end_of_inline if end_of_inline is not None else pos) - r.pos)
    return ".".join(labels) if labels else "."


def _escape_label(label: bytes) -> str:
    """Presentation form (RFC 1035 5.1): '.' and '\\' escaped, bytes outside printable ASCII as \\DDD."""
    out = []
    for b in label:
        if b in (0x2E, 0x5C):
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)
