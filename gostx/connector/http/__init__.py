"""gost connector `http` (the default connector): an HTTP proxy node, `CONNECT host:port HTTP/1.1`.

Sends `Proxy-Authorization: Basic` when the node has credentials, plus `header` metadata (a map of extra
request headers). Any status but 2xx fails the dial with the status line. UDP cannot go through an HTTP
proxy: dialing "udp" fails. Metadata `timeout`: handshake deadline (default 15s).
"""

from __future__ import annotations

import asyncio
from typing import Any

from gostx.chain.plugin import Connector
from gostx.net.packet import PacketConn
from gostx.net.stream import Stream
from gostx.protocol.http import Head, basic_auth, parse_head, read_head
from gostx.registry import connectors

DEFAULT_TIMEOUT = 15.0


@connectors.register("http")
class HttpConnector(Connector):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        timeout = self.metadata.get_duration("timeout", default=DEFAULT_TIMEOUT)
        self.timeout = timeout if timeout > 0 else DEFAULT_TIMEOUT
        extra = self.metadata.raw("header")
        self.extra_headers = [(str(k), str(v)) for k, v in extra.items()] if isinstance(extra, dict) else []

    async def connect(self, stream: Stream, network: str, address: str) -> Stream | PacketConn:
        if network != "tcp":
            raise ConnectionError(f"http connector: {network} is not supported (use a socks5 or relay node)")
        head = Head(f"CONNECT {address} HTTP/1.1", [("Host", address), ("Proxy-Connection", "keep-alive")])
        if self.auth:
            head.headers.append(("Proxy-Authorization", basic_auth(self.auth.username, self.auth.password)))
        head.headers += self.extra_headers
        async with asyncio.timeout(self.timeout):
            await stream.write(head.encode())
            raw = await read_head(stream)
        if not raw:
            raise ConnectionError("http proxy closed the connection")
        status_line = parse_head(raw).start
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].startswith("2"):
            raise ConnectionError(f"http proxy: {status_line[:80]}")
        return stream
