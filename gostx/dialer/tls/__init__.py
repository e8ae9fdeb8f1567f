"""gost dialer `tls`: TLS to the node. `-F tls://host:443` is the http connector over
tls; `-F socks5+tls://`, `-F relay+tls://` compose the same way.

Client TLS (`dialer.tls`, filled by the command line from `secure`, `serverName`, `caFile`,
`certFile`/`keyFile`): no certificate verification unless `secure=true`; with `caFile` alone the chain
is checked but not the name; SNI = `serverName`, default the host of the node address (none for an IP,
as Go). Metadata: `handshakeTimeout` (15s).
"""

from __future__ import annotations

from typing import Any

from gostx.addr import split_host_port
from gostx.chain.plugin import Dialer
from gostx.net.stream import Stream
from gostx.net.tls import HANDSHAKE_TIMEOUT, client_context, tls_client
from gostx.registry import dialers


def server_name(dialer: Dialer, addr: str) -> str:
    if dialer.tls is not None and dialer.tls.server_name:
        return dialer.tls.server_name
    try:
        return split_host_port(addr)[0]
    except Exception:
        return addr


@dialers.register("tls")
class TlsDialer(Dialer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ssl_context = client_context(self.tls)
        timeout = self.metadata.get_duration("handshakeTimeout", default=HANDSHAKE_TIMEOUT)
        self.handshake_timeout = timeout if timeout > 0 else HANDSHAKE_TIMEOUT

    async def handshake(self, stream: Stream, addr: str) -> Stream:
        return await tls_client(stream, self.ssl_context, server_name(self, addr), self.handshake_timeout)
