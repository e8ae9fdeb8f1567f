"""Property tests (hypothesis) of the servers' request parsing: SOCKS5, HTTP proxy, relay, WebSocket.
Random bytes and mutated valid requests go to the parse functions; the only exceptions allowed are the
protocol's own error types (and the stream's ConnectionError at EOF). A host name that parses must be
one a resolver takes (IDNA-encodable), since it goes to getaddrinfo next."""

from __future__ import annotations

import struct

from hypothesis import example, given
from hypothesis import strategies as st
from propertytest import FEW, PROPS, MemStream, mutated, run

from gostx import _engine
from gostx.handler.http import _target
from gostx.net.ws import WsStream
from gostx.protocol import relay as rp
from gostx.protocol import socks5 as s5
from gostx.protocol import websocket as wsp
from gostx.protocol.http import HttpError, parse_head, read_head

NAMES = st.one_of(
    st.binary(min_size=0, max_size=70),
    st.sampled_from([b"example.com", b"a" * 64, b"\xff\xfe", b"a..b", b"a\x00b", b"xn--", b"::1", b"1.2.3.4"]),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def usable(host: str) -> None:
    host.encode("idna")  # raises UnicodeError when getaddrinfo would


def socks_addr(name: bytes, port: int) -> bytes:
    return bytes([s5.ATYP_DOMAIN, len(name) & 0xFF]) + name[:255] + struct.pack(">H", port)


VALID_SOCKS = st.builds(
    lambda cmd, addr: bytes([5, cmd, 0]) + addr,
    st.sampled_from([1, 2, 3, 0xF3]),
    st.one_of(st.builds(socks_addr, NAMES, st.integers(0, 65535)),
              st.sampled_from([s5.encode_addr("10.1.2.3", 80), s5.encode_addr("fe80::1", 443)])))


# -- SOCKS5 ------------------------------------------------------------------------------------------


@PROPS
@given(st.one_of(st.binary(max_size=300), mutated(VALID_SOCKS)))
@example(b"\x05\x01\x00\x03\x02\xff\xfe\x00\x50")
def test_socks5_request_parsing(data: bytes) -> None:
    try:
        _cmd, host, port = run(s5.read_request(MemStream(data, chunk=7)))
    except ConnectionError:  # Socks5Error, or EOF inside the request
        return
    usable(host)
    assert 0 <= port <= 65535


@PROPS
@given(st.one_of(st.binary(max_size=300), mutated(st.builds(lambda a: b"\x00\x00\x00" + a + b"data", st.builds(
    socks_addr, NAMES, st.integers(0, 65535))))))
def test_socks5_udp_datagram_and_frame_parsing(data: bytes) -> None:
    try:
        _payload, host, _port = s5.parse_udp_datagram(data)
        usable(host)
    except s5.Socks5Error:
        pass
    try:
        parsed = s5.parse_udp_frame(data)
    except s5.Socks5Error:
        return
    if parsed is not None:
        usable(parsed[1])
        assert parsed[3] <= len(data)


@PROPS
@given(st.text(max_size=70), st.integers(0, 65535))
def test_socks5_address_round_trip(host: str, port: int) -> None:
    try:
        encoded = s5.encode_addr(host, port)
    except s5.Socks5Error:
        return
    try:
        decoded = s5.decode_addr(encoded)
    except s5.Socks5Error:
        return  # a name the encoder took but no resolver would (e.g. a 64-byte label)
    assert decoded is not None and decoded[1:] == (port, len(encoded))
    usable(decoded[0])


# -- HTTP --------------------------------------------------------------------------------------------

HTTP_VALID = st.builds(
    lambda method, host, tail: f"{method} {host} HTTP/1.1\r\nHost: x\r\n{tail}\r\n".encode("utf-8", "surrogatepass"),
    st.sampled_from(["CONNECT", "GET", "POST"]),
    st.one_of(st.sampled_from(["example.com:443", "http://example.com/", "http://[::1]:80/x", "http://[::1/",
                               "http://a:b@c:1/", "[fe80::1]:22"]), st.text(max_size=40)),
    st.sampled_from(["", "Proxy-Authorization: Basic dTpw\r\n", "X: y\r\n"]))


@PROPS
@given(st.one_of(st.binary(max_size=300), mutated(HTTP_VALID)))
@example(b"GET http://[::1/ HTTP/1.1\r\n\r\n")
@example(b"CONNECT " + b"1" * 5000 + b":1 HTTP/1.1\r\n\r\n")
def test_http_request_parsing(data: bytes) -> None:
    try:
        raw = run(read_head(MemStream(data, chunk=5)))
        if not raw:
            return
        _method, target = _target(parse_head(raw))
    except HttpError:
        return
    host, _, port = target.rpartition(":")
    usable(host.strip("[]"))
    assert 0 <= int(port) <= 65535


# -- relay -------------------------------------------------------------------------------------------


def relay_request(cmd: int, features: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack(">BH", t, len(d)) + d for t, d in features)
    return struct.pack(">BBH", 1, cmd, len(body)) + body


VALID_RELAY = st.builds(
    relay_request, st.sampled_from([0, 1, 2, 3, 0x81, 0x82]),
    st.lists(st.one_of(
        st.builds(lambda a: (2, a), st.builds(socks_addr, NAMES, st.integers(0, 65535))),
        st.builds(lambda u, p: (1, bytes([len(u)]) + u + bytes([len(p)]) + p), st.binary(max_size=8),
                  st.binary(max_size=8)),
        st.builds(lambda n: (4, struct.pack(">H", n)), st.integers(0, 0x11)),
        st.builds(lambda t: (3, t), st.binary(min_size=16, max_size=20))), max_size=4))


@PROPS
@given(st.one_of(st.binary(max_size=300), mutated(VALID_RELAY)))
@example(relay_request(1, [(2, socks_addr(b"\xff\xfe", 80))]))
def test_relay_request_parsing(data: bytes) -> None:
    try:
        req = run(rp.read_request(MemStream(data, chunk=3)))
    except rp.RelayError as exc:
        assert exc.status in (None, rp.STATUS_BAD_REQUEST)
        return
    addr = req.find(rp.Addr)
    if isinstance(addr, rp.Addr) and addr.host:
        usable(addr.host)
        assert rp.Addr.parse(addr.join()) == addr
    assert req.network in rp.NETWORK_NAMES.values()


# -- WebSocket ---------------------------------------------------------------------------------------

WS_REQUEST = st.builds(
    lambda path, extra: (f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
                         ).encode("utf-8", "surrogatepass"),
    st.sampled_from(["/ws", "/ws?x=1", "/other", ""]), st.sampled_from(["", "X-Forwarded-For: 1.2.3.4\r\n"]))


@PROPS
@given(st.one_of(st.binary(max_size=300), mutated(WS_REQUEST)))
def test_websocket_handshake_parsing(data: bytes) -> None:
    try:
        raw, _ = run(wsp.read_head(MemStream(data, chunk=11)))
        if raw:
            answer, head = wsp.server_accept(raw, "/ws")
            assert answer.startswith(b"HTTP/1.1 101 ")
            wsp.client_addr(head, "")
    except wsp.HandshakeError as exc:
        assert exc.status in (400, 404, 405, 431, 0)


def ws_frames(opcode: int, payload: bytes, masked: bool) -> bytes:
    return _engine.ws_frame(payload, opcode, True, b"\x01\x02\x03\x04" if masked else None)


VALID_FRAMES = st.lists(st.builds(ws_frames, st.sampled_from([0, 1, 2, 8, 9, 10]), st.binary(max_size=140),
                                  st.booleans()), max_size=4).map(b"".join)


async def _read_all(stream: WsStream) -> bytes:
    out = b""
    while data := await stream.read(1000):
        out += data
    return out


@FEW
@given(st.booleans(), st.one_of(st.binary(max_size=200), mutated(VALID_FRAMES)))
@example(False, bytes([0x82, 0xFF]) + b"\x80" + bytes(7) + b"abcd")
@example(False, bytes([0x82, 0xFF]) + struct.pack(">Q", 1 << 40) + b"abcd")
@example(True, b"\x00\x7f\x80\x00\x80\x00\x80\x02\x00\x00")  # a client sends a masked close
def test_websocket_frame_reading(client: bool, data: bytes) -> None:
    inner = MemStream(data, chunk=9)
    stream = WsStream(inner, client=client)
    try:
        run(_read_all(stream))
    except ConnectionError as exc:
        assert str(exc).startswith("websocket: "), exc
        if "limit" in str(exc) or "most significant" in str(exc):
            # a close frame went out first (a client's is masked: MASK bit with its 2-byte length)
            assert inner.written[:2] == (b"\x88\x82" if client else b"\x88\x02")
    finally:
        stream.close()
