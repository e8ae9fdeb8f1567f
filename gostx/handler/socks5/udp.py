"""The socks5 handler's UDP relays.

UdpTunRelay (GOST 0xF3, the path a tunnel takes through a SOCKS5 server): frames on the client's stream
<-> datagrams. When the upstream is a direct UDP socket (no chain), the C relay (csrc/proxy/socks_relay.c) moves
every datagram without Python, on the relay engine's few threads shared by all connections; over a TLS
stream (methods 0x80/0x82) Python only pumps the TLS bytes into a socketpair the C relay reads. Through a
chain ending in a SOCKS5 hop (0xF3 again) the frames go on unchanged, as a byte relay (pipe: spliced in the
kernel between plain sockets); through any other chain they are relayed in Python.

AssociateRelay (RFC 1928 UDP ASSOCIATE): datagrams with the 10-byte-style header on a UDP socket, from the
control connection's client IP only; lives until the control connection closes. With a direct upstream and
no bypass, or a chain whose last hop is SOCKS5 (0xF3), the C relay (csrc/proxy/socks_assoc.c) moves every
datagram on the relay engine; otherwise (another hop, a bypass) they are relayed per datagram in Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from typing import TYPE_CHECKING, Any

from gostx import _engine
from gostx.addr import format_sockaddr
from gostx.net.crelay import released_when_done
from gostx.net.packet import DirectPacketConn, PacketConn
from gostx.net.stream import CBridge, Stream, pipe
from gostx.protocol import socks5 as s5
from gostx.tasks import until_first_done
from gostx.tunnel.udp import tune_buffers

if TYPE_CHECKING:
    from gostx.handler.socks5 import Socks5Handler


def _host_port(sockname: tuple[Any, ...]) -> tuple[str, int]:
    host = str(sockname[0])
    return host.removeprefix("::ffff:") if "." in host else host, int(sockname[1])


class UdpTunRelay:
    def __init__(self, handler: Socks5Handler, stream: Stream, peer: str) -> None:
        self.handler = handler
        self.stream = stream
        self.peer = peer
        self.log = handler.ctx.log

    async def run(self, host: str, port: int) -> None:
        from gostx.handler.socks5 import _listen

        loop = asyncio.get_running_loop()
        conn: PacketConn
        try:
            if port:  # bind mode: relay from the address the client asked for
                conn = DirectPacketConn(_listen("udp", host, port), connected=False)
            else:
                conn = await self.handler.router.dial("udp", "")  # type: ignore[assignment]  # "udp": a PacketConn
        except (OSError, ConnectionError) as exc:
            await self.handler.reply(self.stream, s5.REP_FAILURE if port else s5.REP_NET_UNREACHABLE)
            self.log.error(f"{self.peer}: UDP-over-TCP: {exc}", extra={"remote": self.peer})
            return
        try:
            if isinstance(conn, DirectPacketConn):
                bound_host, bound_port = _host_port(conn.sock.getsockname())
            else:
                bound_host, bound_port = "", 0
            await self.handler.reply(self.stream, s5.REP_SUCCEEDED, bound_host, bound_port)
            target = s5.join_addr(bound_host, bound_port)
            extra = self.handler.log_open(self.peer, target, cmd="udp-tun")
            start = loop.time()
            if isinstance(conn, DirectPacketConn) and self.handler.bypass is None:
                stats = await self._run_c(conn)
                sent, received = stats["up_bytes"], stats["down_bytes"]
                self.log.debug(f"{self.peer}: udp relay stats", extra={"remote": self.peer, "stats": stats})
            elif isinstance(conn, s5.UdpTunConn) and not conn.host and not conn.port and self.handler.bypass is None:
                # the chain's last hop is SOCKS5 0xF3 too: the frames go on as they are, a byte relay (spliced
                # in the kernel for two plain sockets); counts are stream bytes, frame headers included
                sent, received = await pipe(self.stream, conn.stream)
            else:
                sent, received = await self._run_python(conn)
            self.handler.log_close(self.peer, target, extra, start, sent, received)
        finally:
            conn.close()

    async def _run_c(self, conn: DirectPacketConn) -> dict[str, int]:
        tune_buffers(conn.sock)
        bridge = CBridge(self.stream)
        try:
            relay = _engine.SocksUdpRelay(bridge.sock.fileno(), conn.sock.fileno(), self.handler.udp_buffer)
            relay.start()  # on the shared relay engine's threads (csrc/proxy/relay_engine.c): no thread of its own
        except BaseException:
            bridge.close()
            raise
        try:
            async with released_when_done(relay, counted_as="socks_relay") as done:
                await asyncio.shield(done)
            if relay.status:
                self.log.info(f"{self.peer}: UDP-over-TCP ended: {os.strerror(relay.status).lower()}"
                              + (" (malformed frame)" if relay.status == errno.EPROTO else ""),
                              extra={"remote": self.peer})
        finally:
            bridge.close()
        return relay.stats()

    async def _run_python(self, conn: PacketConn) -> tuple[int, int]:
        counts = [0, 0]
        tun = s5.UdpTunConn(self.stream, "", 0)

        bypass = self.handler.bypass

        async def up() -> None:
            while True:
                data, addr = await tun.recvfrom()
                if bypass is not None and bypass.contains(addr):
                    continue  # gost: the service bypass drops the datagram
                counts[0] += len(data)
                await conn.sendto(data, addr)

        async def down() -> None:
            while True:
                data, addr = await conn.recvfrom()
                if not data:
                    continue
                counts[1] += len(data)
                host, port = s5.split_addr(addr)
                await self.stream.write(s5.udp_frame(data, host, port))

        await until_first_done(up(), down())
        return counts[0], counts[1]


class AssociateRelay:
    """RFC 1928 UDP relay for one association. A datagram that is malformed, names no usable host, is
    bypassed or cannot be sent is dropped and counted (`dropped` on the association's close line); the
    association goes on."""

    def __init__(self, handler: Socks5Handler, sock: socket.socket, client_ip: str) -> None:
        self.handler = handler
        self.sock = sock
        self.client_ip = client_ip.removeprefix("::ffff:")
        self.client_addr: tuple[Any, ...] | None = None
        self.log = handler.ctx.log
        self.dropped = 0
        self._bridge: CBridge | None = None  # a chain's 0xF3 stream as C sees it

    def _from_client(self, addr: tuple[object, ...]) -> bool:
        return str(addr[0]).removeprefix("::ffff:") == self.client_ip

    async def run(self, stream: Stream, peer: str) -> None:
        try:
            upstream = await self.handler.router.dial("udp", "")
        except ConnectionError as exc:
            self.log.error(f"{peer}: UDP ASSOCIATE: {exc}", extra={"remote": peer})
            return
        assert isinstance(upstream, PacketConn)
        loop = asyncio.get_running_loop()
        local = format_sockaddr(self.sock.getsockname())
        extra = self.handler.log_open(peer, local, cmd="udp")
        start = loop.time()
        try:
            relay = self._engine_relay(upstream)
        except ConnectionError as exc:
            upstream.close()
            self.log.error(f"{peer}: UDP ASSOCIATE: {exc}", extra={"remote": peer})
            self.handler.log_close(peer, local, extra, start, 0, 0)
            return
        if relay is not None:
            try:
                stats = await self._run_c(relay, stream)
            finally:
                if self._bridge is not None:
                    self._bridge.close()  # closes the hop's stream (upstream)
                upstream.close()
            self.dropped = sum(v for k, v in stats.items() if k.startswith("drop_"))
            self.log.debug(f"{peer}: udp relay stats", extra={"remote": peer, "stats": stats})
            self.handler.log_close(peer, local, {**extra, "dropped": self.dropped}, start, stats["up_bytes"],
                                   stats["down_bytes"])
            return
        counts = [0, 0]

        async def up() -> None:
            while True:
                data, addr = await loop.sock_recvfrom(self.sock, 65535 + 262)
                if not self._from_client(addr):
                    self.dropped += 1
                    continue
                self.client_addr = addr
                try:
                    payload, host, port = s5.parse_udp_datagram(data)
                except s5.Socks5Error as exc:
                    self.dropped += 1
                    self.log.debug(f"{peer}: UDP datagram dropped: {exc}", extra={"remote": peer})
                    continue
                target = s5.join_addr(host, port)
                if self.handler.bypass is not None and self.handler.bypass.contains(target):
                    self.dropped += 1
                    continue
                counts[0] += len(payload)
                try:
                    await upstream.sendto(payload, target)
                except (OSError, ValueError) as exc:  # ValueError: a name no resolver takes
                    self.dropped += 1
                    self.log.debug(f"{peer}: UDP to {host}:{port}: {exc}", extra={"remote": peer})

        async def down() -> None:
            while True:
                data, addr = await upstream.recvfrom()
                if self.client_addr is None:
                    continue
                host, port = s5.split_addr(addr)
                counts[1] += len(data)
                with contextlib.suppress(OSError):
                    await loop.sock_sendto(self.sock, s5.udp_datagram(data, host, port), self.client_addr)

        async def control() -> None:  # the association lives as long as the TCP connection
            while await stream.read(4096):
                pass

        try:
            await until_first_done(up(), down(), control())
        finally:
            upstream.close()
            self.handler.log_close(peer, local, {**extra, "dropped": self.dropped}, start, counts[0], counts[1])

    def _engine_relay(self, upstream: PacketConn) -> _engine.SocksAssociateRelay | None:
        """The C relay, else None (relayed in Python): for a direct upstream, or a chain whose last hop is
        SOCKS5 0xF3 (its stream, or for TLS / WS a socketpair end, carries the frames); never with a bypass."""
        if self.handler.bypass is not None:
            return None
        if isinstance(upstream, DirectPacketConn):
            up_fd = upstream.sock.fileno()
            tune_buffers(upstream.sock)
        elif isinstance(upstream, s5.UdpTunConn) and not upstream.host and not upstream.port \
                and not upstream.take_buffered():
            self._bridge = CBridge(upstream.stream)
            up_fd = self._bridge.sock.fileno()
        else:
            return None
        try:
            relay = _engine.SocksAssociateRelay(self.sock.fileno(), up_fd, self.client_ip, self.handler.udp_buffer)
        except (ValueError, OSError) as exc:  # e.g. a client address C cannot hold
            self.log.debug(f"udp relay: {exc}")
            if self._bridge is None:
                return None  # Python relays it
            self._bridge.close()
            self._bridge = None
            raise ConnectionError(f"udp relay: {exc}") from exc
        tune_buffers(self.sock)
        return relay

    async def _run_c(self, relay: _engine.SocksAssociateRelay, stream: Stream) -> dict[str, int]:
        """The C relay until the control connection ends; its counters."""
        relay.start()
        async with released_when_done(relay, counted_as="socks_assoc") as released:
            control = asyncio.ensure_future(self._drain(stream))
            waits: list[asyncio.Future[object]] = [control, released]  # type: ignore[list-item]
            if self._bridge is not None and self._bridge.task is not None:
                waits.append(self._bridge.task)  # type: ignore[arg-type]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                control.cancel()
        return relay.stats()

    @staticmethod
    async def _drain(stream: Stream) -> None:
        """The association lives as long as its TCP connection."""
        with contextlib.suppress(OSError, ConnectionError):
            while await stream.read(4096):
                pass

    def close(self) -> None:
        self.sock.close()
