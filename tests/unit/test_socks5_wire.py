"""SOCKS5 wire format against bytes written by hand from RFC 1928 and GOST's 0xF3 frame (spec v3.md 9.3)."""

from __future__ import annotations

import pytest

from gostx.protocol import socks5 as s5


@pytest.mark.parametrize(("host", "port", "wire"), [
    ("1.2.3.4", 80, b"\x01\x01\x02\x03\x04\x00\x50"),
    ("::ffff:1.2.3.4", 80, b"\x01\x01\x02\x03\x04\x00\x50"),
    ("fd00::1", 443, b"\x04\xfd" + b"\x00" * 14 + b"\x01\x01\xbb"),
    ("example.com", 443, b"\x03\x0bexample.com\x01\xbb"),
    ("", 8421, b"\x01\x00\x00\x00\x00\x20\xe5"),
])
def test_address_encoding(host: str, port: int, wire: bytes) -> None:
    assert s5.encode_addr(host, port) == wire
    decoded = s5.decode_addr(wire)
    assert decoded is not None and decoded[1:] == (port, len(wire))


def test_address_decoding_incomplete_and_bad() -> None:
    assert s5.decode_addr(b"\x01\x01\x02") is None
    assert s5.decode_addr(b"\x03\x05ab") is None
    with pytest.raises(s5.Socks5Error) as info:
        s5.decode_addr(b"\x09\x00\x00")
    assert info.value.reply == s5.REP_ADDR_UNSUPPORTED
    with pytest.raises(s5.Socks5Error):
        s5.decode_addr(b"\x03\x00\x00\x50")


def test_udp_tun_frame_matches_the_spec_bytes() -> None:
    # LEN(2) FRAG(1) ATYP ADDR PORT DATA: 3 bytes of data to 1.2.3.4:53
    frame = b"\x00\x03\x00\x01\x01\x02\x03\x04\x00\x35abc"
    assert s5.udp_frame(b"abc", "1.2.3.4", 53) == frame
    assert s5.parse_udp_frame(frame) == (b"abc", "1.2.3.4", 53, len(frame))
    assert s5.parse_udp_frame(frame[:-1]) is None
    assert s5.parse_udp_frame(frame + b"next") == (b"abc", "1.2.3.4", 53, len(frame))
    with pytest.raises(s5.Socks5Error):
        s5.parse_udp_frame(b"\x00\x00\x00\x01\x01\x02\x03\x04\x00\x35")
    with pytest.raises(s5.Socks5Error):
        s5.udp_frame(b"", "1.2.3.4", 53)


def test_rfc1928_udp_datagram() -> None:
    wire = b"\x00\x00\x00\x03\x09localhost\x1f\x90hi"
    assert s5.udp_datagram(b"hi", "localhost", 8080) == wire
    assert s5.parse_udp_datagram(wire) == (b"hi", "localhost", 8080)
    with pytest.raises(s5.Socks5Error, match="fragmented"):
        s5.parse_udp_datagram(b"\x00\x00\x01\x01\x01\x02\x03\x04\x00\x35x")
    with pytest.raises(s5.Socks5Error):
        s5.parse_udp_datagram(b"\x00\x00")
