"""gost handler `socks5` (also `socks`): a SOCKS5 server (RFC 1928/1929 and GOST's extensions).

    gost -L socks5://[user:pass@]:1080[?udp=true&bind=true]

Methods: 0x00, 0x02 (user/pass, when the service has credentials), and GOST's 0x80/0x82 (TLS, then as
0x00/0x02; the default self-signed certificate unless handler TLS is configured) unless `notls`. The
choice is made among the methods the client offers (gost's current rule): with credentials 0x82 > 0x02,
without 0x80 > 0x00; none acceptable -> 0xFF and close.

Commands: CONNECT (through the service's chain; a service bypass match -> 0x02); BIND (`bind=true`); UDP
ASSOCIATE (`udp=true`, RFC 1928 datagrams from the client's IP only); GOST UDP-over-TCP 0xF3 (port 0: relay
mode, allowed unless `udp=false`, as gost v2 and the TUN/TAP seed, where gost v3 needs `udp=true`; a port:
bind mode, needs `bind=true`). Replies as gost: not allowed 0x02, dial failure 0x03, listen failure 0x01,
unknown command 0x07, unknown address type 0x08.

Metadata: `readTimeout` (15s, negotiation + request), `notls`, `bind`, `udp`, `udpBufferSize` /
`udp.bufferSize` (largest relayed datagram, default 65535 in gostx: gost's 4096 would cut tunnel packets),
`publicAddr` / `socks.publicAddr` (the host put in BIND / ASSOCIATE replies). With a service bypass the
UDP relays drop datagrams to bypassed addresses (then 0xF3 is relayed in Python, not in C).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from gostx.addr import split_host_port
from gostx.errors import GostError
from gostx.handler.proxy import ProxyHandler, describe
from gostx.handler.socks5.udp import AssociateRelay, UdpTunRelay
from gostx.net.packet import PacketConn
from gostx.net.stream import Stream, pipe, start_tls_server
from gostx.protocol import socks5 as s5
from gostx.protocol.socks5_tls import server_context
from gostx.registry import handlers

DEFAULT_READ_TIMEOUT = 15.0


@handlers.register("socks5")
@handlers.register("socks")
class Socks5Handler(ProxyHandler):
    def parse_metadata(self) -> None:
        md = self.metadata
        timeout = md.get_duration("readTimeout", default=DEFAULT_READ_TIMEOUT)
        self.read_timeout = timeout if timeout > 0 else DEFAULT_READ_TIMEOUT
        self.tls_allowed = not md.get_bool("notls")
        self.bind_allowed = md.get_bool("bind")
        self.udp_allowed = md.get_bool("udp")
        # 0xF3 relay mode: gost v3 needs udp=true, gost v2 (and the TUN/TAP seed's `-L socks5://:1080`)
        # does not; gostx allows it unless udp is explicitly false.
        self.udp_tun_allowed = md.get_bool("udp", default=True)
        size = md.get_int("udpBufferSize", "udp.bufferSize", default=65535)
        if not 0 < size <= 65535:
            raise GostError(f"handler {self.config.type}: udpBufferSize {size} out of range 1..65535")
        self.udp_buffer = size
        self.public_host = md.get_string("publicAddr", "socks.publicAddr")
        self.tls_context = server_context(self.config.tls) if self.tls_allowed else None

    # -- negotiation ---------------------------------------------------------------------------

    def choose_method(self, offered: bytes) -> int:
        tls = self.tls_allowed
        if self.credentials:
            order = [s5.METHOD_TLS_AUTH] if tls else []
            order.append(s5.METHOD_USER_PASS)
        else:
            order = [s5.METHOD_TLS] if tls else []
            order.append(s5.METHOD_NO_AUTH)
        return next((m for m in order if m in offered), s5.METHOD_NO_ACCEPTABLE)

    async def negotiate(self, stream: Stream, peer: str) -> Stream | None:
        """Method selection (+ TLS, + user/pass). The stream to go on with, or None (refused)."""
        head = await stream.readexactly(2)
        if head[0] != s5.VERSION:
            raise s5.Socks5Error(f"bad version {head[0]}")
        if head[1] == 0:
            raise s5.Socks5Error("no methods offered")
        offered = await stream.readexactly(head[1])
        method = self.choose_method(offered)
        await stream.write(bytes([s5.VERSION, method]))
        if method == s5.METHOD_NO_ACCEPTABLE:
            self.ctx.log.debug(f"{peer}: no acceptable method in {offered.hex()}", extra={"remote": peer})
            return None
        plain = stream
        if method in (s5.METHOD_TLS, s5.METHOD_TLS_AUTH):
            assert self.tls_context is not None
            stream = await start_tls_server(stream, self.tls_context, self.read_timeout)
        try:
            if method in (s5.METHOD_USER_PASS, s5.METHOD_TLS_AUTH) and not await self.authenticate(stream, peer):
                if stream is not plain:
                    stream.close()
                return None
        except BaseException:
            if stream is not plain:
                stream.close()
            raise
        return stream

    async def authenticate(self, stream: Stream, peer: str) -> bool:
        head = await stream.readexactly(2)
        if head[0] != s5.AUTH_VERSION:
            raise s5.Socks5Error(f"bad user/pass version {head[0]}")
        user = await stream.readexactly(head[1]) if head[1] else b""
        plen = (await stream.readexactly(1))[0]
        password = await stream.readexactly(plen) if plen else b""
        ok = self.credentials.check(user.decode("utf-8", "replace"), password.decode("utf-8", "replace"))
        await stream.write(bytes([s5.AUTH_VERSION, s5.AUTH_SUCCESS if ok else s5.AUTH_FAILURE]))
        if not ok:
            self.log_auth_failure(peer, f"authentication failed for user {user.decode('utf-8', 'replace')!r}")
        return ok

    async def reply(self, stream: Stream, rep: int, host: str = "", port: int = 0) -> None:
        await stream.write(s5.request(rep, host, port))

    # -- requests ------------------------------------------------------------------------------

    async def handle(self, stream: Stream, peer: str) -> None:
        original = stream
        try:
            async with asyncio.timeout(self.read_timeout):
                negotiated = await self.negotiate(stream, peer)
                if negotiated is None:
                    return
                stream = negotiated
                head = await stream.readexactly(3)
                if head[0] != s5.VERSION:
                    raise s5.Socks5Error(f"bad request version {head[0]}")
                cmd = head[1]
                host, port = await s5.read_addr(stream)
        except s5.Socks5Error as exc:
            if exc.reply is not None:
                await self.reply(stream, exc.reply)
            if stream is not original:
                stream.close()
            raise
        except BaseException:
            if stream is not original:
                stream.close()
            raise
        self.handshake_done()
        try:
            if cmd == s5.CMD_CONNECT:
                await self.connect(stream, peer, host, port)
            elif cmd == s5.CMD_BIND:
                await self.bind(stream, peer, host, port)
            elif cmd == s5.CMD_UDP_ASSOCIATE:
                await self.associate(stream, peer)
            elif cmd == s5.CMD_UDP_TUN:
                await self.udp_tun(stream, peer, host, port)
            else:
                await self.reply(stream, s5.REP_CMD_UNSUPPORTED)
                self.ctx.log.debug(f"{peer}: unsupported command 0x{cmd:02x}", extra={"remote": peer})
        finally:
            if stream is not original:  # the plain stream is closed (after a linger) by ProxyHandler
                stream.close()

    async def connect(self, stream: Stream, peer: str, host: str, port: int) -> None:
        target = s5.join_addr(host, port)
        if self.rejects(target, peer):
            await self.reply(stream, s5.REP_NOT_ALLOWED)
            return
        start = asyncio.get_running_loop().time()
        try:
            upstream = await self.router.dial("tcp", target)
        except ConnectionError as exc:
            await self.reply(stream, s5.REP_NET_UNREACHABLE)
            self.ctx.log.error(f"{peer} -> {target}: {exc}", extra={"remote": peer, "dst": target})
            return
        assert not isinstance(upstream, PacketConn)
        await self.reply(stream, s5.REP_SUCCEEDED)
        extra = self.log_open(peer, target, cmd="connect")
        sent, received = await pipe(stream, upstream)
        self.log_close(peer, target, extra, start, sent, received)

    def _reply_host(self, stream: Stream) -> str:
        if self.public_host:
            host = self.public_host
            try:
                host, _ = split_host_port(host)
            except GostError:
                pass
            return host
        local = stream.local_addr
        return local.rsplit(":", 1)[0].strip("[]") if local else ""

    async def bind(self, stream: Stream, peer: str, host: str, port: int) -> None:
        if not self.bind_allowed:
            await self.reply(stream, s5.REP_NOT_ALLOWED)
            self.ctx.log.info(f"{peer}: BIND refused (bind=true is not set)", extra={"remote": peer})
            return
        try:
            listener = _listen("tcp", host, port)
        except OSError as exc:
            await self.reply(stream, s5.REP_FAILURE)
            self.ctx.log.error(f"{peer}: BIND {s5.join_addr(host, port)}: {describe(exc)}", extra={"remote": peer})
            return
        loop = asyncio.get_running_loop()
        try:
            bound_port = listener.getsockname()[1]
            await self.reply(stream, s5.REP_SUCCEEDED, self._reply_host(stream), bound_port)
            accept = asyncio.ensure_future(loop.sock_accept(listener))
            control = asyncio.ensure_future(stream.read(1))
            done, _ = await asyncio.wait([accept, control], return_when=asyncio.FIRST_COMPLETED)
            if accept not in done:  # the control connection ended (or sent data) before anyone connected
                accept.cancel()
                return
            control.cancel()
            conn, addr = accept.result()
        finally:
            listener.close()
        from gostx.net.stream import SocketStream

        incoming = SocketStream(conn)
        await self.reply(stream, s5.REP_SUCCEEDED, str(addr[0]).removeprefix("::ffff:"), int(addr[1]))
        target = s5.join_addr(str(addr[0]).removeprefix("::ffff:"), int(addr[1]))
        extra = self.log_open(peer, target, cmd="bind")
        start = loop.time()
        sent, received = await pipe(stream, incoming)
        self.log_close(peer, target, extra, start, sent, received)

    async def associate(self, stream: Stream, peer: str) -> None:
        if not self.udp_allowed:
            await self.reply(stream, s5.REP_NOT_ALLOWED)
            self.ctx.log.info(f"{peer}: UDP ASSOCIATE refused (udp=true is not set)", extra={"remote": peer})
            return
        local_host = self._reply_host(stream)
        try:
            sock = _listen("udp", local_host if not self.public_host else "", 0)
        except OSError as exc:
            await self.reply(stream, s5.REP_FAILURE)
            self.ctx.log.error(f"{peer}: UDP ASSOCIATE: {describe(exc)}", extra={"remote": peer})
            return
        relay = AssociateRelay(self, sock, peer.rsplit(":", 1)[0].strip("[]"))
        try:
            await self.reply(stream, s5.REP_SUCCEEDED, local_host, sock.getsockname()[1])
            await relay.run(stream, peer)
        finally:
            relay.close()

    async def udp_tun(self, stream: Stream, peer: str, host: str, port: int) -> None:
        allowed = self.bind_allowed if port else self.udp_tun_allowed
        if not allowed:
            await self.reply(stream, s5.REP_NOT_ALLOWED)
            option = "bind=true is not set" if port else "udp=false"
            self.ctx.log.info(f"{peer}: UDP-over-TCP refused ({option})", extra={"remote": peer})
            return
        relay = UdpTunRelay(self, stream, peer)
        await relay.run(host, port)


def _listen(network: str, host: str, port: int) -> socket.socket:
    """A listening TCP / bound UDP socket on host:port (an empty or wildcard host: dual-stack)."""
    kind = socket.SOCK_STREAM if network == "tcp" else socket.SOCK_DGRAM
    family = socket.AF_INET6
    bind_host = "::"
    if host not in ("", "0.0.0.0", "::"):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise OSError(22, f"cannot listen on {host!r}: not an IP address") from None
        if ip.version == 4:
            family, bind_host = socket.AF_INET, host
        else:
            bind_host = host
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6 and bind_host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((bind_host, port))
        if network == "tcp":
            sock.listen(1)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
