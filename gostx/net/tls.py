"""TLS streams for the tls/wss transports, on the standard library's ssl.

    ctx = client_context(dialer.tls)          # gost's client rules: no verification unless secure=true
    ctx = server_context(listener.tls)        # the cert/key given, else gost's default self-signed cert
    stream = await tls_client(stream, ctx, server_name, timeout)
    stream = await tls_server(stream, ctx, timeout)

Over a plain socket (the usual case) the stream is a non-blocking ssl.SSLSocket driven by the event loop
(`SocketTlsStream`): OpenSSL reads and writes the kernel socket itself, so received records are decrypted
straight from the socket into one buffer (asyncio's SSL transport copies them through memory BIOs and a
StreamReader, which is slower). Over any other stream (a second TLS hop inside a first one) it is an
ssl.SSLObject with memory BIOs pumped through that stream (`BioTlsStream`).

TLS has no half-close that Python's ssl can send while still reading (gost sends close_notify), so
`write_eof` ends the stream's reads at once and the connection closes, as gost does for a WebSocket
(gostx/net/linger.py).

Over a plain socket the record layer runs in C (gostx/net/xstream.py, csrc/proxy/xstream.c: OpenSSL's libssl
on the relay engine's threads) and the stream returned is a `CStream`: Python only sees the handshake's
outcome, never a chunk. Every context built here carries its C twin (`c_context(ctx)`: same certificate,
CA and verification rules); gost's rules hold for both: a client verifies nothing unless `secure`
(then the system CAs and the server name), `caFile` alone checks the chain but not the name; a server
uses certFile/keyFile or gost's default self-signed certificate, and requires client certificates
signed by `caFile` when one is given. A TLS stream over another non-socket stream (a TLS hop inside a
TLS hop) stays on Python's ssl (`BioTlsStream`). With the C stream TLS half-closes for real: EOF from
Python's side sends close_notify and the reads go on until the peer ends. GOSTX_XSTREAM=0 keeps the
Python path everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import tempfile
from collections.abc import Callable

from gostx import _engine
from gostx.addr import format_sockaddr
from gostx.config.model import TLSConfig
from gostx.errors import GostError
from gostx.net.linger import Linger
from gostx.net.stream import CHUNK, SocketStream, Stream, WrappedStream
from gostx.net.xstream import ENABLED as C_ENABLED
from gostx.net.xstream import open_xstream
from gostx.protocol import socks5_tls as default_tls

HANDSHAKE_TIMEOUT = 15.0
READ_MAX = 1 << 18  # bytes gathered from consecutive records into one read


def client_context(tls: TLSConfig | None) -> ssl.SSLContext:
    """gost's client TLS: no verification unless `secure`; with `caFile` and not
    `secure`, the chain is checked against the CA but the host name is not; a cert/key pair is sent as the
    client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cfg = tls or TLSConfig()
    try:
        if cfg.secure:
            ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_REQUIRED if cfg.ca_file else ssl.CERT_NONE
        if cfg.ca_file:
            ctx.load_verify_locations(cfg.ca_file)
        if cfg.cert_file and cfg.key_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise GostError(f"tls: {_reason(exc)}") from None
    attach_c_context(ctx, _engine_client(cfg), check_name=cfg.secure)
    return ctx


def _engine_client(cfg: TLSConfig) -> _engine.TlsContext:
    try:
        return _engine.TlsContext(False, cfg.cert_file if cfg.key_file else None, cfg.key_file or None,
                                  cfg.ca_file or None, verify=bool(cfg.secure or cfg.ca_file),
                                  default_paths=cfg.secure)
    except ValueError as exc:
        raise GostError(str(exc)) from None


def attach_c_context(ctx: ssl.SSLContext, c_ctx: _engine.TlsContext, check_name: bool = False) -> None:
    """Give a Python ssl context its C twin (built from the same files and rules)."""
    setattr(ctx, "_gostx_c", (c_ctx, check_name))  # noqa: B010 (SSLContext has a __dict__)


def c_context(ctx: ssl.SSLContext) -> tuple[_engine.TlsContext, bool] | None:
    """(the C context, whether a client checks the server name), or None (Python's ssl only)."""
    return getattr(ctx, "_gostx_c", None) if C_ENABLED else None


