"""gost listener `tls`: TCP + TLS. `-L tls://:443` is handler auto over tls; any
handler composes with it: `-L socks5+tls://:1080`, `-L relay+tls://:8443`, `-L http+tls://:443`.

Certificate: `listener.tls` (`certFile`/`keyFile` on the command line, `tls:` in YAML), else gost's
default self-signed ECDSA P-256 certificate (O=GOST, CN=gost.run) made once per process; a `caFile`
requires client certificates signed by it. Metadata: `backlog` (4096), `handshakeTimeout` (10s, the
TLS handshake and the handler's request together; gostx/listener/limits.py).
The handshake runs in the connection's task (TcpListener.upgrade), never in the accept loop.
"""

from __future__ import annotations

import socket
import ssl

from gostx.listener.tcp import TcpListener
from gostx.net.stream import SocketStream, Stream
from gostx.net.tls import server_context, tls_server
from gostx.registry import listeners


@listeners.register("tls")
class TlsListener(TcpListener):
    ssl_context: ssl.SSLContext

    async def init(self) -> None:
        self.ssl_context = server_context(self.config.tls)
        await super().init()

    async def upgrade(self, conn: socket.socket) -> Stream:
        return await tls_server(SocketStream(conn), self.ssl_context, self.handshake_timeout)
