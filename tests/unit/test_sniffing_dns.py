"""DNS question over UDP: queries built the way `dig` sends them (EDNS0 OPT with a cookie) and carried
over a real loopback UDP socket, responses with compression pointers, and malformed datagrams."""

from __future__ import annotations

import socket
import struct

import pytest
from sniff_builders import dns_answer_a, dns_header, dns_name, dns_query

from gostx.sniffing import DnsQuestion, parse_dns_question


def sent_over_udp(datagram: bytes) -> bytes:
    """The datagram as a local UDP listener receives it (the bytes a real socket carries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        client.sendto(datagram, server.getsockname())
        return server.recv(65535)


@pytest.mark.parametrize(("name", "qtype"), [
    ("example.com", 1), ("www.Example.COM", 28), ("a.b.c.d.e.f.example.org", 16), ("xn--bcher-kva.example", 65),
])
def test_dig_style_query(name: str, qtype: int) -> None:
    q = parse_dns_question(sent_over_udp(dns_query(name, qtype, ident=0xBEEF)))
    assert q == DnsQuestion(name=name, qtype=qtype, qclass=1, response=False, id=0xBEEF)


def test_query_without_edns() -> None:
    q = parse_dns_question(dns_query("plain.example", edns=False))
    assert q is not None and (q.name, q.qtype, q.response) == ("plain.example", 1, False)


def test_response_with_compressed_answer() -> None:
    q = parse_dns_question(dns_answer_a("r.example", bytes([192, 0, 2, 7])))
    assert q is not None and (q.name, q.qtype, q.qclass, q.response) == ("r.example", 1, 1, True)


def test_root_question_and_escaped_labels() -> None:
    assert parse_dns_question(dns_header(qd=1) + b"\x00" + struct.pack("!HH", 2, 1)).name == "."  # type: ignore[union-attr]
    odd = dns_header(qd=1) + b"\x03a.b\x03c d\x03\\x\xff\x00" + struct.pack("!HH", 1, 1)
    assert parse_dns_question(odd).name == "a\\.b.c\\032d.\\\\x\\255"  # type: ignore[union-attr]


def test_question_name_may_point_backwards() -> None:
    """Two questions; the second one's name is a pointer into the first (offset 12)."""
    data = dns_header(qd=2) + dns_name("first.example") + struct.pack("!HH", 1, 1)
    data += b"\x03sub\xc0\x0c" + struct.pack("!HH", 28, 1)
    q = parse_dns_question(data)
    assert q is not None and q.name == "first.example"


@pytest.mark.parametrize(("data", "why"), [
    (b"", "empty"),
    (dns_header()[:11], "short header"),
    (dns_header(qd=0), "no question"),
    (dns_header(qd=1) + b"\x03abc", "name runs out"),
    (dns_header(qd=1) + dns_name("a.example") + b"\x00", "truncated type/class"),
    (dns_header(qd=1) + b"\xc0\x0c" + struct.pack("!HH", 1, 1), "pointer to itself"),
    (dns_header(qd=1) + b"\xc0\x20" + struct.pack("!HH", 1, 1) + bytes(40), "forward pointer"),
    (dns_header(qd=1) + b"\x01a\xc0\x0c" + struct.pack("!HH", 1, 1), "pointer loop through a label"),
    (dns_header(qd=1) + b"\xc0", "half a pointer"),
    (dns_header(qd=1) + b"\x40" + bytes(64) + b"\x00" + struct.pack("!HH", 1, 1), "extended label type"),
    (dns_header(qd=1) + b"\x80abc\x00" + struct.pack("!HH", 1, 1), "reserved label type"),
    (dns_header(qd=1) + (b"\x3f" + b"a" * 63) * 4 + b"\x00" + struct.pack("!HH", 1, 1), "name over 255 bytes"),
    (dns_header(qd=2) + dns_name("one.example") + struct.pack("!HH", 1, 1), "second question missing"),
    (dns_header(qd=1, an=1) + dns_name("a.example") + struct.pack("!HH", 1, 1), "answer missing"),
    (dns_answer_a("a.example", b"\x01\x02\x03\x04")[:-1], "answer rdata cut"),
])
def test_malformed_datagrams(data: bytes, why: str) -> None:
    assert parse_dns_question(data) is None, why


def test_query_truncated_at_every_byte_is_refused() -> None:
    data = dns_query("trunc.example", 1)
    assert parse_dns_question(data) is not None
    for n in range(len(data)):
        assert parse_dns_question(data[:n]) is None, n


def test_other_udp_payloads_are_not_dns() -> None:
    quic_like = bytes([0xC3, 0, 0, 0, 1, 8]) + bytes(range(250)) * 4
    assert parse_dns_question(quic_like) is None
    assert parse_dns_question(b"hello, world, this is not dns at all") is None
