"""gost's interface rules that need no namespace: where SO_BINDTODEVICE applies (Go's IsGlobalUnicast on
the destination), how an `interface` item resolves, and strict items in the config."""

from __future__ import annotations

import asyncio

import pytest

from gostx.chain.builder import _dial_options
from gostx.config.model import HopConfig, NodeConfig
from gostx.net.direct import DialOptions, dial
from gostx.net.iface import binds_device, resolve_interface


@pytest.mark.parametrize(("host", "expected"), [
    ("example.com", True), ("10.0.0.1", True), ("8.8.8.8", True), ("2001:db8::1", True),
    ("127.0.0.1", False), ("::1", False), ("169.254.1.1", False), ("fe80::1", False), ("224.0.0.1", False),
    ("0.0.0.0", False), ("::", False), ("255.255.255.255", False), ("::ffff:127.0.0.1", False),
])
def test_device_binding_follows_go_is_global_unicast(host: str, expected: bool) -> None:
    assert binds_device(host) is expected


def test_resolve_interface_by_name_and_by_address() -> None:
    name, addresses = asyncio.run(resolve_interface("lo"))
    assert name == "lo" and "127.0.0.1" in addresses
    assert asyncio.run(resolve_interface("127.0.0.1")) == ("lo", ["127.0.0.1"])
    assert asyncio.run(resolve_interface("")) == ("", [""])
    with pytest.raises(OSError):
        asyncio.run(resolve_interface("nosuchnic0"))


def test_strict_marker_reaches_the_dialer() -> None:
    hop = HopConfig(name="hop-0", metadata={"interface": "eth9!,lo", "so_mark": "7"})
    opts = _dial_options(NodeConfig(name="n", addr="h:1"), hop)
    assert opts.interfaces == ["eth9!", "lo"] and opts.mark == 7
    node = NodeConfig(name="n", addr="h:1", metadata={"interface": "lo"})
    assert _dial_options(node, hop).interfaces == ["lo"]  # the node's own value wins


def test_a_missing_nic_is_skipped_unless_strict() -> None:
    async def main(items: list[str]) -> str:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            sock = await dial("tcp", "127.0.0.1", port, DialOptions(timeout=5, interfaces=items))
        except OSError as exc:
            return f"error: {exc}"
        finally:
            server.close()
        local = sock.getsockname()[0]
        sock.close()
        return local

    assert asyncio.run(main(["nosuchnic0", "lo"])) == "127.0.0.1"
    assert asyncio.run(main(["nosuchnic0!", "lo"])).startswith("error")
