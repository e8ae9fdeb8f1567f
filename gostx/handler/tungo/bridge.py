"""Upstreams as fds the C stack can splice: a connection that is a plain kernel socket is handed over as
is; a UDP session through a SOCKS5 hop (0xF3 frames) gets one end of a SOCK_SEQPACKET socketpair whose
other end the C frame relay (csrc/proxy/dgram_frames.c) frames onto the hop's stream; anything else (a chain's
TLS stream, relay-protocol UDP frames) gets one end of a socketpair whose other end Python relays (the
slow path: a direct or plain-TCP chained dial gives the stack a real socket and no Python runs per byte).

    fd = bridges.fd_for(conn)   # conn from Router.dial: a Stream ("tcp") or a PacketConn ("udp")
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from gostx import _engine
from gostx.net.crelay import released_when_done
from gostx.net.packet import DirectPacketConn, PacketConn
from gostx.net.relay_stream import RelayUdpConn
from gostx.net.stream import CBridge, Stream
from gostx.protocol import socks5 as s5
from gostx.tasks import until_first_done


class Bridges:
    """The relays of one handler; fd_for() gives the fd to hand to the stack (the caller owns it)."""

    def __init__(self) -> None:
        self._closers: set[object] = set()
        self._tasks: set[asyncio.Future[Any]] = set()

    def fd_for(self, conn: Stream | PacketConn) -> int:
        if isinstance(conn, Stream):
            return self._stream_fd(conn)
        return self._packet_fd(conn)

    def _stream_fd(self, stream: Stream) -> int:
        bridge = CBridge(stream)
        if bridge.task is None:  # the stream is exactly its socket: the stack takes the socket itself
            return bridge.sock.detach()
        self._track(bridge.task)
        return bridge.sock.detach()

    def _packet_fd(self, conn: PacketConn) -> int:
        if isinstance(conn, DirectPacketConn) and conn.connected:
            return conn.sock.detach()
        # SEQPACKET: one message per datagram, and an EOF when the stack closes its end (session over)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        theirs.setblocking(False)
        if (isinstance(conn, s5.UdpTunConn) and not conn.take_buffered()) or isinstance(conn, RelayUdpConn):
            self._track(asyncio.ensure_future(_frame_in_c(ours, conn)))
        else:
            self._track(asyncio.ensure_future(_relay_datagrams(ours, conn)))
        return theirs.detach()

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _frame_in_c(ours: socket.socket, conn: s5.UdpTunConn | RelayUdpConn) -> None:
    """The session's datagrams framed onto the hop's stream in C (0xF3 or relay frames) until either side
    ends."""
    relay = None
    bridge: CBridge | None = None
    try:
        if isinstance(conn, RelayUdpConn):
            try:
                await conn.finish_handshake()
            except (OSError, ConnectionError):
                return  # the hop refused or went away: the session ends (finally closes both ends)
            mode, header = _engine.FRAMES_RELAY, b""
        else:
            mode, header = _engine.FRAMES_F3, bytes([s5.UDP_FRAG]) + s5.encode_addr(conn.host, conn.port)
        bridge = CBridge(conn.stream)  # the stream's socket, or a socketpair end Python pumps (TLS)
        relay = _engine.DgramFrames(ours.fileno(), bridge.sock.fileno(), mode, header)
        relay.start()
        async with released_when_done(relay, counted_as="dgram_frames") as done:
            waits: list[asyncio.Future[object]] = [done]  # type: ignore[list-item]
            if bridge.task is not None:
                waits.append(bridge.task)  # type: ignore[arg-type]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if relay is not None:
            relay.stop()
        ours.close()
        if bridge is not None:
            bridge.close()
        else:
            conn.close()


async def _relay_datagrams(ours: socket.socket, conn: PacketConn) -> None:
    """Datagrams both ways between the stack's socketpair end and a PacketConn, until either ends (the
    stack closes its end when the session idles out; an empty datagram reads as that end)."""
    loop = asyncio.get_running_loop()

    async def to_upstream() -> None:
        while data := await loop.sock_recv(ours, 65535):
            await conn.sendto(data)

    async def to_stack() -> None:
        while True:
            data, _peer = await conn.recvfrom()
            await loop.sock_sendall(ours, data)

    try:
        await until_first_done(to_upstream(), to_stack())
    finally:
        ours.close()
        with contextlib.suppress(Exception):
            conn.close()
