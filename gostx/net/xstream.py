"""Streams whose TLS and WebSocket framing run in C (csrc/proxy/xstream.c): Python is called once per flow.

    stream = await open_xstream(SocketStream(sock), tls=ctx, server_name=..., verify_name=...)
    stream = await open_xstream(SocketStream(sock), tls=ctx, head=True, raw=request)   # WebSocket client

The TCP socket moves into a C stream on the shared relay engine; Python gets back a `CStream`: a
SocketStream over one end of a unix socketpair that carries exactly the plaintext (WebSocket payload)
bytes. Protocol handshakes read and write it like any socket, `pipe()` splices it, and every C consumer
that wants an fd (tun, tungo, the 0xF3 relay) takes `stream.sock` as it is.

Stage changes (TLS up or failed, the HTTP head of a WebSocket upgrade passed on, the end) arrive on the
stream's eventfd (the relay engine's done fd of the stream) through loop.add_reader: no polling. The
reader stays registered until the C stream ended, so the C stream lives on when the CStream is detached
(e.g. spliced). `close()` closes Python's end: C then sends what it holds, a WebSocket close frame, a TLS
close_notify and a FIN; a stream whose peer never ends its side is cancelled CLOSE_LINGER seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from gostx import _engine
from gostx.log import get_logger
from gostx.log_limit import RateLimitedLog
from gostx.metrics.sources import relay_ended
from gostx.net.stream import SocketStream, _name

CLOSE_LINGER = 30.0
# failed streams (TLS handshakes, WebSocket protocol errors): peers can cause them at will
STREAM_FAILURES = RateLimitedLog()
# GOSTX_XSTREAM=0 keeps TLS and WebSocket in Python (gostx/net/tls.py, ws.py): for comparisons
ENABLED = os.environ.get("GOSTX_XSTREAM", "1") != "0"


class XStreamError(ConnectionError):
    """The C stream failed (TLS handshake, WebSocket protocol, reset); the message is one line."""


class _Watch:
    """The eventfd reader of one C stream: wakes stage waiters; at the end unregisters, lets the engine
    go (xs.stop returns at once then) and logs a failure that nobody awaited."""

    def __init__(self, xs: _engine.XStream, peer: str) -> None:
        self.xs = xs
        self.peer = peer
        self.loop = asyncio.get_running_loop()
        self.fd = xs.event_fd
        self.waiters: list[tuple[int, asyncio.Future[int]]] = []
        self.ended = False
        self.reported = False
        self.stats: dict[str, int] = {}
        self.linger: asyncio.TimerHandle | None = None
        self.loop.add_reader(self.fd, self._on_event)

    def _on_event(self) -> None:
        # the eventfd first, then the stage: C sets the bits before each write (XS_ENDED: the engine's
        # DONE state, before its own write), so a change after the read makes the fd readable again
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.read(self.fd, 8)
        stage = self.xs.stage
        for bits, fut in list(self.waiters):
            if stage & (bits | _engine.XS_ENDED) and not fut.done():
                fut.set_result(stage)
        self.waiters = [(b, f) for b, f in self.waiters if not f.done()]
        if stage & _engine.XS_ENDED:
            self._finish(stage)

    def _finish(self, stage: int) -> None:
        if self.ended:
            return
        self.ended = True
        self.loop.remove_reader(self.fd)
        if self.linger is not None:  # the timer would hold this stream (and its fds) until it fired
            self.linger.cancel()
            self.linger = None
        self.xs.stop()  # the engine let go already: returns at once
        self.stats = self.xs.stats()
        relay_ended("xstream", self.stats, count="streams")
        if stage & _engine.XS_FAILED and not self.reported:
            reason = self.xs.reason
            if reason:
                STREAM_FAILURES.log(get_logger(kind="xstream"), logging.INFO, f"{self.peer}: {reason}",
                                    extra={"remote": self.peer})
        self.xs.release()  # its fds close now, whoever still holds the stream object

    async def wait(self, bits: int) -> int:
        stage = self.xs.stage
        if stage & (bits | _engine.XS_ENDED):
            return stage
        fut: asyncio.Future[int] = self.loop.create_future()
        self.waiters.append((bits, fut))
        return await fut

    def cancel_later(self, delay: float) -> None:
        if not self.ended and self.linger is None:
            self.linger = self.loop.call_later(delay, self._cancel)

    def _cancel(self) -> None:
        if not self.ended:
            self.xs.cancel()


class CStream(SocketStream):
    """A SocketStream over the app end of a C stream (see the module docstring). Its addresses are the
    TCP connection's."""

    def __init__(self, sock: socket.socket, xs: _engine.XStream, local: str, remote: str, head: bool) -> None:
        super().__init__(sock)
        self.xs = xs
        self._local, self._remote = local, remote
        self._head_pending = head  # head mode, ws_start not called yet
        self._watch = _Watch(xs, remote)

    async def wait_stage(self, bits: int, what: str) -> int:
        """Wait until one of bits is reached; XStreamError(reason) when the stream ended first."""
        stage = await self._watch.wait(bits)
        if not stage & bits:
            self._watch.reported = True
            reason = self.xs.reason or f"connection closed during {what}"
            raise XStreamError(reason)
        return stage

    def ws_start(self, raw: bytes, mode: int) -> None:
        """End the head phase: C sends raw unframed, then frames per mode (_engine.XS_WS_CLIENT / ...)."""
        self._head_pending = False
        self.xs.ws_start(raw, mode)

    async def join(self, peer: SocketStream) -> tuple[int, int]:
        """Move the relay of this stream and peer (a plain socket) fully into C (the engine drains the
        socketpair in order and closes it); returns (bytes net -> peer, bytes peer -> net) once both
        directions ended. Both streams are detached. C gets dups: ours close as soon as the engine took
        the join (XS_JOINED; a joined flow then holds the TCP socket, the peer and the eventfd), and when
        the stream ended before that, what it had passed to the socketpair is forwarded here, once."""
        app_end, peer_sock = self.detach(), peer.detach()
        before = self.xs.stats()
        try:
            if self._watch.ended:  # the C stream is gone already (its peer closed): the rest is here
                return await _forward_rest(app_end, peer_sock), 0
            try:
                self.xs.join(os.dup(app_end.fileno()), os.dup(peer_sock.fileno()))
            except BaseException:
                self.xs.cancel()
                raise
            try:
                if await self._watch.wait(_engine.XS_JOINED) & _engine.XS_JOINED:
                    app_end.close()  # the engine holds its own dups: the socketpair's last fds are C's
                    peer_sock.close()
                await self._watch.wait(_engine.XS_ENDED)
            except asyncio.CancelledError:
                self.xs.cancel()
                raise
            after = self._watch.stats or self.xs.stats()
            to_peer, from_peer = after["app_in"] - before["app_in"], after["app_out"] - before["app_out"]
            if not after.get("joined"):
                to_peer = await _forward_rest(app_end, peer_sock)
            return to_peer, from_peer
        finally:
            app_end.close()
            peer_sock.close()

    def close(self) -> None:
        if self.sock is not None:
            # a head-mode stream that never started framing would hold the TCP connection: end it now
            if not self.xs.stage & _engine.XS_UP or self._head_pending:
                self.xs.cancel()
            else:
                self._watch.cancel_later(CLOSE_LINGER)
        super().close()

    def abort(self) -> None:
        """End the C stream at once (handshake failures, timeouts)."""
        self.xs.cancel()
        super().close()

    @property
    def stats(self) -> dict[str, int]:
        """The C counters (final once the stream ended)."""
        return self._watch.stats or self.xs.stats()

    @property
    def local_addr(self) -> str:
        return self._local

    @property
    def remote_addr(self) -> str:
        return self._remote


