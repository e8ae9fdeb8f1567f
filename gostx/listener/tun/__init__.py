"""`tun` and `tap` listeners: create the device, give it its addresses, MTU and routes, remove it on close.

As in gost, the listener owns the device and the handler moves the packets (gostx.handler.tun).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from gostx.config.metadata import Metadata
from gostx.config.model import ListenerConfig
from gostx.device.tuntap import TunDevice
from gostx.listener.device_teardown import release_device
from gostx.netlink import add_routes_async, configure_link_async
from gostx.netlink.routes import Route
from gostx.registry import listeners
from gostx.service import Listener, ServiceContext
from gostx.tunnel.options import DeviceOptions

# The TUN driver drops what its ring cannot hold while the data plane is busy sending; the kernel's
# default of 500 packets made TCP through the tunnel retransmit under load; 1000 removes nearly all of it
# without much queueing delay (bench/README.md, "Figures behind design choices").
TX_QUEUE_LEN = 1000


@listeners.register("tun")
class TunListener(Listener):
    kind: Literal["tun", "tap"] = "tun"

    def __init__(self, config: ListenerConfig, ctx: ServiceContext) -> None:
        super().__init__(config, ctx)
        self.ctx = ctx
        self.options = DeviceOptions.from_metadata(self.kind, Metadata(config.metadata))
        self.device: TunDevice | None = None
        self._routes_applied: list[Route] = []

    def os_routes(self) -> list[Route]:
        """TUN is point to point: every route goes `dev <if>` (gost v2); TAP routes go via their gateway."""
        if self.kind == "tun":
            return [Route(r.dst, None) for r in self.options.routes]
        return list(self.options.routes)

    async def init(self) -> None:
        opts = self.options
        self.device = await asyncio.to_thread(TunDevice.open, name=opts.name, kind=self.kind,
                                              vnet_hdr=True, gso=True)
        try:
            await configure_link_async(self.device.name, opts.mtu, opts.nets, txqueuelen=TX_QUEUE_LEN)
            self._routes_applied = await add_routes_async(self.device.name, self.os_routes())
        except BaseException:
            self.device.close()
            self.device = None
            raise
        self.ctx.log.info(
            f"{self.kind} device {self.device.name} is up",
            extra={"kind": self.kind, "device": self.device.name, "mtu": opts.mtu,
                   "net": [str(n) for n in opts.nets], "routes": [str(r.dst) for r in opts.routes]},
        )

    async def close(self) -> None:
        device, self.device = self.device, None
        if device is None:
            return
        await release_device(device, self._routes_applied, self.kind, self.ctx.log)


@listeners.register("tap")
class TapListener(TunListener):
    kind = "tap"
