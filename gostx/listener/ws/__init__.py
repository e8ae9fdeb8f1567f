"""gost listeners `ws` and `wss`: WebSocket over TCP / over TLS. `-L relay+wss://:443`
serves the relay handler inside WebSocket binary messages, one WebSocket per connection.

Metadata: `path` (default `/ws`; an exact path, other paths get Go's 404), `header` (a map of extra
response headers), `handshakeTimeout` (10s, TLS + WebSocket handshake + the handler's request),
`backlog` (4096). wss takes its certificate as the tls
listener does (`certFile`/`keyFile`, else gost's default self-signed certificate).
"""

from __future__ import annotations

import socket
import ssl

from gostx.listener.tcp import TcpListener
from gostx.net.stream import SocketStream, Stream
from gostx.net.tls import c_context, server_context, tls_server
from gostx.net.ws import ws_server, ws_server_c
from gostx.net.xstream import ENABLED as C_ENABLED
from gostx.registry import listeners

DEFAULT_PATH = "/ws"


@listeners.register("ws")
class WsListener(TcpListener):
    secure = False
    ssl_context: ssl.SSLContext | None = None

    async def init(self) -> None:
        md = self.metadata
        self.path = md.get_string("path", "ws.path") or DEFAULT_PATH
        if not self.path.startswith("/"):
            self.path = "/" + self.path
        extra = md.raw("header", "ws.header")
        self.headers = [(str(k), str(v)) for k, v in extra.items()] if isinstance(extra, dict) else []
        if self.secure:
            self.ssl_context = server_context(self.config.tls)
        await super().init()

    async def upgrade(self, conn: socket.socket) -> Stream:
        c = c_context(self.ssl_context) if self.ssl_context is not None else None
        if C_ENABLED and (self.ssl_context is None or c is not None):
            # TLS and the framing in C: Python sees the upgrade's heads, never a frame
            cs, _head = await ws_server_c(SocketStream(conn), c[0] if c else None, self.path, self.headers,
                                          self.handshake_timeout)
            return cs
        stream: Stream = SocketStream(conn)
        if self.ssl_context is not None:
            stream = await tls_server(stream, self.ssl_context, self.handshake_timeout)
        try:
            ws, _head = await ws_server(stream, self.path, self.headers, self.handshake_timeout)
        except BaseException:
            stream.close()
            raise
        return ws


@listeners.register("wss")
class WssListener(WsListener):
    secure = True
