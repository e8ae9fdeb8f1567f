"""`tun` and `tap` handlers: run the C tunnel engine between the listener's device and a UDP socket.

Server (no forward target): bind the service address, learn clients. Client (`tun://:p/SERVER:p`): bind
the service address like gost v2 and send everything to the server. Python starts and stops the engine,
logs its events (peer learning at debug level) and its counters; it never sees a packet.

Client over a chain (`-F socks5://...`, seed "Proxy chain"): the router dials "udp" to the target through
the chain; the SOCKS5 handshake is made in Python and the engine then frames the datagrams itself on the
stream (GOST 0xF3, csrc/socks_udp.c). When the stream ends the engine reports "net_closed" and the chain
is dialed again after 1 s (doubling up to 6 s, as gost v2). An empty target host (`tun://:0/:8421`) is the
last proxy's own host (0.0.0.0 in the frames), as in gost. Exception (seed "GOST port forwarding"): a
target that is a local `udp://` service of this same gost (`tun://:8421/:8420 -L udp://:8420/:8421`) is
sent to directly; that service carries the datagrams through the chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket

from gostx import _engine
from gostx.chain import Router, build_router
from gostx.config.metadata import Metadata
from gostx.config.model import HandlerConfig
from gostx.errors import GostError
from gostx.net.packet import DirectPacketConn
from gostx.net.stream import CBridge
from gostx.protocol.socks5 import UdpTunConn
from gostx.registry import handlers
from gostx.service import Handler, Listener, ServiceContext
from gostx.tunnel.options import TunnelOptions
from gostx.tunnel.udp import bind_udp, resolve, split_host_port

REDIAL_FIRST = 1.0
REDIAL_MAX = 6.0

_EVENT_LEVEL = {
    "peer_learned": "debug", "peer_moved": "debug", "peer_expired": "debug", "keepalive_reply": "debug",
    "keepalive_timeout": "warning", "control_rejected": "info", "table_full": "warning",
    "net_error": "warning", "dev_error": "error", "net_closed": "warning",
}
_EVENT_TEXT = {
    "peer_learned": "new route {key} -> {peer}", "peer_moved": "update route {key} -> {peer}",
    "peer_expired": "route {key} -> {peer} expired", "keepalive_reply": "keepalive reply from {peer}",
    "keepalive_timeout": "no keepalive reply from {peer} for 3 x ttl: handshake resent",
    "control_rejected": "control message from {peer} rejected", "table_full": "route table full, {key} not learned",
    "net_error": "socket error: errno {value}", "dev_error": "device error: errno {value}",
    "net_closed": "tunnel stream closed (errno {value})",
}


def make_cipher(method: str | None, password: str) -> object | None:
    """gost v2's `method:password@`: an AEAD cipher, or None for plaintext (`dummy`/`none`)."""
    if not method:
        return None
    try:
        aead = _engine.Aead(method, password.encode())
    except ValueError as exc:
        raise GostError(str(exc)) from None
    return None if aead.method == "none" else aead


