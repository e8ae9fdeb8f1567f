"""`interface=` and `so_mark=` placed as gost places them (spec v3.md 3.4), with real processes.

Namespace a has two NICs: one to b (10.210.1.0/24) and one to c (10.211.1.0/24). The server address
10.250.0.1 sits on the loopback of both b and c, but only b runs the relay server (and a web server); a's
preferred default route goes through c, where nothing listens. Only a connection bound to the NIC toward
b (by name or by its address), or marked into a routing table toward b, reaches the server - as a tungo
client's transport must leave by eth0 instead of looping into the TUN's default route."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from relay_helpers import curl, gost_listening, log_tail, start_web_server

from gostx.testing.gost import start_gost
from gostx.testing.netns import Lab, Namespace

pytestmark = [pytest.mark.netns, pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")]

SERVER = "10.250.0.1"


class Net:
    def __init__(self, lab: Lab) -> None:
        self.a, self.b, self.c = lab.namespace("a"), lab.namespace("b"), lab.namespace("c")
        self.a_to_b, _ = lab.link(self.a, "10.210.1.1/24", self.b, "10.210.1.2/24")
        self.a_to_c, _ = lab.link(self.a, "10.211.1.1/24", self.c, "10.211.1.2/24")
        for ns in (self.b, self.c):
            ns.run(["ip", "addr", "add", f"{SERVER}/32", "dev", "lo"])
        self.a.run(["ip", "route", "add", "default", "via", "10.211.1.2", "metric", "1"])   # the "TUN"
        self.a.run(["ip", "route", "add", "default", "via", "10.210.1.2", "metric", "10"])  # the "eth0"


@pytest.fixture
def net(lab: Lab) -> Net:
    made = Net(lab)
    made.server = start_gost(made.b, ["-L", "relay+wss://:443"], ready=gost_listening(443))  # type: ignore[attr-defined]
    made.blob, made.digest = start_web_server(made.b, SERVER, 8000)  # type: ignore[attr-defined]
    return made


def fetch(ns: Namespace, net: Net, proxy_port: int) -> bool:
    result = curl(ns, f"http://{SERVER}:8000/{net.blob}", proxy=f"http://127.0.0.1:{proxy_port}", timeout=8)  # type: ignore[attr-defined]
    return result.returncode == 0 and hashlib.sha256(result.stdout).hexdigest() == net.digest  # type: ignore[attr-defined]


def test_without_interface_the_route_goes_the_wrong_way(net: Net) -> None:
    start_gost(net.a, ["-L", "http://127.0.0.1:8080", "-F", f"relay+wss://{SERVER}:443"], ready=gost_listening(8080))
    assert not fetch(net.a, net, 8080)


@pytest.mark.parametrize("value", ["{nic}", "10.210.1.1", "{nic}!", "nosuchnic0,{nic}"])
def test_hop_interface_binds_the_connection_to_the_node(net: Net, value: str) -> None:
    iface = value.format(nic=net.a_to_b)
    client = start_gost(net.a, ["-L", "http://127.0.0.1:8080", "-F", f"relay+wss://{SERVER}:443?interface={iface}"],
                        ready=gost_listening(8080))
    assert fetch(net.a, net, 8080), log_tail(client, net.server)  # type: ignore[attr-defined]


def test_strict_interface_fails_at_once(net: Net) -> None:
    client = start_gost(net.a, ["-L", "http://127.0.0.1:8080", "-F",
                                f"relay+wss://{SERVER}:443?interface=nosuchnic0!,{net.a_to_b}"],
                        ready=gost_listening(8080))
    assert not fetch(net.a, net, 8080), log_tail(client)


def test_hop_so_mark_selects_a_routing_table(net: Net) -> None:
    net.a.run(["ip", "rule", "add", "fwmark", "0x66", "lookup", "100"])
    net.a.run(["ip", "route", "add", "default", "via", "10.210.1.2", "table", "100"])
    client = start_gost(net.a, ["-L", "http://127.0.0.1:8080", "-F", f"relay+wss://{SERVER}:443?so_mark=102"],
                        ready=gost_listening(8080))
    assert fetch(net.a, net, 8080), log_tail(client)


def test_service_interface_binds_direct_dials(net: Net) -> None:
    """No chain: the service's own `interface` decides where direct dials leave (the bypass path)."""
    start_gost(net.a, ["-L", "http://127.0.0.1:8081"], ready=gost_listening(8081))
    start_gost(net.a, ["-L", f"http://127.0.0.1:8082?interface={net.a_to_b}"], ready=gost_listening(8082))
    assert not fetch(net.a, net, 8081)
    assert fetch(net.a, net, 8082)
