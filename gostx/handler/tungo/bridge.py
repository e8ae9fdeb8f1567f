"""Upstreams as fds the C stack can splice: a connection that is a plain kernel socket is handed over as
is; anything else (a chain's TLS stream, SOCKS5 UDP-over-TCP frames) gets one end of a socketpair whose
other end Python relays (the slow path, that only chained flows take: a direct or plain-TCP chained dial
gives the stack a real socket and no Python runs per byte).

    fd = bridges.fd_for(conn)   # conn from Router.dial: a Stream ("tcp") or a PacketConn ("udp")
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from gostx.net.packet import DirectPacketConn, PacketConn
from gostx.net.stream import CBridge, Stream
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
