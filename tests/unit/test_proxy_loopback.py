"""socks5 and http proxies in-process on loopback: every kind of bad input gets the protocol's error reply
(where it has one) and a closed connection while the server keeps serving; TLS methods; 0xF3 over a chain."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable

import pytest

from gostx.protocol import socks5 as s5
from tests.unit.proxytest import captured_logs, connect, echo_tcp, echo_udp, free_port, gost, read_all


@pytest.fixture(autouse=True)
def _logs():  # type: ignore[no-untyped-def]
    with captured_logs() as out:
        yield out


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 30) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


async def socks_connect_works(port: int, target: int, auth: tuple[bytes, bytes] | None = None) -> None:
    reader, writer = await connect(port)
    writer.write(b"\x05\x01" + (b"\x02" if auth else b"\x00"))
    assert await reader.readexactly(2) == b"\x05" + (b"\x02" if auth else b"\x00")
    if auth:
        writer.write(b"\x01" + bytes([len(auth[0])]) + auth[0] + bytes([len(auth[1])]) + auth[1])
        assert await reader.readexactly(2) == b"\x01\x00"
    writer.write(s5.request(s5.CMD_CONNECT, "127.0.0.1", target))
    assert await reader.readexactly(10) == b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"hello"
    writer.close()


# (what the client sends, what it must get back before the server closes)
SOCKS_BAD = {
    "bad version": (b"\x04\x01\x00", b""),
    "no methods": (b"\x05\x00", b""),
    "only no-auth offered to an auth server": (b"\x05\x01\x00", b"\x05\xff"),
    "wrong password": (b"\x05\x01\x02\x01\x01u\x03bad", b"\x05\x02\x01\x01"),
    "bad auth version": (b"\x05\x01\x02\x05\x01u\x01p", b"\x05\x02"),
    "truncated auth": (b"\x05\x01\x02\x01\x05us", b"\x05\x02"),
}
SOCKS_BAD_REQUEST = {
    "unknown command": (b"\x05\x09\x00\x01\x7f\x00\x00\x01\x00\x50", b"\x05\x07"),
    "unknown address type": (b"\x05\x01\x00\x07\x00\x00", b"\x05\x08"),
    "bad request version": (b"\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x50", b""),
    "truncated request": (b"\x05\x01\x00\x03\x20abc", b""),
    "BIND without bind=true": (b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00", b"\x05\x02"),
    "ASSOCIATE without udp=true": (b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00", b"\x05\x02"),
    "0xF3 bind mode without bind=true": (b"\x05\xf3\x00\x01\x7f\x00\x00\x01\x30\x39", b"\x05\x02"),
}


def test_socks5_bad_input_gets_error_replies_and_server_keeps_serving() -> None:
    async def scenario() -> None:
        port = free_port()
        async with echo_tcp() as target, gost([f"socks5://u:p@127.0.0.1:{port}?readTimeout=2s"]):
            for name, (sent, expected) in SOCKS_BAD.items():
                reader, writer = await connect(port)
                writer.write(sent)
                if name.startswith("truncated"):
                    writer.write_eof()
                got = await read_all(reader)
                assert got == expected, name
                writer.close()
                await socks_connect_works(port, target, (b"u", b"p"))
            for name, (sent, expected) in SOCKS_BAD_REQUEST.items():
                reader, writer = await connect(port)
                writer.write(b"\x05\x01\x02\x01\x01u\x01p" + sent)
                if name.startswith("truncated"):
                    writer.write_eof()
                got = await read_all(reader)
                assert got[:4] == b"\x05\x02\x01\x00", name
                assert got[4:6] == expected, f"{name}: {got[4:]!r}"
                writer.close()
            await socks_connect_works(port, target, (b"u", b"p"))

    run(scenario)


def test_socks5_connect_failure_replies_0x03() -> None:
    async def scenario() -> None:
        port = free_port()
        async with gost([f"socks5://127.0.0.1:{port}"]):
            reader, writer = await connect(port)
            writer.write(b"\x05\x01\x00" + s5.request(s5.CMD_CONNECT, "127.0.0.1", free_port()))
            assert await read_all(reader) == b"\x05\x00" + b"\x05\x03\x00\x01" + b"\x00" * 6
            writer.close()

    run(scenario)


def test_socks5_request_timeout_closes_a_silent_client() -> None:
    async def scenario() -> None:
        port = free_port()
        async with gost([f"socks5://127.0.0.1:{port}?readTimeout=0.3s"]):
            reader, writer = await connect(port)
            writer.write(b"\x05\x01\x00")
            assert await read_all(reader, timeout=3) == b"\x05\x00"
            writer.close()

    run(scenario)


async def udp_tun_open(port: int, request_port: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect(port)
    writer.write(b"\x05\x01\x00" + s5.request(s5.CMD_UDP_TUN, "", request_port))
    assert await reader.readexactly(2) == b"\x05\x00"
    rep, _host, bound = await read_reply(reader)
    assert rep == 0 and bound != 0
    return reader, writer


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str, int]:
    head = await reader.readexactly(4)
    size = {1: 4, 4: 16}.get(head[3])
    assert size, head
    addr = await reader.readexactly(size + 2)
    return head[1], addr[:-2].hex(), struct.unpack(">H", addr[-2:])[0]


def frame(data: bytes, ip: str, port: int) -> bytes:
    """GOST 0xF3 frame encoder written from the spec: LEN(2) FRAG(1) ATYP ADDR PORT DATA."""
    import ipaddress

    addr = b"\x01" + ipaddress.IPv4Address(ip).packed + struct.pack(">H", port)
    return struct.pack(">HB", len(data), 0) + addr + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, str, int]:
    head = await reader.readexactly(4)
    assert head[3] == 1
    addr = await reader.readexactly(6)
    size = struct.unpack(">H", head[:2])[0]
    return await reader.readexactly(size), ".".join(str(b) for b in addr[:4]), struct.unpack(">H", addr[4:])[0]


def test_socks5_udp_tun_relays_frames_and_rejects_a_bad_frame() -> None:
    async def scenario() -> None:
        port = free_port()
        async with echo_udp() as echo, gost([f"socks5://127.0.0.1:{port}"]):
            reader, writer = await udp_tun_open(port)
            for i in range(20):
                writer.write(frame(b"x%d" % i, "127.0.0.1", echo))
            got = [await asyncio.wait_for(read_frame(reader), 5) for _ in range(20)]
            assert sorted(g[0] for g in got) == sorted(b"echo:x%d" % i for i in range(20))
            assert {(g[1], g[2]) for g in got} == {("127.0.0.1", echo)}
            writer.write(b"\x00\x00\x00\x01\x7f\x00\x00\x01\x00\x35")  # LEN 0: a protocol error
            assert await read_all(reader) == b""
            writer.close()
            reader, writer = await udp_tun_open(port)  # the server still serves
            writer.write(frame(b"again", "127.0.0.1", echo))
            assert (await asyncio.wait_for(read_frame(reader), 5))[0] == b"echo:again"
            writer.close()

    run(scenario)


def test_socks5_udp_false_refuses_udp_tun() -> None:
    async def scenario() -> None:
        port = free_port()
        async with gost([f"socks5://127.0.0.1:{port}?udp=false"]):
            reader, writer = await connect(port)
            writer.write(b"\x05\x01\x00" + s5.request(s5.CMD_UDP_TUN, "", 0))
            assert (await read_all(reader))[:4] == b"\x05\x00\x05\x02"
            writer.close()

    run(scenario)


def test_udp_tun_over_tls_method_and_through_a_chain() -> None:
    """A gost-style client (notls=false offers 0x80) against our server: TLS, then 0xF3 through a
    two-proxy chain (Python frame relay on the first proxy, C relay on the last)."""

    async def scenario() -> None:
        last, first, fwd = free_port(), free_port(), free_port()
        async with echo_udp() as echo, echo_tcp() as tcp_target:
            async with gost([f"socks5://127.0.0.1:{last}"]), \
                    gost([f"socks5://127.0.0.1:{first}"], [f"socks5://127.0.0.1:{last}?notls=false"]), \
                    gost([f"udp://127.0.0.1:{fwd}/127.0.0.1:{echo}", f"tcp://127.0.0.1:{fwd}/127.0.0.1:{tcp_target}"],
                         [f"socks5://127.0.0.1:{first}?notls=false"]):
                loop = asyncio.get_running_loop()
                import socket

                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setblocking(False)
                try:
                    for i in range(5):
                        await loop.sock_sendto(sock, b"u%d" % i, ("127.0.0.1", fwd))
                        data = await asyncio.wait_for(loop.sock_recv(sock, 100), 5)
                        assert data == b"echo:u%d" % i
                finally:
                    sock.close()
                reader, writer = await connect(fwd)
                writer.write(b"through two TLS socks5 hops")
                assert await reader.readexactly(27) == b"through two TLS socks5 hops"
                writer.close()

    run(scenario, 40)


HTTP_BAD = {
    "garbage": (b"hello\r\n\r\n", b"HTTP/1.1 400 "),
    "origin form": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 400 "),
    "bad header": (b"GET http://x/ HTTP/1.1\r\nno colon\r\n\r\n", b"HTTP/1.1 400 "),
    "no credentials": (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", b"HTTP/1.1 407 "),
    "wrong credentials": (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nProxy-Authorization: Basic dTpiYWQ=\r\n\r\n",
                          b"HTTP/1.1 407 "),
    "oversized head": (b"GET http://x/ HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 70000 + b"\r\n\r\n", b"HTTP/1.1 431 "),
    "truncated head": (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost:", b""),
}


def test_http_bad_input_gets_status_and_server_keeps_serving() -> None:
    async def scenario() -> None:
        port = free_port()
        auth = "Proxy-Authorization: Basic dTpw\r\n"  # u:p
        async with echo_tcp() as target, gost([f"http://u:p@127.0.0.1:{port}"]):
            for name, (sent, expected) in HTTP_BAD.items():
                reader, writer = await connect(port)
                writer.write(sent)
                if name.startswith("truncated"):
                    writer.write_eof()
                got = await read_all(reader)
                assert got.startswith(expected), f"{name}: {got[:60]!r}"
                if b"407" in expected:
                    assert b'Proxy-Authenticate: Basic realm="gost"' in got
                writer.close()
            reader, writer = await connect(port)
            writer.write(f"CONNECT 127.0.0.1:{free_port()} HTTP/1.1\r\n{auth}\r\n".encode())
            assert (await read_all(reader)).startswith(b"HTTP/1.1 503 ")
            writer.close()
            reader, writer = await connect(port)
            writer.write(f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\n{auth}\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            writer.close()

    run(scenario)


def test_udp_forward_through_standard_udp_associate() -> None:
    """The connector's relay=udp: UDP ASSOCIATE against a server with udp=true, RFC 1928 datagrams."""

    async def scenario() -> None:
        import socket

        server, fwd = free_port(), free_port()
        async with echo_udp() as echo, gost([f"socks5://u:p@127.0.0.1:{server}?udp=true"]), \
                gost([f"udp://127.0.0.1:{fwd}/127.0.0.1:{echo}"], [f"socks5://u:p@127.0.0.1:{server}?relay=udp"]):
            loop = asyncio.get_running_loop()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                for i in range(3):
                    await loop.sock_sendto(sock, b"a%d" % i, ("127.0.0.1", fwd))
                    assert await asyncio.wait_for(loop.sock_recv(sock, 100), 5) == b"echo:a%d" % i
            finally:
                sock.close()

    run(scenario)


