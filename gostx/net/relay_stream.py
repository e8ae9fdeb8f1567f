"""Relay-protocol streams and datagram conns (gostx/protocol/relay.py), both sides.

Client (after the request was built):
- `RelayClientStream`: TCP CONNECT without `nodelay`. The request rides on the first write; the response
  is read before the first read. gost's client waits for the response without ever sending the request
  when the application only reads, which stalls server-first protocols (SSH, SMTP); gostx gives the
  first write `REQUEST_GRACE` seconds and then sends the request alone (README: Differences from gost).
- `RelayUdpConn`: UDP CONNECT. Datagrams are `LEN(2) PAYLOAD` frames; the request rides on the first
  frame unless `nodelay`, and the response is read before the first frame.
Server:
- `ResponseFirstStream`: the OK response cached (no `nodelay`) and written in front of the first bytes
  the server sends back. A gost client with `nodelay=true` waits for the response before it sends
  anything, which against a caching gost server stalls client-first protocols; gostx sends the response
  alone when nothing came back within `REQUEST_GRACE` seconds.
- `read_udp_frame(stream)`: one `LEN(2) PAYLOAD` datagram (the server side of the UDP framing).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

from gostx.net.packet import PacketConn
from gostx.net.stream import CHUNK, SocketStream, Stream, WrappedStream
from gostx.protocol import relay as rp

REQUEST_GRACE = 0.2  # seconds a reader waits for a first write to carry the request


def check_response(resp: rp.Response, what: str) -> None:
    if resp.status != rp.STATUS_OK:
        text = rp.STATUS_TEXT.get(resp.status, f"status 0x{resp.status:02x}")
        raise rp.RelayError(f"relay {what}: {text} (status {resp.status})", resp.status)


class _Handshake:
    """A request that waits to be sent, and a response that waits to be read, shared by both directions."""

    def __init__(self, inner: Stream, request: bytes, what: str) -> None:
        self.inner = inner
        self.request = request  # b"" once sent
        self.what = what
        self.response_read = False
        self._reading: asyncio.Future[None] | None = None
        self._sent = asyncio.Event()

    def take_request(self) -> bytes:
        data, self.request = self.request, b""
        self._sent.set()
        return data

    async def ensure_response(self) -> None:
        if self.response_read:
            return
        if self._reading is not None:  # another task is already reading it
            await asyncio.shield(self._reading)
            return
        self._reading = asyncio.get_running_loop().create_future()
        try:
            if self.request:  # let a first write carry it, as gost; then send it alone
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._sent.wait(), REQUEST_GRACE)
            pending = self.take_request()
            if pending:
                await self.inner.write(pending)
            check_response(await rp.read_response(self.inner), self.what)
            self.response_read = True
            self._reading.set_result(None)
        except BaseException as exc:
            self._reading.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            self._reading.exception()  # retrieved: the other waiter (if any) re-raises it
            raise


class RelayClientStream(WrappedStream):
    def __init__(self, inner: Stream, request: bytes, what: str) -> None:
        self.inner = inner
        self._hs = _Handshake(inner, request, what)

    async def read(self, n: int = CHUNK) -> bytes:
        if not self._hs.response_read:
            await self._hs.ensure_response()
        return await self.inner.read(n)

    async def readexactly(self, n: int) -> bytes:
        if not self._hs.response_read:
            await self._hs.ensure_response()
        return await self.inner.readexactly(n)

    async def write(self, data: bytes) -> None:
        pending = self._hs.take_request()
        await self.inner.write(pending + data if pending else data)

    async def write_eof(self) -> None:
        pending = self._hs.take_request()
        if pending:
            await self.inner.write(pending)
        await self.inner.write_eof()

    async def settle(self, peer: SocketStream) -> tuple[Stream, int] | None:
        """The request rides on the peer's first bytes (or goes alone after REQUEST_GRACE), the response
        is read: inner carries the flow's bytes from then on."""
        moved = 0
        if self._hs.request:
            try:
                data = await asyncio.wait_for(peer.read(CHUNK), REQUEST_GRACE)
            except TimeoutError:
                data = None
            if data == b"":
                return None  # the peer ended at once: the Python relay passes the EOF on
            await self.write(data or b"")  # the request, with the peer's first bytes when they came
            moved = len(data or b"")
        await self._hs.ensure_response()
        return self.inner, moved

    def close(self) -> None:
        self.inner.close()


class RelayUdpConn(PacketConn):
    """Datagrams to/from one destination as `LEN(2) PAYLOAD` frames on a relay stream."""

    def __init__(self, inner: Stream, request: bytes, what: str, address: str) -> None:
        self.stream = inner
        self.address = address
        self._hs = _Handshake(inner, request, what)
        if not request:
            self._hs.response_read = True  # nodelay: the connector already read it

    async def recvfrom(self) -> tuple[bytes, str]:
        if not self._hs.response_read:
            await self._hs.ensure_response()
        head = await self.stream.readexactly(2)
        size = struct.unpack(">H", head)[0]
        return (await self.stream.readexactly(size) if size else b""), self.address

    async def sendto(self, data: bytes, address: str = "") -> None:
        frame = rp.udp_frame(data)
        pending = self._hs.take_request()
        await self.stream.write(pending + frame if pending else frame)

    async def finish_handshake(self) -> None:
        """Send the request now (alone) and read the response: from then on the stream carries only
        frames, and C can take it over (gostx/handler/forward/udp_engine.py, tungo's bridges)."""
        pending = self._hs.take_request()
        if pending:
            await self.stream.write(pending)
        await self._hs.ensure_response()

    def close(self) -> None:
        self.stream.close()


class ResponseFirstStream(WrappedStream):
    """The server's stream to the client with the cached OK response sent before the first bytes."""

    def __init__(self, inner: Stream, response: bytes) -> None:
        self.inner = inner
        self._pending = response
        self._timer = asyncio.get_running_loop().call_later(REQUEST_GRACE, self._flush_late)
        self._late: asyncio.Task[None] | None = None

    def _flush_late(self) -> None:
        if self._pending:
            self._late = asyncio.ensure_future(self.flush())
            self._late.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def read(self, n: int = CHUNK) -> bytes:
        return await self.inner.read(n)

    async def readexactly(self, n: int) -> bytes:
        return await self.inner.readexactly(n)

    async def write(self, data: bytes) -> None:
        pending, self._pending = self._pending, b""
        await self.inner.write(pending + data if pending else data)

    async def flush(self) -> None:
        pending, self._pending = self._pending, b""
        if pending:
            await self.inner.write(pending)

    async def write_eof(self) -> None:
        await self.flush()
        await self.inner.write_eof()

    async def settle(self, peer: SocketStream) -> tuple[Stream, int] | None:
        """The cached response goes out now (alone): inner carries the flow's bytes from then on."""
        self._timer.cancel()
        await self.flush()
        return self.inner, 0

    def close(self) -> None:
        self._timer.cancel()
        if self._late is not None:
            self._late.cancel()
        self.inner.close()

    def take_buffered(self) -> bytes:
        return self.inner.take_buffered()


async def read_udp_frame(stream: Stream) -> bytes | None:
    """The next `LEN(2) PAYLOAD` datagram; None at a clean EOF between frames."""
    head = await stream.read(2)
    if not head:
        return None
    if len(head) < 2:
        head += await stream.readexactly(2 - len(head))
    size = struct.unpack(">H", head)[0]
    return await stream.readexactly(size) if size else b""
