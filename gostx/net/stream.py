"""Connected byte streams, whatever carries them: a kernel TCP socket, or a Python transport (TLS now,
WebSocket later).

`Stream` is what dialers, connectors, handlers and the router pass around. Handshakes read exactly what
they need (`readexactly`), so on a plain socket nothing is left buffered in Python and the socket can be
handed on to C (splice, the tunnel engine, the 0xF3 relay): `Stream.sock` is that kernel socket when the
stream's bytes are exactly the socket's bytes, else None.

    SocketStream(sock)                 # a connected non-blocking socket
    await start_tls_client(stream, ctx, server_name)   -> Stream (gostx/net/tls.py)
    await start_tls_server(stream, ctx)                -> Stream
    await pipe(a, b)                   # relay both ways until both ends are done (splice when it can)
    fd_for_c(stream)                   # a socket carrying exactly the stream's bytes, for C code
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import socket
import ssl

from gostx.addr import format_sockaddr

CHUNK = 1 << 16
# loop.sock_recv returns without suspending while the socket has data, so a peer that keeps its socket
# full would hold the event loop: every READS_PER_YIELD-th read gives the other tasks a turn
READS_PER_YIELD = 16


class Stream(abc.ABC):
    """A connected, bidirectional byte stream."""

    @abc.abstractmethod
    async def read(self, n: int = CHUNK) -> bytes:
        """Up to n bytes; b"" at EOF."""

    async def readexactly(self, n: int) -> bytes:
        """Exactly n bytes; ConnectionError("unexpected EOF") if the stream ends first."""
        parts, got = [], 0
        while got < n:
            data = await self.read(n - got)
            if not data:
                raise ConnectionError("unexpected EOF")
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Write all of data."""

    @abc.abstractmethod
    async def write_eof(self) -> None:
        """Half-close: no more writes."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the stream (idempotent)."""

    @property
    def sock(self) -> socket.socket | None:
        """The kernel socket carrying exactly this stream's bytes, or None (TLS, WebSocket, ...)."""
        return None

    def take_buffered(self) -> bytes:
        """Bytes read from the socket but not yet consumed (a handler that read ahead pushes them back)."""
        return b""

    @property
    def local_addr(self) -> str:
        return ""

    @property
    def remote_addr(self) -> str:
        return ""


class WrappedStream(Stream):
    """A stream carried over another one (`inner`): its addresses are the inner stream's."""

    inner: Stream

    async def settle(self, peer: SocketStream) -> tuple[Stream, int] | None:
        """Finish this wrapper's own work (a pending request / response) so that `inner` carries exactly
        this stream's bytes from now on: (inner, bytes read from peer on the way, already written here),
        or None when it cannot (the default: the wrapper transforms every byte). pipe() uses it to hand
        a flow to C (gostx/net/xstream.py)."""
        return None

    @property
    def local_addr(self) -> str:
        return self.inner.local_addr

    @property
    def remote_addr(self) -> str:
        return self.inner.remote_addr


class SocketStream(Stream):
    """A stream over a connected non-blocking socket, read and written through the event loop."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock: socket.socket | None = sock
        self._buffer = b""
        self._loop = asyncio.get_running_loop()
        self._reads = 0

    async def read(self, n: int = CHUNK) -> bytes:
        self._reads += 1
        if self._reads % READS_PER_YIELD == 0:
            await asyncio.sleep(0)
        if self._buffer:
            data, self._buffer = self._buffer[:n], self._buffer[n:]
            return data
        return await self._loop.sock_recv(self._require(), n)

    def unread(self, data: bytes) -> None:
        """Push bytes back in front of the stream (after reading ahead)."""
        self._buffer = data + self._buffer

    def take_buffered(self) -> bytes:
        data, self._buffer = self._buffer, b""
        return data

    async def write(self, data: bytes) -> None:
        if data:
            await self._loop.sock_sendall(self._require(), data)

    async def write_eof(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def detach(self) -> socket.socket:
        """Give up the socket (the caller owns it now); this stream is closed."""
        sock = self._require()
        self._sock = None
        return sock

    @property
    def sock(self) -> socket.socket | None:
        return self._sock

    @property
    def local_addr(self) -> str:
        return _name(self._sock, remote=False)

    @property
    def remote_addr(self) -> str:
        return _name(self._sock, remote=True)

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionError("stream is closed")
        return self._sock


class TransportStream(Stream):
    """A stream over asyncio's StreamReader/StreamWriter (TLS and other userspace transports)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._closed = False

    async def read(self, n: int = CHUNK) -> bytes:
        return await self.reader.read(n)

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self.reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise ConnectionError("unexpected EOF") from None

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def write_eof(self) -> None:
        if self.writer.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                self.writer.write_eof()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.writer.close()

    @property
    def local_addr(self) -> str:
        return format_sockaddr(self.writer.get_extra_info("sockname"))

    @property
    def remote_addr(self) -> str:
        return format_sockaddr(self.writer.get_extra_info("peername"))


