"""TUN/TAP devices for real, inside a fresh network namespace per test.

Each test runs one scenario of tun_device_scenarios.py inside its namespace (`ip netns exec`); the
scenario opens devices through gostx.device, configures them through gostx.netlink, makes traffic
and reports what it saw as JSON; the assertions are here.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest
from tun_device_scenarios import parse_ip

from gostx.testing.netns import Lab

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "tun_device_scenarios.py")

pytestmark = pytest.mark.netns


def run_scenario(lab: Lab, scenario: str, prefix: str) -> tuple[str, dict[str, Any]]:
    ns = lab.namespace("tun")
    name = f"{prefix}{lab.suffix}"
    argv = ["env", f"PYTHONPATH={ROOT}", sys.executable, SCRIPT, scenario, name]
    done = ns.run(argv, check=False, timeout=60)
    assert done.returncode == 0, f"scenario {scenario} failed:\n{done.stderr}"
    return name, json.loads(done.stdout)


def packets(hexes: list[str]) -> list[dict[str, Any]]:
    return [info for h in hexes if (info := parse_ip(bytes.fromhex(h)))]


def udp_to(infos: list[dict[str, Any]], dport: int) -> list[dict[str, Any]]:
    return [p for p in infos if p["proto"] == 17 and p.get("dport") == dport]


def routes_by_dst(routes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["dst"]: r for r in routes}


def test_tun_configure_read_write_and_remove(lab: Lab) -> None:
    name, rep = run_scenario(lab, "tun", "gxtun")
    assert rep["name"] == name

    (link,) = rep["link"]
    assert link["mtu"] == 1400 and "UP" in link["flags"] and link["link_type"] == "none"
    addrs = {(a["local"], a["prefixlen"]) for a in rep["addr"][0]["addr_info"] if a["scope"] == "global"}
    assert addrs == {("10.77.0.1", 24), ("10.77.1.1", 24), ("fd77::1", 64)}
    (v6,) = [a for a in rep["addr"][0]["addr_info"] if a["local"] == "fd77::1"]
    assert v6.get("nodad") is True and not v6.get("tentative")

    assert rep["applied"] == [
        "10.78.0.0/16", "10.79.0.0/16 via 10.77.0.2", "fd78::/64", "fd79::/64 via 10.77.0.2"]
    r4, r6 = routes_by_dst(rep["routes4"]), routes_by_dst(rep["routes6"])
    assert "gateway" not in r4["10.78.0.0/16"] and r4["10.79.0.0/16"]["gateway"] == "10.77.0.2"
    assert "fd78::/64" in r6 and "gateway" not in r6["fd79::/64"]

    # one read call returned every datagram the kernel routed into the device, in order, intact
    got = packets(rep["one_read"])
    to_tun = udp_to(got, 9999)
    payloads = [bytes.fromhex(p["payload"]).decode() for p in to_tun]
    assert payloads == [f"to-tun-{i}" for i in range(8)] + [f"to-tun6-{i}" for i in range(3)] + ["via-gw"]
    assert all(p["ip_ok"] and p["l4_ok"] for p in to_tun)
    assert {p["dst"] for p in to_tun} == {"10.78.0.5", "fd78::5", "10.79.3.4"}
    assert [p for p in got if p not in to_tun and p["proto"] != 58] == []   # only ICMPv6 (RS/MLD) besides

    # written packets reached the kernel: sockets got the UDP, the echo request got a reply
    assert rep["written"] == 4
    assert rep["received4"] == ["from-tun-a", "from-tun-b"] and rep["received6"] == ["from-tun6-c"]
    replies = [p for p in packets(rep["after_write"]) if p.get("icmp_type") == 0]
    assert len(replies) == 1 and replies[0]["src"] == "10.77.0.1" and replies[0]["dst"] == "10.77.0.2"
    assert replies[0]["icmp_seq"] == 7 and replies[0]["l4_ok"]

    assert rep["removed"] == 4
    assert set(routes_by_dst(rep["routes4_after_remove"])) == {"10.77.0.0/24", "10.77.1.0/24"}
    assert rep["exists_after_close"] is False


def test_tap_arp_frame_out_and_frame_in(lab: Lab) -> None:
    _, rep = run_scenario(lab, "tap", "gxtap")
    (link,) = rep["link"]
    assert link["link_type"] == "ether" and link["mtu"] == 1400 and "UP" in link["flags"]
    assert rep["applied"] == ["10.89.0.0/16 via 10.88.0.2"]
    assert routes_by_dst(rep["routes4"])["10.89.0.0/16"]["gateway"] == "10.88.0.2"

    mac = bytes.fromhex(rep["mac"].replace(":", ""))
    arps = [bytes.fromhex(f) for f in rep["frames"] if bytes.fromhex(f)[12:14] == b"\x08\x06"]
    assert arps, f"no ARP frame among {rep['frames']}"
    arp = arps[0]
    assert arp[0:6] == b"\xff" * 6 and arp[6:12] == mac                  # broadcast, from the TAP
    assert arp[20:22] == b"\x00\x01"                                       # ARP request
    assert arp[28:32] == bytes([10, 88, 0, 1]) and arp[38:42] == bytes([10, 88, 0, 2])

    assert rep["written"] == 1 and rep["received"] == ["frame-in"]
    assert rep["exists_after_close"] is False


def test_names_in_use_multiqueue_and_netlink_errors(lab: Lab) -> None:
    name, rep = run_scenario(lab, "errors", "gxerr")
    assert rep["tun_again"] == f"DeviceError: device name '{name}' is in use"
    assert rep["tap_on_tun_name"] == f"DeviceError: device name '{name}' is in use"
    assert rep["on_veth"] == f"DeviceError: device name '{name[:-1]}v' is in use"
    assert rep["too_long"] == "DeviceError: device name 'xxxxxxxxxxxxxxxx' is too long (at most 15 bytes)"
    assert rep["configure_missing"] == "NetConfigError: device 'gxnonexist0': no such device"
    assert rep["route_on_down_device"] == (
        f"NetConfigError: add route 10.66.0.0/16 dev {name}: the device is down")
    assert rep["unreachable_gw"] == (
        f"NetConfigError: add route 10.67.0.0/16 via 192.0.2.1 dev {name}: "
        "the gateway is not reachable through the device")
    # the route added before the failing one was taken back
    assert [r["dst"] for r in rep["routes_after_failed_add"]] == ["10.65.0.0/24"]
    assert rep["remove_missing"] is False

    assert rep["mq_fds"] == 2
    info = rep["mq_link"][0]["linkinfo"]["info_data"]
    assert info.get("multi_queue") is True
    assert {"tx-0", "tx-1", "rx-0", "rx-1"} <= set(rep["mq_queues"])
    assert rep["exists_after_close"] is False


def test_vnet_hdr_reads_bare_packets_with_complete_checksums(lab: Lab) -> None:
    _, rep = run_scenario(lab, "vnet", "gxvn")
    csum = rep["csum"]
    assert csum["offloads"] == 1 and csum["vnet_mode"] == 1            # TUN_F_CSUM only
    got = udp_to(packets(csum["packets"]), 9999)
    want = [f"vnet-csum-{i}".encode() * (i + 1) for i in range(5)]
    assert [bytes.fromhex(p["payload"]) for p in got] == want
    assert all(p["ip_ok"] and p["l4_ok"] for p in got), "partial checksums were not completed"

    gso = rep["gso"]
    assert gso["offloads"] & 0x07 == 0x07 and gso["vnet_mode"] == 2     # CSUM|TSO4|TSO6 at least
    got = udp_to(packets(gso["packets"]), 9999)
    want = [f"vnet-gso-{i}".encode() * (i + 1) for i in range(5)]
    assert [bytes.fromhex(p["payload"]) for p in got] == want
    segs = udp_to(packets(gso["segments"]), 9998)
    data = bytes(range(256)) * 14
    assert [len(bytes.fromhex(s["payload"])) for s in segs] == [1000, 1000, 1000, 584]
    assert b"".join(bytes.fromhex(s["payload"]) for s in segs) == data

    tap = rep["tap_gso"]
    assert tap["offloads"] & 0x07 == 0x07 and tap["vnet_mode"] == 3    # TAP: Ethernet GSO mode
    frames = [bytes.fromhex(f) for f in tap["frames"]]
    ip_frames = [f for f in frames if f[12:14] == b"\x08\x00"]
    assert all(f[:6] == bytes.fromhex("020000000009") for f in ip_frames), "each segment keeps the L2 header"
    segs = udp_to(packets([f[14:].hex() for f in ip_frames]), 9997)
    assert [len(bytes.fromhex(s["payload"])) for s in segs] == [1000, 1000, 1000, 584]
    assert b"".join(bytes.fromhex(s["payload"]) for s in segs) == data
    assert all(s["ip_ok"] and s["l4_ok"] for s in segs), "segment checksums"
    assert all(s["ip_ok"] and s["l4_ok"] for s in segs)


def test_netlink_from_asyncio_and_remove_link(lab: Lab) -> None:
    _, rep = run_scenario(lab, "asyncio", "gxaio")
    assert rep["applied"] == ["10.45.0.0/16 via 10.44.0.2", "10.46.0.0/16"]
    (dev,) = rep["addr"]
    assert dev["mtu"] == 1300 and "UP" in dev["flags"]
    addrs = {(a["local"], a["prefixlen"]) for a in dev["addr_info"] if a["scope"] == "global"}
    assert addrs == {("10.44.0.1", 24), ("10.44.1.1", 24), ("fd44::1", 64)}
    want = {"10.44.0.0/24", "10.44.1.0/24", "10.45.0.0/16", "10.46.0.0/16"}
    assert {r["dst"] for r in rep["routes4"]} == want
    assert rep["removed"] == 2
    assert rep["removed_link"] is True and rep["exists_after_remove"] is False
