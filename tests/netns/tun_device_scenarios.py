"""Scenarios for tests/netns/test_tun_device.py, run INSIDE a test namespace:

    ip netns exec NS python3 tests/netns/tun_device_scenarios.py SCENARIO DEVICE_NAME

Each scenario creates devices with gostx.device / gostx.netlink, makes traffic, and prints one JSON
report on stdout (observations only: the test asserts on them). The packet helpers are imported
by the test as well.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import ip_address, ip_network
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from gostx.device import DeviceError, TunDevice  # noqa: E402
from gostx.netlink import (  # noqa: E402
    NetConfigError,
    Route,
    add_routes,
    add_routes_async,
    configure_link,
    configure_link_async,
    parse_nets,
    remove_link,
    remove_link_async,
    remove_routes,
    remove_routes_async,
)
from gostx.testing.packets import inet_checksum  # noqa: E402

UDP_SEGMENT = 103

# ---- packets ----


checksum = inet_checksum


def pseudo_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    data = src + dst
    return sum(struct.unpack(f"!{len(data) // 2}H", data)) + proto + length


def udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 or IPv6 UDP packet with valid checksums."""
    s, d = ip_address(src).packed, ip_address(dst).packed
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", sport, dport, length, 0) + payload
    csum = checksum(udp, pseudo_sum(s, d, 17, length)) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    if len(s) == 4:
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 1, 0x4000, 64, 17, 0, s, d)
        return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + udp
    return struct.pack("!IHBB16s16s", 6 << 28, length, 17, 64, s, d) + udp


def icmp_echo(src: str, dst: str, ident: int, seq: int, payload: bytes) -> bytes:
    s, d = ip_address(src).packed, ip_address(dst).packed
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 2, 0x4000, 64, 1, 0, s, d)
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + icmp


def parse_ip(pkt: bytes) -> dict[str, Any] | None:
    """IPv4/IPv6 header fields, plus UDP ports and whether every checksum is valid."""
    if len(pkt) < 20:
        return None
    version = pkt[0] >> 4
    if version == 4:
        ihl = (pkt[0] & 0xF) * 4
        l4, s, d = pkt[ihl:], pkt[12:16], pkt[16:20]
        info = {"v": 4, "proto": pkt[9], "src": str(ip_address(s)), "dst": str(ip_address(d)),
                "ip_ok": checksum(pkt[:ihl]) == 0 and struct.unpack("!H", pkt[2:4])[0] == len(pkt)}
    elif version == 6 and len(pkt) >= 40:
        l4, s, d = pkt[40:], pkt[8:24], pkt[24:40]
        info = {"v": 6, "proto": pkt[6], "src": str(ip_address(s)), "dst": str(ip_address(d)),
                "ip_ok": struct.unpack("!H", pkt[4:6])[0] == len(pkt) - 40}
    else:
        return None
    if info["proto"] == 17 and len(l4) >= 8:
        sport, dport, length, _ = struct.unpack("!HHHH", l4[:8])
        info.update(sport=sport, dport=dport, payload=l4[8:].hex(),
                    l4_ok=length == len(l4) and checksum(l4, pseudo_sum(s, d, 17, len(l4))) == 0)
    if info["proto"] == 1 and len(l4) >= 8:
        info.update(icmp_type=l4[0], icmp_seq=struct.unpack("!H", l4[6:8])[0], l4_ok=checksum(l4) == 0)
    return info


# ---- system observations (this process is in the test namespace) ----


