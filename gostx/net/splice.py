"""Relay two connected TCP sockets both ways with splice(2) in C: the bytes never enter Python, and
Python does not run while they flow.

The relay is csrc/proxy/splice_relay.c on the shared relay engine's threads (csrc/relay_engine.c): a pipe per
direction, reads stop while the destination cannot take more (backpressure), an EOF is passed on as
shutdown(SHUT_WR) once the pipe is drained (half-close), and the relay ends when both directions have
passed their EOF on, or at the first error (reset, broken pipe). Python starts it and awaits its event
fd: two calls per connection, none per chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from gostx import _engine
from gostx.net.crelay import released_when_done


class SpliceRelay:
    """`await SpliceRelay(a, b).run()` relays a <-> b until both ends are done; it owns both sockets and
    closes them when it returns (also when cancelled). Afterwards `error` is the OSError that ended it
    (None for a clean end) and bytes_a_to_b / bytes_b_to_a the bytes moved."""

    def __init__(self, a: socket.socket, b: socket.socket, pipe_size: int = 0) -> None:
        self.loop = asyncio.get_running_loop()
        self.a, self.b = a, b
        self.pipe_size = pipe_size
        self.error: OSError | None = None
        self._relay: _engine.TcpSpliceRelay | None = None
        self._bytes = (0, 0)

    @property
    def bytes_a_to_b(self) -> int:
        return self._relay.bytes[0] if self._relay else self._bytes[0]

    @property
    def bytes_b_to_a(self) -> int:
        return self._relay.bytes[1] if self._relay else self._bytes[1]

    async def run(self) -> None:
        try:
            self.a.setblocking(False)
            self.b.setblocking(False)
            relay = _engine.TcpSpliceRelay(self.a.fileno(), self.b.fileno(), self.pipe_size)
            relay.start()
        except BaseException:
            self.close()
            raise
        self._relay = relay
        try:
            async with released_when_done(relay) as done:
                await asyncio.shield(done)
        finally:
            self._bytes = relay.bytes
            if relay.status:
                self.error = OSError(relay.status, os.strerror(relay.status))
            self._relay = None
            self.close()

    def close(self) -> None:
        for sock in (self.a, self.b):
            with contextlib.suppress(OSError):
                sock.close()
