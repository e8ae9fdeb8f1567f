"""gost dialers `ws` and `wss`: WebSocket to the node, over TCP / over TLS. The seed's
`-F "relay+wss://SERVER_IP:443?interface=eth0"` is the relay connector over wss; every proxied flow
opens its own TCP (+TLS) + WebSocket connection, as in gost.

Metadata: `path` / `ws.path` (default `/ws`); `host` / `ws.host`: the Host header (default the node
address with its port, e.g. `1.2.3.4:443`; a `Host` entry in `header` wins); `header` / `ws.header`: a
map of extra request headers; `handshakeTimeout` (15s). wss: TLS as the tls dialer (SNI from
`serverName`, else the host of the node address; the `host` option does not change the SNI).
"""

from __future__ import annotations

from typing import Any

from gostx.chain.plugin import Dialer
from gostx.dialer.tls import server_name
from gostx.net.stream import SocketStream, Stream
from gostx.net.tls import HANDSHAKE_TIMEOUT, c_client_args, c_context, client_context, plain_socket, tls_client
from gostx.net.ws import ws_client, ws_client_c
from gostx.net.xstream import ENABLED as C_ENABLED
from gostx.registry import dialers

DEFAULT_PATH = "/ws"


@dialers.register("ws")
class WsDialer(Dialer):
    secure = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        md = self.metadata
        self.path = md.get_string("path", "ws.path") or DEFAULT_PATH
        if not self.path.startswith("/"):
            self.path = "/" + self.path
        self.host = md.get_string("host", "ws.host")
        extra = md.raw("header", "ws.header")
        self.headers = [(str(k), str(v)) for k, v in extra.items()] if isinstance(extra, dict) else []
        timeout = md.get_duration("handshakeTimeout", default=HANDSHAKE_TIMEOUT)
        self.handshake_timeout = timeout if timeout > 0 else HANDSHAKE_TIMEOUT
        self.ssl_context = client_context(self.tls) if self.secure else None

    async def handshake(self, stream: Stream, addr: str) -> Stream:
        c_ready = self.ssl_context is None or c_context(self.ssl_context) is not None
        if C_ENABLED and c_ready and plain_socket(stream):
            assert isinstance(stream, SocketStream)
            # TLS and the framing in C: Python sees the upgrade's heads, never a frame
            tls, sni, verify_name = c_client_args(self.ssl_context, server_name(self, addr))
            return await ws_client_c(stream, tls, sni, verify_name, self.path, self.host or addr, self.headers,
                                     self.handshake_timeout)
        if self.ssl_context is not None:
            stream = await tls_client(stream, self.ssl_context, server_name(self, addr), self.handshake_timeout)
        try:
            return await ws_client(stream, self.path, self.host or addr, self.headers, self.handshake_timeout)
        except BaseException:
            stream.close()
            raise


@dialers.register("wss")
class WssDialer(WsDialer):
    secure = True