def ip_json(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def read_until(dev: TunDevice, want: Callable[[list[bytes]], bool], timeout: float = 3.0) -> list[bytes]:
    """Read batches (waiting with select) until want(all packets so far) or the timeout."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while not want(got) and time.monotonic() < deadline:
        select.select([dev.fd], [], [], max(0.0, deadline - time.monotonic()))
        got += dev.read_packets()
    return got


def drain(dev: TunDevice) -> None:
    while dev.read_packets():
        pass


def recv_all(sock: socket.socket, count: int, timeout: float = 3.0) -> list[str]:
    got = []
    sock.settimeout(timeout)
    try:
        while len(got) < count:
            got.append(sock.recv(2048).decode())
    except TimeoutError:
        pass
    return got


def udp_sock(family: socket.AddressFamily, bind: tuple[str, int] | None = None) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if bind:
        sock.bind(bind)
    return sock


# ---- scenarios ----


def scenario_tun(name: str) -> dict[str, Any]:
    """Address, MTU, routes; kernel -> TUN in one batch read; TUN -> kernel; removal on close."""
    report: dict[str, Any] = {}
    dev = TunDevice.open(name, "tun")
    report["name"] = dev.name
    configure_link(name, 1400, parse_nets("10.77.0.1/24,10.77.1.1/24,fd77::1/64"))
    routes = [
        Route(ip_network("10.78.0.0/16")),
        Route(ip_network("10.79.0.0/16"), ip_address("10.77.0.2")),
        Route(ip_network("fd78::/64")),
        Route(ip_network("fd79::/64"), ip_address("10.77.0.2")),  # other family: dev only
    ]
    report["applied"] = [str(r) for r in add_routes(name, routes)]
    report["link"] = ip_json("link", "show", "dev", name)
    report["addr"] = ip_json("addr", "show", "dev", name)
    report["routes4"] = ip_json("-4", "route", "show", "dev", name)
    report["routes6"] = ip_json("-6", "route", "show", "dev", name)

    # kernel -> TUN: datagrams to routed addresses, then ONE batched read.
    drain(dev)
    s4, s6 = udp_sock(socket.AF_INET), udp_sock(socket.AF_INET6)
    for i in range(8):
        s4.sendto(f"to-tun-{i}".encode(), ("10.78.0.5", 9999))
    for i in range(3):
        s6.sendto(f"to-tun6-{i}".encode(), ("fd78::5", 9999))
    s4.sendto(b"via-gw", ("10.79.3.4", 9999))
    report["one_read"] = [p.hex() for p in dev.read_packets()]

    # TUN -> kernel: a batch with empty slots, UDP to sockets on the device's addresses, and an
    # ICMP echo request whose reply comes back out of the TUN.
    r4 = udp_sock(socket.AF_INET, ("10.77.0.1", 7777))
    r6 = udp_sock(socket.AF_INET6, ("fd77::1", 7777))
    batch = [
        udp_packet("10.77.0.2", "10.77.0.1", 5000, 7777, b"from-tun-a"),
        b"",
        udp_packet("10.77.0.2", "10.77.0.1", 5000, 7777, b"from-tun-b"),
        udp_packet("fd77::2", "fd77::1", 5000, 7777, b"from-tun6-c"),
        b"",
        icmp_echo("10.77.0.2", "10.77.0.1", 0x4758, 7, b"ping-payload"),
    ]
    drain(dev)
    report["written"] = dev.write_packets(batch)
    report["received4"] = recv_all(r4, 2)
    report["received6"] = recv_all(r6, 1)
    replies = read_until(dev, lambda got: any((parse_ip(p) or {}).get("icmp_type") == 0 for p in got))
    report["after_write"] = [p.hex() for p in replies]

    report["removed"] = remove_routes(name, routes)
    report["routes4_after_remove"] = ip_json("-4", "route", "show", "dev", name)
    for sock in (s4, s6, r4, r6):
        sock.close()
    dev.close()
    report["exists_after_close"] = link_exists(name)
    return report


def scenario_tap(name: str) -> dict[str, Any]:
    """A TAP device: the kernel's ARP request comes out as a frame; a frame written in reaches a socket."""
    report: dict[str, Any] = {}
    dev = TunDevice.open(name, "tap")
    configure_link(name, 1400, parse_nets("10.88.0.1/24"))
    applied = add_routes(name, [Route(ip_network("10.89.0.0/16"), ip_address("10.88.0.2"))])
    report["applied"] = [str(r) for r in applied]
    report["link"] = ip_json("link", "show", "dev", name)
    report["routes4"] = ip_json("-4", "route", "show", "dev", name)
    with open(f"/sys/class/net/{name}/address") as f:
        mac = f.read().strip()
    report["mac"] = mac

    drain(dev)
    sock = udp_sock(socket.AF_INET)
    sock.sendto(b"needs-arp", ("10.88.0.2", 9999))   # the neighbour is unknown: ARP first
    frames = read_until(dev, lambda got: any(f[12:14] == b"\x08\x06" for f in got))
    report["frames"] = [f.hex() for f in frames]

    # An Ethernet frame for our MAC carrying UDP to a socket on the TAP's address.
    receiver = udp_sock(socket.AF_INET, ("10.88.0.1", 7777))
    peer_mac = bytes.fromhex("02aabbccddee")
    frame = bytes.fromhex(mac.replace(":", "")) + peer_mac + b"\x08\x00" + udp_packet(
        "10.88.0.2", "10.88.0.1", 5000, 7777, b"frame-in")
    report["written"] = dev.write_packets([b"", frame])
    report["received"] = recv_all(receiver, 1)
    sock.close()
    receiver.close()
    dev.close()
    report["exists_after_close"] = link_exists(name)
    return report


def scenario_errors(name: str) -> dict[str, Any]:
    """Names in use, multi-queue, and netlink errors: the one-line messages."""
    report: dict[str, Any] = {}

    def error_of(action: Callable[[], object]) -> str | None:
        try:
            result = action()
        except (DeviceError, NetConfigError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if isinstance(result, TunDevice):
            result.close()
        return None

    dev = TunDevice.open(name, "tun")
    report["tun_again"] = error_of(lambda: TunDevice.open(name, "tun"))
    report["tap_on_tun_name"] = error_of(lambda: TunDevice.open(name, "tap"))
    veth = name[:-1] + "v"
    subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", name[:-1] + "w"], check=True)
    report["on_veth"] = error_of(lambda: TunDevice.open(veth, "tun"))
    report["too_long"] = error_of(lambda: TunDevice.open("x" * 16, "tun"))
    report["configure_missing"] = error_of(lambda: configure_link("gxnonexist0", 1400, []))
    report["route_on_down_device"] = error_of(lambda: add_routes(name, [Route(ip_network("10.66.0.0/16"))]))
    configure_link(name, None, parse_nets("10.65.0.1/24"))
    report["unreachable_gw"] = error_of(lambda: add_routes(name, [
        Route(ip_network("10.66.0.0/16")), Route(ip_network("10.67.0.0/16"), ip_address("192.0.2.1"))]))
    report["routes_after_failed_add"] = ip_json("-4", "route", "show", "dev", name)
    report["remove_missing"] = remove_link("gxnonexist0")
    dev.close()

    mq = TunDevice.open(name, "tun", queues=2)
    report["mq_fds"] = len(set(mq.fds))
    report["mq_link"] = ip_json("-d", "link", "show", "dev", name)
    report["mq_queues"] = sorted(os.listdir(f"/sys/class/net/{name}/queues"))
    mq.close()
    report["exists_after_close"] = link_exists(name)
    return report


def scenario_vnet(name: str) -> dict[str, Any]:
    """vnet_hdr devices: checksum offload (partial checksums completed on read) and GSO (USO
    super-packets split on read)."""
    report: dict[str, Any] = {}
    for label, gso in (("csum", False), ("gso", True)):
        dev = TunDevice.open(name, "tun", vnet_hdr=True, gso=gso)
        configure_link(name, 1400, parse_nets("10.55.0.1/24"))
        add_routes(name, [Route(ip_network("10.56.0.0/16"))])
        drain(dev)
        sock = udp_sock(socket.AF_INET)
        for i in range(5):
            sock.sendto(f"vnet-{label}-{i}".encode() * (i + 1), ("10.56.0.9", 9999))
        packets = dev.read_packets()
        segments: list[bytes] = []
        if gso:
            sock.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 1000)
            sock.sendto(bytes(range(256)) * 14, ("10.56.0.9", 9998))   # 3584 bytes: 4 segments
            segments = read_until(dev, lambda got: sum((parse_ip(p) or {}).get("dport") == 9998
                                                       for p in got) >= 4)
        report[label] = {"offloads": dev.offloads, "vnet_mode": dev.vnet_mode,
                         "packets": [p.hex() for p in packets], "segments": [p.hex() for p in segments]}
        sock.close()
        dev.close()
    # TAP: a UDP GSO send to a neighbour on the TAP comes out as frames, each segment behind the
    # Ethernet header (split on read)
    dev = TunDevice.open(name, "tap", vnet_hdr=True, gso=True)
    configure_link(name, 1400, parse_nets("10.55.0.1/24"))
    subprocess.run(["ip", "neigh", "replace", "10.55.0.9", "lladdr", "02:00:00:00:00:09", "dev", name,
                    "nud", "permanent"], check=True)
    drain(dev)
    sock = udp_sock(socket.AF_INET)
    sock.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 1000)
    sock.sendto(bytes(range(256)) * 14, ("10.55.0.9", 9997))

    def to_9997(got: list[bytes]) -> int:
        return sum(f[12:14] == b"\x08\x00" and (parse_ip(f[14:]) or {}).get("dport") == 9997 for f in got)

    frames = read_until(dev, lambda got: to_9997(got) >= 4)
    report["tap_gso"] = {"offloads": dev.offloads, "vnet_mode": dev.vnet_mode, "frames": [f.hex() for f in frames]}
    sock.close()
    dev.close()
    return report


