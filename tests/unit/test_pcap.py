"""The pcap reader the fake-TCP capture tests rely on, on frames built here (both byte orders, a snap
length shorter than the packets, IPv6, non-IP frames)."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from gostx.testing.pcap import TCP_ACK, TCP_PSH, CaptureError, decode_frame, read_pcap

MACS = bytes(6) + bytes(range(1, 7))


def ipv4_tcp(src: str, dst: str, payload: int, flags: int, ttl: int = 64, options: int = 0) -> bytes:
    ihl = 5 + options
    tcp = struct.pack("!HHIIHHHH", 40000, 8421, 1000, 2000, (5 << 12) | flags, 512, 0, 0) + bytes(payload)
    total = ihl * 4 + len(tcp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0, 0x4000, ttl, 6, 0,
                     ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return MACS + b"\x08\x00" + ip + bytes(options * 4) + tcp


def ipv6_udp(src: str, dst: str) -> bytes:
    udp = struct.pack("!HHHH", 1, 2, 8 + 4, 0) + b"abcd"
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(udp), 17, 9,
                     ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed)
    return MACS + b"\x86\xdd" + ip + udp


def pcap(frames: list[bytes], snaplen: int = 65535, endian: str = "<") -> bytes:
    out = struct.pack(endian + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)
    for frame in frames:
        kept = frame[:snaplen]
        out += struct.pack(endian + "IIII", 1, 2, len(kept), len(frame)) + kept
    return out


@pytest.mark.parametrize("endian", ["<", ">"])
def test_reads_tcp_udp_and_skips_other_frames(tmp_path: Path, endian: str) -> None:
    arp = MACS + b"\x08\x06" + bytes(28)
    frames = [ipv4_tcp("10.0.0.1", "10.0.0.2", 1300, TCP_PSH | TCP_ACK, options=2), arp,
              ipv6_udp("fd00::1", "fd00::2")]
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap(frames, snaplen=96, endian=endian))
    tcp, udp = read_pcap(str(path))
    assert (tcp.src, tcp.dst, tcp.proto, tcp.ttl) == ("10.0.0.1", "10.0.0.2", 6, 64)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (40000, 8421, 1000, 2000)
    assert tcp.flags == TCP_PSH | TCP_ACK
    assert tcp.payload_len == 1300, "payload length comes from the IP header, not the snapped bytes"
    assert (udp.src, udp.dst, udp.proto, udp.ttl) == ("fd00::1", "fd00::2", 17, 9)


def test_rejects_what_is_not_an_ethernet_pcap(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(CaptureError, match="magic"):
        read_pcap(str(bad))
    short = tmp_path / "short.pcap"
    short.write_bytes(b"\xd4\xc3")
    with pytest.raises(CaptureError, match="not a pcap"):
        read_pcap(str(short))
    raw_ip = tmp_path / "raw.pcap"
    raw_ip.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
    with pytest.raises(CaptureError, match="link type 101"):
        read_pcap(str(raw_ip))


def test_truncated_headers_are_skipped() -> None:
    frame = ipv4_tcp("10.0.0.1", "10.0.0.2", 10, TCP_ACK)
    assert decode_frame(frame[:20]) is None
    assert decode_frame(frame[:5]) is None
    partial = decode_frame(frame[:14 + 20 + 8])       # IP header and only part of the TCP header
    assert partial is not None and partial.proto == 6 and partial.sport == 0
