"""gost listener `udp`: one UDP socket, one session per client ip:port (gost v2 semantics).

A client's first datagram creates its session, queued for the handler's accept() (`backlog`, default
128; a full queue drops the new client). Each session buffers up to `queue` (default 128; v3 name
`readQueueSize`) datagrams until the handler attaches a receiver; overflow is dropped. A session
lives until it has been idle for `ttl` (default 60 s): every datagram in either direction resets it.
Replies go out of the listening socket to the session's client address. The service's `climiter` (else the
default cap, gostx/listener/limits.py) bounds the live sessions: a new client over the cap is dropped,
counted and logged rate-limited.

Under the forward handler (`udp://`) the socket is handed to C (take_socket; gostx/handler/forward/
udp_engine.py): the sessions, `ttl`, the queue (default 1024 there) and the cap then live in
csrc/proxy/udp_fwd.c, and this class only binds the socket and reads the options.

Deliberate choice: gost v3's request/response mode (close after the first reply unless
`keepalive=true`, ttl 5 s) is not followed; sessions always live until idle, as in gost v2.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Callable
from typing import Any

from gostx.addr import format_sockaddr, listen_socket
from gostx.registry import listeners
from gostx.service import Listener

DEFAULT_TTL = 60.0
DEFAULT_BACKLOG = 128
DEFAULT_QUEUE = 128
READ_BUFFER_SIZE = 65535
READ_BATCH = 64

Receiver = Callable[[bytes], None]


class UdpSession:
    """The virtual connection of one client address on a UdpListener."""

    def __init__(self, listener: UdpListener, addr: Any) -> None:
        self.listener = listener
        self.addr = addr
        self.peer = format_sockaddr(addr)
        self.loop = asyncio.get_running_loop()
        self.last_active = self.loop.time()
        self.closed = False
        self.bytes_in = 0
        self.bytes_out = 0
        self._receiver: Receiver | None = None
        self._pending: collections.deque[bytes] = collections.deque()
        self._close_callbacks: list[Callable[[], None]] = []
        self._closed_event = asyncio.Event()
        self._timer = self.loop.call_at(self.last_active + listener.ttl, self._check_idle)

    def deliver(self, data: bytes) -> None:
        """A datagram from the client (called by the listener)."""
        self.last_active = self.loop.time()
        self.bytes_in += len(data)
        if self._receiver is not None:
            self._receiver(data)
        elif len(self._pending) < self.listener.queue_size:
            self._pending.append(data)
        else:
            self.listener.ctx.log.debug(f"{self.peer}: session queue full, datagram dropped")

    def set_receiver(self, receiver: Receiver) -> None:
        """Hand client datagrams to `receiver` from now on (queued ones first)."""
        while self._pending and not self.closed:
            receiver(self._pending.popleft())
        if not self.closed:
            self._receiver = receiver

    def send(self, data: bytes) -> None:
        """A datagram to the client, from the listening socket."""
        if self.closed:
            return
        self.last_active = self.loop.time()
        self.bytes_out += len(data)
        self.listener.sendto(data, self.addr)

    def on_close(self, callback: Callable[[], None]) -> None:
        if self.closed:
            callback()
        else:
            self._close_callbacks.append(callback)

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    def _check_idle(self) -> None:
        deadline = self.last_active + self.listener.ttl
        if self.loop.time() >= deadline:
            self.listener.ctx.log.debug(f"{self.peer}: session idle for {self.listener.ttl:g}s, closed")
            self.close()
        else:
            self._timer = self.loop.call_at(deadline, self._check_idle)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        self._pending.clear()
        self._receiver = None
        self.listener.forget(self)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                self.listener.ctx.log.warning("session close callback failed", exc_info=True)
        self._closed_event.set()


@listeners.register("udp")
class UdpListener(Listener):
    """Metadata: `ttl` (session idle timeout, default 60s), `backlog` (128), `queue`|`readQueueSize` (128)."""

    sock: socket.socket | None = None
    bound: str = ""
    engine_forwarder: Any = None  # the C forwarder that took the socket (take_socket), stopped on close

    async def init(self) -> None:
        self.ttl = self.metadata.get_duration("ttl", default=DEFAULT_TTL)
        if self.ttl <= 0:
            self.ttl = DEFAULT_TTL
        self.backlog = max(self.metadata.get_int("backlog", default=DEFAULT_BACKLOG), 1)
        self.queue_size = max(self.metadata.get_int("queue", "readQueueSize", default=DEFAULT_QUEUE), 1)
        self.sessions: dict[Any, UdpSession] = {}
        self._accept_queue: asyncio.Queue[UdpSession] = asyncio.Queue(maxsize=self.backlog)
        self.dropped = 0
        self._buffer = bytearray(READ_BUFFER_SIZE)
        self.sock = listen_socket("udp", self.ctx.addr)
        self.bound = format_sockaddr(self.sock.getsockname())
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)

    @property
    def address(self) -> str:
        return self.bound or self.ctx.addr

    def take_socket(self) -> socket.socket:
        """Hand the listening socket to a C forwarder (gostx/handler/forward/udp_engine.py): this
        listener stops reading it and makes no sessions from now on."""
        if self.sock is None or self.sessions:
            raise RuntimeError("udp listener: socket already taken or sessions live")
        sock, self.sock = self.sock, None
        self._loop.remove_reader(sock.fileno())
        return sock

    def _on_readable(self) -> None:
        """Drain up to READ_BATCH datagrams per wakeup (fewer trips through the event loop)."""
        sock, view = self.sock, memoryview(self._buffer)
        for _ in range(READ_BATCH):
            if sock is None:
                return
            try:
                n, addr = sock.recvfrom_into(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.ctx.log.debug(f"udp listener: {exc}")
                return
            self.datagram_received(bytes(view[:n]), addr)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        session = self.sessions.get(addr)
        if session is None:
            if self._accept_queue.full():
                self.ctx.log.warning(f"{format_sockaddr(addr)}: accept queue full, new session dropped")
                return
            peer = format_sockaddr(addr)
            if not self.ctx.conn_limiter.acquire(peer):
                self.ctx.conn_limiter.log_refused(self.ctx.log, peer)
                return
            session = UdpSession(self, addr)
            self.sessions[addr] = session
            self._accept_queue.put_nowait(session)
        session.deliver(data)

    def sendto(self, data: bytes, addr: Any) -> None:
        """Send from the listening socket; a full send buffer drops the datagram (UDP semantics)."""
        if self.sock is None:
            return
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.dropped += 1
        except OSError as exc:
            self.ctx.log.debug(f"{format_sockaddr(addr)}: send: {exc}")

    def forget(self, session: UdpSession) -> None:
        if self.sessions.get(session.addr) is session:
            del self.sessions[session.addr]
            self.ctx.conn_limiter.release(session.peer)

    async def accept(self) -> UdpSession:
        """The next new client session."""
        while True:
            session = await self._accept_queue.get()
            if not session.closed:
                return session

    async def close(self) -> None:
        if self.engine_forwarder is not None:
            self.engine_forwarder.stop()
        if self.sock is None:
            return
        for session in list(self.sessions.values()):
            session.close()
        sock, self.sock = self.sock, None
        self._loop.remove_reader(sock.fileno())
        sock.close()