def test_dial_timeout_bounds_a_hop_that_never_answers(_logs) -> None:  # type: ignore[no-untyped-def]
    """A node that accepts but never speaks SOCKS5: the service's dialTimeout ends the attempt."""

    async def scenario() -> None:
        silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        node = silent.sockets[0].getsockname()[1]
        port = free_port()
        try:
            async with gost([f"tcp://127.0.0.1:{port}/127.0.0.1:9?dialTimeout=0.3s"], [f"socks5://127.0.0.1:{node}"]):
                start = asyncio.get_running_loop().time()
                reader, writer = await connect(port)
                assert await read_all(reader) == b""
                assert asyncio.get_running_loop().time() - start < 2.0
                writer.close()
        finally:
            silent.close()

    run(scenario)
    assert "timeout" in _logs.getvalue()


def test_auto_handler_serves_socks5_and_http_on_one_port() -> None:
    """`gost -L :PORT` (and unknown schemes): gost's auto handler."""

    async def scenario() -> None:
        port = free_port()
        async with echo_tcp() as target, gost([f"127.0.0.1:{port}"]):
            await socks_connect_works(port, target)
            reader, writer = await connect(port)
            writer.write(f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\n\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
            writer.write(b"http")
            assert await reader.readexactly(4) == b"http"
            writer.close()
            reader, writer = await connect(port)
            writer.write(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")  # SOCKS4: not supported, closed
            assert await read_all(reader) == b""
            writer.close()

    run(scenario)


def test_hop_bypass_cuts_the_route_and_service_bypass_refuses() -> None:
    async def scenario() -> None:
        fwd, socks, http, dead = free_port(), free_port(), free_port(), free_port()
        async with echo_tcp() as target:
            # the only node is down: the forward works only because the hop's bypass sends it direct
            async with gost([f"tcp://127.0.0.1:{fwd}/127.0.0.1:{target}"],
                            [f"socks5://127.0.0.1:{dead}?bypass=127.0.0.1"]):
                reader, writer = await connect(fwd)
                writer.write(b"direct")
                assert await reader.readexactly(6) == b"direct"
                writer.close()
            async with gost([f"socks5://127.0.0.1:{socks}?bypass=127.0.0.1:{target}",
                             f"http://127.0.0.1:{http}?bypass=127.0.0.1:{target}"]):
                reader, writer = await connect(socks)
                writer.write(b"\x05\x01\x00" + s5.request(s5.CMD_CONNECT, "127.0.0.1", target))
                assert (await read_all(reader))[:4] == b"\x05\x00\x05\x02"
                writer.close()
                reader, writer = await connect(http)
                writer.write(f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\n\r\n".encode())
                assert (await read_all(reader)).startswith(b"HTTP/1.1 403 ")
                writer.close()

    run(scenario)
