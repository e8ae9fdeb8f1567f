"""Port forwarding: `tcp://:8080/host:80`, `udp://:5353/host:53` (gost handlers tcp, udp, forward).

The network follows the listener: over a TcpListener each connection is relayed to a target (spliced
in the kernel when both ends are plain sockets); over a UdpListener each client session gets its own
upstream: a connected UDP socket when direct, or through the service's chain (`-F socks5://...`: one
stream per session carrying GOST 0xF3 frames, as gost v2), and replies go back to that client from the
listening socket. The UDP listener side is C (udp_engine.py: Python once per session start and end), and
so is the upstream when it is direct or a SOCKS5 ASSOCIATE hop. Targets are picked per connection/session
(see targets.py); a failed dial marks the target and, with handler `retries`, tries another one.

Handler metadata: none yet. Service metadata used: `dialTimeout`, `interface`, `so_mark`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import Any

from gostx.chain import build_router
from gostx.errors import GostError
from gostx.handler.forward.targets import Target, TargetPicker, forward_targets
from gostx.listener.tcp import TcpListener
from gostx.listener.udp import READ_BATCH, READ_BUFFER_SIZE, UdpListener, UdpSession
from gostx.net.packet import DirectPacketConn, PacketConn
from gostx.net.stream import SocketStream, Stream, pipe
from gostx.service import Handler, Listener

ACCEPT_BACKOFF_MAX = 1.0
ENGINE_ENV = "GOSTX_UDP_ENGINE"  # "0": UDP sessions relayed in Python (the old path, kept for comparison)


def _client_host(peer: str) -> str:
    return peer.rsplit(":", 1)[0].strip("[]")


class _UdpUpstream:
    """The connected UDP socket of one client session: client datagrams out, replies back."""

    def __init__(self, session: UdpSession, sock: socket.socket, log: Any) -> None:
        self.session = session
        self.sock = sock
        self.log = log
        self.loop = asyncio.get_running_loop()
        self.dropped = 0
        self.loop.add_reader(sock.fileno(), self.on_readable)
        session.on_close(self.close)

    def send(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            self.dropped += 1  # full send buffer: drop, as UDP does
        except OSError as exc:  # e.g. ECONNREFUSED from an earlier ICMP port unreachable
            self.fail(exc)

    def on_readable(self) -> None:
        for _ in range(READ_BATCH):
            try:
                data = self.sock.recv(READ_BUFFER_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.fail(exc)
                return
            self.session.send(data)

    def fail(self, exc: OSError) -> None:
        # The session ends on an upstream error, ICMP port unreachable included (as gost v2).
        self.log.debug(f"{self.session.peer}: upstream: {_reason(exc)}")
        self.session.close()

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class _ChainedUdpUpstream:
    """A client session's datagrams through the chain (a PacketConn, e.g. 0xF3 frames on a stream)."""

    QUEUE = 256

    def __init__(self, session: UdpSession, conn: PacketConn, log: Any) -> None:
        self.session = session
        self.conn = conn
        self.log = log
        self.dropped = 0
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(self.QUEUE)
        self.tasks = [asyncio.ensure_future(self._up()), asyncio.ensure_future(self._down())]
        session.on_close(self.close)

    def send(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1  # the stream is behind: drop, as UDP does

    async def _up(self) -> None:
        try:
            while True:
                batch = [await self.queue.get()]
                while not self.queue.empty() and len(batch) < self.QUEUE:
                    batch.append(self.queue.get_nowait())
                await self.conn.sendmany(batch)
        except (OSError, ConnectionError) as exc:
            self.fail(exc)

    async def _down(self) -> None:
        try:
            while True:
                data, _ = await self.conn.recvfrom()
                self.session.send(data)
        except (OSError, ConnectionError) as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        self.log.debug(f"{self.session.peer}: upstream: {exc}")
        self.session.close()

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.conn.close()


class ForwardHandler(Handler):
    picker: TargetPicker | None = None
    _tcp_listener: TcpListener | None = None

    async def init(self) -> None:
        targets = forward_targets(self.ctx.forwarder, self.ctx.config)
        if not targets:
            raise GostError(f"handler {self.config.type}: no forward target "
                            f"(give one as in {self.config.type or 'tcp'}://:8080/host:port)")
        selector = self.ctx.forwarder.selector if self.ctx.forwarder else None
        self.picker = TargetPicker(targets, selector)
        # retries pick another target here, so the router itself makes one attempt per call
        self.router = build_router(self.ctx.chain, self.ctx.config, self.ctx.metadata, retries=0,
                                   log=self.ctx.log)
        self.attempts = 1 + max(self.config.retries, 0)
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, listener: Listener) -> None:
        if isinstance(listener, TcpListener):
            self._tcp_listener = listener
            await self._accept_loop(listener.accept, self._handle_tcp)
        elif isinstance(listener, UdpListener) and os.environ.get(ENGINE_ENV) != "0":
            from gostx.handler.forward.udp_engine import EngineUdpForward

            await EngineUdpForward(self, listener).serve()  # every datagram in C
        elif isinstance(listener, UdpListener):
            await self._accept_loop(listener.accept, self._counted_udp)
        else:
            raise GostError(f"handler {self.config.type} cannot serve listener {listener.config.type}")

    async def _accept_loop(self, accept: Any, handle: Any) -> None:
        backoff = 0.0
        while True:
            try:
                item = await accept()
            except OSError as exc:  # e.g. EMFILE: wait a little, as Go's accept loop does
                backoff = min(max(backoff * 2, 0.005), ACCEPT_BACKOFF_MAX)
                self.ctx.log.error(f"accept: {exc.strerror or exc}; retrying in {backoff:g}s")
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            args = item if isinstance(item, tuple) else (item,)
            task = asyncio.create_task(handle(*args))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.ctx.log.error(f"connection handler failed: {type(exc).__name__}: {exc}", exc_info=exc)

    async def _dial(self, network: str, peer: str) -> tuple[Stream | PacketConn, Target]:
        assert self.picker is not None
        error: BaseException | None = None
        target = self.picker.targets[0]
        for _ in range(self.attempts):
            target = self.picker.pick(_client_host(peer))
            try:
                conn = await self.router.dial(network, target.addr)
            except (OSError, TimeoutError) as exc:
                self.picker.mark_failed(target)
                error = exc
                continue
            self.picker.mark_ok(target)
            return conn, target
        assert error is not None
        if self.ctx.chain is not None:
            raise ConnectionError(str(error))
        cause = error.__cause__ or error.__context__ or error
        reason = "dial timeout" if isinstance(cause, TimeoutError) else _reason(cause)
        raise ConnectionError(f"dial {network} {target.addr}: {reason}")

    async def _handle_tcp(self, conn: socket.socket, peer: str) -> None:
        try:
            with self.ctx.counters.request():  # gost's per-service request counters, once per connection
                await self._forward_tcp(conn, peer)
        finally:
            if self._tcp_listener is not None:
                self._tcp_listener.release(peer)  # the connection cap (gostx/listener/limits.py)

    async def _forward_tcp(self, conn: socket.socket, peer: str) -> None:
        log = self.ctx.log
        start = time.monotonic()
        try:  # the transport's handshake first (tls, ws, wss listeners), as gost's listeners do in Accept
            client = await self._tcp_listener.upgrade(conn) if self._tcp_listener else SocketStream(conn)
        except (OSError, TimeoutError) as exc:
            conn.close()
            log.debug(f"{peer}: {_reason(exc)}", extra={"remote": peer})
            return
        try:
            upstream, target = await self._dial("tcp", peer)
        except ConnectionError as exc:
            client.close()
            log.error(f"{peer}: {exc}", extra={"remote": peer})
            return
        except BaseException:
            client.close()
            raise
        assert isinstance(upstream, Stream)
        fields = {"remote": peer, "dst": target.addr, "network": "tcp"}
        log.info(f"{peer} <-> {target.addr}", extra=fields)
        moved = (0, 0)
        try:
            moved = await pipe(client, upstream)
        except OSError as exc:
            log.debug(f"{peer} >-< {target.addr}: {_reason(exc)}", extra=fields)
        finally:
            self.ctx.counters.add_bytes(moved[0], moved[1])
            log.info(f"{peer} >-< {target.addr}", extra={
                **fields, "duration": f"{time.monotonic() - start:.3f}s",
                "inputBytes": moved[0], "outputBytes": moved[1]})

    async def _counted_udp(self, session: UdpSession) -> None:
        with self.ctx.counters.request():  # one request per client session
            await self._handle_udp(session)

    async def _handle_udp(self, session: UdpSession) -> None:
        log = self.ctx.log
        start = time.monotonic()
        try:
            conn, target = await self._dial("udp", session.peer)
        except ConnectionError as exc:
            session.close()
            log.error(f"{session.peer}: {exc}", extra={"remote": session.peer})
            return
        except BaseException:
            session.close()
            raise
        fields = {"remote": session.peer, "dst": target.addr, "network": "udp"}
        log.info(f"{session.peer} <-> {target.addr}", extra=fields)
        upstream: _UdpUpstream | _ChainedUdpUpstream
        if isinstance(conn, DirectPacketConn):
            upstream = _UdpUpstream(session, conn.sock, log)
        else:
            assert isinstance(conn, PacketConn)
            upstream = _ChainedUdpUpstream(session, conn, log)
        session.set_receiver(upstream.send)
        try:
            await session.wait_closed()
        finally:
            session.close()
            upstream.close()
            self.ctx.counters.add_bytes(session.bytes_in, session.bytes_out)
            log.info(f"{session.peer} >-< {target.addr}", extra={
                **fields, "duration": f"{time.monotonic() - start:.3f}s",
                "inputBytes": session.bytes_in, "outputBytes": session.bytes_out})

    async def close(self) -> None:
        tasks: set[asyncio.Task[None]] = getattr(self, "_tasks", set())
        for task in list(tasks):
            task.cancel()
        if tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # asyncio's strerror is "Connect call failed (...)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) if exc else "no target"
