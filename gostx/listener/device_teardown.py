"""Closing a TUN/TAP device a listener created: first the routes it added, then the device."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gostx.device.tuntap import TunDevice
from gostx.netlink import remove_routes_async
from gostx.netlink.routes import Route


async def release_device(device: TunDevice, routes: Sequence[Route], kind: str,
                         log: logging.LoggerAdapter[logging.Logger]) -> None:
    """Remove `routes` (best effort: closing the device takes its routes with it anyway), close the
    device and log `<kind> device <name> removed`."""
    if routes:
        try:
            await remove_routes_async(device.name, routes)
        except Exception as exc:
            log.debug(f"removing routes of {device.name}: {exc}")
    device.close()
    log.info(f"{kind} device {device.name} removed", extra={"device": device.name})
