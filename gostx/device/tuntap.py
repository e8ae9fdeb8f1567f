"""A TUN or TAP device owned by this process: open it (errors a user can act on), close it.

The fds are non-blocking; the data plane reads and writes them in C. The device is not
persistent: it disappears (with its addresses and routes) when close() closes the last fd.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import Literal

from gostx import _engine
from gostx.errors import GostError

Kind = Literal["tun", "tap"]
IFNAMSIZ = 16   # the kernel's limit, with the terminating NUL


class DeviceError(GostError):
    """A TUN/TAP device could not be created or used."""


def check_device_name(name: str) -> None:
    """Refuse, with a clear message, a name the kernel would refuse ("" lets the kernel pick)."""
    if name == "":
        return
    if len(name.encode()) >= IFNAMSIZ:
        raise DeviceError(f"device name {name!r} is too long (at most {IFNAMSIZ - 1} bytes)")
    if name in (".", "..") or any(c in name for c in "/:") or any(c.isspace() for c in name):
        raise DeviceError(f"device name {name!r} is invalid (no '/', ':', spaces, '.' or '..')")


def open_error(kind: Kind, name: str, exc: OSError) -> DeviceError:
    """The one-line message for a failed open."""
    shown = name or f"{kind}N"
    code = exc.errno
    if code == errno.EBUSY:
        return DeviceError(f"device name {shown!r} is in use")
    if code == errno.EPERM:
        return DeviceError(f"creating a {kind.upper()} device needs CAP_NET_ADMIN (run as root)")
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return DeviceError(
            "/dev/net/tun is missing: load the tun module (modprobe tun), "
            "or give the container the device (--device /dev/net/tun)"
        )
    if code == errno.EACCES:
        return DeviceError("cannot open /dev/net/tun: permission denied")
    if code == errno.ENAMETOOLONG:
        return DeviceError(f"device name {shown!r} is too long (at most {IFNAMSIZ - 1} bytes)")
    if code == errno.EINVAL:
        return DeviceError(f"cannot create {kind.upper()} device {shown!r}: invalid name or options")
    why = os.strerror(code or errno.EIO).lower()
    return DeviceError(f"cannot create {kind.upper()} device {shown!r}: {why}")


@dataclass
class TunDevice:
    """An open TUN (IP packets) or TAP (Ethernet frames) device with one fd per queue."""

    kind: Kind
    name: str
    fds: list[int]
    offloads: int = 0
    vnet_hdr: bool = False
    closed: bool = field(default=False, init=False)

    @classmethod
    def open(
        cls, name: str = "", kind: Kind = "tun", queues: int = 1, vnet_hdr: bool = False, gso: bool = False
    ) -> TunDevice:
        """Create device `name` ("" = the kernel picks tunN/tapN). queues > 1: multi-queue.
        vnet_hdr: a virtio_net_hdr on the fds with checksum offload; gso: also TSO/USO, super-packets
        (TAP: super-frames) are split on read. Raises DeviceError with a one-line reason."""
        if kind not in ("tun", "tap"):
            raise DeviceError(f"unknown device kind {kind!r} (tun or tap)")
        if not 1 <= queues <= _engine.TUN_MAX_QUEUES:
            raise DeviceError(f"queues must be 1..{_engine.TUN_MAX_QUEUES}, not {queues}")
        if gso and not vnet_hdr:
            raise DeviceError("gso needs a device opened with vnet_hdr")
        check_device_name(name)
        try:
            real_name, fds, offloads = _engine.tun_open(name, kind == "tap", queues, vnet_hdr, gso)
        except OSError as exc:
            raise open_error(kind, name, exc) from None
        return cls(kind, real_name, fds, offloads, vnet_hdr)

    @property
    def fd(self) -> int:
        """The first queue's fd."""
        return self.fds[0]

    @property
    def vnet_mode(self) -> int:
        """What the C read/write calls take as vnet_hdr (0 none, 1 header, 2 header + GSO split,
        3 the same for Ethernet frames)."""
        return _engine.tun_vnet_mode(self.vnet_hdr, self.offloads, self.kind == "tap")

    def read_packets(self, max_packets: int = 128, queue: int = 0) -> list[bytes]:
        """One batched read (tests and tools; the data plane reads in C). [] when nothing waits."""
        return _engine.tun_read_batch(self.fds[queue], self.vnet_mode, max_packets)

    def write_packets(self, packets: list[bytes], queue: int = 0) -> int:
        """Batched writes (tests and tools). Returns how many packets the kernel took."""
        return _engine.tun_write_batch(self.fds[queue], packets, self.vnet_mode)

    def close(self) -> None:
        """Close every fd; the kernel then removes the device. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> TunDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