def _name(sock: socket.socket | None, remote: bool) -> str:
    if sock is None:
        return ""
    try:
        return format_sockaddr(sock.getpeername() if remote else sock.getsockname())
    except OSError:
        return ""


async def start_tls_client(stream: Stream, ctx: ssl.SSLContext, server_name: str | None,
                           timeout: float = 15.0) -> Stream:
    """TLS client over a SocketStream (the socket moves into the TLS stream: C when ctx has a C twin,
    gostx/net/tls.py)."""
    from gostx.net.tls import tls_client

    _detach_check(stream)
    return await tls_client(stream, ctx, server_name, timeout)


async def start_tls_server(stream: Stream, ctx: ssl.SSLContext, timeout: float = 15.0) -> Stream:
    """TLS server over a SocketStream (the socket moves into the TLS stream, as start_tls_client)."""
    from gostx.net.tls import tls_server

    _detach_check(stream)
    return await tls_server(stream, ctx, timeout)


def _detach_check(stream: Stream) -> None:
    if not isinstance(stream, SocketStream) or stream.sock is None:
        raise ConnectionError("TLS needs a plain socket underneath")
    head = stream.take_buffered()
    if head:
        raise ConnectionError("unexpected data before the TLS handshake")


async def _pump(src: Stream, dst: Stream, counter: list[int]) -> None:
    try:
        while data := await src.read(CHUNK):
            counter[0] += len(data)
            await dst.write(data)
    finally:
        await dst.write_eof()


async def pipe(a: Stream, b: Stream) -> tuple[int, int]:
    """Relay a <-> b until both directions ended (or one failed); closes both. Returns the bytes moved
    (a->b, b->a). Two plain sockets are spliced in the kernel; anything else is pumped in chunks."""
    from gostx.net.splice import SpliceRelay

    head_a, head_b = a.take_buffered(), b.take_buffered()
    if head_a:
        await b.write(head_a)
    if head_b:
        await a.write(head_b)
    joined = await _join_in_c(a, b)
    if joined is not None:
        return joined[0] + len(head_a), joined[1] + len(head_b)
    if isinstance(a, SocketStream) and isinstance(b, SocketStream) and a.sock and b.sock:
        relay = SpliceRelay(a.detach(), b.detach())
        await relay.run()
        return relay.bytes_a_to_b + len(head_a), relay.bytes_b_to_a + len(head_b)
    ab, ba = [len(head_a)], [len(head_b)]
    tasks = [asyncio.ensure_future(_pump(a, b, ab)), asyncio.ensure_future(_pump(b, a, ba))]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        if any(t.exception() for t in done if not t.cancelled()):
            for t in pending:
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for t in tasks:
            t.cancel()
        a.close()
        b.close()
    return ab[0], ba[0]


async def _join_in_c(a: Stream, b: Stream) -> tuple[int, int] | None:
    """A C stream (TLS / WebSocket, gostx/net/xstream.py), possibly under wrappers that can settle
    (the relay protocol's request / response, gostx/net/relay_stream.py), and a plain socket: the relay runs in
    the C stream alone. (bytes a->b, b->a), or None when this pair is not such a pair."""
    from gostx.net.xstream import CStream

    for x, y, flip in ((a, b, False), (b, a, True)):
        if type(y) is not SocketStream or y.sock is None or not _settles_to_c(x):
            continue
        inner, from_y = x, 0
        while isinstance(inner, WrappedStream) and not isinstance(inner, CStream):
            settled = await inner.settle(y)
            if settled is None:
                return None  # the wrapper keeps work to do: Python relays this flow
            inner, moved = settled
            from_y += moved
        assert isinstance(inner, CStream)
        head = inner.take_buffered()
        if head:
            await y.write(head)
        to_y, more = await inner.join(y)
        to_y, from_y = to_y + len(head), from_y + more
        return (from_y, to_y) if flip else (to_y, from_y)
    return None


def _settles_to_c(stream: Stream) -> bool:
    from gostx.net.xstream import CStream

    while not isinstance(stream, CStream):
        if not isinstance(stream, WrappedStream) or type(stream).settle is WrappedStream.settle:
            return False
        stream = stream.inner
    return stream.sock is not None


class CBridge:
    """A socket for C code that carries exactly a stream's bytes: the stream's own socket when it has one,
    else one end of a socketpair whose other end Python pumps to and from the stream (TLS, WebSocket)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.task: asyncio.Task[tuple[int, int]] | None = None
        head = stream.take_buffered()
        if isinstance(stream, SocketStream) and stream.sock is not None and not head:
            self.sock = stream.sock
            return
        if head and isinstance(stream, SocketStream):
            stream.unread(head)
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        self.sock = theirs
        self.task = asyncio.ensure_future(pipe(SocketStream(ours), stream))

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.sock.close()
        self.stream.close()
