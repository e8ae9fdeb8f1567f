"""`tun` and `tap` handlers: run the C tunnel engine between the listener's device and a UDP socket.

Server (no forward target): bind the service address, learn clients. Client (`tun://:p/SERVER:p`): bind
the service address like gost v2 and send everything to the server. Python starts and stops the engine,
logs its events (peer learning at debug level) and its counters; it never sees a packet.

With `tcp=true` the datagrams travel as fake TCP segments instead (gostx.tunnel.faketcp): the server
listens on the service address, the client dials and redials after the connection ends.

Client over a chain (`-F socks5://...`, seed "Proxy chain"): the router dials "udp" to the target through
the chain; the SOCKS5 handshake is made in Python and the engine then frames the datagrams itself on the
stream (GOST 0xF3, csrc/proxy/socks_udp.c). When the stream ends the engine reports "net_closed" and the chain
is dialed again after 1 s (doubling up to 6 s, as gost v2). An empty target host (`tun://:0/:8421`) is the
last proxy's own host (0.0.0.0 in the frames), as in gost. Exception (seed "GOST port forwarding"): a
target that is a local `udp://` service of this same gost (`tun://:8421/:8420 -L udp://:8420/:8421`) is
sent to directly; that service carries the datagrams through the chain. Fake TCP is ignored over a chain,
as in gost v2.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
from typing import Protocol, runtime_checkable

from gostx import _engine
from gostx.chain import Router, build_router
from gostx.chain.router import Conn
from gostx.cipher import make_aead
from gostx.config.metadata import Metadata
from gostx.config.model import HandlerConfig
from gostx.device.tuntap import TunDevice
from gostx.errors import GostError
from gostx.metrics import SourceHandle, register_source
from gostx.metrics.sources import TunnelSource
from gostx.net.packet import DirectPacketConn
from gostx.net.stream import CBridge
from gostx.protocol.socks5 import UdpTunConn
from gostx.registry import handlers
from gostx.service import Handler, Listener, ServiceContext
from gostx.tunnel.faketcp import FakeTcpClient, FakeTcpServer
from gostx.tunnel.options import DeviceOptions, TunnelOptions
from gostx.tunnel.redial import redial_forever
from gostx.tunnel.udp import bind_udp, resolve, split_host_port

SIOCGIFHWADDR = 0x8927
# the device's offload mode, for gostx_tun_info (gx/tun.h GX_TUN_VNET_*)
VNET_MODE_NAMES = {_engine.TUN_VNET_NONE: "none", _engine.TUN_VNET_CSUM: "csum", _engine.TUN_VNET_GSO: "gso",
                   3: "gso_eth"}

_EVENT_LEVEL = {
    "peer_learned": "debug", "peer_moved": "debug", "peer_expired": "debug", "keepalive_reply": "debug",
    "keepalive_timeout": "warning", "control_rejected": "warning", "table_full": "warning",
    "net_error": "warning", "dev_error": "error", "net_closed": "warning",
    "auth_failed": "warning", "malformed": "warning", "routes_capped": "warning", "pin_refused": "warning",
}
_EVENT_TEXT = {
    "peer_learned": "new route {key} -> {peer}", "peer_moved": "update route {key} -> {peer}",
    "peer_expired": "route {key} -> {peer} expired", "keepalive_reply": "keepalive reply from {peer}",
    "keepalive_timeout": "no keepalive reply from {peer} for 3 x ttl: handshake resent",
    "control_rejected": "{value} control message(s) from {peer} rejected (malformed, or announcing the"
                        " server's own address)",
    "table_full": "route table full, {key} not learned",
    # the next three come at most once per peer every 10 s; value = datagrams since the last line
    "auth_failed": "{value} datagram(s) from {peer} failed authentication (wrong password or cipher on one"
                   " side?)",
    "malformed": "{value} datagram(s) from {peer} are not IP packets / Ethernet frames (a cipher on one"
                 " side only?)",
    "routes_capped": "{peer} owns its peerRoutes routes: {value} source(s) not learned, last {key}",
    "pin_refused": "{peer} claimed {key}, pinned to another address (peerPins): {value} packet(s), not learned",
    "net_error": "socket error: errno {value}", "dev_error": "device error: errno {value}",
    "net_closed": "connection closed: {reason} (errno {value})",
}

# events the engine sends at most once per peer every 10 s, value = how many since the last one
_COUNTED_EVENTS = frozenset({"auth_failed", "malformed", "routes_capped", "control_rejected", "pin_refused"})


def host_port(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def make_cipher(method: str | None, password: str) -> _engine.Aead | None:
    """gost v2's `method:password@`: an AEAD cipher, or None for plaintext (`dummy`/`none`). Its salt
    replay filter is sized by SHADOWSOCKS_SF_CAPACITY, as go-shadowsocks2 (<= 0: off)."""
    if not method:
        return None
    try:
        aead = make_aead(method, password.encode())
    except ValueError as exc:
        raise GostError(str(exc)) from None
    return None if aead.method == "none" else aead


def device_mac(name: str) -> bytes | None:
    """The MAC of a TAP device (SIOCGIFHWADDR), or None when it cannot be read."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            raw = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None
    return raw[18:24]


