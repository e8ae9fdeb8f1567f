"""The relay protocol on the wire (spec v3.md 7), checked against an encoder written here from the spec,
not with gostx.protocol.relay's: what the connector sends, what the handler answers (statuses, the cached
response riding on the first data, UDP frames), and what it does with malformed headers."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

import pytest
from relaytest import echo_tcp, echo_udp, free_port, gost

# -- the spec's encoder ------------------------------------------------------------------------------


def feature(ftype: int, data: bytes) -> bytes:
    return bytes([ftype]) + struct.pack(">H", len(data)) + data


def addr(host: str, port: int) -> bytes:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return feature(0x02, bytes([0x03, len(host)]) + host.encode() + struct.pack(">H", port))
    atyp = 0x01 if ip.version == 4 else 0x04
    return feature(0x02, bytes([atyp]) + ip.packed + struct.pack(">H", port))


def user_auth(user: str, password: str) -> bytes:
    return feature(0x01, bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode())


def network(nid: int) -> bytes:
    return feature(0x04, struct.pack(">H", nid))


def header(code: int, features: bytes) -> bytes:
    return bytes([0x01, code]) + struct.pack(">H", len(features)) + features


OK = bytes.fromhex("01000000")


def test_spec_examples_match_the_encoder() -> None:
    """The byte strings printed in the spec, so the encoder above is the spec's."""
    assert header(0x01, addr("example.com", 443)) == bytes.fromhex("01010012") + bytes.fromhex(
        "02000f030b") + b"example.com" + bytes.fromhex("01bb")
    assert header(0x81, network(1) + addr("1.1.1.1", 53)) == bytes.fromhex(
        "0181000f" "0400020001" "02000701010101010035")
    assert header(0x00, b"") == OK


# -- the connector -----------------------------------------------------------------------------------


class Capture:
    """A TCP server that records the first bytes of each connection and answers with `answer`."""

    def __init__(self, answer: bytes, want: int) -> None:
        self.answer = answer
        self.want = want
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(self.want)
        await self.received.put(data)
        writer.write(self.answer)
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()


