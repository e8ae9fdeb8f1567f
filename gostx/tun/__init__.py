"""TUN/TAP devices: created in C (gostx._engine), owned and closed here."""

from gostx.tun.device import DeviceError, TunDevice

__all__ = ["DeviceError", "TunDevice"]
