"""Hostile input on loopback: host names no resolver takes (not UTF-8, a 64-byte label, a NUL), broken
URIs and WebSocket frame lengths get the protocol's own error reply from real servers, as exact bytes, and
the servers keep serving; one bad UDP ASSOCIATE datagram is dropped and counted, the association lives."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
import test_ws_tls_transports as wst

from gostx.protocol import socks5 as s5
from tests.unit.proxytest import captured_logs, connect, echo_tcp, echo_udp, free_port, gost, read_all

BAD_NAMES = {
    "not UTF-8": b"\xff\xfe",
    "64-byte label": b"a" * 64 + b".com",
    "NUL": b"a\x00b",
    "space": b"a b.com",
    "empty label": b"a..com",
}
SOCKS_HOST_UNREACHABLE = b"\x05\x04\x00\x01\x00\x00\x00\x00\x00\x00"


@pytest.fixture(autouse=True)
def _logs():  # type: ignore[no-untyped-def]
    with captured_logs() as out:
        yield out


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 30) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def socks_name_request(cmd: int, name: bytes, port: int = 80) -> bytes:
    return bytes([5, cmd, 0, s5.ATYP_DOMAIN, len(name)]) + name + struct.pack(">H", port)


def relay_connect(name: bytes, port: int = 80) -> bytes:
    addr = bytes([3, len(name)]) + name + struct.pack(">H", port)
    feature = struct.pack(">BH", 2, len(addr)) + addr
    return struct.pack(">BBH", 1, 1, len(feature)) + feature


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await connect(port)
    writer.write(data)
    got = await read_all(reader)
    writer.close()
    return got


async def socks_still_serves(port: int, target: int) -> None:
    got_reader, writer = await connect(port)
    writer.write(b"\x05\x01\x00" + s5.request(s5.CMD_CONNECT, "127.0.0.1", target))
    assert await got_reader.readexactly(12) == b"\x05\x00\x05\x00\x00\x01" + bytes(6)
    writer.write(b"ping")
    assert await got_reader.readexactly(4) == b"ping"
    writer.close()


def test_socks5_connect_to_a_bad_name_replies_host_unreachable(_logs) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        port = free_port()
        async with echo_tcp() as target, gost([f"socks5://127.0.0.1:{port}"]):
            for name, raw in BAD_NAMES.items():
                got = await exchange(port, b"\x05\x01\x00" + socks_name_request(s5.CMD_CONNECT, raw))
                assert got == b"\x05\x00" + SOCKS_HOST_UNREACHABLE, name
                await socks_still_serves(port, target)

    run(scenario)
    logs = _logs.getvalue()
    assert "internal error" not in logs
    assert "not UTF-8" in logs and "control character or space" in logs


def test_http_connect_and_get_with_bad_hosts_get_400() -> None:
    requests = [b"CONNECT " + name + b":80 HTTP/1.1\r\n\r\n" for name in BAD_NAMES.values() if name != b"\xff\xfe"]
    requests += [b"GET http://[::1/ HTTP/1.1\r\nHost: x\r\n\r\n", b"GET http://a\x00b/ HTTP/1.1\r\n\r\n",
                 b"CONNECT example.com:99999 HTTP/1.1\r\n\r\n",
                 b"CONNECT example.com:" + b"1" * 5000 + b" HTTP/1.1\r\n\r\n",
                 b"GET http://example.com:" + b"9" * 5000 + b"/ HTTP/1.1\r\n\r\n"]

    async def scenario() -> None:
        port = free_port()
        async with echo_tcp() as target, gost([f"http://127.0.0.1:{port}"]):
            for request in requests:
                got = await exchange(port, request)
                assert got == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", request[:40]
            reader, writer = await connect(port)
            writer.write(f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\n\r\nhi".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 Connection established\r\n")
            assert await reader.readexactly(2) == b"hi"
            writer.close()

    run(scenario)


def test_relay_connect_to_a_bad_name_replies_bad_request() -> None:
    async def scenario() -> None:
        port = free_port()
        async with echo_tcp() as target, gost([f"relay://127.0.0.1:{port}"]):
            for name, raw in BAD_NAMES.items():
                assert await exchange(port, relay_connect(raw)) == b"\x01\x01\x00\x00", name
            reader, writer = await connect(port)
            ok = relay_connect(b"127.0.0.1", target)
            writer.write(ok + b"hey")
            assert await reader.readexactly(7) == b"\x01\x00\x00\x00hey"
            writer.close()

    run(scenario)


def test_auto_handler_answers_bad_names_per_protocol() -> None:
    async def scenario() -> None:
        port = free_port()
        async with echo_tcp() as target, gost([f"auto://127.0.0.1:{port}"]):
            for name, raw in BAD_NAMES.items():
                got = await exchange(port, b"\x05\x01\x00" + socks_name_request(s5.CMD_CONNECT, raw))
                assert got == b"\x05\x00" + SOCKS_HOST_UNREACHABLE, name
            got = await exchange(port, b"CONNECT " + b"a" * 64 + b".com:443 HTTP/1.1\r\n\r\n")
            assert got == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
            await socks_still_serves(port, target)

    run(scenario)


def test_udp_associate_drops_and_counts_a_bad_datagram_and_lives_on(_logs) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        port = free_port()
        loop = asyncio.get_running_loop()
        async with echo_udp() as echo, gost([f"socks5://127.0.0.1:{port}?udp=true"]):
            reader, writer = await connect(port)
            writer.write(b"\x05\x01\x00" + s5.request(s5.CMD_UDP_ASSOCIATE, "0.0.0.0", 0))
            assert await reader.readexactly(2) == b"\x05\x00"
            rep, _, relay_port = await s5.read_request(_Reader(reader))
            assert rep == s5.REP_SUCCEEDED
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.setblocking(False)
                udp.connect(("127.0.0.1", relay_port))
                for raw in BAD_NAMES.values():  # each would have ended the association before
                    await loop.sock_sendall(udp, b"\x00\x00\x00\x03" + bytes([len(raw)]) + raw + b"\x00\x35x")
                await asyncio.sleep(0.1)
                await loop.sock_sendall(udp, s5.udp_datagram(b"still here", "127.0.0.1", echo))
                reply = await asyncio.wait_for(loop.sock_recv(udp, 2048), 5)
                assert s5.parse_udp_datagram(reply) == (b"echo:still here", "127.0.0.1", echo)
            writer.close()
            await asyncio.sleep(0.2)

    run(scenario)
    closes = [json.loads(line) for line in _logs.getvalue().splitlines() if '"cmd":"udp"' in line and ">-<" in line]
    assert closes and closes[-1]["dropped"] == len(BAD_NAMES), closes


class _Reader:
    """An asyncio StreamReader as much of a gostx Stream as s5.read_request needs."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)


def test_websocket_frame_length_with_top_bit_set_gets_close_1002() -> None:
    key = b"\x01\x02\x03\x04"
    bad = bytes([0x82, 0x80 | 127]) + b"\x80" + bytes(7) + key
    head, got = asyncio.run(wst._ws_listener_exchange("/ws", wst.UPGRADE, [bad], 1))
    assert head[""].startswith("HTTP/1.1 101")
    assert got == [(0x8, False, struct.pack(">H", 1002))]


def test_websocket_frame_over_the_size_limit_gets_close_1009() -> None:
    key = b"\x01\x02\x03\x04"
    bad = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", (1 << 32) + 1) + key
    head, got = asyncio.run(wst._ws_listener_exchange("/ws", wst.UPGRADE, [bad], 1))
    assert head[""].startswith("HTTP/1.1 101")
    assert got == [(0x8, False, struct.pack(">H", 1009))]
