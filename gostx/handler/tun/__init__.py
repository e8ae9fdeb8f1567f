"""`tun` and `tap` handlers: run the C tunnel engine between the listener's device and a UDP socket.

Server (no forward target): bind the service address, learn clients. Client (`tun://:p/SERVER:p`): bind
the service address like gost v2 and send everything to the server. Python starts and stops the engine,
logs its events (peer learning at debug level) and its counters; it never sees a packet.

With `tcp=true` the datagrams travel as fake TCP segments instead (gostx.tunnel.faketcp): the server
listens on the service address, the client dials and redials after the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket

from gostx import _engine
from gostx.config.metadata import Metadata
from gostx.config.model import HandlerConfig
from gostx.errors import GostError
from gostx.registry import handlers
from gostx.service import Handler, Listener, ServiceContext
from gostx.tunnel.faketcp import FakeTcpClient, FakeTcpServer
from gostx.tunnel.options import TunnelOptions
from gostx.tunnel.redial import redial_forever
from gostx.tunnel.udp import bind_udp, resolve, split_host_port

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
    "net_closed": "connection closed: {reason} (errno {value})",
}


def host_port(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


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
        self.ftcp_server: FakeTcpServer | None = None
        self.ftcp_client: FakeTcpClient | None = None
        self.ftcp_endpoint: _engine.FakeTcp | None = None   # the one the running tunnel uses
        self._net_closed = asyncio.Event()

    async def init(self) -> None:
        if self.ctx.chain is not None:
            raise GostError(f"{self.kind}: a tunnel over a proxy chain (-F) is not supported yet")
        self.cipher = make_cipher(self.options.method, self.options.password)
        if self.options.fake_tcp:
            await self._init_fake_tcp()

    async def _init_fake_tcp(self) -> None:
        """Rule and (server) listening socket now, so that a failure stops the start; close() undoes."""
        remote = self._remote()
        if remote is None:
            self.ftcp_server = FakeTcpServer(self.ctx.addr, self.options.peer_timeout)
            await self.ftcp_server.open()
        else:
            idle = 3 * self.options.ttl if self.options.keepalive else 0.0
            self.ftcp_client = FakeTcpClient(remote[0], remote[1], idle)
            await self.ftcp_client.open()

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
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.log_stats)
        if self.ftcp_client is not None and remote is not None:
            await self._serve_fake_tcp_client(device, listener, remote)
            return
        if self.ftcp_server is not None and self.ftcp_server.endpoint is not None:
            await self._serve_fake_tcp_server(device, listener, self.ftcp_server.endpoint)
            return
        self.sock = bind_udp(self.ctx.addr, family=remote[2] if remote else None)
        tunnel = self._new_tunnel(device, listener, remote, net_fd=self.sock.fileno(), family=self.sock.family)
        self._start(tunnel, listener, server=remote is None)
        local = self.sock.getsockname()
        self._log_up(device, f"udp {local[0]}:{local[1]}", remote)
        await asyncio.Event().wait()

    def _new_tunnel(self, device: object, listener: Listener, remote: tuple[str, int, int] | None, *,
                    net_fd: int, family: int) -> _engine.Tunnel:
        """A tunnel on net_fd (the UDP socket), or net_fd -1 for another transport (family 0: the
        remote's)."""
        opts, dev_opts = self.options, listener.options  # type: ignore[attr-defined]
        if family == 0:
            family = remote[2] if remote else socket.AF_INET
        return _engine.Tunnel(
            tap=self.kind == "tap", server=remote is None, dev_fd=device.fd,  # type: ignore[attr-defined]
            vnet_hdr=device.vnet_mode, net_fd=net_fd, family=family,  # type: ignore[attr-defined]
            remote=(remote[0], remote[1]) if remote else None, aead=self.cipher, mtu=dev_opts.mtu,
            keepalive=opts.keepalive and remote is not None, ttl=opts.ttl, passphrase=opts.passphrase,
            ips=[str(n.ip) for n in dev_opts.nets], p2p=opts.p2p, peer_timeout=opts.peer_timeout,
        )

    def _start(self, tunnel: _engine.Tunnel, listener: Listener, server: bool) -> None:
        """Routes, start the threads, watch the events."""
        if server:
            for route in listener.options.routes:  # type: ignore[attr-defined]
                if route.gateway is not None:
                    tunnel.add_route(str(route.dst), str(route.gateway))
        self._net_closed.clear()
        tunnel.start()
        self.tunnel = tunnel
        self._reader_fd = tunnel.event_fd
        asyncio.get_running_loop().add_reader(self._reader_fd, self._drain_events)

    def _log_up(self, device: object, local: str, remote: tuple[str, int, int] | None) -> None:
        self.ctx.log.info(
            f"{self.kind} tunnel {'client' if remote else 'server'} on {local}"
            + (f" -> {remote[0]}:{remote[1]}" if remote else ""),
            extra={"kind": self.kind, "cipher": self.options.method or "none",
                   "device": device.name},  # type: ignore[attr-defined]
        )

    async def _serve_fake_tcp_server(self, device: object, listener: Listener, endpoint: _engine.FakeTcp) -> None:
        tunnel = self._new_tunnel(device, listener, None, net_fd=-1, family=0)
        self.ftcp_endpoint = endpoint
        tunnel.use_faketcp(endpoint)
        self._start(tunnel, listener, server=True)
        self._log_up(device, f"fake tcp {host_port(endpoint.local_address)}", None)
        await asyncio.Event().wait()

    async def _serve_fake_tcp_client(self, device: object, listener: Listener,
                                     remote: tuple[str, int, int]) -> None:
        client = self.ftcp_client
        assert client is not None

        async def run(endpoint: _engine.FakeTcp) -> None:
            try:
                tunnel = self._new_tunnel(device, listener, remote, net_fd=-1, family=0)
                self.ftcp_endpoint = endpoint
                tunnel.use_faketcp(endpoint)
                self._start(tunnel, listener, server=False)
                self._log_up(device, f"fake tcp {host_port(endpoint.local_address)}", remote)
                await self._net_closed.wait()
            finally:
                await self._stop_tunnel()
                self.ftcp_endpoint = None
                await asyncio.to_thread(endpoint.close)

        await redial_forever(client.dial, run, self.ctx.log, f"fake tcp {remote[0]}:{remote[1]}")

    def _drain_events(self) -> None:
        if self.tunnel is None:
            return
        for name, value, key, peer in self.tunnel.events():
            peer_text = f"{peer[0]}:{peer[1]}" if peer else "-"
            reason = os.strerror(value).lower() if value else "-"
            text = _EVENT_TEXT.get(name, name).format(key=key, peer=peer_text, value=value, reason=reason)
            getattr(self.ctx.log, _EVENT_LEVEL.get(name, "info"))(
                text, extra={"event": name, "route": key, "peer": peer_text})
            if name == "net_closed":
                self._net_closed.set()

    def log_stats(self) -> None:
        if self.tunnel is not None:
            stats = self.tunnel.stats()
            if self.ftcp_endpoint is not None:
                stats["faketcp"] = self.ftcp_endpoint.stats()
            self.ctx.log.info(f"{self.kind} tunnel stats", extra={"stats": stats})

    async def _stop_tunnel(self) -> None:
        tunnel = self.tunnel
        if tunnel is None:
            return
        if self._reader_fd is not None:
            asyncio.get_running_loop().remove_reader(self._reader_fd)
            self._reader_fd = None
        await asyncio.to_thread(tunnel.stop)
        self._drain_events()
        self.log_stats()
        self.tunnel = None

    async def close(self) -> None:
        await self._stop_tunnel()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.ftcp_endpoint = None
        for endpoint in (self.ftcp_server, self.ftcp_client):
            if endpoint is not None:
                await endpoint.close()
        self.ftcp_server = self.ftcp_client = None


@handlers.register("tap")
class TapHandler(TunHandler):
    kind = "tap"