def scenario_asyncio(name: str) -> dict[str, Any]:
    """The netlink calls from asyncio code: the coroutines, and the synchronous forms inside a
    running loop."""
    async def main() -> dict[str, Any]:
        report: dict[str, Any] = {}
        dev = TunDevice.open(name, "tun")
        await configure_link_async(name, 1300, parse_nets("10.44.0.1/24,fd44::1/64"))
        applied = await add_routes_async(name, [Route(ip_network("10.45.0.0/16"), ip_address("10.44.0.2"))])
        configure_link(name, None, parse_nets("10.44.1.1/24"), up=True)
        applied += add_routes(name, [Route(ip_network("10.46.0.0/16"))])
        report["applied"] = [str(r) for r in applied]
        report["addr"] = ip_json("addr", "show", "dev", name)
        report["routes4"] = ip_json("-4", "route", "show", "dev", name)
        report["removed"] = await remove_routes_async(name, applied)
        report["removed_link"] = await remove_link_async(name)
        report["exists_after_remove"] = link_exists(name)
        dev.close()
        return report
    return asyncio.run(main())


SCENARIOS: dict[str, Callable[[str], dict[str, Any]]] = {
    "tun": scenario_tun, "tap": scenario_tap, "errors": scenario_errors, "vnet": scenario_vnet,
    "asyncio": scenario_asyncio,
}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](sys.argv[2])))
