"""gost listener `tcp`: one listening TCP socket; the handler takes connections with accept()."""

from __future__ import annotations

import asyncio
import socket

from gostx.addr import format_sockaddr, listen_socket
from gostx.net.stream import SocketStream, Stream
from gostx.registry import listeners
from gostx.service import Listener


@listeners.register("tcp")
class TcpListener(Listener):
    """Metadata: `backlog` (listen backlog, default 4096)."""

    sock: socket.socket | None = None

    async def init(self) -> None:
        backlog = self.metadata.get_int("backlog", default=4096)
        self.sock = listen_socket("tcp", self.ctx.addr, backlog=max(backlog, 1))

    @property
    def address(self) -> str:
        return format_sockaddr(self.sock.getsockname()) if self.sock else ""

    async def accept(self) -> tuple[socket.socket, str]:
        """The next connection (non-blocking socket) and its peer address 'ip:port'."""
        if self.sock is None:
            raise RuntimeError("listener is not initialised")
        conn, peer = await asyncio.get_running_loop().sock_accept(self.sock)
        conn.setblocking(False)
        return conn, format_sockaddr(peer)

    async def upgrade(self, conn: socket.socket) -> Stream:
        """An accepted connection as a Stream, after the transport's own handshake (none here; TLS and
        WebSocket listeners subclass this one and override it). Handlers call it in the connection's
        task, so a slow handshake never holds up accept()."""
        return SocketStream(conn)

    async def close(self) -> None:
        if self.sock is not None:
            sock, self.sock = self.sock, None
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
