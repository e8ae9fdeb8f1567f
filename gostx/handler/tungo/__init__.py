"""`tungo` handler (tun2socks): the lwIP netstack in C on the listener's TUN device.

The C stack terminates every TCP connection and UDP session routed into the device and reports each one
here once (network, source, original destination, and with `sniffing` its first bytes). The handler
decides: it dials an upstream for the flow through the service's router (`dial`: its chain, or a direct
dial with the service's `interface`/`so_mark`/`dialTimeout`) and hands the connected fd to C, which
relays the flow's bytes itself; or it drops the flow (the client gets a reset). No Python runs per
packet or per byte, except for flows whose upstream is a Python transport (see bridge.py). Without a
chain and without sniffing, a flow's dial is a few event-loop callbacks and no Task (fastdial.py).

Handler metadata: `udpTimeout` (default 30s), `sniffing`, `sniffing.timeout`, `sniffing.fallback`,
`sniffing.udp`. Service metadata: `interface`, `so_mark`, `dialTimeout`; service `bypass`.
"""

from __future__ import annotations

import asyncio
import os
from typing import ClassVar

from gostx import _engine
from gostx.addr import join_host_port
from gostx.chain import Bypass, service_bypass
from gostx.chain.router import Conn
from gostx.config.model import HandlerConfig
from gostx.errors import GostError
from gostx.handler.tungo.bridge import Bridges
from gostx.handler.tungo.fastdial import DirectDials
from gostx.handler.tungo.options import TungoHandlerOptions
from gostx.handler.tungo.ports import SourcePorts
from gostx.handler.tungo.upstream import OwnSockets, TungoRouter, build_tungo_router
from gostx.listener.tungo import TungoListener
from gostx.metrics import SourceHandle, register_source
from gostx.metrics.sources import tungo_source
from gostx.registry import handlers
from gostx.service import Handler, Listener, ServiceContext
from gostx.sniffing import BytesPeeker, SniffingOptions, dial_targets, parse_dns_question, sniff_stream

Address = tuple[str, int]
SNIFF_BYTES = 16384   # first bytes a sniffed TCP flow hands over (a ClientHello or a request head)


def _show(addr: Address) -> str:
    return join_host_port(*addr)


