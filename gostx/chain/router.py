"""The Router: dial a TCP or UDP destination through the service's chain, or directly (go-gost/x
chain/router.go).

    router = Router(chain, retries=handler.retries, timeout=dialTimeout, direct=DialOptions(...))
    stream = await router.dial("tcp", "example.com:443")    # -> gostx.net.stream.Stream
    conn = await router.dial("udp", "1.1.1.1:53")           # -> gostx.net.packet.PacketConn
    conn = await router.dial("udp", "")                     # an unconnected PacketConn (any destination)

Each attempt (1 + retries) routes afresh (hop selectors, bypass cuts) and is limited to `timeout` seconds
(service metadata `dialTimeout`, default 15s). An empty route dials directly with the service's
`interface`/`so_mark`. A node whose step fails is marked for its hop's fail filter; a route that works
clears the marks of its nodes. Failure: ConnectionError with one line naming the node and the reason.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import weakref
from collections.abc import Sequence

from gostx.addr import split_host_port
from gostx.chain.route import Chain, Node
from gostx.errors import GostError
from gostx.log import FieldLogger, get_logger
from gostx.metrics.counters import chain_connected, chain_failed, fail_request
from gostx.net.direct import DEFAULT_DIAL_TIMEOUT, DialOptions, dial, listen_udp
from gostx.net.packet import DirectPacketConn, PacketConn
from gostx.net.stream import SocketStream, Stream

Conn = Stream | PacketConn


_live: weakref.WeakSet[Router] = weakref.WeakSet()


def live_routers() -> list[Router]:
    """Every Router of the running services (for the web API's chain, hop and bypass changes)."""
    return list(_live)


def reason(exc: BaseException) -> str:
    """One line for a dial failure."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):  # its errno is OpenSSL's (1 = SSL_ERROR_SSL), not an errno
        return tls_reason(exc)
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, (OSError, GostError)) and str(exc):
        return str(exc)
    return str(exc) or type(exc).__name__


def tls_reason(exc: ssl.SSLError) -> str:
    """`tls: certificate verify failed: certificate has expired`, `tls: wrong version number`, ..."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"tls: certificate verify failed: {exc.verify_message.rstrip('.')}"
    if exc.reason:
        return "tls: " + exc.reason.lower().replace("_", " ")
    return f"tls: {exc.strerror or type(exc).__name__}"


class Router:
    def __init__(self, chain: Chain | None = None, *, retries: int = 0, timeout: float = DEFAULT_DIAL_TIMEOUT,
                 direct: DialOptions | None = None, log: FieldLogger | None = None) -> None:
        self.chain = chain
        self.retries = max(retries, 0)
        self.timeout = timeout if timeout > 0 else DEFAULT_DIAL_TIMEOUT
        self.direct = direct or DialOptions(timeout=self.timeout)
        self.log = log or get_logger(kind="router")
        _live.add(self)

    def replace_chain(self, chain: Chain) -> None:
        """The web API replaced the chain (or a hop or bypass in it): dials from now on use the new one;
        connections already made keep theirs."""
        self.chain = chain

    def route(self, address: str, key: str = "") -> list[Node]:
        return self.chain.route(address, key) if self.chain is not None else []

    async def dial(self, network: str, address: str, key: str = "") -> Conn:
        """A Stream ("tcp") or PacketConn ("udp") to address; ConnectionError after the last attempt."""
        if network not in ("tcp", "udp"):
            raise ValueError(f"network {network!r}")
        error: BaseException | None = None
        where = "direct"
        for attempt in range(1 + self.retries):
            route = self.route(address, key)
            where = " -> ".join(n.addr for n in route) or "direct"
            try:
                async with asyncio.timeout(self.timeout):
                    if not route:
                        return await self.dial_direct(network, address)
                    return await self._dial_route(route, network, address)
            except (OSError, TimeoutError, GostError) as exc:
                error = exc
                self.log.debug(f"dial {network} {address or '*'} via {where} (attempt {attempt + 1}): "
                               f"{reason(exc)}")
        assert error is not None
        fail_request()
        target = address or "*"
        raise ConnectionError(f"dial {network} {target} via {where}: {reason(error)}")

    async def dial_direct(self, network: str, address: str) -> Conn:
        """The connection when the route is empty (no chain, or cut by a bypass): a socket dialed with the
        service's interface and so_mark. Subclasses may override it (tungo marks its own sockets)."""
        if network == "udp" and not address:
            if self.direct.interfaces or self.direct.mark:
                return DirectPacketConn(await listen_udp(self.direct), connected=False)
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(("::", 0))
            except OSError:
                sock.close()
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("0.0.0.0", 0))
            return DirectPacketConn(sock, connected=False)
        host, port = split_host_port(address)
        sock = await dial(network, host, port, self.direct)
        if network == "udp":
            return DirectPacketConn(sock, connected=True)
        return SocketStream(sock)

    async def _dial_route(self, route: Sequence[Node], network: str, address: str) -> Conn:
        step = 0
        stream: Stream | None = None
        chain = self.chain.name if self.chain is not None else ""
        start = time.monotonic()
        try:
            first = route[0]
            stream = await first.dialer.dial(first.addr, first.dial_options)
            stream = await first.dialer.handshake(stream, first.addr)
            stream = await first.connector.handshake(stream)
            for step in range(1, len(route)):
                node, prev = route[step], route[step - 1]
                conn = await prev.connector.connect(stream, "tcp", node.addr)
                if not isinstance(conn, Stream):
                    raise ConnectionError(f"connector {prev.connector.config.type} gave no stream")
                stream = await node.dialer.handshake(conn, node.addr)
                stream = await node.connector.handshake(stream)
            step = len(route) - 1
            result = await route[-1].connector.connect(stream, network, address)
        except BaseException as exc:
            if stream is not None:
                stream.close()
            route[step].marker.mark()  # a timeout arrives here as a cancellation
            chain_failed(chain, route[step].name or route[step].addr)
            if isinstance(exc, (OSError, TimeoutError, GostError)):
                name = route[step].name or route[step].addr
                raise ConnectionError(f"node {name} ({route[step].addr}): {reason(exc)}") from exc
            raise
        for node in route:
            node.marker.reset()
        chain_connected(chain, route[-1].name or route[-1].addr, time.monotonic() - start)
        return result
