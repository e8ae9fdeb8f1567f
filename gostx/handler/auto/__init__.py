"""gost handler `auto` (`gost -L :8080`, `-L tls://...`): SOCKS5 or HTTP proxy on one port, chosen by the
first byte of each connection (0x05: socks5, anything else: http). Both use the service's chain and
credentials and read their own metadata (see gostx.handler.socks5 and gostx.handler.http). SOCKS4 (first
byte 0x04) is not supported: the connection is closed."""

from __future__ import annotations

from gostx.handler.http import HttpHandler
from gostx.handler.proxy import ProxyHandler
from gostx.handler.socks5 import Socks5Handler
from gostx.net.stream import SocketStream, Stream
from gostx.registry import handlers


@handlers.register("auto")
class AutoHandler(ProxyHandler):
    def parse_metadata(self) -> None:
        self.socks5 = Socks5Handler(self.config, self.ctx)
        self.http = HttpHandler(self.config, self.ctx)
        for handler in (self.socks5, self.http):
            handler.router, handler.credentials, handler.tasks = self.router, self.credentials, self.tasks
            handler.bypass = self.bypass
            handler.parse_metadata()

    async def handle(self, stream: Stream, peer: str) -> None:
        first = await stream.read(1)
        if not first:
            return
        assert isinstance(stream, SocketStream)
        stream.unread(first)
        if first[0] == 0x05:
            await self.socks5.handle(stream, peer)
        elif first[0] == 0x04:
            self.ctx.log.debug(f"{peer}: SOCKS4 is not supported", extra={"remote": peer})
        else:
            await self.http.handle(stream, peer)
