"""`-L udp://` forwarding in C (gostx._engine.UdpForwarder, csrc/udp_fwd.c): no Python per datagram.

The C forwarder owns the listening socket and every session's upstream socket. Python hears of a session
twice: when its first datagram arrives (OPEN: the connection limiter decides, the handler picks a target
and dials it, and the connected UDP socket goes to C, or the session is refused) and when it ends (CLOSE:
idle for `ttl`, an upstream error such as ICMP port unreachable, or refused): then the close line is
logged with the session's byte counts. Used when the session's upstream is a plain UDP socket (no chain).
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gostx import _engine
from gostx.addr import join_host_port
from gostx.listener.udp import UdpListener
from gostx.net.packet import DirectPacketConn
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
    fields: dict[str, Any] = field(default_factory=dict)


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
        try:
            await loop.create_future()  # until the service is closed (cancelled)
        finally:
            loop.remove_reader(self.fwd.event_fd)
            for session in self.sessions.values():
                if session.task is not None:
                    session.task.cancel()
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
        if not isinstance(conn, DirectPacketConn):  # the caller only uses this class without a chain
            conn.close()
            self.fwd.close_session(sid)
            return
        session.target = target.addr
        session.fields = {"remote": session.peer, "dst": target.addr, "network": "udp"}
        tune_buffers(conn.sock)
        try:
            self.fwd.route(sid, conn.sock.detach())
        except OSError as exc:
            self.log.debug(f"{session.peer}: {exc}", extra=session.fields)
            return
        self.log.info(f"{session.peer} <-> {target.addr}", extra=session.fields)

    def _closed(self, sid: int, reason: int, counts: tuple[int, int, int, int]) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return  # refused: never counted by the limiter
        self.limiter.release(session.peer)
        if session.task is not None and not session.task.done():
            session.task.cancel()
        if not session.target:
            return
        if reason == errno.ETIMEDOUT:
            self.log.debug(f"{session.peer}: session idle for {self.listener.ttl:g}s, closed", extra=session.fields)
        elif reason:
            self.log.debug(f"{session.peer}: upstream: {os.strerror(reason).lower()}", extra=session.fields)
        self.log.info(f"{session.peer} >-< {session.target}", extra={
            **session.fields, "duration": f"{time.monotonic() - session.start:.3f}s",
            "inputBytes": counts[1], "outputBytes": counts[3]})