def server_context(tls: TLSConfig | None) -> ssl.SSLContext:
    """The listener's certificate (certFile/keyFile), else gost's default self-signed one; a `caFile`
    makes client certificates required and checked against it (mutual TLS)."""
    if tls is None or not tls.ca_file:
        return default_tls.server_context(tls)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        if tls.cert_file and tls.key_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        else:
            with tempfile.TemporaryDirectory(prefix="gostx-tls-") as folder:
                cert, key = default_tls._write_default_cert(folder)
                ctx.load_cert_chain(cert, key)
                c_ctx = _engine.TlsContext(True, cert, key, tls.ca_file)
        ctx.load_verify_locations(tls.ca_file)
        if tls.cert_file and tls.key_file:
            c_ctx = _engine.TlsContext(True, tls.cert_file, tls.key_file, tls.ca_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise GostError(f"tls: {_reason(exc)}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    attach_c_context(ctx, c_ctx)
    return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        name = f"{exc.filename}: " if exc.filename else ""
        return f"{name}{exc.strerror.lower()}"
    return str(exc) or type(exc).__name__


async def tls_client(stream: Stream, ctx: ssl.SSLContext, server_name: str | None,
                     timeout: float = HANDSHAKE_TIMEOUT) -> Stream:
    """A TLS client over stream. server_name is the SNI (Python sends none for an IP, as Go)."""
    if c_context(ctx) is not None and plain_socket(stream):
        assert isinstance(stream, SocketStream)
        c_ctx, sni, verify_name = c_client_args(ctx, server_name)
        return await open_xstream(stream, c_ctx, sni, verify_name, timeout=timeout)
    async with asyncio.timeout(timeout):
        if plain_socket(stream):
            assert isinstance(stream, SocketStream)
            return await SocketTlsStream.handshake(stream.detach(), ctx, False, server_name or None)
        return await BioTlsStream.handshake(stream, ctx, False, server_name or None)


def c_client_args(ctx: ssl.SSLContext | None, server_name: str | None
                  ) -> tuple[_engine.TlsContext | None, str | None, str | None]:
    """For a C client stream: (the C context or None for no TLS, the SNI, the name to verify or None)."""
    c = c_context(ctx) if ctx is not None else None
    if c is None:
        return None, None, None
    sni = server_name if server_name and not _is_ip(server_name) else None
    return c[0], sni, (server_name or None) if c[1] else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


async def tls_server(stream: Stream, ctx: ssl.SSLContext, timeout: float = HANDSHAKE_TIMEOUT) -> Stream:
    c = c_context(ctx)
    if c is not None and plain_socket(stream):
        assert isinstance(stream, SocketStream)
        return await open_xstream(stream, c[0], timeout=timeout)
    async with asyncio.timeout(timeout):
        if plain_socket(stream):
            assert isinstance(stream, SocketStream)
            return await SocketTlsStream.handshake(stream.detach(), ctx, True, None)
        return await BioTlsStream.handshake(stream, ctx, True, None)


def plain_socket(stream: Stream) -> bool:
    if isinstance(stream, SocketStream) and stream.sock is not None:
        head = stream.take_buffered()
        if not head:
            return True
        stream.unread(head)
    return False


class _Waiter:
    """Readiness of one fd for reading or writing (one waiting task per direction); `stop()` wakes both
    and unregisters the fd before it is closed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.loop = asyncio.get_running_loop()
        self._futures: dict[bool, asyncio.Future[None]] = {}

    async def readable(self) -> None:
        await self._wait(False)

    async def writable(self) -> None:
        await self._wait(True)

    async def _wait(self, write: bool) -> None:
        if self.fd < 0:
            return
        fut = self.loop.create_future()
        self._futures[write] = fut
        (self.loop.add_writer if write else self.loop.add_reader)(self.fd, _resolve, fut)
        try:
            await fut
        finally:
            if self._futures.get(write) is fut:
                del self._futures[write]
                (self.loop.remove_writer if write else self.loop.remove_reader)(self.fd)

    def stop(self) -> None:
        for write, fut in list(self._futures.items()):
            (self.loop.remove_writer if write else self.loop.remove_reader)(self.fd)
            _resolve(fut)
        self._futures.clear()
        self.fd = -1


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class SocketTlsStream(Stream):
    """TLS on a non-blocking ssl.SSLSocket (see the module docstring)."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock: ssl.SSLSocket | None = sock
        self._wait = _Waiter(sock.fileno())
        self._buffer = bytearray(READ_MAX)
        self._view = memoryview(self._buffer)
        self._head = b""
        self._write_lock = asyncio.Lock()
        self._eof = False
        self._linger = Linger()
        self._bind_io(sock)

    def _bind_io(self, sock: ssl.SSLSocket) -> None:
        """The record calls the loops use. CPython's SSLSocket.recv_into/send go through two Python layers
        per call before reaching the C object (_sslobj); after the handshake the loops call it directly
        (its errors are the same SSLWantReadError / SSLWantWriteError / SSLEOFError)."""
        obj = getattr(sock, "_sslobj", None)
        if obj is not None and hasattr(obj, "read") and hasattr(obj, "write"):
            self._recv_into: Callable[[memoryview], int] = lambda view: obj.read(len(view), view)
            self._send = obj.write
        else:
            self._recv_into = sock.recv_into
            self._send = sock.send

    @classmethod
    async def handshake(cls, raw: socket.socket, ctx: ssl.SSLContext, server_side: bool,
                        server_name: str | None) -> SocketTlsStream:
        raw.setblocking(False)
        try:
            sock = ctx.wrap_socket(raw, server_side=server_side, server_hostname=server_name,
                                   do_handshake_on_connect=False)
        except BaseException:
            raw.close()
            raise
        stream = cls(sock)
        try:
            while True:
                try:
                    sock.do_handshake()
                    stream._bind_io(sock)  # _sslobj exists once the handshake started
                    return stream
                except ssl.SSLWantReadError:
                    await stream._wait.readable()
                except ssl.SSLWantWriteError:
                    await stream._wait.writable()
        except BaseException:
            stream.close()
            raise

    def _require(self) -> ssl.SSLSocket:
        if self._sock is None:
            raise ConnectionError("stream is closed")
        return self._sock

    async def read(self, n: int = CHUNK) -> bytes:
        if self._head:
            data, self._head = self._head[:n], self._head[n:]
            return data
        if self._eof:
            return b""
        self._require()
        view = self._view[:min(max(n, 1), READ_MAX)]
        got = 0
        while True:
            try:
                k = self._recv_into(view[got:])
            except ssl.SSLWantReadError:
                if got:
                    break
                await self._linger.wait(self._wait.readable())
                if self._linger.expired:
                    self._eof = True
                    break
                self._require()
                continue
            except ssl.SSLWantWriteError:
                if got:
                    break
                await self._wait.writable()
                self._require()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                k = 0
            if k == 0:  # close_notify, or the TCP connection ended without one (gost closes that way too)
                self._eof = True
                break
            got += k
            if got == len(view):
                break
        return bytes(view[:got])

    def unread(self, data: bytes) -> None:
        self._head = data + self._head

    def take_buffered(self) -> bytes:
        data, self._head = self._head, b""
        return data

    async def write(self, data: bytes) -> None:
        if not data:
            return
        async with self._write_lock:
            while True:
                self._require()
                try:
                    self._send(data)  # all of it, or WantWrite (then retried with the same data)
                    return
                except ssl.SSLWantWriteError:
                    await self._wait.writable()
                except ssl.SSLWantReadError:
                    await self._wait.readable()

    def send_nowait(self, data: bytes) -> None:
        """Best effort, for a last message before close(): what the socket takes now."""
        if self._sock is not None and not self._write_lock.locked():
            with contextlib.suppress(OSError):
                self._sock.send(data)

    async def write_eof(self) -> None:
        """TLS cannot half-close here: the reads end, the connection closes (see the module docstring)."""
        self._linger.start()

    def close(self) -> None:
        self._linger.cancel()
        self._wait.stop()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def local_addr(self) -> str:
        with contextlib.suppress(OSError, AttributeError):
            return format_sockaddr(self._require().getsockname())
        return ""

    @property
    def remote_addr(self) -> str:
        with contextlib.suppress(OSError, AttributeError):
            return format_sockaddr(self._require().getpeername())
        return ""

    @property
    def cipher(self) -> str:
        cipher = self._sock.cipher() if self._sock is not None else None
        return f"{cipher[1]} {cipher[0]}" if cipher else ""


class BioTlsStream(WrappedStream):
    """TLS over any Stream: an ssl.SSLObject whose memory BIOs are pumped through the inner stream."""

    def __init__(self, inner: Stream, obj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:
        self.inner = inner
        self._obj = obj
        self._in = incoming
        self._out = outgoing
        self._head = b""
        self._eof = False
        self._lock = asyncio.Lock()  # the SSL object is shared by both directions
        self._linger = Linger()

    @classmethod
    async def handshake(cls, inner: Stream, ctx: ssl.SSLContext, server_side: bool,
                        server_name: str | None) -> BioTlsStream:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_side=server_side, server_hostname=server_name)
        stream = cls(inner, obj, incoming, outgoing)
        try:
            while True:
                try:
                    obj.do_handshake()
                    await stream._flush()
                    return stream
                except ssl.SSLWantReadError:
                    await stream._flush()
                    if not await stream._fill():
                        raise ConnectionError("connection closed during the TLS handshake") from None
        except BaseException:
            inner.close()
            raise

    async def _flush(self) -> None:
        data = self._out.read()
        if data:
            await self.inner.write(data)

    async def _fill(self) -> bool:
        data = await self._linger.wait(self.inner.read(CHUNK))
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    async def read(self, n: int = CHUNK) -> bytes:
        if self._head:
            data, self._head = self._head[:n], self._head[n:]
            return data
        while not self._eof:
            try:
                data = self._obj.read(max(n, 1))
            except ssl.SSLWantReadError:
                async with self._lock:
                    await self._flush()
                if not await self._fill():
                    self._eof = True
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                data = b""
            if not data:
                self._eof = True
                break
            return data
        return b""

    def unread(self, data: bytes) -> None:
        self._head = data + self._head

    def take_buffered(self) -> bytes:
        data, self._head = self._head, b""
        return data

    async def write(self, data: bytes) -> None:
        if not data:
            return
        async with self._lock:
            self._obj.write(data)
            await self._flush()

    async def write_eof(self) -> None:
        """See the module docstring: the reads end, the connection closes."""
        self._linger.start()

    def close(self) -> None:
        self._linger.cancel()
        self.inner.close()
