"""`tungo` handler (tun2socks): the lwIP netstack in C on the listener's TUN device.

The C stack terminates every TCP connection and UDP session routed into the device and reports each one
here once (network, source, original destination). The handler decides: it dials an upstream for the
flow (`dial`, the one hook where the chain router plugs in; today a direct dial with the service's
`interface`/`so_mark`/`dialTimeout`) and hands the connected fd to C, which relays the flow's bytes
itself; or it drops the flow (the client gets a reset). No Python runs per packet or per byte.

Handler metadata: `udpTimeout` (default 30s). Service metadata: `interface`, `so_mark`, `dialTimeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from typing import ClassVar

from gostx import _engine
from gostx.config.model import HandlerConfig
from gostx.errors import GostError
from gostx.handler.tungo.bridge import Bridges
from gostx.handler.tungo.options import TungoHandlerOptions
from gostx.handler.tungo.upstream import OwnSockets, dial_direct
from gostx.listener.tungo import TungoListener
from gostx.net.direct import DialOptions
from gostx.registry import handlers
from gostx.service import Handler, Listener, ServiceContext

Address = tuple[str, int]


def _show(addr: Address) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@handlers.register("tungo")
class TungoHandler(Handler):
    active: ClassVar[TungoHandler | None] = None  # lwIP's state is global: one tungo service per process

    def __init__(self, config: HandlerConfig, ctx: ServiceContext) -> None:
        super().__init__(config, ctx)
        self.options = TungoHandlerOptions.from_metadata(self.metadata)
        self.dial_options = DialOptions.from_metadata(ctx.metadata)
        self.own = OwnSockets()
        self.bridges = Bridges()  # for upstreams that are Python transports (chains)
        self.stack: _engine.Stack | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader_fd: int | None = None
        self._loop_warned = False

    async def init(self) -> None:
        if self.ctx.chain is not None:
            raise GostError("tungo: forwarding through a chain (-F) is not supported yet")
        if self.options.sniffing:
            raise GostError("tungo: sniffing is not supported yet")
        if TungoHandler.active not in (None, self):
            raise GostError(f"tungo: only one tungo service per process ({TungoHandler.active.ctx.name} is one)")
        self.dial_options.check_privileges()
        TungoHandler.active = self

    async def serve(self, listener: Listener) -> None:
        if not isinstance(listener, TungoListener) or listener.device is None:
            raise GostError("handler tungo needs a tungo listener")
        device = listener.device
        self.stack = _engine.Stack(tun_fd=device.fd, vnet_hdr=device.vnet_hdr, mtu=listener.options.mtu,
                                   udp_timeout=self.options.udp_timeout)
        self.stack.start()
        loop = asyncio.get_running_loop()
        self._reader_fd = self.stack.event_fd
        loop.add_reader(self._reader_fd, self._drain_events)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, self.log_stats)
        self.ctx.log.info(f"tungo stack on {device.name}",
                          extra={"device": device.name, "mtu": listener.options.mtu,
                                 "udpTimeout": self.options.udp_timeout})
        await asyncio.Event().wait()

    # ---- per flow (once each) ------------------------------------------------------------------
    def _drain_events(self) -> None:
        stack = self.stack
        if stack is None:
            return
        for network, flow_id, src, dst, _first in stack.events():
            if src in self.own:
                stack.drop(flow_id)
                self._warn_loop(network, dst)
                continue
            task = asyncio.create_task(self._handle(stack, network, flow_id, src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, stack: _engine.Stack, network: str, flow_id: int, src: Address, dst: Address) -> None:
        route = f"{_show(src)} -> {_show(dst)}"
        try:
            sock = await self.dial(network, dst)
        except asyncio.CancelledError:
            stack.drop(flow_id)
            raise
        except (OSError, TimeoutError) as exc:
            stack.drop(flow_id)
            why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
            self.ctx.log.warning(f"{network} {route}: {why}", extra={"network": network, "src": _show(src),
                                                                  "dst": _show(dst)})
            return
        except Exception:
            stack.drop(flow_id)
            raise
        fd = sock.detach()
        try:
            stack.connect(flow_id, fd)
        except OSError:
            os.close(fd)
            return
        self.ctx.log.debug(f"{network} {route}", extra={"network": network, "src": _show(src), "dst": _show(dst)})

    async def dial(self, network: str, dst: Address) -> socket.socket:
        """The upstream for one flow: a connected socket whose fd the C stack takes over.

        This is where the chain router plugs in: a chain dial that gives a connected socket hands it
        over as is; one that gives a Python transport (asyncio streams) goes through
        `self.bridges.stream(reader, writer)`, one end of a socketpair that Python relays. Today every
        flow is dialed directly, with the service's interface/so_mark/dialTimeout."""
        return await dial_direct(network, dst[0], dst[1], self.dial_options, self.own)

    def _warn_loop(self, network: str, dst: Address) -> None:
        if self._loop_warned:
            return
        self._loop_warned = True
        self.ctx.log.warning(
            f"{network} to {_show(dst)} comes back into tungo: the route to it leads into the tungo device; "
            "set the service `interface` (e.g. interface=eth0) so direct dials leave through another device",
            extra={"network": network, "dst": _show(dst)})

    # ---- stats, close ------------------------------------------------------------------------------
    def log_stats(self) -> None:
        if self.stack is not None:
            self.ctx.log.info("tungo stats", extra={"stats": self.stack.stats()})

    async def close(self) -> None:
        if TungoHandler.active is self:
            TungoHandler.active = None
        stack, self.stack = self.stack, None
        if stack is None:
            return
        if self._reader_fd is not None:
            asyncio.get_running_loop().remove_reader(self._reader_fd)
            self._reader_fd = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.bridges.close()
        await asyncio.to_thread(stack.stop)
        self.ctx.log.info("tungo stats", extra={"stats": stack.stats()})
        stack.close()
