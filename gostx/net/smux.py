"""A minimal smux v1 session (xtaci/smux, as gost's mux with its defaults), for the relay handler's TCP
BIND: the relay server is the smux *client* and opens one stream per inbound connection.

Frame: `VER(1)=1 | CMD(1) | LENGTH(2, little endian) | STREAM ID(4, little endian) | DATA`; commands SYN 0
(open), FIN 1 (end of a stream), PSH 2 (data), NOP 3 (keepalive). Version 1 has no flow control. A client
opens odd stream ids (3, 5, ...). Keepalive: a NOP every 10 s; a session that hears nothing for 30 s is
closed (gost's defaults: mux.keepaliveInterval, mux.keepaliveTimeout).

Bounds (v1 has no window, so the receiver has to): a stream holds at most MAX_STREAM_BUFFER unread bytes;
a peer that sends more to a stream nobody reads gets that stream reset (FIN, the local reader sees a
ConnectionResetError; counted in `resets`). All streams together hold at most MAX_SESSION_BUFFER
(xtaci/smux's MaxReceiveBuffer default): past it the session stops reading its inner stream until readers
catch up. At most MAX_BACKGROUND control frames wait to be sent; a peer that makes more (a SYN flood) has
the session closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

from gostx.net.stream import CHUNK, Stream

VERSION = 1
CMD_SYN, CMD_FIN, CMD_PSH, CMD_NOP = 0, 1, 2, 3
HEADER = struct.Struct("<BBHI")
MAX_FRAME = 32768
KEEPALIVE_INTERVAL = 10.0
KEEPALIVE_TIMEOUT = 30.0
MAX_STREAM_BUFFER = 256 * 1024
MAX_SESSION_BUFFER = 4 * 1024 * 1024
MAX_BACKGROUND = 1024


class SmuxError(ConnectionError):
    pass


def frame(cmd: int, sid: int, data: bytes = b"") -> bytes:
    return HEADER.pack(VERSION, cmd, len(data), sid) + data


class SmuxStream(Stream):
    def __init__(self, session: SmuxSession, sid: int) -> None:
        self.session = session
        self.sid = sid
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._head = b""
        self._eof = False
        self._fin_sent = False
        self._reset = False
        self.buffered = 0  # bytes queued, not yet read

    def _feed(self, data: bytes) -> None:
        if self._reset:
            return
        if data and self.buffered + len(data) > MAX_STREAM_BUFFER:
            self.session.reset(self)
            return
        self.buffered += len(data)
        self.session.buffered += len(data)
        self._queue.put_nowait(data)

    def _discard(self) -> None:
        """Forget everything queued (the stream ended): the session's total shrinks by it."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self.session.consumed(self.buffered)
        self.buffered = 0

    async def read(self, n: int = CHUNK) -> bytes:
        if not self._head:
            if self._reset:
                raise ConnectionResetError("smux: stream reset (receive buffer overflow)")
            if self._eof:
                return b""
            self._head = await self._queue.get()
            if self._reset:
                raise ConnectionResetError("smux: stream reset (receive buffer overflow)")
            if not self._head:  # FIN or the session's end
                self._eof = True
                return b""
            self.buffered -= len(self._head)
            self.session.consumed(len(self._head))
        data, self._head = self._head[:n], self._head[n:]
        return data

    async def write(self, data: bytes) -> None:
        if self._fin_sent:
            raise ConnectionError("smux: write after the stream's end")
        view = memoryview(data)
        for i in range(0, len(view), MAX_FRAME):
            await self.session.send(frame(CMD_PSH, self.sid, bytes(view[i:i + MAX_FRAME])))

    async def write_eof(self) -> None:
        if not self._fin_sent:
            self._fin_sent = True
            with contextlib.suppress(ConnectionError, OSError):
                await self.session.send(frame(CMD_FIN, self.sid))

    def close(self) -> None:
        if not self._fin_sent:
            self._fin_sent = True
            self.session.send_later(frame(CMD_FIN, self.sid))
        self.session.streams.pop(self.sid, None)
        self._eof = True
        self._discard()
        self._queue.put_nowait(b"")

    @property
    def local_addr(self) -> str:
        return self.session.inner.local_addr

    @property
    def remote_addr(self) -> str:
        return self.session.inner.remote_addr


