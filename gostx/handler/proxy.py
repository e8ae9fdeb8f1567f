"""What the proxy handlers (socks5, http) share: the Router of the service, an accept loop over a TCP
listener with one task per connection, and gost-style connection logs.

A subclass implements `handle(stream, peer)`; it owns the stream and must close it. An error escaping
`handle` is logged as one line and the connection closed; the server keeps serving.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import socket
from typing import Any

from gostx.chain import Bypass, Router, build_router, service_bypass
from gostx.config.model import AuthConfig
from gostx.errors import GostError
from gostx.listener.limits import handshake_done, set_handshake_deadline
from gostx.listener.tcp import TcpListener
from gostx.log_limit import RateLimitedLog
from gostx.metrics.counters import fail_request
from gostx.net.stream import SocketStream, Stream
from gostx.service import Handler, Listener

ACCEPT_BACKOFF_MAX = 1.0


class Credentials:
    """The handler's users: `user:pass@` / handler.auth (one user). Named authers are not supported."""

    def __init__(self, auth: AuthConfig | None, authers: list[str], where: str) -> None:
        if authers:
            raise GostError(f"{where}: authers are not supported yet (use user:pass@ or handler.auth)")
        if auth is not None and auth.file:
            raise GostError(f"{where}: auth.file is not supported yet")
        self.users = {auth.username: auth.password} if auth is not None and auth.username else {}

    def __bool__(self) -> bool:
        return bool(self.users)

    def check(self, username: str, password: str) -> bool:
        return username in self.users and self.users[username] == password


class ProxyHandler(Handler):
    router: Router
    credentials: Credentials

    async def init(self) -> None:
        where = f"handler {self.config.type}"
        self.credentials = Credentials(self.config.auth, [a for a in [self.config.auther, *self.config.authers] if a],
                                       where)
        self.router = build_router(self.ctx.chain, self.ctx.config, self.ctx.metadata,
                                   retries=self.config.retries, log=self.ctx.log)
        self.bypass: Bypass | None = service_bypass(self.ctx.config, self.ctx.name)
        self.tasks: set[asyncio.Task[None]] = set()
        self.auth_failures = RateLimitedLog()  # wrong credentials: a few lines per window, not one per guess
        self.parse_metadata()

    def log_auth_failure(self, peer: str, msg: str) -> None:
        """Wrong credentials: a handler error in gost's counters (each one), a log line rate-limited."""
        fail_request()
        self.auth_failures.log(self.ctx.log, logging.INFO, f"{peer}: {msg}", extra={"remote": peer})

    def parse_metadata(self) -> None:
        """Read the handler's own metadata (self.metadata); raise GostError for bad values."""

    def rejects(self, target: str, peer: str) -> bool:
        """The service's bypass refuses this target (logged)."""
        if self.bypass is None or not self.bypass.contains(target):
            return False
        self.ctx.log.info(f"{peer} -> {target}: bypassed (service bypass)", extra={"remote": peer, "dst": target})
        return True

    async def serve(self, listener: Listener) -> None:
        if not isinstance(listener, TcpListener):
            raise GostError(f"handler {self.config.type} cannot serve listener {listener.config.type}")
        backoff = 0.0
        while True:
            try:
                conn, peer = await listener.accept()
            except OSError as exc:  # e.g. EMFILE: wait a little, as Go's accept loop does
                backoff = min(max(backoff * 2, 0.005), ACCEPT_BACKOFF_MAX)
                self.ctx.log.error(f"accept: {exc.strerror or exc}; retrying in {backoff:g}s")
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = asyncio.create_task(self._run(conn, peer, listener))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, conn: socket.socket, peer: str, listener: TcpListener | None = None) -> None:
        try:
            with self.ctx.counters.request():  # gost's per-service request counters, once per connection
                await self._serve_conn(conn, peer, listener)
        finally:
            if listener is not None:
                listener.release(peer)

    async def _serve_conn(self, conn: socket.socket, peer: str, listener: TcpListener | None) -> None:
        stream: Stream = SocketStream(conn)
        try:
            # the listener's handshakeTimeout bounds the transport's handshake and the handler's greeting
            # and request; handle() lifts it (handshake_done) once it has the request
            async with asyncio.timeout(listener.handshake_timeout if listener is not None else None) as deadline:
                set_handshake_deadline(deadline)
                if listener is not None:
                    stream = await listener.upgrade(conn)  # TLS / WebSocket handshakes of tls, ws, wss
                await self.handle(stream, peer)
        except (ConnectionError, TimeoutError, OSError, GostError) as exc:
            fail_request()
            self.ctx.log.debug(f"{peer}: {describe(exc)}", extra={"remote": peer})
        except asyncio.CancelledError:
            stream.close()
            raise
        except Exception as exc:
            fail_request()
            self.ctx.log.error(f"{peer}: internal error: {type(exc).__name__}: {exc}", exc_info=exc,
                               extra={"remote": peer})
        try:
            await linger(stream)  # a no-op once the stream was handed on (relayed, detached)
        finally:
            stream.close()

    @abc.abstractmethod
    async def handle(self, stream: Stream, peer: str) -> None:
        """Serve one client connection."""

    @staticmethod
    def handshake_done() -> None:
        """The request is read: the listener's handshakeTimeout no longer applies to this connection."""
        handshake_done()

    def log_open(self, peer: str, target: str, **fields: Any) -> dict[str, Any]:
        handshake_done()  # relaying starts: the handshake is over (if handle() did not say so earlier)
        extra = {"remote": peer, "dst": target, **fields}
        if self.ctx.log.isEnabledFor(logging.INFO):
            self.ctx.log.info(f"{peer} <-> {target}", extra=extra)
        return extra

    def log_close(self, peer: str, target: str, extra: dict[str, Any], start: float, sent: int, received: int) -> None:
        self.ctx.counters.add_bytes(sent, received)  # the flow's totals, once (spliced / C-relayed included)
        if not self.ctx.log.isEnabledFor(logging.INFO):
            return
        loop = asyncio.get_running_loop()
        self.ctx.log.info(f"{peer} >-< {target}", extra={
            **extra, "duration": f"{loop.time() - start:.3f}s", "inputBytes": sent, "outputBytes": received})

    async def close(self) -> None:
        tasks: set[asyncio.Task[None]] = getattr(self, "tasks", set())
        for task in list(tasks):
            task.cancel()
        if tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)


LINGER_SECONDS = 1.0
LINGER_BYTES = 64 * 1024


async def linger(stream: Stream) -> None:
    """Close after a protocol error without a reset: stop writing, then discard what the client still
    sends (briefly), so an error reply already written is not destroyed by an RST."""
    sock = stream.sock
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    drained = 0
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(LINGER_SECONDS):
            while drained < LINGER_BYTES:
                data = await stream.read(8192)
                if not data:
                    break
                drained += len(data)


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
