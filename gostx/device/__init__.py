"""TUN/TAP devices (the kernel interfaces; the tunnel that carries their packets is gostx.tunnel): created in
C (gostx._engine), owned and closed here."""

from gostx.device.tuntap import DeviceError, TunDevice

__all__ = ["DeviceError", "TunDevice"]