@runtime_checkable
class DeviceListener(Protocol):
    """What the tunnel needs of its listener (tun, tap): the open device and its options."""

    device: TunDevice | None
    options: DeviceOptions


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
        self.router: Router | None = None
        self._bridge: CBridge | None = None
        # counters for -metrics and kill -USR1: kept across the tunnels of redials
        self.source = TunnelSource(ctx.name, self.kind)
        self._source_handle: SourceHandle | None = None

    async def init(self) -> None:
        self.cipher = make_cipher(self.options.method, self.options.password)
        if self.ctx.chain is not None and self.ctx.forwarder and self.ctx.forwarder.nodes:
            self.router = build_router(self.ctx.chain, self.ctx.config, self.ctx.metadata,
                                       retries=self.config.retries, log=self.ctx.log)
        elif self.options.fake_tcp:
            await self._init_fake_tcp()

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
        if not isinstance(listener, DeviceListener) or listener.device is None:
            raise GostError(f"{self.kind} handler needs a {self.kind} listener")
        device = listener.device
        remote = self._remote()
        self._metrics_up(device)
        if self.router is not None and not self._target_is_local_udp_service():
            await self._serve_chain(device, listener)
            return
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
        self._log_up(device, f"on udp {local[0]}:{local[1]}", remote)
        await asyncio.Event().wait()

    def _new_tunnel(self, device: TunDevice, listener: DeviceListener, remote: tuple[str, int, int] | None, *,
                    net_fd: int, family: int) -> _engine.Tunnel:
        """A tunnel on net_fd (the UDP socket), or net_fd -1 for another transport (family 0: the
        remote's)."""
        opts, dev_opts = self.options, listener.options
        if family == 0:
            family = remote[2] if remote else socket.AF_INET
        server = remote is None
        mac = device_mac(device.name) if server and self.kind == "tap" else None
        return _engine.Tunnel(
            tap=self.kind == "tap", server=remote is None, dev_fd=device.fd,
            vnet_hdr=device.vnet_mode, net_fd=net_fd, family=family,
            remote=(remote[0], remote[1]) if remote else None, aead=self.cipher, mtu=dev_opts.mtu,
            keepalive=opts.keepalive and remote is not None, ttl=opts.ttl, passphrase=opts.passphrase,
            ips=[str(n) for n in dev_opts.nets], p2p=opts.p2p, peer_timeout=opts.peer_timeout,
            peer_routes=opts.peer_routes, mac=mac,
        )

    def _metrics_up(self, device: object) -> None:
        mode = getattr(device, "vnet_mode", 0)
        self.source.info = {"device": str(getattr(device, "name", "")), "cipher": self.options.method or "none",
                            "vnet_mode": VNET_MODE_NAMES.get(mode, str(mode))}
        self.ctx.counters.live_bytes = self.source.device_bytes
        self.ctx.counters.live_requests = self.source.requests
        if self._source_handle is None:
            self._source_handle = register_source(self.source)

    def _start(self, tunnel: _engine.Tunnel, listener: DeviceListener, server: bool) -> None:
        """Routes, start the threads, watch the events."""
        if server:
            for route in listener.options.routes:
                if route.gateway is not None:
                    tunnel.add_route(str(route.dst), str(route.gateway))
            for inner, outer in self.options.pins:
                tunnel.add_pin(inner, outer)
        self._net_closed.clear()
        tunnel.start()
        self.tunnel = tunnel
        self.source.attach(tunnel, self.ftcp_endpoint)
        self._reader_fd = tunnel.event_fd
        asyncio.get_running_loop().add_reader(self._reader_fd, self._drain_events)

    def _log_up(self, device: TunDevice, where: str, remote: tuple[str, int, int] | None) -> None:
        self.ctx.log.info(
            f"{self.kind} tunnel {'client' if remote else 'server'} {where}"
            + (f" -> {remote[0]}:{remote[1]}" if remote else ""),
            extra={"kind": self.kind, "cipher": self.options.method or "none",
                   "device": device.name,
                   # the crypto and offload paths in use (CPU, GX_CRYPTO, build; the device's vnet mode)
                   "crypto": _engine.crypto_impls(), "vnet_mode": device.vnet_mode},
        )

    async def _serve_fake_tcp_server(self, device: TunDevice, listener: DeviceListener,
                                     endpoint: _engine.FakeTcp) -> None:
        tunnel = self._new_tunnel(device, listener, None, net_fd=-1, family=0)
        self.ftcp_endpoint = endpoint
        tunnel.use_faketcp(endpoint)
        self._start(tunnel, listener, server=True)
        self._log_up(device, f"on fake tcp {host_port(endpoint.local_address)}", None)
        await asyncio.Event().wait()

    async def _serve_fake_tcp_client(self, device: TunDevice, listener: DeviceListener,
                                     remote: tuple[str, int, int]) -> None:
        client = self.ftcp_client
        assert client is not None

        async def run(endpoint: _engine.FakeTcp) -> None:
            try:
                tunnel = self._new_tunnel(device, listener, remote, net_fd=-1, family=0)
                self.ftcp_endpoint = endpoint
                tunnel.use_faketcp(endpoint)
                self._start(tunnel, listener, server=False)
                self._log_up(device, f"on fake tcp {host_port(endpoint.local_address)}", remote)
                await self._net_closed.wait()
            finally:
                await self._stop_tunnel()
                self.ftcp_endpoint = None
                await asyncio.to_thread(endpoint.close)

        await redial_forever(client.dial, run, self.ctx.log, f"fake tcp {remote[0]}:{remote[1]}")

    async def _serve_chain(self, device: TunDevice, listener: DeviceListener) -> None:
        """Dial the target through the chain; run the engine on the stream until it ends; dial again."""
        assert self.router is not None and self.ctx.forwarder is not None
        router, target = self.router, self.ctx.forwarder.nodes[0].addr

        async def dial() -> Conn:
            try:
                return await router.dial("udp", target)
            except ConnectionError as exc:
                raise GostError(str(exc)) from None

        async def run(conn: Conn) -> None:
            try:
                await self._run_over(conn, device, listener, target)
            finally:
                await self._stop_tunnel()
                conn.close()

        await redial_forever(dial, run, self.ctx.log, f"{self.kind} tunnel to {target}")

    async def _run_over(self, conn: Conn, device: TunDevice, listener: DeviceListener, target: str) -> None:
        """Start the engine on what the router gave: 0xF3 frames on a stream, or (route cut) a UDP socket."""
        if isinstance(conn, UdpTunConn):
            host = conn.host or "0.0.0.0"
            remote = (host, conn.port, socket.AF_INET6 if ":" in host else socket.AF_INET)
            tunnel = self._new_tunnel(device, listener, remote, net_fd=-1, family=0)
            self._bridge = CBridge(conn.stream)
            tunnel.set_socks_stream(self._bridge.sock.fileno())
            via = " -> ".join(n.addr for n in self.router.route(target)) if self.router else ""
        elif isinstance(conn, DirectPacketConn):
            peer = conn.sock.getpeername()
            remote = (str(peer[0]).removeprefix("::ffff:"), int(peer[1]), conn.sock.family)
            tunnel = self._new_tunnel(device, listener, remote, net_fd=conn.sock.fileno(), family=conn.sock.family)
            via = ""
        else:
            raise GostError(f"{self.kind}: the chain gave no datagram connection")
        self._start(tunnel, listener, server=False)
        self._log_up(device, f"over chain {via}" if via else "over udp (the route was cut)", remote)
        await self._net_closed.wait()

    def _drain_events(self) -> None:
        if self.tunnel is None:
            return
        for name, value, key, peer in self.tunnel.events():
            counted = name in _COUNTED_EVENTS
            peer_text = host_port(peer) if peer else ("other peers" if counted else "-")
            reason = os.strerror(value).lower() if value and not counted else "-"
            text = _EVENT_TEXT.get(name, name).format(key=key, peer=peer_text, value=value, reason=reason)
            extra: dict[str, object] = {"event": name, "route": key, "peer": peer_text}
            if counted:
                extra["count"] = value
            getattr(self.ctx.log, _EVENT_LEVEL.get(name, "info"))(text, extra=extra)
            if name == "net_closed":
                self._net_closed.set()

    def log_stats(self) -> None:
        if self.tunnel is not None:
            stats: dict[str, object] = dict(self.tunnel.stats())
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
        await asyncio.shield(asyncio.to_thread(tunnel.stop))
        self._drain_events()
        self.log_stats()
        self.source.detach()
        self.tunnel = None
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None

    async def close(self) -> None:
        await self._stop_tunnel()
        if self._source_handle is not None:
            self._source_handle.close()
            self._source_handle = None
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
