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
from gostx.handler.forward.direct import DialOptions, dial
from gostx.handler.forward.splice import SpliceRelay
from gostx.handler.forward.targets import Target, TargetPicker, forward_targets
from gostx.listener.tcp import TcpListener
from gostx.listener.udp import UdpListener, UdpSession
from gostx.service import Handler, Listener

ACCEPT_BACKOFF_MAX = 1.0


def _client_host(peer: str) -> str:
    return peer.rsplit(":", 1)[0].strip("[]")


class _UpstreamProtocol(asyncio.DatagramProtocol):
    """Datagrams from the target go back to the session's client."""

    def __init__(self, session: UdpSession, handler: ForwardHandler) -> None:
        self.session = session
        self.handler = handler

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.session.send(data)

    def error_received(self, exc: Exception) -> None:
        # e.g. ICMP port unreachable on the connected socket: the session ends (as gost v2).
        self.handler.ctx.log.debug(f"{self.session.peer}: upstream: {exc}")
        self.session.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.close()


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
            task.add_done_callback(self._tasks.discard)

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
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UpstreamProtocol(session, self), sock=sock)
        except BaseException:
            sock.close()
            session.close()
            raise
        fields = {"remote": session.peer, "dst": target.addr, "network": "udp"}
        log.info(f"{session.peer} <-> {target.addr}", extra=fields)
        session.on_close(transport.close)
        session.set_receiver(transport.sendto)
        try:
            await session.wait_closed()
        finally:
            session.close()
            transport.close()
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