async def _forward_rest(app_end: socket.socket, peer: socket.socket) -> int:
    """The C stream ended before the join: pass on what it left in the socketpair, then the EOF."""
    loop = asyncio.get_running_loop()
    app_end.setblocking(False)
    peer.setblocking(False)
    moved = 0
    with contextlib.suppress(OSError):
        while data := await loop.sock_recv(app_end, 1 << 16):
            await loop.sock_sendall(peer, data)
            moved += len(data)
        peer.shutdown(socket.SHUT_WR)
    return moved


async def open_xstream(stream: SocketStream, tls: _engine.TlsContext | None = None, server_name: str | None = None,
                       verify_name: str | None = None, head: bool = False, raw: bytes = b"",
                       timeout: float = 15.0) -> CStream:
    """Move stream's socket into a C stream; returns once TLS is up (at once without TLS). On failure the
    socket is closed and XStreamError (one-line reason) or TimeoutError is raised."""
    net = stream.detach()
    local, remote = _name(net, remote=False), _name(net, remote=True)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        xs = _engine.XStream(net.fileno(), theirs.fileno(), tls, server_name or None, verify_name or None,
                             head, raw or None)
    except BaseException:
        ours.close()
        theirs.close()
        net.close()
        raise
    net.detach()  # the C stream owns both fds now
    theirs.detach()
    cs = CStream(ours, xs, local, remote, head)
    try:
        xs.start()
        if tls is not None:
            async with asyncio.timeout(timeout):
                await cs.wait_stage(_engine.XS_UP, "the TLS handshake")
    except BaseException:
        cs.abort()
        raise
    return cs
