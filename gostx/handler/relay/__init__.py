"""gost handler `relay`: GOST's relay protocol server, over any listener:
`gost -L relay+wss://:443`, `-L relay+tls://:8443`, `-L relay://user:pass@:8080`.

1. The request is read within `readTimeout` (15s). A header that is not version 1, ends early, or holds an
   unknown or malformed feature closes the connection without an answer, as gost; an address feature
   whose host name is not one (not UTF-8, a control character, not IDNA-encodable) -> 0x01.
2. With credentials (`user:pass@`, handler.auth), the UserAuth feature must match (missing = empty): else
   status 0x02.
3. Network = the Network feature (default tcp), forced to udp by the FUDP flag (0x80).
4. Forward mode (`-L relay://:8080/host:port`): the request's address is ignored and a forward target is
   dialed instead (none usable: 0x05; dial failure: 0x06).
5. CONNECT (command 1, or 0): no address -> 0x01; a service bypass match -> 0x03; a failed dial through
   the service's chain -> 0x07.
   TCP is then relayed both ways; UDP as `LEN(2) PAYLOAD` frames to a UDP conn (no idle timeout: it lives
   as long as the stream). Without `nodelay` the OK response rides in front of the first bytes sent back.
6. BIND needs `bind=true` (else 0x03). UDP (FUDP|BIND, the association a socks5 server behind a relay
   chain uses): a UDP socket on the requested address, OK + its address, then GOST's SOCKS5 UDP-over-TCP
   frames, relayed by the socks5 handler's 0xF3 relay (in C; in Python when a service bypass must drop
   datagrams to bypassed addresses). TCP BIND (gost's rtcp): a listening socket (failure: 0x05), OK + its
   address, then an smux v1 session where this server opens one stream per inbound connection and
   writes OK + the peer's address on it first (gostx/net/smux.py).
7. Any other command -> 0x01.

Metadata: `readTimeout` (15s), `bind` (false), `nodelay` (false), `udpBufferSize` (largest relayed
datagram, 512..65535; default 65535, where gost reads 4096-byte datagrams and cuts larger ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from gostx import _engine
from gostx.addr import format_sockaddr, listen_socket
from gostx.errors import GostError
from gostx.handler.forward.targets import TargetPicker, forward_targets
from gostx.handler.proxy import ProxyHandler, describe
from gostx.net.crelay import released_when_done
from gostx.net.packet import DirectPacketConn, PacketConn
from gostx.net.relay_stream import ResponseFirstStream, read_udp_frame
from gostx.net.smux import SmuxSession
from gostx.net.stream import CBridge, SocketStream, Stream, pipe
from gostx.protocol import relay as rp
from gostx.registry import handlers
from gostx.tasks import until_first_done

DEFAULT_READ_TIMEOUT = 15.0


@handlers.register("relay")
class RelayHandler(ProxyHandler):
    picker: TargetPicker | None = None

    def parse_metadata(self) -> None:
        md = self.metadata
        timeout = md.get_duration("readTimeout", default=DEFAULT_READ_TIMEOUT)
        self.read_timeout = timeout if timeout > 0 else DEFAULT_READ_TIMEOUT
        self.bind_allowed = md.get_bool("bind")
        self.nodelay = md.get_bool("nodelay")
        size = md.get_int("udpBufferSize", "udp.bufferSize", default=65535)
        self.udp_buffer = min(max(size, 512), 65535)
        targets = forward_targets(self.ctx.forwarder, self.ctx.config) if self.ctx.forwarder else []
        if targets:
            self.picker = TargetPicker(targets, self.ctx.forwarder.selector if self.ctx.forwarder else None)

    async def reply(self, stream: Stream, status: int, features: list[rp.Feature] | None = None) -> None:
        await stream.write(rp.Response(status, features or []).encode())

    async def handle(self, stream: Stream, peer: str) -> None:
        try:
            async with asyncio.timeout(self.read_timeout):
                req = await rp.read_request(stream)
        except rp.RelayError as exc:  # gost answers nothing (but a bad host name: 0x01)
            if exc.status is not None:
                await self.reply(stream, exc.status)
            self.ctx.log.debug(f"{peer}: {exc}", extra={"remote": peer})
            return
        self.handshake_done()
        auth = req.find(rp.UserAuth)
        user, password = (auth.username, auth.password) if isinstance(auth, rp.UserAuth) else ("", "")
        if self.credentials and not self.credentials.check(user, password):
            await self.reply(stream, rp.STATUS_UNAUTHORIZED)
            self.log_auth_failure(peer, "relay: unauthorized" + (f" (user {user!r})" if user else ""))
            return
        network = req.network
        addr = req.find(rp.Addr)
        address = addr.join() if isinstance(addr, rp.Addr) else ""
        if self.picker is not None:
            await self.forward(stream, peer, network)
        elif req.command in (0, rp.CMD_CONNECT):
            await self.connect(stream, peer, network, address)
        elif req.command == rp.CMD_BIND:
            await self.bind(stream, peer, network, address)
        else:
            await self.reply(stream, rp.STATUS_BAD_REQUEST)
            self.ctx.log.debug(f"{peer}: relay: unknown command 0x{req.cmd:02x}", extra={"remote": peer})

    # -- CONNECT and forward ---------------------------------------------------------------------

    async def connect(self, stream: Stream, peer: str, network: str, address: str) -> None:
        if not address:
            await self.reply(stream, rp.STATUS_BAD_REQUEST)
            self.ctx.log.error(f"{peer}: relay: target not specified", extra={"remote": peer})
            return
        if network not in ("tcp", "udp"):
            await self.reply(stream, rp.STATUS_BAD_REQUEST)
            self.ctx.log.error(f"{peer}: relay: network {network} is not supported", extra={"remote": peer})
            return
        if self.rejects(address, peer):
            await self.reply(stream, rp.STATUS_FORBIDDEN)
            return
        start = asyncio.get_running_loop().time()
        try:
            upstream = await self.router.dial(network, address)
        except ConnectionError as exc:
            await self.reply(stream, rp.STATUS_NETWORK_UNREACHABLE)
            self.ctx.log.error(f"{peer} -> {address}: {exc}", extra={"remote": peer, "dst": address})
            return
        await self.relay(stream, peer, network, address, upstream, start, "connect")

    async def forward(self, stream: Stream, peer: str, network: str) -> None:
        assert self.picker is not None
        if network not in ("tcp", "udp"):
            await self.reply(stream, rp.STATUS_BAD_REQUEST)
            return
        target = self.picker.pick(peer.rsplit(":", 1)[0].strip("[]"))
        start = asyncio.get_running_loop().time()
        try:
            upstream = await self.router.dial(network, target.addr)
        except ConnectionError as exc:
            self.picker.mark_failed(target)
            await self.reply(stream, rp.STATUS_HOST_UNREACHABLE)
            self.ctx.log.error(f"{peer} -> {target.addr}: {exc}", extra={"remote": peer, "dst": target.addr})
            return
        self.picker.mark_ok(target)
        await self.relay(stream, peer, network, target.addr, upstream, start, "forward")

    async def relay(self, stream: Stream, peer: str, network: str, address: str, upstream: Stream | PacketConn,
                    start: float, cmd: str) -> None:
        ok = rp.OK_RESPONSE
        # The cached response rides on the first bytes back; on a plain socket it is sent now instead (the
        # bytes on the wire are the same), so both sockets can be spliced in the kernel.
        if self.nodelay or (network == "tcp" and isinstance(stream, SocketStream)):
            await stream.write(ok)
            client: Stream = stream
        else:
            client = ResponseFirstStream(stream, ok)
        extra = self.log_open(peer, address, cmd=cmd, network=network)
        if isinstance(upstream, PacketConn):
            try:
                sent, received = await self.relay_udp(client, upstream)
            finally:
                upstream.close()
        else:
            sent, received = await pipe(client, upstream)
        self.log_close(peer, address, extra, start, sent, received)

    async def relay_udp(self, stream: Stream, conn: PacketConn) -> tuple[int, int]:
        """`LEN(2) PAYLOAD` frames <-> datagrams until the stream ends or either side fails: in C
        (csrc/proxy/dgram_frames.c) when the upstream is a connected UDP socket, else in Python."""
        if isinstance(conn, DirectPacketConn) and conn.connected and self.udp_buffer >= 65535:
            if isinstance(stream, ResponseFirstStream):  # the cached OK goes out now: then only frames
                await stream.flush()
                stream = stream.inner
            return await self._relay_udp_c(stream, conn)
        counts = [0, 0]
        limit = self.udp_buffer

        async def up() -> None:
            while (data := await read_udp_frame(stream)) is not None:
                counts[0] += len(data)
                await conn.sendto(data)

        async def down() -> None:
            while True:
                data, _ = await conn.recvfrom()
                if len(data) > limit:
                    continue
                counts[1] += len(data)
                await stream.write(rp.udp_frame(data))

        try:
            await until_first_done(up(), down())
        finally:
            stream.close()
        return counts[0], counts[1]

    async def _relay_udp_c(self, stream: Stream, conn: DirectPacketConn) -> tuple[int, int]:
        bridge = CBridge(stream)  # the stream's socket, or a socketpair end Python pumps (TLS, WS)
        relay = None
        try:
            relay = _engine.DgramFrames(conn.sock.fileno(), bridge.sock.fileno(), _engine.FRAMES_RELAY)
            relay.start()
            async with released_when_done(relay, counted_as="dgram_frames") as done:
                waits: list[asyncio.Future[object]] = [done]  # type: ignore[list-item]
                if bridge.task is not None:
                    waits.append(bridge.task)  # type: ignore[arg-type]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            stats = relay.stats()
            return stats["down_bytes"], stats["up_bytes"]  # down: frames from the client; up: replies
        finally:
            if relay is not None:
                relay.stop()
            bridge.close()

    # -- BIND ------------------------------------------------------------------------------------

    async def bind(self, stream: Stream, peer: str, network: str, address: str) -> None:
        if not self.bind_allowed:
            await self.reply(stream, rp.STATUS_FORBIDDEN)
            self.ctx.log.info(f"{peer}: relay: BIND refused (bind=true is not set)", extra={"remote": peer})
            return
        if network == "tcp":
            await self.bind_tcp(stream, peer, address)
            return
        from gostx.handler.socks5 import _listen
        from gostx.handler.socks5.udp import UdpTunRelay

        host, port = rp.Addr.parse(address).host, rp.Addr.parse(address).port
        try:
            conn = DirectPacketConn(_listen("udp", host, port), connected=False)
        except OSError as exc:
            await self.reply(stream, rp.STATUS_SERVICE_UNAVAILABLE)
            self.ctx.log.error(f"{peer}: relay: UDP BIND {address or ':0'}: {describe(exc)}",
                               extra={"remote": peer})
            return
        try:
            bound = format_sockaddr(conn.sock.getsockname())
            await self.reply(stream, rp.STATUS_OK, [rp.Addr.parse(bound)])
            extra = self.log_open(peer, bound, cmd="bind", network="udp")
            start = asyncio.get_running_loop().time()
            # The same frames as SOCKS5 0xF3: the socks5 handler's relay (in C unless a service bypass
            # must look at every datagram).
            relay = UdpTunRelay(self, stream, peer)  # type: ignore[arg-type]  # duck-typed: _run_c needs ctx, bypass, log_*
            if self.bypass is None:
                stats = await relay._run_c(conn)
                sent, received = stats["up_bytes"], stats["down_bytes"]
            else:
                sent, received = await relay._run_python(conn)
            self.log_close(peer, bound, extra, start, sent, received)
        finally:
            conn.close()

    async def bind_tcp(self, stream: Stream, peer: str, address: str) -> None:
        """TCP BIND (gost's rtcp): listen, answer OK + the bound address, then the connection becomes an
        smux session with this server as the smux client: one stream per inbound connection, starting
        with a Response (OK + the peer's address)."""
        addr = rp.Addr.parse(address)
        try:
            listener = listen_socket("tcp", addr.join() if addr.host else f":{addr.port}", backlog=128)
        except GostError as exc:
            await self.reply(stream, rp.STATUS_SERVICE_UNAVAILABLE)
            self.ctx.log.error(f"{peer}: relay: BIND {address or ':0'}: {exc}", extra={"remote": peer})
            return
        loop = asyncio.get_running_loop()
        bound = format_sockaddr(listener.getsockname())
        conns: set[asyncio.Task[None]] = set()
        session: SmuxSession | None = None
        try:
            await stream.write(rp.Response(rp.STATUS_OK, [rp.Addr.parse(bound)]).encode())
            self.ctx.log.info(f"{peer}: relay: bind on {bound}", extra={"remote": peer, "bind": bound})
            session = SmuxSession(stream, client=True)
            runner = asyncio.ensure_future(session.run())
            while not runner.done():
                accept = asyncio.ensure_future(loop.sock_accept(listener))
                await asyncio.wait([accept, runner], return_when=asyncio.FIRST_COMPLETED)
                if not accept.done():
                    accept.cancel()
                    break
                conn, raddr = accept.result()
                task = asyncio.ensure_future(self._bind_conn(session, conn, format_sockaddr(raddr), peer))
                conns.add(task)
                task.add_done_callback(conns.discard)
        finally:
            for task in list(conns):
                task.cancel()
            if session is not None:
                session.close()
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(listener.fileno())
            listener.close()

    async def _bind_conn(self, session: SmuxSession, conn: socket.socket, remote: str, peer: str) -> None:
        incoming = SocketStream(conn)
        try:
            sstream = await session.open()
            await sstream.write(rp.Response(rp.STATUS_OK, [rp.Addr.parse(remote)]).encode())
        except (ConnectionError, OSError):
            incoming.close()
            return
        extra = self.log_open(peer, remote, cmd="bind")
        start = asyncio.get_running_loop().time()
        sent, received = await pipe(incoming, sstream)
        self.log_close(peer, remote, extra, start, sent, received)
