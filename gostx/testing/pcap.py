"""Packet captures for tests: run tcpdump in a namespace, read its pcap file into summaries.

Only what the tests assert on is decoded: Ethernet (linktype 1) -> IPv4/IPv6 -> TCP ports, flags,
sequence numbers and payload length, or just the protocol number for anything else.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gostx.testing.netns import Namespace

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
PROTO_TCP = 6
PROTO_UDP = 17
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class CaptureError(RuntimeError):
    """tcpdump could not capture, or wrote something that is not a pcap file."""


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    proto: int          # IP protocol (next header for IPv6 without extension headers)
    ttl: int            # TTL / hop limit
    sport: int = 0      # TCP only
    dport: int = 0
    flags: int = 0
    seq: int = 0
    ack: int = 0
    payload_len: int = 0


def _tcp(pkt: Packet, l4: bytes, l4_len: int) -> Packet:
    """Add the TCP fields; l4 may be cut short by the snap length, l4_len is the real length."""
    if len(l4) < 20:
        return pkt
    sport, dport, seq, ack, off_flags = struct.unpack("!HHIIH", l4[:14])
    doff = (off_flags >> 12) * 4
    return Packet(pkt.src, pkt.dst, pkt.proto, pkt.ttl, sport, dport, off_flags & 0x3F, seq, ack,
                  max(0, l4_len - doff))


def decode_frame(frame: bytes) -> Packet | None:
    """An Ethernet frame -> Packet, or None for non-IP frames and truncated headers."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    if ethertype == ETH_IPV4 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        pkt = Packet(str(ipaddress.IPv4Address(ip[12:16])), str(ipaddress.IPv4Address(ip[16:20])), ip[9], ip[8])
        return _tcp(pkt, ip[ihl:total], total - ihl) if pkt.proto == PROTO_TCP else pkt
    if ethertype == ETH_IPV6 and len(ip) >= 40:
        plen = struct.unpack("!H", ip[4:6])[0]
        pkt = Packet(str(ipaddress.IPv6Address(ip[8:24])), str(ipaddress.IPv6Address(ip[24:40])), ip[6], ip[7])
        return _tcp(pkt, ip[40:40 + plen], plen) if pkt.proto == PROTO_TCP else pkt
    return None


def read_pcap(path: str) -> list[Packet]:
    """Every IP packet of a pcap file (Ethernet link type), in order."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise CaptureError(f"{path}: not a pcap file ({len(data)} bytes)")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise CaptureError(f"{path}: not a pcap file (magic {magic.hex()})")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise CaptureError(f"{path}: link type {linktype}, expected Ethernet (1)")
    out: list[Packet] = []
    at = 24
    while at + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[at + 8:at + 12])[0]
        frame = data[at + 16:at + 16 + incl]
        at += 16 + incl
        pkt = decode_frame(frame)
        if pkt is not None:
            out.append(pkt)
    return out


@contextmanager
def tcpdump(ns: Namespace, interface: str, timeout: float = 10.0) -> Iterator[list[Packet]]:
    """Capture on interface inside ns while the block runs; the list is filled when the block ends."""
    fd, path = tempfile.mkstemp(prefix="gostx-cap-", suffix=".pcap")
    os.close(fd)
    packets: list[Packet] = []
    proc = ns.popen(["tcpdump", "-i", interface, "-n", "-U", "--immediate-mode", "-s", "256", "-w", path],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + timeout
        line = b""
        while b"listening on" not in line:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise CaptureError(f"tcpdump did not start on {interface}: {line.decode(errors='replace')}")
            line = proc.stderr.readline()
        yield packets
        time.sleep(0.2)  # let the last packets reach the file
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=timeout)
        packets.extend(read_pcap(path))
    finally:
        ns.stop(proc)
        os.unlink(path)
