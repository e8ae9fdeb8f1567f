"""A byte stream carried in WebSocket messages (RFC 6455 framing), over any inner Stream (TCP or TLS).

    stream = await ws_client(inner, path="/ws", host="1.2.3.4:443", headers=[...])
    stream = await ws_server(inner, path="/ws", headers=[...])    # -> (WsStream, request head)

As gost (gorilla): each write is one binary message; reads take the payload of any data message (text,
binary, continuation) as stream bytes, so message boundaries mean nothing. Client frames are masked with
a fresh random key; the mask is applied while the frame is built (gostx._engine.ws_frame), and a received
masked payload is unmasked while it is copied out (ws_mask): one copy per message, in C.

Control frames: a ping is answered with a pong; a close frame ends the read side (b"") and is answered
with a close frame. Control answers go out through one writer task per connection that holds at most
one pong and one close frame: a ping that arrives while the previous pong still waits for the socket
replaces its payload (RFC 6455 5.5.3 allows answering only the most recent ping), so a peer that floods
pings and reads nothing costs one frame of memory, and the answers queue behind the data writes on the
same FIFO lock instead of starving them. How many pings were folded that way is logged when the
connection closes. A frame that breaks the protocol (reserved bits, a client frame that is not masked, a
server frame that is, a control frame longer than 125 bytes or fragmented, an unknown opcode, a 64-bit
length with its top bit set) fails the read with ConnectionError after a close frame with status 1002; a
frame announcing more than MAX_FRAME_PAYLOAD (4 GiB) bytes, after a close frame with status 1009.

Over a plain socket (ws, and wss with TLS in C) the framing runs in C instead (`ws_client_c` /
`ws_server_c`, csrc/proxy/xstream.c, same rules and caps): the HTTP heads are still built and checked here,
C passes the peer's head on and holds what follows it until `ws_start`, which also carries the bytes C
sends unframed (the 101 answer), so raw and framed bytes never race. The stream returned is a CStream.

WebSocket has no half-close: `write_eof` ends the reads at once, so the relay closes the connection, as
gost closes a WebSocket conn when one direction ends (gostx/net/linger.py). `close()` sends a close
frame when it can, then closes the inner stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from typing import NoReturn

from gostx import _engine
from gostx.log import get_logger
from gostx.net.linger import Linger
from gostx.net.stream import CHUNK, SocketStream, Stream, WrappedStream
from gostx.net.xstream import CStream, open_xstream
from gostx.protocol import websocket as wsp
from gostx.protocol.http import Head

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009
MAX_FRAME_PAYLOAD = 1 << 32  # a frame announcing more is refused (1009); gost's own frames are one write each
HANDSHAKE_TIMEOUT = 15.0
READ_AHEAD = 1 << 18  # bytes asked of the inner stream at a time: several frames per TLS read


class WsStream(WrappedStream):
    def __init__(self, inner: Stream, client: bool, initial: bytes = b"") -> None:
        self.inner = inner
        self.client = client  # a client masks what it sends and expects unmasked frames
        self._buf = initial
        self._pos = 0
        self._remaining = 0  # payload bytes still to come in the current data frame
        self._key: bytes | None = None
        self._key_offset = 0
        self._eof = False
        self._close_sent = False
        self._closed = False
        self._write_lock = asyncio.Lock()
        self._linger = Linger()
        self._control: set[asyncio.Task[None]] = set()
        self._control_task: asyncio.Task[None] | None = None
        self._pong: bytes | None = None  # the newest ping's payload, its pong not written yet
        self._close_code: int | None = None  # the close frame to answer with, not written yet
        self.pings = 0  # pings received
        self.pings_coalesced = 0  # pings whose pong was replaced by a later one's before it could be sent
        self._head = b""

    # -- reading ---------------------------------------------------------------------------------

    async def _more(self, n: int) -> bool:
        """Append the next chunk of the inner stream to the unread bytes; False at its EOF."""
        data = await self._linger.wait(self.inner.read(max(n, READ_AHEAD)))
        if not data:
            return False
        rest = self._buf[self._pos:]
        self._buf = rest + data if rest else data
        self._pos = 0
        return True

    def unread(self, data: bytes) -> None:
        """Push stream bytes back in front (a handler that peeked)."""
        self._head = data + self._head

    async def read(self, n: int = CHUNK) -> bytes:
        if self._head:
            data, self._head = self._head[:n], self._head[n:]
            return data
        while True:
            if self._remaining:
                if self._pos >= len(self._buf) and not await self._more(n):
                    if self._linger.expired:
                        return b""
                    raise ConnectionError("websocket: connection closed inside a frame")
                return self._take(min(n, self._remaining, len(self._buf) - self._pos))
            if self._eof:
                return b""
            try:
                header = _engine.ws_parse_header(self._buf, self._pos) if self._pos < len(self._buf) else None
            except ValueError:  # a 64-bit length with its top bit set (RFC 6455 5.2: must be 0)
                await self._fail("frame length has its most significant bit set")
            if header is None:
                if not await self._more(n):
                    if self._pos < len(self._buf) and not self._linger.expired:
                        raise ConnectionError("websocket: connection closed inside a frame header")
                    self._eof = True  # the connection ended between frames
                    return b""
                continue
            await self._frame(header)

    def _take(self, k: int) -> bytes:
        start, end = self._pos, self._pos + k
        if self._key is not None:
            data = _engine.ws_mask(memoryview(self._buf)[start:end], self._key, self._key_offset)
            self._key_offset += k
        elif start == 0 and end == len(self._buf):
            data = self._buf
        else:
            data = self._buf[start:end]
        self._pos = end
        self._remaining -= k
        if self._pos == len(self._buf):
            self._buf, self._pos = b"", 0
        return data

    async def _frame(self, header: tuple[int, int, int, bool, int, bytes | None]) -> None:
        hlen, plen, opcode, fin, rsv, key = header
        if rsv:
            await self._fail("reserved bits set (no extension was negotiated)")
        if (key is None) == (not self.client):
            await self._fail("unmasked client frame" if key is None else "masked server frame")
        if plen > MAX_FRAME_PAYLOAD:
            await self._fail(f"frame of {plen} bytes is over the {MAX_FRAME_PAYLOAD}-byte limit", CLOSE_TOO_BIG)
        self._pos += hlen
        if opcode in DATA_OPCODES:
            self._remaining, self._key, self._key_offset = plen, key, 0
            return
        if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
            await self._fail(f"unknown opcode 0x{opcode:x}")
        if plen > 125 or not fin:
            await self._fail("control frame too long or fragmented")
        while len(self._buf) - self._pos < plen:
            if not await self._more(plen):
                raise ConnectionError("websocket: connection closed inside a control frame")
        payload = self._buf[self._pos:self._pos + plen]
        self._pos += plen
        if key is not None:
            payload = _engine.ws_mask(payload, key)
        if opcode == OP_PING:
            self.pings += 1
            if self._pong is not None:
                self.pings_coalesced += 1
            self._pong = payload
            self._control_kick()
        elif opcode == OP_CLOSE:
            self._eof = True
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else CLOSE_NORMAL
            if self._close_code is None:
                self._close_code = code
            self._control_kick()

    async def _fail(self, why: str, code: int = CLOSE_PROTOCOL_ERROR) -> NoReturn:
        with contextlib.suppress(OSError):  # the peer may be gone already: the error below still counts
            await self._send_close(code)
        raise ConnectionError(f"websocket: {why}")

    def _control_kick(self) -> None:
        """Start the control writer unless it runs: it writes the pending pong and close frame."""
        if self._control_task is None and not self._closed:
            self._control_task = asyncio.ensure_future(self._control_writer())
            self._control.add(self._control_task)
            self._control_task.add_done_callback(self._control_done)

    async def _control_writer(self) -> None:
        try:
            while not self._closed and not self._close_sent:
                if self._close_code is not None:  # after a close frame nothing more is sent (5.5.1)
                    await self._send_close(self._close_code)
                elif self._pong is not None:
                    payload, self._pong = self._pong, None
                    await self._send(OP_PONG, payload)
                else:
                    return
        finally:
            self._control_task = None

    def _control_done(self, task: asyncio.Task[None]) -> None:
        self._control.discard(task)
        if not task.cancelled():
            task.exception()  # a failed pong/close is the connection failing: the reads will see it

    # -- writing ---------------------------------------------------------------------------------

    def _mask_key(self) -> bytes | None:
        return os.urandom(4) if self.client else None

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._close_sent:
            raise ConnectionError("websocket: write after close")
        frame = _engine.ws_frame(data, OP_BINARY, True, self._mask_key())
        async with self._write_lock:
            await self.inner.write(frame)

    async def _send(self, opcode: int, payload: bytes) -> None:
        if self._close_sent or self._closed:
            return
        frame = _engine.ws_frame(payload, opcode, True, self._mask_key())
        async with self._write_lock:
            await self.inner.write(frame)

    async def _send_close(self, code: int) -> None:
        if self._close_sent or self._closed:
            return
        await self._send(OP_CLOSE, struct.pack(">H", code))
        self._close_sent = True

    async def write_eof(self) -> None:
        """No half-close in WebSocket: the reads end and the connection closes (see the module docstring)."""
        self._linger.start()

    def close(self) -> None:
        if self._closed:
            return
        if self.pings_coalesced:
            with contextlib.suppress(Exception):
                peer = self.inner.remote_addr
                get_logger(kind="ws").info(
                    f"{peer}: websocket closed: {self.pings_coalesced} of {self.pings} pings answered only by "
                    "the pong of a later ping (the peer did not read the pongs)",
                    extra={"remote": peer, "pings": self.pings, "pingsCoalesced": self.pings_coalesced})
        self._linger.cancel()
        for task in list(self._control):
            task.cancel()
        if not self._close_sent and not self._write_lock.locked():
            frame = _engine.ws_frame(struct.pack(">H", CLOSE_NORMAL), OP_CLOSE, True, self._mask_key())
            self._close_sent = True
            with contextlib.suppress(Exception):
                _write_nowait(self.inner, frame)
        self._closed = True
        self.inner.close()

    def take_buffered(self) -> bytes:
        data, self._head = self._head, b""
        return data


def _write_nowait(stream: Stream, data: bytes) -> None:
    """Best effort: hand a last frame to the kernel without waiting (close frames on close())."""
    send = getattr(stream, "send_nowait", None)
    if send is not None:
        send(data)
    elif stream.sock is not None:
        with contextlib.suppress(OSError):
            stream.sock.send(data)


async def ws_client(inner: Stream, path: str, host: str, headers: list[tuple[str, str]] | None = None,
                    timeout: float = HANDSHAKE_TIMEOUT) -> WsStream:
    """The client handshake over inner; the WebSocket stream after a 101."""
    hs = wsp.ClientHandshake(path=path or "/", host=host, headers=list(headers or []))
    async with asyncio.timeout(timeout):
        await inner.write(hs.request())
        raw, rest = await wsp.read_head(inner)
    hs.check_response(raw)
    return WsStream(inner, client=True, initial=rest)


async def ws_server(inner: Stream, path: str, headers: list[tuple[str, str]] | None = None,
                    timeout: float = HANDSHAKE_TIMEOUT) -> tuple[WsStream, Head]:
    """The server handshake: answers 101 (or the error gost answers, then raises HandshakeError)."""
    async with asyncio.timeout(timeout):
        raw, rest = await wsp.read_head(inner)
        if not raw:
            raise wsp.HandshakeError("websocket: connection closed before the handshake")
        try:
            answer, head = wsp.server_accept(raw, path, headers)
        except wsp.HandshakeError as exc:
            reply = wsp.not_found() if exc.status == 404 else wsp.error_response(exc.status or 400, exc.body)
            with contextlib.suppress(OSError, ConnectionError):
                await inner.write(reply)
            raise
        await inner.write(answer)
    return WsStream(inner, client=False, initial=rest), head


async def ws_client_c(stream: SocketStream, tls: _engine.TlsContext | None, server_name: str | None,
                      verify_name: str | None, path: str, host: str, headers: list[tuple[str, str]] | None = None,
                      timeout: float = HANDSHAKE_TIMEOUT) -> CStream:
    """ws_client with TLS (when tls is given) and the framing in C: the request goes out right after the
    TLS handshake, the response head is checked here, then C frames."""
    hs = wsp.ClientHandshake(path=path or "/", host=host, headers=list(headers or []))
    async with asyncio.timeout(timeout):
        cs = await open_xstream(stream, tls, server_name, verify_name, head=True, raw=hs.request(), timeout=timeout)
        try:
            raw, rest = await wsp.read_head(cs)
            hs.check_response(raw)
            if rest:  # C passes on the head alone
                raise ConnectionError("websocket: bytes after the head before the upgrade")
            cs.ws_start(b"", _engine.XS_WS_CLIENT)
        except BaseException:
            cs.abort()
            raise
    return cs


async def ws_server_c(stream: SocketStream, tls: _engine.TlsContext | None, path: str,
                      headers: list[tuple[str, str]] | None = None,
                      timeout: float = HANDSHAKE_TIMEOUT) -> tuple[CStream, Head]:
    """ws_server with TLS (when tls is given) and the framing in C (see ws_client_c)."""
    async with asyncio.timeout(timeout):
        cs = await open_xstream(stream, tls, head=True, timeout=timeout)
        try:
            raw, _rest = await wsp.read_head(cs)
            if not raw:
                raise wsp.HandshakeError("websocket: connection closed before the handshake")
            try:
                answer, head = wsp.server_accept(raw, path, headers)
            except wsp.HandshakeError as exc:
                reply = wsp.not_found() if exc.status == 404 else wsp.error_response(exc.status or 400, exc.body)
                cs.ws_start(reply, _engine.XS_RAW)
                cs.close()  # C sends the answer, then FIN
                raise
            cs.ws_start(answer, _engine.XS_WS_SERVER)
        except wsp.HandshakeError:
            raise
        except BaseException:
            cs.abort()
            raise
    return cs, head