@handlers.register("tun")
class TunHandler(Handler):
    kind = "tun"

    def __init__(self, config: HandlerConfig, ctx: ServiceContext) -> None:
        super().__init__(config, ctx)
        self.ctx = ctx
        auth = config.auth
        self.options = TunnelOptions.from_config(self.kind, Metadata(config.metadata),
                                                 auth.username if auth else "", auth.password if auth else "")
        self.tunnel: _engine.Tunnel | None = None
        self.sock: socket.socket | None = None
        self._reader_fd: int | None = None
        self._bridge: CBridge | None = None

    async def init(self) -> None:
        if self.options.fake_tcp:
            raise GostError(f"{self.kind}: fake TCP (tcp=true) is not supported yet")
        self.cipher = make_cipher(self.options.method, self.options.password)
        self.router: Router | None = None
        self._closed: asyncio.Future[int] | None = None
        self._bridge: CBridge | None = None
        if self.ctx.chain is not None and self.ctx.forwarder and self.ctx.forwarder.nodes:
            self.router = build_router(self.ctx.chain, self.ctx.config, self.ctx.metadata,
                                       retries=self.config.retries, log=self.ctx.log)

    def _target_is_local_udp_service(self) -> bool:
        """`tun://:8421/:8420 -L udp://:8420/...`: the target is this gost's own UDP forwarder."""
        assert self.ctx.forwarder is not None
        host, port = split_host_port(self.ctx.forwarder.nodes[0].addr)
        if host not in ("", "127.0.0.1", "::1", "localhost"):
            return False
        for svc in self.ctx.config.services:
            listener = svc.listener.type if svc.listener else "tcp"
            if listener == "udp" and svc.name != self.ctx.name:
                try:
                    if split_host_port(svc.addr)[1] == port:
                        return True
                except GostError:
                    continue
        return False

    def _remote(self) -> tuple[str, int, int] | None:
        nodes = self.ctx.forwarder.nodes if self.ctx.forwarder else []
        if not nodes:
            return None
        host, port = split_host_port(nodes[0].addr)
        return resolve(host, port)

    async def serve(self, listener: Listener) -> None:
        device = getattr(listener, "device", None)
        if device is None:
            raise GostError(f"{self.kind} handler needs a {self.kind} listener")
        if self.router is not None and not self._target_is_local_udp_service():
            await self._serve_chain(listener, device)
            return
        remote = self._remote()
        self.sock = bind_udp(self.ctx.addr, family=remote[2] if remote else None)
        opts, dev_opts = self.options, listener.options  # type: ignore[attr-defined]
        self.tunnel = _engine.Tunnel(
            tap=self.kind == "tap", server=remote is None, dev_fd=device.fd, vnet_hdr=device.vnet_mode,
            net_fd=self.sock.fileno(), family=self.sock.family,
            remote=(remote[0], remote[1]) if remote else None, aead=self.cipher, mtu=dev_opts.mtu,
            keepalive=opts.keepalive and remote is not None, ttl=opts.ttl, passphrase=opts.passphrase,
            ips=[str(n.ip) for n in dev_opts.nets], p2p=opts.p2p, peer_timeout=opts.peer_timeout,
        )
        if remote is None:
            for route in dev_opts.routes:
                if route.gateway is not None:
                    self.tunnel.add_route(str(route.dst), str(route.gateway))
        loop = asyncio.get_running_loop()
        self.tunnel.start()
        self._reader_fd = self.tunnel.event_fd
        loop.add_reader(self._reader_fd, self._drain_events)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, self.log_stats)
        local = self.sock.getsockname()
        self.ctx.log.info(
            f"{self.kind} tunnel {'client' if remote else 'server'} on udp {local[0]}:{local[1]}"
            + (f" -> {remote[0]}:{remote[1]}" if remote else ""),
            extra={"kind": self.kind, "cipher": self.options.method or "none", "device": device.name},
        )
        await asyncio.Event().wait()

    async def _serve_chain(self, listener: Listener, device: object) -> None:
        """Dial the target through the chain; run the engine on the stream until it ends; dial again."""
        assert self.router is not None and self.ctx.forwarder is not None
        target = self.ctx.forwarder.nodes[0].addr
        loop = asyncio.get_running_loop()
        backoff = REDIAL_FIRST
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, self.log_stats)
        while True:
            started = loop.time()
            try:
                conn = await self.router.dial("udp", target)
            except ConnectionError as exc:
                self.ctx.log.error(f"{self.kind} tunnel: {exc}; retrying in {backoff:g}s")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, REDIAL_MAX)
                continue
            try:
                await self._run_over(conn, listener, device, target)
            finally:
                await self._stop_tunnel()
                conn.close()
            if loop.time() - started > 2 * REDIAL_MAX:
                backoff = REDIAL_FIRST
            self.ctx.log.warning(f"{self.kind} tunnel to {target} ended; redialing in {backoff:g}s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, REDIAL_MAX)

    async def _run_over(self, conn: object, listener: Listener, device: object, target: str) -> None:
        """Start the engine on what the router gave: 0xF3 frames on a stream, or (route cut) a UDP socket."""
        loop = asyncio.get_running_loop()
        opts, dev_opts = self.options, listener.options  # type: ignore[attr-defined]
        if isinstance(conn, UdpTunConn):
            host = conn.host or "0.0.0.0"
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            net_fd, remote = -1, (host, conn.port)
            via = " -> ".join(n.addr for n in self.router.route(target)) if self.router else ""
        elif isinstance(conn, DirectPacketConn):
            family = conn.sock.family
            peer = conn.sock.getpeername()
            net_fd, remote, via = conn.sock.fileno(), (str(peer[0]).removeprefix("::ffff:"), int(peer[1])), ""
        else:
            raise GostError(f"{self.kind}: the chain gave no datagram connection")
        self.tunnel = _engine.Tunnel(
            tap=self.kind == "tap", server=False, dev_fd=device.fd, vnet_hdr=device.vnet_mode,  # type: ignore[attr-defined]
            net_fd=net_fd, family=family, remote=remote, aead=self.cipher, mtu=dev_opts.mtu,
            keepalive=opts.keepalive, ttl=opts.ttl, passphrase=opts.passphrase,
            ips=[str(n.ip) for n in dev_opts.nets], p2p=opts.p2p, peer_timeout=opts.peer_timeout,
        )
        if isinstance(conn, UdpTunConn):
            self._bridge = CBridge(conn.stream)
            self.tunnel.set_socks_stream(self._bridge.sock.fileno())
        self._closed = loop.create_future()
        self.tunnel.start()
        self._reader_fd = self.tunnel.event_fd
        loop.add_reader(self._reader_fd, self._drain_events)
        self.ctx.log.info(
            f"{self.kind} tunnel client over {'chain ' + via if via else 'udp'} -> {remote[0]}:{remote[1]}",
            extra={"kind": self.kind, "cipher": self.options.method or "none",
                   "device": device.name, "chain": self.ctx.chain.name if self.ctx.chain else ""},  # type: ignore[attr-defined]
        )
        if isinstance(conn, DirectPacketConn):
            await asyncio.Event().wait()  # a UDP socket does not end
        await self._closed

    async def _stop_tunnel(self) -> None:
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            if self._reader_fd is not None:
                asyncio.get_running_loop().remove_reader(self._reader_fd)
                self._reader_fd = None
            await asyncio.shield(asyncio.to_thread(tunnel.stop))
            self.tunnel = tunnel
            self._drain_events()
            self.log_stats()
            self.tunnel = None
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None

    def _drain_events(self) -> None:
        if self.tunnel is None:
            return
        for name, value, key, peer in self.tunnel.events():
            if name == "net_closed" and self._closed is not None and not self._closed.done():
                self._closed.set_result(value)
            peer_text = f"{peer[0]}:{peer[1]}" if peer else "-"
            text = _EVENT_TEXT.get(name, name).format(key=key, peer=peer_text, value=value)
            getattr(self.ctx.log, _EVENT_LEVEL.get(name, "info"))(
                text, extra={"event": name, "route": key, "peer": peer_text})

    def log_stats(self) -> None:
        if self.tunnel is not None:
            self.ctx.log.info(f"{self.kind} tunnel stats", extra={"stats": self.tunnel.stats()})

    async def close(self) -> None:
        if self._bridge is not None:
            await self._stop_tunnel()
            return
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is None:
            return
        if self._reader_fd is not None:
            asyncio.get_running_loop().remove_reader(self._reader_fd)
        await asyncio.to_thread(tunnel.stop)
        self.tunnel = tunnel
        self._drain_events()
        self.log_stats()
        self.tunnel = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@handlers.register("tap")
class TapHandler(TunHandler):
    kind = "tap"