@handlers.register("tungo")
class TungoHandler(Handler):
    active: ClassVar[TungoHandler | None] = None  # lwIP's state is global: one tungo service per process

    def __init__(self, config: HandlerConfig, ctx: ServiceContext) -> None:
        super().__init__(config, ctx)
        self.options = TungoHandlerOptions.from_metadata(self.metadata)
        self.sniffing = SniffingOptions.from_metadata(self.metadata)
        self.own = OwnSockets()
        self.ports = SourcePorts.from_kernel()  # in the service's network namespace: read at start
        self.bridges = Bridges()  # upstreams that are Python transports (TLS, SOCKS5 UDP frames)
        self.router: TungoRouter | None = None
        self.bypass: Bypass | None = None
        self.stack: _engine.Stack | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.fast: DirectDials | None = None  # direct dials as callbacks: no chain, no sniffing
        self._reader_fd: int | None = None
        self._device_name = ""
        self._loop_warned = False
        self._source_handle: SourceHandle | None = None
        self._last_stats: dict[str, int] = {}
        self.dial_errors = 0  # flows whose upstream dial failed (Python path; the fast path counts its own)

    async def init(self) -> None:
        if TungoHandler.active not in (None, self):
            raise GostError(f"tungo: only one tungo service per process ({TungoHandler.active.ctx.name} is one)")
        self.router = build_tungo_router(self.ctx, self.config.retries, self.own, self.ports)
        self.bypass = service_bypass(self.ctx.config, self.ctx.name)
        TungoHandler.active = self

    async def serve(self, listener: Listener) -> None:
        if not isinstance(listener, TungoListener) or listener.device is None:
            raise GostError("handler tungo needs a tungo listener")
        device = listener.device
        self._device_name = device.name
        self.stack = _engine.Stack(tun_fd=device.fd, vnet_hdr=device.vnet_hdr, mtu=listener.options.mtu,
                                   udp_timeout=self.options.udp_timeout,
                                   sniff_bytes=SNIFF_BYTES if self.sniffing.enabled else 0,
                                   sniff_timeout=self.sniffing.timeout)
        self.stack.start()
        if self.router is not None and self.router.chain is None and not self.sniffing.enabled:
            self.fast = DirectDials(self.stack, self.router.direct, self.router.retries, self.router.timeout,
                                    self.own, self.router.log, self.ports)
        loop = asyncio.get_running_loop()
        self._reader_fd = self.stack.event_fd
        loop.add_reader(self._reader_fd, self._drain_events)
        self._metrics_up()
        via = "direct" if self.ctx.chain is None else f"chain {self.ctx.chain.name}"
        self.ctx.log.info(f"tungo stack on {device.name} ({via})",
                          extra={"device": device.name, "mtu": listener.options.mtu,
                                 "udpTimeout": self.options.udp_timeout, "sniffing": self.sniffing.enabled})
        await asyncio.Event().wait()

    # ---- per flow (once each) ------------------------------------------------------------------
    def _drain_events(self) -> None:
        stack = self.stack
        if stack is None:
            return
        for network, flow_id, src, dst, first in stack.events():
            if self.own.has_key(src):  # src is inet_ntop's spelling (the stack's)
                stack.drop(flow_id)
                self._warn_loop(network, dst)
                continue
            if self.fast is not None:
                if network == "tcp" and self._bypassed(_show(dst), src):
                    stack.drop(flow_id)
                else:
                    self.fast.start(network, flow_id, src, dst)
                continue
            task = asyncio.create_task(self._handle(stack, network, flow_id, src, dst, first))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _targets(self, network: str, src: Address, dst: Address, first: bytes) -> list[str] | None:
        """Where to dial the flow, in order (a sniffed name first); None: the service bypass refuses it."""
        original = _show(dst)
        if network == "udp":  # gost checks no bypass for UDP; with sniffing, DNS questions are logged
            if self.sniffing.dns and (question := parse_dns_question(first)) is not None:
                self.ctx.log.debug(f"udp {_show(src)} -> {original}: dns {question.name} type {question.qtype}",
                                   extra={"network": network, "dst": original, "dns": question.name})
            return [original]
        if not self.sniffing.enabled:
            return None if self._bypassed(original, src) else [original]
        outcome = await sniff_stream(BytesPeeker(first).peek)
        if self._bypassed(outcome.address or original, src):
            return None
        if outcome.host is not None:
            self.ctx.log.debug(f"tcp {_show(src)} -> {original}: sniffed {outcome.proto} {outcome.address}",
                               extra={"network": network, "dst": original, "host": outcome.address})
        return dial_targets(outcome, original, self.sniffing.fallback)

    def _bypassed(self, target: str, src: Address) -> bool:
        if self.bypass is None or not self.bypass.contains(target):
            return False
        self.ctx.log.debug(f"tcp {_show(src)} -> {target}: bypassed (service bypass)",
                           extra={"network": "tcp", "dst": target})
        return True

    async def _handle(self, stack: _engine.Stack, network: str, flow_id: int, src: Address, dst: Address,
                      first: bytes) -> None:
        decided, fd = False, -1
        try:
            targets = await self._targets(network, src, dst, first)
            if targets is None:
                return
            conn, target = await self._dial_first(network, targets, src)
            if conn is None:
                return
            fd = self.bridges.fd_for(conn)
            try:
                stack.connect(flow_id, fd)
            except OSError:  # the stack is stopping
                return
            fd, decided = -1, True  # the stack owns the fd now
            self.ctx.log.debug(f"{network} {_show(src)} -> {target}",
                               extra={"network": network, "src": _show(src), "dst": target})
        finally:
            if fd >= 0:
                os.close(fd)
            if not decided:  # refused, failed, cancelled: the client's flow is reset / dropped
                stack.drop(flow_id)

    async def _dial_first(self, network: str, targets: list[str], src: Address) -> tuple[Conn | None, str]:
        last = ""
        for target in targets:
            try:
                return await self.dial(network, target), target
            except (OSError, TimeoutError) as exc:
                last = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        self.dial_errors += 1
        self.ctx.counters.error()
        self.ctx.log.warning(f"{network} {_show(src)} -> {targets[-1]}: {last}",
                             extra={"network": network, "src": _show(src), "dst": targets[-1]})
        return None, ""

    async def dial(self, network: str, address: str) -> Conn:
        """The upstream of one flow, through the service's router (its chain; directly when there is no
        chain or a bypass cuts the route). A Stream ("tcp") or a PacketConn ("udp")."""
        assert self.router is not None
        return await self.router.dial(network, address)

    def _warn_loop(self, network: str, dst: Address) -> None:
        if self._loop_warned:
            return
        self._loop_warned = True
        self.ctx.log.warning(
            f"{network} to {_show(dst)} comes back into tungo: the route to it leads into the tungo device; "
            "set the service `interface` (e.g. interface=eth0) so direct dials leave through another device",
            extra={"network": network, "dst": _show(dst)})

    # ---- stats, close ------------------------------------------------------------------------------
    def _metrics_up(self) -> None:
        """-metrics: the stack's counters (gostx_tungo_*); gost's service counters: flows as requests, the
        device's bytes as input/output (read from C at scrape time)."""
        def live_bytes() -> tuple[int, int]:
            s = self._stats_now()
            return s.get("tun_rx_bytes", 0), s.get("tun_tx_bytes", 0)

        def live_requests() -> tuple[int, int]:
            s = self._stats_now()
            return (s.get("tcp_flows", 0) + s.get("udp_sessions", 0), s.get("tcp_active", 0) + s.get("udp_active", 0))

        self.ctx.counters.live_bytes = live_bytes
        self.ctx.counters.live_requests = live_requests
        self.ctx.counters.live_errors = lambda: self.fast.failures if self.fast is not None else 0
        if self._source_handle is None:
            self._source_handle = register_source(tungo_source(self.ctx.name, self.stats))

    def _stats_now(self) -> dict[str, int]:
        if self.stack is not None:
            self._last_stats = dict(self.stack.stats())
        return self._last_stats

    def stats(self) -> dict[str, int]:
        """The stack's counters, and tun_queue_drops: packets the kernel dropped because the device's
        queue towards the stack was full (its TX drops, from sysfs: they never reach the stack)."""
        out: dict[str, int] = dict(self.stack.stats()) if self.stack is not None else {}
        out["dial_errors"] = self.dial_errors + (self.fast.failures if self.fast is not None else 0)
        if self._device_name:
            try:
                with open(f"/sys/class/net/{self._device_name}/statistics/tx_dropped", encoding="ascii") as f:
                    out["tun_queue_drops"] = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pass
        return out

    def log_stats(self) -> None:
        if self.stack is not None:
            self.ctx.log.info("tungo stats", extra={"stats": self.stats()})

    async def close(self) -> None:
        if TungoHandler.active is self:
            TungoHandler.active = None
        if self._source_handle is not None:
            self._source_handle.close()
            self._source_handle = None
        stack, self.stack = self.stack, None
        if stack is None:
            return
        if self._reader_fd is not None:
            asyncio.get_running_loop().remove_reader(self._reader_fd)
            self._reader_fd = None
        if self.fast is not None:
            self.fast.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.bridges.close()
        await asyncio.to_thread(stack.stop)
        self._last_stats = dict(stack.stats())
        self.ctx.log.info("tungo stats", extra={"stats": self._last_stats})
        stack.close()
