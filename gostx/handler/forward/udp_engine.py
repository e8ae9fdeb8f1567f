"""`-L udp://` forwarding in C (gostx._engine.UdpForwarder, csrc/proxy/udp_fwd.c): no Python per datagram.

The C forwarder owns the listening socket and every session's upstream socket. Python hears of a session
twice: when its first datagram arrives (OPEN: the connection limiter decides, the handler picks a target
and dials it, and the connected UDP socket goes to C, or the session is refused) and when it ends (CLOSE:
idle for `ttl`, an upstream error such as ICMP port unreachable, or refused): then the close line is
logged with the session's byte counts.

The session's upstream, by what the router dialed:
- direct: the connected UDP socket itself;
- a SOCKS5 hop with `relay=udp` (UDP ASSOCIATE): the UDP socket to the relay, with the hop's RFC 1928
  header put on and taken off in C; Python keeps the control connection and ends the session with it;
- a SOCKS5 hop with 0xF3 (the default): the stream after the handshake (its socket, or for TLS / WS a
  socketpair end, gostx/net/stream.py CBridge), framed in C;
- a relay hop (`-F relay+...`): its stream after the handshake, LEN(2) + data frames in C;
- anything else: one end of a datagram socketpair, whose other end Python pumps to and from the
  PacketConn (the listener side stays in C; these datagrams still cross Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gostx import _engine
from gostx.addr import join_host_port
from gostx.listener.udp import UdpListener
from gostx.metrics import register_source
from gostx.metrics.sources import udp_forward_source
from gostx.net.packet import MAX_DATAGRAM, DirectPacketConn, PacketConn
from gostx.net.relay_stream import RelayUdpConn
from gostx.net.stream import CBridge, Stream
from gostx.protocol import socks5 as s5
from gostx.tasks import until_first_done
from gostx.tunnel.udp import tune_buffers

if TYPE_CHECKING:
    from gostx.handler.forward.handler import ForwardHandler

EVENTS_PER_WAKEUP = 256
ENGINE_QUEUE = 1024  # default datagrams held per session while Python dials (1400 B each: about 1.4 MB)
SESSION_HEADROOM = 64  # C slots beyond the limiter's cap: refused sessions held a second, unreported closes


@dataclass
class _Session:
    peer: str
    start: float
    target: str = ""
    task: asyncio.Task[None] | None = None
    conn: PacketConn | None = None  # what Python keeps of the upstream (control stream, pumped conn)
    fields: dict[str, Any] = field(default_factory=dict)


class _Bridged(PacketConn):
    """What Python keeps of a 0xF3 hop framed in C: the bridge (closed with the session)."""

    def __init__(self, bridge: CBridge) -> None:
        self.bridge = bridge

    async def recvfrom(self) -> tuple[bytes, str]:
        raise ConnectionError("framed in C")

    async def sendto(self, data: bytes, address: str = "") -> None:
        raise ConnectionError("framed in C")

    def close(self) -> None:
        self.bridge.close()


class EngineUdpForward:
    def __init__(self, handler: ForwardHandler, listener: UdpListener) -> None:
        self.handler = handler
        self.listener = listener
        self.log = handler.ctx.log
        self.limiter = listener.ctx.conn_limiter
        self.sessions: dict[int, _Session] = {}
        self.fwd: Any = None

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self.listener.take_socket()
        tune_buffers(sock)
        try:
            self.fwd = _engine.UdpForwarder(sock.fileno(), self.limiter.total + SESSION_HEADROOM,
                                            self._queue(), self.listener.ttl)
        except BaseException:
            sock.close()
            raise
        sock.detach()  # the forwarder owns the fd now
        self.listener.engine_forwarder = self.fwd
        self.fwd.start()
        loop.add_reader(self.fwd.event_fd, self._on_events)
        metrics = register_source(udp_forward_source(self.handler.ctx.name, self.fwd.stats))
        try:
            await loop.create_future()  # until the service is closed (cancelled)
        finally:
            metrics.close()
            loop.remove_reader(self.fwd.event_fd)
            for session in self.sessions.values():
                if session.task is not None:
                    session.task.cancel()
                if session.conn is not None:
                    session.conn.close()
            self.fwd.stop()
            self.log.debug("udp forwarder stats", extra={"stats": self.fwd.stats()})

    def _queue(self) -> int:
        """`queue` / `readQueueSize` when given, else ENGINE_QUEUE: a fast sender's first milliseconds
        (while the target is dialed) fit."""
        return max(self.listener.metadata.get_int("queue", "readQueueSize", default=ENGINE_QUEUE), 1)

    def _on_events(self) -> None:
        for _ in range(EVENTS_PER_WAKEUP):
            event = self.fwd.next_event()
            if event is None:
                return
            kind, sid, client, reason, counts = event
            peer = join_host_port(*client) if client else "?"
            if kind == _engine.UDP_FWD_OPEN:
                self._opened(sid, peer)
            else:
                self._closed(sid, reason, counts)

    def _opened(self, sid: int, peer: str) -> None:
        if not self.limiter.acquire(peer):
            self.limiter.log_refused(self.log, peer)
            self.fwd.route(sid, -1)
            return
        session = _Session(peer, time.monotonic())
        self.sessions[sid] = session
        session.task = asyncio.create_task(self._dial(sid, session))

    async def _dial(self, sid: int, session: _Session) -> None:
        try:
            conn, target = await self.handler._dial("udp", session.peer)
        except ConnectionError as exc:
            self.log.error(f"{session.peer}: {exc}", extra={"remote": session.peer})
            self.fwd.close_session(sid)
            return
        assert isinstance(conn, PacketConn)
        session.target = target.addr
        session.fields = {"remote": session.peer, "dst": target.addr, "network": "udp"}
        session.conn = conn
        follow: Any = None
        try:
            if isinstance(conn, DirectPacketConn):
                tune_buffers(conn.sock)
                self.fwd.route(sid, conn.sock.detach())
            elif isinstance(conn, s5.AssociateConn):
                tune_buffers(conn.sock)
                header = b"\0\0\0" + s5.encode_addr(conn.host, conn.port)
                self.fwd.route(sid, conn.sock.detach(), _engine.UDP_FWD_ASSOC, header)
                follow = self._control(conn.stream)
            elif isinstance(conn, s5.UdpTunConn) and not conn.take_buffered():
                bridge = CBridge(conn.stream)  # the stream's socket, or a socketpair end Python pumps (TLS)
                session.conn = _Bridged(bridge)
                header = bytes([s5.UDP_FRAG]) + s5.encode_addr(conn.host, conn.port)
                self.fwd.route(sid, os.dup(bridge.sock.fileno()), _engine.UDP_FWD_F3, header)
                if bridge.task is not None:
                    follow = bridge.task
            elif isinstance(conn, RelayUdpConn):
                await conn.finish_handshake()
                bridge = CBridge(conn.stream)
                session.conn = _Bridged(bridge)
                self.fwd.route(sid, os.dup(bridge.sock.fileno()), _engine.UDP_FWD_RELAY)
                if bridge.task is not None:
                    follow = bridge.task
            else:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
                ours.setblocking(False)
                self.fwd.route(sid, theirs.detach())
                follow = self._pump(ours, conn)
        except (OSError, ConnectionError) as exc:
            self.log.debug(f"{session.peer}: {exc}", extra=session.fields)
            with contextlib.suppress(OSError):
                self.fwd.close_session(sid)
            return
        self.log.info(f"{session.peer} <-> {target.addr}", extra=session.fields)
        if follow is not None:
            try:
                await follow
            except (OSError, ConnectionError) as exc:
                self.log.debug(f"{session.peer}: upstream: {exc}", extra=session.fields)
            with contextlib.suppress(OSError):
                self.fwd.close_session(sid)

    @staticmethod
    async def _control(stream: Stream) -> None:
        """An ASSOCIATE hop's association lives as long as its control connection."""
        while await stream.read(4096):
            pass

    @staticmethod
    async def _pump(ours: socket.socket, conn: PacketConn) -> None:
        """Datagrams between the socketpair end C does not hold and a PacketConn only Python can drive."""
        loop = asyncio.get_running_loop()

        async def up() -> None:
            while True:
                await conn.sendto(await loop.sock_recv(ours, MAX_DATAGRAM))

        async def down() -> None:
            while True:
                data, _ = await conn.recvfrom()
                if data:
                    with contextlib.suppress(BlockingIOError):  # C is behind: drop, as UDP does
                        ours.send(data)

        try:
            await until_first_done(up(), down())
        finally:
            ours.close()

    def _closed(self, sid: int, reason: int, counts: tuple[int, int, int, int]) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return  # refused: never counted by the limiter
        self.limiter.release(session.peer)
        if session.task is not None and not session.task.done():
            session.task.cancel()
        if session.conn is not None:
            session.conn.close()  # the sockets C holds are closed already (detached): this is Python's part
        if not session.target:
            return
        if reason == errno.ETIMEDOUT:
            self.log.debug(f"{session.peer}: session idle for {self.listener.ttl:g}s, closed", extra=session.fields)
        elif reason:
            self.log.debug(f"{session.peer}: upstream: {os.strerror(reason).lower()}", extra=session.fields)
        self.log.info(f"{session.peer} >-< {session.target}", extra={
            **session.fields, "duration": f"{time.monotonic() - session.start:.3f}s",
            "inputBytes": counts[1], "outputBytes": counts[3]})
