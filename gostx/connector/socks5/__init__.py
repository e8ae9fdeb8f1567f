"""gost connector `socks5` (also `socks`): a SOCKS5 node in a chain.

handshake: method negotiation (+ RFC 1929 user/pass). CONNECT for "tcp"; for "udp" GOST's UDP-over-TCP
(0xF3): the destination is resolved here (as gost does), the request is `05 F3 00 01 0.0.0.0:0`, and the
stream then carries frames (gostx.protocol.socks5.UdpTunConn).

Metadata: `timeout` (handshake deadline, default 15s); `notls` (default true in gostx: offer only 0x00 and
0x02, which every SOCKS5 server understands; `notls=false` also offers gost's 0x80/0x82 TLS methods, as a
gost client does by default); `relay=udp`: carry UDP with the standard UDP ASSOCIATE instead of 0xF3
(datagrams go to exactly the relay address the server replies with, as gost does).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from gostx.chain.plugin import Connector
from gostx.net.packet import PacketConn
from gostx.net.stream import Stream, start_tls_client
from gostx.protocol import socks5 as s5
from gostx.protocol.socks5_tls import client_context
from gostx.registry import connectors

DEFAULT_TIMEOUT = 15.0


@connectors.register("socks5")
@connectors.register("socks")
class Socks5Connector(Connector):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        timeout = self.metadata.get_duration("timeout", default=DEFAULT_TIMEOUT)
        self.timeout = timeout if timeout > 0 else DEFAULT_TIMEOUT
        self.tls = not self.metadata.get_bool("notls", default=True)
        self.standard_udp = self.metadata.get_string("relay").lower() == "udp"

    def methods(self) -> list[int]:
        methods = [s5.METHOD_NO_AUTH]
        if self.auth:
            methods.append(s5.METHOD_USER_PASS)
        if self.tls:
            methods.append(s5.METHOD_TLS)
            if self.auth:
                methods.append(s5.METHOD_TLS_AUTH)
        return methods

    async def handshake(self, stream: Stream) -> Stream:
        async with asyncio.timeout(self.timeout):
            offered = self.methods()
            await stream.write(bytes([s5.VERSION, len(offered), *offered]))
            reply = await stream.readexactly(2)
            if reply[0] != s5.VERSION:
                raise s5.Socks5Error(f"socks5: bad version {reply[0]} in the method reply")
            method = reply[1]
            if method == s5.METHOD_NO_ACCEPTABLE:
                raise s5.Socks5Error("socks5: no acceptable authentication method"
                                     + ("" if self.auth else " (the server wants credentials)"))
            if method not in offered:
                raise s5.Socks5Error(f"socks5: server chose method 0x{method:02x}, which was not offered")
            if method in (s5.METHOD_TLS, s5.METHOD_TLS_AUTH):
                stream = await start_tls_client(stream, client_context(), None, self.timeout)
            if method in (s5.METHOD_USER_PASS, s5.METHOD_TLS_AUTH):
                await self._authenticate(stream)
            return stream

    async def _authenticate(self, stream: Stream) -> None:
        assert self.auth is not None
        user, password = self.auth.username.encode(), self.auth.password.encode()
        if len(user) > 255 or len(password) > 255:
            raise s5.Socks5Error("socks5: user name or password longer than 255 bytes")
        await stream.write(bytes([s5.AUTH_VERSION, len(user)]) + user + bytes([len(password)]) + password)
        status = await stream.readexactly(2)
        if status[1] != s5.AUTH_SUCCESS:
            raise s5.Socks5Error("socks5: authentication failed")

    async def connect(self, stream: Stream, network: str, address: str) -> Stream | PacketConn:
        async with asyncio.timeout(self.timeout):
            if network == "udp" and self.standard_udp:
                host, port = await self._resolve(address)
                await stream.write(s5.request(s5.CMD_UDP_ASSOCIATE, "", 0))
                relay_host, relay_port = await self._read_reply(stream, f"udp {address}")
                return s5.AssociateConn(stream, s5.associate_socket(relay_host, relay_port), host, port)
            if network == "udp":
                host, port = await self._resolve(address)
                await stream.write(s5.request(s5.CMD_UDP_TUN, "", 0))
                await self._read_reply(stream, f"udp {address}")
                return s5.UdpTunConn(stream, host, port)
            host, port = s5.split_addr(address)
            await stream.write(s5.request(s5.CMD_CONNECT, host or "127.0.0.1", port))
            await self._read_reply(stream, address)
            return stream

    async def _read_reply(self, stream: Stream, what: str) -> tuple[str, int]:
        rep, host, port = await s5.read_request(stream)
        if rep != s5.REP_SUCCEEDED:
            text = s5.REPLY_TEXT.get(rep, f"reply 0x{rep:02x}")
            raise s5.Socks5Error(f"socks5 {what}: {text}")
        return host, port

    async def _resolve(self, address: str) -> tuple[str, int]:
        """gost resolves the UDP destination on the client; an empty host stays 0.0.0.0 (the proxy
        host itself)."""
        if not address:
            return "", 0
        host, port = s5.split_addr(address)
        if not host:
            return "", port
        try:
            ipaddress.ip_address(host)
            return host, port
        except ValueError:
            pass
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        return str(infos[0][4][0]), port
