"""Plain regression tests for what the property tests (test_properties_*.py) found: host names a parser
accepted but getaddrinfo would refuse with a UnicodeError (a 64-byte label, a character IDNA rejects)."""

from __future__ import annotations

import pytest
from sniff_builders import client_hello, records, sni_ext

from gostx.protocol import socks5 as s5
from gostx.sniffing.http import parse_http_host
from gostx.sniffing.result import SniffState
from gostx.sniffing.tls import parse_tls_sni

LONG_LABEL = "a" * 64 + ".example.com"


def test_tls_sni_with_a_64_byte_label_names_no_host() -> None:
    result = parse_tls_sni(records(client_hello([sni_ext(LONG_LABEL.encode())])))
    assert result.state is SniffState.FOUND and result.host is None and result.reason == "invalid server name"
    ok = parse_tls_sni(records(client_hello([sni_ext(b"a" * 63 + b".example.com")])))
    assert ok.host == "a" * 63 + ".example.com"


def test_http_host_with_a_64_byte_label_is_not_sniffed() -> None:
    result = parse_http_host(f"GET / HTTP/1.1\r\nHost: {LONG_LABEL}\r\n\r\n".encode())
    assert result.host is None
    ok = parse_http_host(b"GET / HTTP/1.1\r\nHost: a.example.com:8080\r\n\r\n")
    assert (ok.host, ok.port) == ("a.example.com", 8080)


def test_socks5_encoding_a_name_idna_refuses_is_a_socks5_error() -> None:
    with pytest.raises(s5.Socks5Error):
        s5.encode_addr("\x80", 80)
    with pytest.raises(s5.Socks5Error) as info:
        s5.decode_addr(b"\x03\x01\x80\x00\x35")  # 0x80 alone is not UTF-8
    assert info.value.reply == s5.REP_HOST_UNREACHABLE


def test_direct_dial_and_udp_send_to_a_name_idna_refuses_fail_as_oserror() -> None:
    """The resolver's own UnicodeError (a 64-byte label) is a failed dial / dropped datagram, whatever
    path the name came by."""
    import asyncio
    import socket

    from gostx.net.direct import DialOptions, dial
    from gostx.net.packet import DirectPacketConn

    async def scenario() -> None:
        with pytest.raises(OSError, match="invalid host name"):
            await dial("tcp", LONG_LABEL, 80, DialOptions(timeout=2))
        conn = DirectPacketConn(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), connected=False)
        try:
            with pytest.raises(OSError, match="invalid host name"):
                await conn.sendto(b"x", f"{LONG_LABEL}:53")
        finally:
            conn.close()

    asyncio.run(scenario())


def test_forward_target_with_a_bad_name_fails_at_start() -> None:
    import asyncio

    from gostx.errors import GostError
    from tests.unit.proxytest import captured_logs, free_port, gost

    async def scenario() -> None:
        async with gost([f"tcp://127.0.0.1:{free_port()}/{LONG_LABEL}:80"]):
            pass

    with captured_logs(), pytest.raises(GostError, match=r"forward target .*not a valid name"):
        asyncio.run(scenario())
