"""gost connector `relay`: a node speaking GOST's relay protocol, usually over tls or wss:
`-F relay+wss://SERVER:443`.

- "tcp": CONNECT (`01 01 FEALEN [UserAuth] Addr`). Without `nodelay` the request rides on the first
  write and the response is read before the first read (gostx/net/relay_stream.py); `nodelay=true` sends it and
  reads the response at once.
- "udp" to an address: UDP CONNECT (`01 81`, Network=udp, [UserAuth], Addr), then `LEN(2) PAYLOAD` frames;
  the first frame carries the request unless `nodelay`.
- "udp" to "" (the socks5 handler's UDP relay through a relay chain): the association `01 82`
  (FUDP|BIND, Network=udp, [UserAuth], Addr = empty host, port 0), answered at once with the bound
  address; then GOST's SOCKS5 UDP-over-TCP frames carrying each peer's address (the server needs
  `bind=true`).

Metadata: `nodelay` (false), `connectTimeout` (handshake deadline when `nodelay`, default 15s).
"""

from __future__ import annotations

import asyncio
from typing import Any

from gostx.chain.plugin import Connector
from gostx.net.packet import PacketConn
from gostx.net.relay_stream import RelayClientStream, RelayUdpConn, check_response
from gostx.net.stream import Stream
from gostx.protocol import relay as rp
from gostx.protocol.socks5 import UdpTunConn
from gostx.registry import connectors

DEFAULT_TIMEOUT = 15.0


@connectors.register("relay")
class RelayConnector(Connector):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nodelay = self.metadata.get_bool("nodelay")
        timeout = self.metadata.get_duration("connectTimeout", default=DEFAULT_TIMEOUT)
        self.timeout = timeout if timeout > 0 else DEFAULT_TIMEOUT

    def request(self, cmd: int, network: str, address: str | None) -> rp.Request:
        """Features in gost's order: Network (udp only), UserAuth (if the node has credentials), Addr."""
        features: list[rp.Feature] = []
        if network == "udp":
            features.append(rp.Network(rp.NETWORK_UDP))
        if self.auth is not None:
            features.append(rp.UserAuth(self.auth.username, self.auth.password))
        if address is not None:
            features.append(rp.Addr.parse(address))
        return rp.Request(cmd, features)

    async def connect(self, stream: Stream, network: str, address: str) -> Stream | PacketConn:
        if network == "udp" and not address:
            return await self._associate(stream)
        if network == "udp":
            req = self.request(rp.CMD_CONNECT | rp.FLAG_UDP, "udp", address)
        else:
            req = self.request(rp.CMD_CONNECT, "tcp", address)
        what = f"{network} {address}"
        raw = req.encode()
        if self.nodelay:
            async with asyncio.timeout(self.timeout):
                await stream.write(raw)
                check_response(await rp.read_response(stream), what)
            raw = b""
        if network == "udp":
            return RelayUdpConn(stream, raw, what, address)
        return RelayClientStream(stream, raw, what) if raw else stream

    async def _associate(self, stream: Stream) -> PacketConn:
        req = self.request(rp.FLAG_UDP | rp.CMD_BIND, "udp", "")
        async with asyncio.timeout(self.timeout):
            await stream.write(req.encode())
            resp = await rp.read_response(stream)
        check_response(resp, "udp association")
        return UdpTunConn(stream, "", 0)
