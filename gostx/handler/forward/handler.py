"""Port forwarding: `tcp://:8080/host:80`, `udp://:5353/host:53` (gost handlers tcp, udp, forward).

The network follows the listener: over a TcpListener each connection is spliced to a target
(splice.py: the bytes stay in the kernel); over a
UdpListener each client session gets its own connected UDP socket to a target, and replies go back
to that client from the listening socket. Targets are picked per connection/session (see
targets.py); a failed dial marks the target and, with handler `retries`, tries another one.

Handler metadata: none yet. Service metadata used: `dialTimeout`, `interface`, `so_mark` (direct.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import Any

from gostx.errors import GostError
from gostx.handler.forward.targets import Target, TargetPicker, forward_targets
from gostx.listener.tcp import TcpListener
from gostx.listener.udp import READ_BATCH, READ_BUFFER_SIZE, UdpListener, UdpSession
from gostx.net.direct import DialOptions, dial
from gostx.net.splice import SpliceRelay
from gostx.service import Handler, Listener

ACCEPT_BACKOFF_MAX = 1.0


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


class ForwardHandler(Handler):
    picker: TargetPicker | None = None

    async def init(self) -> None:
        if self.ctx.chain is not None:
            raise GostError(f"handler {self.config.type}: forwarding through a chain is not supported yet")
        targets = forward_targets(self.ctx.forwarder, self.ctx.config)
        if not targets:
            raise GostError(f"handler {self.config.type}: no forward target "
                            f"(give one as in {self.config.type or 'tcp'}://:8080/host:port)")
        selector = self.ctx.forwarder.selector if self.ctx.forwarder else None
        self.picker = TargetPicker(targets, selector)
        self.dial_options = DialOptions.from_metadata(self.ctx.metadata)
        self.dial_options.check_privileges()
        self.attempts = 1 + max(self.config.retries, 0)
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, listener: Listener) -> None:
        if isinstance(listener, TcpListener):
            await self._accept_loop(listener.accept, self._handle_tcp)
        elif isinstance(listener, UdpListener):
            await self._accept_loop(listener.accept, self._handle_udp)
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

    async def _dial(self, network: str, peer: str) -> tuple[socket.socket, Target]:
        assert self.picker is not None
        error: BaseException | None = None
        target = self.picker.targets[0]
        for _ in range(self.attempts):
            target = self.picker.pick(_client_host(peer))
            try:
                sock = await dial(network, target.host, target.port, self.dial_options)
            except (OSError, TimeoutError) as exc:
                self.picker.mark_failed(target)
                error = exc
                continue
            self.picker.mark_ok(target)
            return sock, target
        reason = "dial timeout" if isinstance(error, TimeoutError) else _reason(error)
        raise ConnectionError(f"dial {network} {target.addr}: {reason}")

    async def _handle_tcp(self, conn: socket.socket, peer: str) -> None:
        log = self.ctx.log
        start = time.monotonic()
        try:
            upstream, target = await self._dial("tcp", peer)
        except ConnectionError as exc:
            conn.close()
            log.error(f"{peer}: {exc}", extra={"remote": peer})
            return
        except BaseException:
            conn.close()
            raise
        fields = {"remote": peer, "dst": target.addr, "network": "tcp"}
        log.info(f"{peer} <-> {target.addr}", extra=fields)
        relay = SpliceRelay(conn, upstream)
        try:
            await relay.run()
        finally:
            log.info(f"{peer} >-< {target.addr}", extra={
                **fields, "duration": f"{time.monotonic() - start:.3f}s",
                "inputBytes": relay.bytes_a_to_b, "outputBytes": relay.bytes_b_to_a})
            if relay.error is not None:
                log.debug(f"{peer} >-< {target.addr}: {_reason(relay.error)}", extra=fields)

    async def _handle_udp(self, session: UdpSession) -> None:
        log = self.ctx.log
        start = time.monotonic()
        try:
            sock, target = await self._dial("udp", session.peer)
        except ConnectionError as exc:
            session.close()
            log.error(f"{session.peer}: {exc}", extra={"remote": session.peer})
            return
        except BaseException:
            session.close()
            raise
        fields = {"remote": session.peer, "dst": target.addr, "network": "udp"}
        log.info(f"{session.peer} <-> {target.addr}", extra=fields)
        upstream = _UdpUpstream(session, sock, log)
        session.set_receiver(upstream.send)
        try:
            await session.wait_closed()
        finally:
            session.close()
            upstream.close()
            log.info(f"{session.peer} >-< {target.addr}", extra={
                **fields, "duration": f"{time.monotonic() - start:.3f}s",
                "inputBytes": session.bytes_in, "outputBytes": session.bytes_out})

    async def close(self) -> None:
        tasks = getattr(self, "_tasks", set())
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