async def _connector_bytes(node: str, network_: str, target: str, want: int, answer: bytes = OK) -> bytes:
    """What a relay node receives when gostx dials target through `-F node` (the node replaced by a
    capturing server)."""
    from gostx.chain import build_router
    from gostx.config.cmd import build_config
    from gostx.config.metadata import Metadata
    from gostx.plugins import load_builtin_plugins

    load_builtin_plugins()
    cap = Capture(answer, want)
    server = await asyncio.start_server(cap.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = build_config([":0"], [node.format(port=port)])
        router = build_router(config.chains[0], config, Metadata())
        conn = await router.dial(network_, target)
        if network_ == "tcp":
            await conn.write(b"PAYLOAD")  # type: ignore[union-attr]
        else:
            await conn.sendto(b"DGRAM")  # type: ignore[union-attr]
        data = await asyncio.wait_for(cap.received.get(), 5)
        conn.close()
        return data
    finally:
        server.close()


@pytest.mark.parametrize(("target", "expected"), [
    ("example.com:443", addr("example.com", 443)),
    ("10.1.2.3:80", addr("10.1.2.3", 80)),
    ("[2001:db8::1]:8443", addr("2001:db8::1", 8443)),
])
def test_connect_request_rides_on_the_first_write(target: str, expected: bytes) -> None:
    want = len(header(0x01, expected)) + len(b"PAYLOAD")
    data = asyncio.run(_connector_bytes("relay://127.0.0.1:{port}", "tcp", target, want))
    assert data == header(0x01, expected) + b"PAYLOAD"


def test_connect_request_with_credentials_puts_user_auth_before_the_address() -> None:
    feats = user_auth("alice", "s3cret") + addr("example.com", 443)
    want = len(header(0x01, feats)) + 7
    data = asyncio.run(_connector_bytes("relay://alice:s3cret@127.0.0.1:{port}", "tcp", "example.com:443", want))
    assert data == header(0x01, feats) + b"PAYLOAD"


def test_nodelay_sends_the_request_alone() -> None:
    req = header(0x01, addr("example.com", 443))
    data = asyncio.run(_connector_bytes("relay://127.0.0.1:{port}?nodelay=true", "tcp", "example.com:443",
                                        len(req)))
    assert data == req


def test_udp_connect_request_and_first_frame() -> None:
    req = header(0x81, network(1) + addr("1.1.1.1", 53))
    want = len(req) + 2 + 5
    data = asyncio.run(_connector_bytes("relay://127.0.0.1:{port}", "udp", "1.1.1.1:53", want))
    assert data == req + b"\x00\x05DGRAM"


def test_udp_association_request() -> None:
    req = header(0x82, network(1) + addr("", 0))
    assert req == bytes.fromhex("0182000c" "0400020001" "02000403000000")  # an empty host: 03 00 PORT
    data = asyncio.run(_connector_bytes("relay://127.0.0.1:{port}", "udp", "", len(req),
                                        answer=header(0x00, addr("0.0.0.0", 4000))))
    assert data == req


def test_an_error_status_fails_the_dial() -> None:
    async def main() -> str:
        try:
            await _connector_bytes("relay://127.0.0.1:{port}?nodelay=true", "tcp", "example.com:443",
                                   len(header(0x01, addr("example.com", 443))), answer=bytes.fromhex("01070000"))
        except ConnectionError as exc:
            return str(exc)
        return "no error"

    assert "network unreachable" in asyncio.run(main())


# -- the handler -------------------------------------------------------------------------------------


async def _exchange(port: int, data: bytes, want: int, timeout: float = 5.0) -> bytes:
    """Send data to the relay server; the bytes it sends back (up to want, or until it closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    got = b""
    try:
        while len(got) < want:
            chunk = await asyncio.wait_for(reader.read(want - len(got)), timeout)
            if not chunk:
                break
            got += chunk
    finally:
        writer.close()
    return got


def run_handler(url: str, data: bytes, want: int, echo: str = "tcp") -> bytes:
    async def main() -> bytes:
        port = free_port()
        echo_cm = echo_tcp() if echo == "tcp" else echo_udp()
        async with echo_cm as eport, gost([url.format(port=port, echo=eport)]):
            return await _exchange(port, data(eport) if callable(data) else data, want)

    return asyncio.run(main())


def test_connect_answers_ok_in_front_of_the_first_data() -> None:
    got = run_handler("relay://127.0.0.1:{port}",
                      lambda e: header(0x01, addr("127.0.0.1", e)) + b"hello", len(OK) + 5)
    assert got == OK + b"hello"


def test_connect_nodelay_also_works() -> None:
    got = run_handler("relay://127.0.0.1:{port}?nodelay=true",
                      lambda e: header(0x01, addr("127.0.0.1", e)) + b"hi", len(OK) + 2)
    assert got == OK + b"hi"


def test_command_zero_is_connect() -> None:
    got = run_handler("relay://127.0.0.1:{port}", lambda e: header(0x00, addr("127.0.0.1", e)) + b"zero",
                      len(OK) + 4)
    assert got == OK + b"zero"


def test_udp_connect_frames() -> None:
    got = run_handler("relay://127.0.0.1:{port}",
                      lambda e: header(0x81, network(1) + addr("127.0.0.1", e)) + b"\x00\x04ping",
                      len(OK) + 2 + 9, echo="udp")
    assert got == OK + b"\x00\x09echo:ping"


def test_network_feature_alone_selects_udp() -> None:
    got = run_handler("relay://127.0.0.1:{port}",
                      lambda e: header(0x01, network(1) + addr("127.0.0.1", e)) + b"\x00\x02hi",
                      len(OK) + 2 + 7, echo="udp")
    assert got == OK + b"\x00\x07echo:hi"


@pytest.mark.parametrize(("request_bytes", "expected"), [
    (header(0x01, b""), bytes.fromhex("01010000")),                        # CONNECT without an address
    (header(0x05, addr("127.0.0.1", 9)), bytes.fromhex("01010000")),       # unknown command
    (header(0x02, addr("127.0.0.1", 0)), bytes.fromhex("01030000")),       # BIND without bind=true
    (header(0x82, addr("127.0.0.1", 0)), bytes.fromhex("01030000")),       # UDP BIND without bind=true
    (header(0x01, addr("127.0.0.1", 1)), bytes.fromhex("01070000")),       # dial failure (port 1 refuses)
    (b"\x02\x01\x00\x00", b""),                                            # bad version: closed, no answer
    (header(0x01, feature(0x09, b"\x00\x00") + addr("1.2.3.4", 80)), b""),  # unknown feature type
    (header(0x01, feature(0x02, b"\x01\x01")), b""),                       # short address feature
    (bytes.fromhex("0101000a") + b"\x02\x00", b""),                        # FEALEN beyond the data
])
def test_status_codes_and_malformed_requests(request_bytes: bytes, expected: bytes) -> None:
    got = run_handler("relay://127.0.0.1:{port}?readTimeout=1s", request_bytes, 16)
    assert got == expected


def test_authentication() -> None:
    target = lambda e: addr("127.0.0.1", e)  # noqa: E731
    url = "relay://alice:s3cret@127.0.0.1:{port}"
    assert run_handler(url, lambda e: header(0x01, target(e)), 16) == bytes.fromhex("01020000")
    assert run_handler(url, lambda e: header(0x01, user_auth("alice", "wrong") + target(e)), 16) == \
        bytes.fromhex("01020000")
    got = run_handler(url, lambda e: header(0x01, user_auth("alice", "s3cret") + target(e)) + b"ok", 6)
    assert got == OK + b"ok"


def test_forward_mode_ignores_the_requested_address() -> None:
    got = run_handler("relay://127.0.0.1:{port}/127.0.0.1:{echo}",
                      header(0x01, addr("192.0.2.1", 9)) + b"fwd", len(OK) + 3)
    assert got == OK + b"fwd"


def test_forward_mode_dial_failure_is_host_unreachable() -> None:
    got = run_handler("relay://127.0.0.1:{port}/127.0.0.1:1", header(0x01, b""), 16)
    assert got == bytes.fromhex("01060000")


def test_udp_association_with_bind() -> None:
    async def main() -> tuple[bytes, bytes]:
        port = free_port()
        async with echo_udp() as eport, gost([f"relay://127.0.0.1:{port}?bind=true"]):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(header(0x82, network(1) + addr("", 0)))
            head = await asyncio.wait_for(reader.readexactly(4), 5)
            body = await reader.readexactly(struct.unpack(">H", head[2:])[0])
            # a 0xF3 frame: LEN(2) FRAG(1) ATYP ADDR PORT DATA
            writer.write(struct.pack(">HB", 3, 0) + b"\x01" + socket.inet_aton("127.0.0.1")
                         + struct.pack(">H", eport) + b"abc")
            frame = await asyncio.wait_for(reader.readexactly(3 + 7 + 8), 5)
            writer.close()
            return head + body, frame

    response, frame = asyncio.run(main())
    assert response[:2] == b"\x01\x00"
    assert response[4] == 0x02 and response[7] == 0x04  # the bound [::]:port, an IPv6 address as in gost
    assert frame[:2] == b"\x00\x08" and frame[-8:] == b"echo:abc"


SMUX = struct.Struct("<BBHI")  # smux v1: VER CMD LENGTH(le) STREAM-ID(le)


async def _smux_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    while True:
        version, cmd, length, sid = SMUX.unpack(await asyncio.wait_for(reader.readexactly(8), 5))
        assert version == 1
        data = await reader.readexactly(length)
        if cmd != 3:  # NOP
            return cmd, sid, data


def test_tcp_bind_is_an_smux_session() -> None:
    """rtcp through a relay server: BIND answers the bound address; each inbound connection arrives as an smux
    stream (SYN) whose first bytes are a Response with the peer's address, then the data both ways."""
    async def main() -> None:
        port = free_port()
        async with gost([f"relay://127.0.0.1:{port}?bind=true"]):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(header(0x02, addr("127.0.0.1", 0)))
            head = await asyncio.wait_for(reader.readexactly(4), 5)
            assert head[:2] == b"\x01\x00"
            body = await reader.readexactly(struct.unpack(">H", head[2:])[0])
            assert body[:4] == bytes.fromhex("02000701") and body[4:8] == socket.inet_aton("127.0.0.1")
            bound_port = struct.unpack(">H", body[8:10])[0]
            assert bound_port != 0

            in_reader, in_writer = await asyncio.open_connection("127.0.0.1", bound_port)
            local_port = in_writer.get_extra_info("sockname")[1]
            cmd, sid, _ = await _smux_frame(reader)
            assert cmd == 0 and sid % 2 == 1  # SYN on an odd id: the relay server is the smux client
            received = b""
            while len(received) < 14:
                cmd, fsid, data = await _smux_frame(reader)
                assert cmd == 2 and fsid == sid
                received += data
            assert received[:14] == header(0x00, addr("127.0.0.1", local_port))
            in_writer.write(b"from outside")
            await in_writer.drain()
            cmd, _, data = await _smux_frame(reader)
            assert (cmd, data) == (2, b"from outside")
            writer.write(SMUX.pack(1, 2, 9, sid) + b"to inside")
            await writer.drain()
            assert await asyncio.wait_for(in_reader.readexactly(9), 5) == b"to inside"
            writer.write(SMUX.pack(1, 1, 0, sid))  # FIN: the inbound connection is half-closed, then closed
            await writer.drain()
            assert await asyncio.wait_for(in_reader.read(), 5) == b""
            in_writer.close()
            writer.close()

    asyncio.run(main())
