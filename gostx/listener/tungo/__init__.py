"""`tungo` listener: create the TUN device, give it its addresses, MTU, routes and DNS; remove it on close.

As in gost, the listener owns the device and the handler (gostx.handler.tungo) runs the netstack on it.
No default route is added: users add it with the service's `postUp` commands, as gost's docs show.
"""

from __future__ import annotations

import asyncio

from gostx.config.model import ListenerConfig
from gostx.device.tuntap import TunDevice
from gostx.listener.device_teardown import release_device
from gostx.listener.tungo.dns import apply_link_dns
from gostx.listener.tungo.options import TungoOptions
from gostx.netlink import add_routes_async, configure_link_async
from gostx.netlink.routes import Route
from gostx.registry import listeners
from gostx.service import Listener, ServiceContext

# The device's queue towards the stack (the kernel drops what it cannot hold while the stack's thread is
# not reading: on two busy cores, tens of milliseconds). Under connection churn every lost SYN costs
# its client a 1-second retransmission: with the kernel's 500, 400 clients in flight lost hundreds of
# them a minute. TCP small queues keep a bulk flow's share small, so the depth only fills with many flows.
TX_QUEUE_LEN = 4096


@listeners.register("tungo")
class TungoListener(Listener):
    def __init__(self, config: ListenerConfig, ctx: ServiceContext) -> None:
        super().__init__(config, ctx)
        self.options = TungoOptions.from_metadata(self.metadata)
        self.device: TunDevice | None = None
        self._routes_applied: list[Route] = []

    async def init(self) -> None:
        opts = self.options
        # a virtio_net_hdr on the fd: the stack turns on the kernel's TCP offloads (csrc/stack/netif.c)
        self.device = await asyncio.to_thread(TunDevice.open, name=opts.name, kind="tun", vnet_hdr=True)
        try:
            await configure_link_async(self.device.name, opts.mtu, opts.nets, txqueuelen=TX_QUEUE_LEN)
            self._routes_applied = await add_routes_async(self.device.name, opts.routes)
        except BaseException:
            self.device.close()
            self.device = None
            raise
        self.ctx.log.info(
            f"tungo device {self.device.name} is up",
            extra={"kind": "tungo", "device": self.device.name, "mtu": opts.mtu,
                   "net": [str(n) for n in opts.nets], "routes": [str(r) for r in opts.routes]},
        )
        await apply_link_dns(self.device.name, opts.dns, self.ctx.log)

    @property
    def address(self) -> str:
        return self.device.name if self.device else self.ctx.addr

    async def close(self) -> None:
        device, self.device = self.device, None
        if device is None:
            return
        await release_device(device, self._routes_applied, "tungo", self.ctx.log)