class SmuxSession:
    """`run()` reads frames until the inner stream ends (or keepalive fails); `open()` starts a stream."""

    def __init__(self, inner: Stream, client: bool = True) -> None:
        self.inner = inner
        self.streams: dict[int, SmuxStream] = {}
        self._next_sid = 1 if client else 0
        self._lock = asyncio.Lock()
        self._heard = asyncio.get_running_loop().time()
        self._background: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[object] | None = None
        self.closed = False
        self.buffered = 0  # unread bytes of all streams
        self.resets = 0  # streams reset for overflowing their buffer
        self._drained = asyncio.Event()
        self._drained.set()

    def consumed(self, n: int) -> None:
        self.buffered = max(self.buffered - n, 0)
        if self.buffered <= MAX_SESSION_BUFFER // 2:
            self._drained.set()

    def reset(self, stream: SmuxStream) -> None:
        """The peer overflowed stream's buffer: drop what it holds, end it here and tell the peer (FIN)."""
        self.resets += 1
        stream._reset = True
        stream._discard()
        self.streams.pop(stream.sid, None)
        if not stream._fin_sent:
            stream._fin_sent = True
            self.send_later(frame(CMD_FIN, stream.sid))
        stream._queue.put_nowait(b"")  # wake a reader

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("smux: session closed")
        async with self._lock:
            await self.inner.write(data)

    def send_later(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self._background) >= MAX_BACKGROUND:  # the peer makes us answer faster than we can send
            self.close()
            return
        task = asyncio.ensure_future(self.send(data))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def open(self) -> SmuxStream:
        self._next_sid += 2
        stream = SmuxStream(self, self._next_sid)
        self.streams[stream.sid] = stream
        await self.send(frame(CMD_SYN, stream.sid))
        return stream

    async def run(self) -> None:
        self._runner = asyncio.current_task()
        keepalive = asyncio.ensure_future(self._keepalive())
        try:
            while True:
                if self.buffered > MAX_SESSION_BUFFER:  # backpressure: wait for the streams' readers
                    self._drained.clear()
                    await self._drained.wait()
                head = await self.inner.read(HEADER.size)
                if not head:
                    return
                if len(head) < HEADER.size:
                    head += await self.inner.readexactly(HEADER.size - len(head))
                version, cmd, length, sid = HEADER.unpack(head)
                if version != VERSION:
                    raise SmuxError(f"smux: bad version {version}")
                data = await self.inner.readexactly(length) if length else b""
                self._heard = asyncio.get_running_loop().time()
                stream = self.streams.get(sid)
                if cmd == CMD_PSH and stream is not None and data:
                    stream._feed(data)
                elif cmd == CMD_FIN and stream is not None:
                    stream._feed(b"")
                elif cmd == CMD_SYN and stream is None:
                    self.send_later(frame(CMD_FIN, sid))  # the peer may not open streams here (as gost)
                elif cmd not in (CMD_SYN, CMD_FIN, CMD_PSH, CMD_NOP):
                    raise SmuxError(f"smux: unknown command {cmd}")
        finally:
            keepalive.cancel()
            self.close()

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(KEEPALIVE_INTERVAL)
            if loop.time() - self._heard > KEEPALIVE_TIMEOUT:
                self.close()
                return
            with contextlib.suppress(ConnectionError, OSError):
                await self.send(frame(CMD_NOP, 0))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in list(self.streams.values()):
            stream._eof = True
            stream._discard()
            stream._queue.put_nowait(b"")
        self.streams.clear()
        for task in list(self._background):
            task.cancel()
        if self._runner is not None and self._runner is not asyncio.current_task():
            self._runner.cancel()
        self.inner.close()
