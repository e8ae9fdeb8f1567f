"""TUN/TAP open failures read as one line a user can act on (no device needed)."""

from __future__ import annotations

import errno

import pytest

from gostx.device import DeviceError, TunDevice
from gostx.device.tuntap import check_device_name, open_error
from gostx.errors import GostError


@pytest.mark.parametrize(
    ("code", "kind", "name", "message"),
    [
        (errno.EBUSY, "tun", "tun0", "device name 'tun0' is in use"),
        (errno.EPERM, "tun", "x", "creating a TUN device needs CAP_NET_ADMIN (run as root)"),
        (errno.EPERM, "tap", "", "creating a TAP device needs CAP_NET_ADMIN (run as root)"),
        (errno.ENOENT, "tun", "x", "/dev/net/tun is missing: load the tun module (modprobe tun), "
         "or give the container the device (--device /dev/net/tun)"),
        (errno.EACCES, "tun", "x", "cannot open /dev/net/tun: permission denied"),
        (errno.EMFILE, "tap", "tap7", "cannot create TAP device 'tap7': too many open files"),
    ],
)
def test_open_errors(code: int, kind: str, name: str, message: str) -> None:
    err = open_error(kind, name, OSError(code, "x"))  # type: ignore[arg-type]
    assert isinstance(err, DeviceError) and isinstance(err, GostError)
    assert str(err) == message


@pytest.mark.parametrize("name", ["a" * 16, "bad/name", "a:b", "a b", ".", ".."])
def test_invalid_names_refused_before_the_kernel(name: str) -> None:
    with pytest.raises(DeviceError, match="device name"):
        check_device_name(name)


@pytest.mark.parametrize("name", ["", "tun0", "a" * 15, "gost%d"])
def test_valid_names(name: str) -> None:
    check_device_name(name)


def test_open_argument_errors() -> None:
    with pytest.raises(DeviceError, match="unknown device kind"):
        TunDevice.open("x", kind="tan")  # type: ignore[arg-type]
    with pytest.raises(DeviceError, match="queues must be"):
        TunDevice.open("x", queues=0)
    with pytest.raises(DeviceError, match="gso needs"):
        TunDevice.open("x", kind="tap", vnet_hdr=False, gso=True)
