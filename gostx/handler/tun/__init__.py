"""`tun` and `tap` handlers: run the C tunnel engine between the listener's device and a UDP socket.

Server (no forward target): bind the service address, learn clients. Client (`tun://:p/SERVER:p`): bind
the service address like gost v2 and send everything to the server. Python starts and stops the engine,
logs its events (peer learning at debug level) and its counters; it never sees a packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket

from gostx import _engine
from gostx.config.metadata import Metadata
from gostx.config.model import HandlerConfig
from gostx.errors import GostError
from gostx.registry import handlers
from gostx.service import Handler, Listener, ServiceContext
from gostx.tunnel.options import TunnelOptions
from gostx.tunnel.udp import bind_udp, resolve, split_host_port

_EVENT_LEVEL = {
    "peer_learned": "debug", "peer_moved": "debug", "peer_expired": "debug", "keepalive_reply": "debug",
    "keepalive_timeout": "warning", "control_rejected": "info", "table_full": "warning",
    "net_error": "warning", "dev_error": "error",
}
_EVENT_TEXT = {
    "peer_learned": "new route {key} -> {peer}", "peer_moved": "update route {key} -> {peer}",
    "peer_expired": "route {key} -> {peer} expired", "keepalive_reply": "keepalive reply from {peer}",
    "keepalive_timeout": "no keepalive reply from {peer} for 3 x ttl: handshake resent",
    "control_rejected": "control message from {peer} rejected", "table_full": "route table full, {key} not learned",
    "net_error": "socket error: errno {value}", "dev_error": "device error: errno {value}",
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

    async def init(self) -> None:
        if self.options.fake_tcp:
            raise GostError(f"{self.kind}: fake TCP (tcp=true) is not supported yet")
        if self.ctx.chain is not None:
            raise GostError(f"{self.kind}: a tunnel over a proxy chain (-F) is not supported yet")
        self.cipher = make_cipher(self.options.method, self.options.password)

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

    def _drain_events(self) -> None:
        if self.tunnel is None:
            return
        for name, value, key, peer in self.tunnel.events():
            peer_text = f"{peer[0]}:{peer[1]}" if peer else "-"
            text = _EVENT_TEXT.get(name, name).format(key=key, peer=peer_text, value=value)
            getattr(self.ctx.log, _EVENT_LEVEL.get(name, "info"))(
                text, extra={"event": name, "route": key, "peer": peer_text})

    def log_stats(self) -> None:
        if self.tunnel is not None:
            self.ctx.log.info(f"{self.kind} tunnel stats", extra={"stats": self.tunnel.stats()})

    async def close(self) -> None:
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
