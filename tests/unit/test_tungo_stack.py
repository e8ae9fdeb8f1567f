"""The tungo netstack binding without root: a SOCK_SEQPACKET socketpair stands in for the TUN device
(one message = one IP packet). Also the bridges that give the stack an fd for upstreams that are
Python transports (a chain's TLS stream, SOCKS5 UDP-over-TCP frames)."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from gostx import _engine
from gostx.handler.tungo.bridge import Bridges
from gostx.net.packet import PacketConn
from gostx.net.stream import SocketStream, Stream
from gostx.testing.packets import inet_checksum

CLIENT, REMOTE = "10.0.0.2", "198.51.100.7"


checksum = inet_checksum


def udp_packet(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    length = 8 + len(payload)
    pseudo = s + d + struct.pack("!BBH", 0, 17, length)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    csum = checksum(pseudo + header + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, length, csum) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + udp


@pytest.fixture
def host() -> Iterator[tuple[socket.socket, _engine.Stack]]:
    stack_end, host_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stack_end.setblocking(False)
    stack = _engine.Stack(tun_fd=stack_end.fileno(), mtu=1400, udp_timeout=5.0)
    stack.start()
    try:
        yield host_end, stack
    finally:
        stack.close()
        stack_end.close()
        host_end.close()


def wait_events(stack: _engine.Stack, timeout: float = 5.0) -> list[_engine.FlowEvent]:
    select.select([stack.event_fd], [], [], timeout)
    return stack.events()


def test_udp_session_through_the_binding(host: tuple[socket.socket, _engine.Stack]) -> None:
    tun, stack = host
    tun.send(udp_packet(CLIENT, 40000, REMOTE, 53, b"question"))
    events = wait_events(stack)
    assert len(events) == 1
    network, flow_id, src, dst, first = events[0]
    assert (network, src, dst, first) == ("udp", (CLIENT, 40000), (REMOTE, 53), b"question")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    stack.connect(flow_id, ours.detach())
    theirs.settimeout(5)
    assert theirs.recv(100) == b"question"
    theirs.send(b"answer")
    tun.settimeout(5)
    packet = tun.recv(2000)
    assert socket.inet_ntoa(packet[12:16]) == REMOTE and socket.inet_ntoa(packet[16:20]) == CLIENT
    assert struct.unpack("!HH", packet[20:24]) == (53, 40000)
    assert packet[28:] == b"answer"
    assert stack.stats()["udp_down_pkts"] == 1
    # lwIP's heap (MEM_STATS, sampled by the stack thread every 250 ms): the packets went through it
    deadline = time.monotonic() + 2.0
    while stack.stats()["lwip_mem_max"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 0 < stack.stats()["lwip_mem_max"] < 1 << 30
    assert stack.stats()["lwip_mem_errors"] == 0
    theirs.close()


def test_a_drop_answers_nothing_and_late_decisions_are_harmless(host: tuple[socket.socket, _engine.Stack]) -> None:
    tun, stack = host
    tun.send(udp_packet(CLIENT, 40001, REMOTE, 5353, b"x"))
    (_, flow_id, *_rest), = wait_events(stack)
    stack.drop(flow_id)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    stack.connect(flow_id, ours.detach())  # the flow is gone: the stack just closes the fd
    theirs.settimeout(5)
    assert theirs.recv(10) == b""  # closed
    assert stack.stats()["udp_active"] == 0
    theirs.close()


def test_stack_arguments_and_one_per_process(host: tuple[socket.socket, _engine.Stack]) -> None:
    with pytest.raises(ValueError, match="mtu"):
        _engine.Stack(tun_fd=0, mtu=100)
    with pytest.raises(ValueError, match="sniff_bytes"):
        _engine.Stack(tun_fd=0, sniff_bytes=1 << 20)
    with pytest.raises(OSError) as info:
        _engine.Stack(tun_fd=host[0].fileno())
    assert info.value.errno == errno.EBUSY


class ReaderWriterStream(Stream):
    """A Stream over asyncio streams: a Python transport, as a TLS or WebSocket stream would be."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self, n: int = 65536) -> bytes:
        return await self.reader.read(n)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def write_eof(self) -> None:
        self.writer.write_eof()

    def close(self) -> None:
        self.writer.close()


def test_stream_bridge_relays_a_python_transport_both_ways() -> None:
    async def scenario() -> bytes:
        async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read()  # until the client's EOF
            writer.write(data.upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(shout, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        bridges = Bridges()
        fd = bridges.fd_for(ReaderWriterStream(*await asyncio.open_connection("127.0.0.1", port)))
        assert len(bridges) == 1  # Python pumps this one
        sock = socket.socket(fileno=fd)  # what the stack would splice
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, b"through the bridge")
        sock.shutdown(socket.SHUT_WR)  # EOF passes on
        got = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 100), 5):
            got += chunk
        sock.close()
        await asyncio.wait_for(bridges.close(), 5)
        server.close()
        return got

    assert asyncio.run(scenario()) == b"THROUGH THE BRIDGE"


def test_a_plain_socket_stream_is_handed_over_as_is() -> None:
    async def scenario() -> None:
        a, b = socket.socketpair()
        bridges = Bridges()
        fd = bridges.fd_for(SocketStream(a))
        assert len(bridges) == 0  # no Python in the path
        os.write(fd, b"x")
        assert b.recv(1) == b"x"
        os.close(fd)
        b.close()

    asyncio.run(scenario())


class EchoPacketConn(PacketConn):
    """A PacketConn whose far end echoes every datagram (as SOCKS5 UDP-over-TCP frames would carry it)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    async def recvfrom(self) -> tuple[bytes, str]:
        return await self.queue.get(), "198.51.100.7:53"

    async def sendto(self, data: bytes, address: str = "") -> None:
        self.queue.put_nowait(data[::-1])

    def close(self) -> None:
        self.closed = True


def test_datagram_bridge_keeps_message_boundaries_and_ends_with_the_stack() -> None:
    async def scenario() -> None:
        conn = EchoPacketConn()
        bridges = Bridges()
        sock = socket.socket(fileno=bridges.fd_for(conn))
        assert sock.type == socket.SOCK_SEQPACKET
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        for message in (b"abc", b"de", b"x" * 3000):
            await loop.sock_sendall(sock, message)
            assert await asyncio.wait_for(loop.sock_recv(sock, 65535), 5) == message[::-1]
        sock.close()  # the stack ends the session: the relay ends and closes the upstream
        await asyncio.wait_for(asyncio.gather(*bridges._tasks), 5)
        assert conn.closed and len(bridges) == 0

    asyncio.run(scenario())
