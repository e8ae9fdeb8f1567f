"""Sniff a TCP flow by peeking at its first bytes without consuming them.

`sniff_stream(peek, timeout)` needs only a `peek(n)` coroutine: "give me the bytes received so far,
once there are at least n of them or no more will come". It never consumes anything, so whoever owns
the flow still holds every byte and forwards it upstream unchanged (gostx is byte-transparent, HTTP
included). Steps (gost X:internal/util/sniffing):
  1. wait for 5 bytes, at most `timeout` seconds (`sniffing.timeout`; 0 = no limit, as gost). None
     in time (a server-first protocol such as SMTP or SSH-from-server), or EOF before 5: proto None.
  2. classify them: 'tls', 'http', 'ssh' or None (see gostx.sniffing.classify).
  3. for TLS and HTTP, peek more until the ClientHello / request head is complete (at most
     `header_timeout` seconds in all, at most 64 KiB), and parse the host.
The outcome says which protocol and which host:port the client asked for (host None when none:
no SNI, no Host, incomplete, malformed): the caller then takes the normal path.

How the handlers use it
-----------------------
* tungo (a C-spliced flow): the engine terminates the TCP flow in lwIP and reports the new flow to
  Python with its first bytes (it keeps them queued for the upstream). Python runs
  `await sniff_stream(BytesPeeker(first).peek, timeout=0)` (or a peek that asks the engine for more
  bytes when a ClientHello spans several segments), then: service bypass on `outcome.address`
  (host:80 / host:443) -> reject (close); else dial `host:<original dst port>` through the router,
  falling back to the original IP:port when that dial fails and `sniffing.fallback` is on (or when
  no host was found); and commands the engine to splice the flow to the dialed fd, which first writes
  the queued bytes. No byte of the flow passes through Python after the decision.
* relay / socks5 / http handlers (Python streams): `peeker = StreamPeeker(reader)`, then
  `outcome = await sniff_stream(peeker.peek, options.timeout)`; record or route on `outcome.host`;
  write `peeker.take()` upstream first, then pipe the reader as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gostx.sniffing.classify import CLASSIFY_BYTES, PROTO_HTTP, PROTO_TLS, classify
from gostx.sniffing.http import MAX_HTTP_HEAD_BYTES, parse_http_host
from gostx.sniffing.result import SniffResult, SniffState, join_host_port
from gostx.sniffing.tls import MAX_CLIENT_HELLO_BYTES, parse_tls_sni

Peek = Callable[[int], Awaitable[bytes]]
DEFAULT_HEADER_TIMEOUT = 10.0  # to complete a ClientHello / request head once the protocol is known

_PARSERS: dict[str, tuple[Callable[[bytes], SniffResult], int]] = {
    PROTO_TLS: (parse_tls_sni, MAX_CLIENT_HELLO_BYTES),
    PROTO_HTTP: (parse_http_host, MAX_HTTP_HEAD_BYTES),
}


@dataclass(frozen=True)
class SniffOutcome:
    proto: str | None  # 'tls', 'http', 'ssh' or None
    host: str | None = None
    port: int | None = None  # the port the client named, else 443 (TLS) / 80 (HTTP); None without host
    reason: str = ""  # why there is no host (for debug logs)
    peeked: int = 0  # how many bytes the sniffer looked at (all still unconsumed)

    @property
    def address(self) -> str | None:
        """`host:port` as gost matches the service bypass with it, or None."""
        if self.host is None or self.port is None:
            return None
        return join_host_port(self.host, self.port)


async def sniff_stream(peek: Peek, timeout: float = 0.0, *,
                       header_timeout: float = DEFAULT_HEADER_TIMEOUT) -> SniffOutcome:
    """Classify a flow and find the host it asks for, from peeked bytes (see the module doc)."""
    try:
        if timeout > 0:
            first = await asyncio.wait_for(peek(CLASSIFY_BYTES), timeout)
        else:
            first = await peek(CLASSIFY_BYTES)
    except TimeoutError:
        return SniffOutcome(None, reason="no first bytes within sniffing.timeout")
    if len(first) < CLASSIFY_BYTES:
        return SniffOutcome(None, reason="the flow ended before 5 bytes", peeked=len(first))
    proto = classify(first)
    if proto not in _PARSERS:
        return SniffOutcome(proto, reason="no host to sniff", peeked=len(first))
    parse, limit = _PARSERS[proto]
    data = first
    try:
        async with asyncio.timeout(header_timeout if header_timeout > 0 else None):
            while True:
                result = parse(data)
                if result.state is not SniffState.NEED_MORE:
                    break
                more = await peek(min(len(data) + 1, limit))
                if len(more) <= len(data):
                    return SniffOutcome(proto, reason=f"no more bytes inside the {proto} header", peeked=len(more))
                data = more
    except TimeoutError:
        return SniffOutcome(proto, reason=f"incomplete {proto} header after {header_timeout:g}s", peeked=len(data))
    if result.state is SniffState.NOT_THIS:
        return SniffOutcome(proto, reason=result.reason, peeked=len(data))
    return SniffOutcome(proto, result.host, result.port, result.reason, peeked=len(data))


class StreamPeeker:
    """`peek` over an asyncio.StreamReader. The bytes it reads stay here until `take()`: write them
    upstream first, then keep reading from the reader."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buf = bytearray()
        self._eof = False

    async def peek(self, n: int) -> bytes:
        while len(self._buf) < n and not self._eof:
            chunk = await self._reader.read(max(n - len(self._buf), 4096))
            if not chunk:
                self._eof = True
            self._buf += chunk
        return bytes(self._buf)

    @property
    def at_eof(self) -> bool:
        return self._eof

    def take(self) -> bytes:
        """The peeked bytes, handed over once (the peeker is empty afterwards)."""
        data, self._buf = bytes(self._buf), bytearray()
        return data


class BytesPeeker:
    """`peek` over bytes handed over once (e.g. by the C engine with a new flow): nothing more comes."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)

    async def peek(self, n: int) -> bytes:
        return self._data
