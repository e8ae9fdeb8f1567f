"""gost listener `tcp`: one listening TCP socket; the handler takes connections with accept().

Metadata: `backlog` (listen backlog, default 4096), `handshakeTimeout` (default 10s: the time a
connection has for the transport's handshake and the handler's greeting and request, see
gostx/listener/limits.py). The service's `climiter` caps concurrent connections: accept() closes one
over the cap at once (a reset) and counts it; the handler calls release(peer) when a connection ends.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from gostx.addr import format_sockaddr, listen_socket
from gostx.listener.limits import DEFAULT_HANDSHAKE_TIMEOUT
from gostx.net.stream import SocketStream, Stream
from gostx.registry import listeners
from gostx.service import Listener

_LINGER_RESET = struct.pack("ii", 1, 0)


@listeners.register("tcp")
class TcpListener(Listener):
    sock: socket.socket | None = None
    handshake_timeout = DEFAULT_HANDSHAKE_TIMEOUT

    async def init(self) -> None:
        backlog = self.metadata.get_int("backlog", default=4096)
        timeout = self.metadata.get_duration("handshakeTimeout", default=DEFAULT_HANDSHAKE_TIMEOUT)
        self.handshake_timeout = timeout if timeout > 0 else DEFAULT_HANDSHAKE_TIMEOUT
        self.sock = listen_socket("tcp", self.ctx.addr, backlog=max(backlog, 1))

    @property
    def address(self) -> str:
        return format_sockaddr(self.sock.getsockname()) if self.sock else ""

    async def accept(self) -> tuple[socket.socket, str]:
        """The next connection (non-blocking socket) and its peer address 'ip:port', counted against the
        service's connection cap (the caller must release(peer) when it ends). Connections over the cap
        are reset here and never returned."""
        if self.sock is None:
            raise RuntimeError("listener is not initialised")
        limiter = self.ctx.conn_limiter
        while True:
            conn, addr = await asyncio.get_running_loop().sock_accept(self.sock)
            peer = format_sockaddr(addr)
            if limiter.acquire(peer):
                conn.setblocking(False)
                return conn, peer
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError:
                pass
            conn.close()
            limiter.log_refused(self.ctx.log, peer)

    def release(self, peer: str) -> None:
        """A connection accept() returned has ended."""
        self.ctx.conn_limiter.release(peer)

    async def upgrade(self, conn: socket.socket) -> Stream:
        """An accepted connection as a Stream, after the transport's own handshake (none here; TLS and
        WebSocket listeners subclass this one and override it). Handlers call it in the connection's
        task, so a slow handshake never holds up accept()."""
        return SocketStream(conn)

    async def close(self) -> None:
        limiter = self.ctx.conn_limiter
        if self.sock is not None and limiter.refused:
            self.ctx.log.info(f"{limiter.refused} connections refused over the connection limit",
                              extra={"refused": limiter.refused})
        if self.sock is not None:
            sock, self.sock = self.sock, None
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
