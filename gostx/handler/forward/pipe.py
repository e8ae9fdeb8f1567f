"""Relay bytes between two connected stream sockets, both ways, with half-close and flow control.

Built on asyncio protocols: a read on one side is written straight to the other transport (no
coroutine per chunk); when one side's write buffer is full its peer stops reading. An EOF from one
side is passed on as a write shutdown to the other; the pipe ends when both sides are closed.
"""

from __future__ import annotations

import asyncio
import socket


class _Half(asyncio.Protocol):
    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.peer: _Half
        self.transport: asyncio.Transport | None = None
        self.bytes = 0
        self.eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.peer.transport is None:
            transport.pause_reading()  # nothing to write to yet
        elif not self.peer.eof:
            self.peer.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)
        peer = self.peer.transport
        if peer is not None and not peer.is_closing():
            peer.write(data)

    def eof_received(self) -> bool:
        if self.eof:
            return True
        self.eof = True
        peer = self.peer.transport
        if peer is not None and not peer.is_closing() and peer.can_write_eof():
            peer.write_eof()
        if self.peer.eof:
            self.pipe.close()
        return True  # keep our write side open until the peer is done too

    def pause_writing(self) -> None:
        if self.peer.transport is not None and not self.peer.eof:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer.transport is not None and not self.peer.eof:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.pipe.error = self.pipe.error or exc
            self.pipe.abort()
        else:
            self.pipe.close()
        self.pipe.half_lost()


class Pipe:
    """`await Pipe.run(a, b)` relays until both sides are closed; `abort()` ends it at once."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.a, self.b = _Half(self), _Half(self)
        self.a.peer, self.b.peer = self.b, self.a
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.error: Exception | None = None

    @property
    def bytes_a_to_b(self) -> int:
        return self.a.bytes

    @property
    def bytes_b_to_a(self) -> int:
        return self.b.bytes

    async def run(self, a: socket.socket, b: socket.socket) -> None:
        """Take ownership of both sockets and relay until done (closes them on cancellation)."""
        try:
            await self.loop.connect_accepted_socket(lambda: self.a, sock=a)
        except BaseException:
            a.close()
            b.close()
            raise
        try:
            await self.loop.create_connection(lambda: self.b, sock=b)
            await asyncio.shield(self.done)
        except BaseException:
            if self.b.transport is None:
                b.close()
            raise
        finally:
            self.abort()  # no-op after a clean end; otherwise nothing is left open

    def close(self) -> None:
        for half in (self.a, self.b):
            if half.transport is not None:
                half.transport.close()

    def abort(self) -> None:
        for half in (self.a, self.b):
            if half.transport is not None:
                half.transport.abort()

    def half_lost(self) -> None:
        if all(h.lost or h.transport is None for h in (self.a, self.b)) and not self.done.done():
            self.done.set_result(None)
