#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/seed-*) in each target's input
format (see the comment at the top of tests/fuzz/fuzz_<target>.c): the AEAD datagrams of
/work/shared/vectors/ss-aead-udp.json and tests/vectors/aead/, and IPv4/IPv6 TCP/UDP packets, GSO
super-packets, Ethernet frames, SOCKS5 frames, WebSocket headers and tunnel control messages built here
like the C tests build them (tests/c/test_tun_offload.c, test_tun_gro.c, test_stack.c, ...).
Deterministic: running it again writes the same files. Files named regress-* are left alone."""

from __future__ import annotations

import json
import os
import random
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "corpus"
rng = random.Random(20261207)


def csum(data: bytes, acc: int = 0) -> int:
    if len(data) % 2:
        data += b"\0"
    for i in range(0, len(data), 2):
        acc += data[i] << 8 | data[i + 1]
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


def ip4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1, total: int | None = None) -> bytes:
    s, d = bytes(map(int, src.split("."))), bytes(map(int, dst.split(".")))
    tl = 20 + len(payload) if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tl, ident, 0x4000, 64, proto, 0, s, d)
    h = h[:10] + struct.pack("!H", 0xFFFF - csum(h)) + h[12:]
    return h + payload


def ip6(src_last: int, dst_last: int, nh: int, payload: bytes, plen: int | None = None) -> bytes:
    s = bytes([0xFD] + [0] * 14 + [src_last])
    d = bytes([0xFD] + [0] * 14 + [dst_last])
    pl = len(payload) if plen is None else plen
    return struct.pack("!IHBB", 0x60000000, pl, nh, 64) + s + d + payload


def pseudo(ip: bytes, proto: int, l4len: int) -> int:
    if ip[0] >> 4 == 4:
        return csum(ip[12:20]) + proto + l4len
    return csum(ip[8:40]) + proto + l4len


def with_l4_csum(ip: bytes, l4off: int, proto: int, field: int) -> bytes:
    l4 = bytearray(ip[l4off:])
    l4[field : field + 2] = b"\0\0"
    c = 0xFFFF - csum(bytes(l4), pseudo(ip, proto, len(l4)))
    if proto == 17 and c == 0:
        c = 0xFFFF
    l4[field : field + 2] = struct.pack("!H", c)
    return ip[:l4off] + bytes(l4)


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"", opts: bytes = b"") -> bytes:
    off = (20 + len(opts)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, 65535, 0, 0) + opts + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp4(src: str, dst: str, seg: bytes, ident: int = 1) -> bytes:
    return with_l4_csum(ip4(src, dst, 6, seg, ident), 20, 6, 16)


def tcp6(seg: bytes, a: int = 2, b: int = 1) -> bytes:
    return with_l4_csum(ip6(a, b, 6, seg), 40, 6, 16)


def udp4(src: str, dst: str, dg: bytes) -> bytes:
    return with_l4_csum(ip4(src, dst, 17, dg), 20, 17, 6)


def udp6(dg: bytes) -> bytes:
    return with_l4_csum(ip6(2, 1, 17, dg), 40, 17, 6)


def icmp4_echo(src: str, dst: str) -> bytes:
    m = bytearray(struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"gostx-fuzz-ping")
    m[2:4] = struct.pack("!H", 0xFFFF - csum(bytes(m)))
    return ip4(src, dst, 1, bytes(m))


def icmp6_echo() -> bytes:
    m = struct.pack("!BBHHH", 128, 0, 0, 0x4242, 1) + b"gostx-fuzz-ping"
    return with_l4_csum(ip6(2, 1, 58, m), 40, 58, 2)


def eth(frame_payload: bytes, v6: bool = False, vlan: bool = False) -> bytes:
    et = 0x86DD if v6 else 0x0800
    h = bytes.fromhex("020000000001020000000002")
    if vlan:
        h += struct.pack("!HH", 0x8100, 7)
    return h + struct.pack("!H", et) + frame_payload


def vnet(flags: int = 0, gso_type: int = 0, hdr_len: int = 0, gso_size: int = 0, cs: int = 0, co: int = 0) -> bytes:
    return struct.pack("<BBHHHH", flags, gso_type, hdr_len, gso_size, cs, co)


def rec(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def rnd(n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def aead_vectors() -> list[dict]:
    out = []
    for f in (Path("/work/shared/vectors/ss-aead-udp.json"), ROOT / "tests/vectors/aead/ss-aead-udp.json",
              ROOT / "tests/vectors/aead/gostx-derived.json"):
        if f.exists():
            out += json.loads(f.read_text())["vectors"]
    return out


CIPHER_IDX = {"aes-128-gcm": 0, "aes-192-gcm": 1, "aes-256-gcm": 2, "chacha20-ietf-poly1305": 3,
              "chacha20-poly1305": 3, "aead_aes_128_gcm": 0, "aead_chacha20_poly1305": 3, "none": 4}


def seeds() -> dict[str, list[bytes]]:
    s: dict[str, list[bytes]] = {}
    ping = icmp4_echo("192.168.123.2", "192.168.123.1")
    # aead_open
    a = []
    for v in aead_vectors():
        c = CIPHER_IDX.get(v["method"].lower())
        if c is not None:
            a.append(bytes([c]) + bytes.fromhex(v["datagram"]))
    for c in range(5):
        for n in (0, 1, 60, 1350):
            a.append(bytes([c | 1 << 3]) + rnd(32) + b"\0" + (ping + rnd(n))[: max(n, 1)])
        a.append(bytes([c | 1 << 3]) + rnd(32) + b"\x01\x00\x10\x01" + ping)
        batch = b""
        for i, flag in enumerate((1, 1, 3, 9, 0, 1)):
            batch += rec(bytes([flag]) + bytes([i]) * 32 + b"\0\0" + ping[: 20 + 7 * i])
        a.append(bytes([c | 2 << 3]) + batch)
    s["aead_open"] = a
    # gcm_diff
    g = []
    for n in (0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1350, 1500, 4096):
        for b0 in (0, 1):
            g.append(bytes([b0]) + rnd(32 + 12 + 3) + rnd(n))
    for n0, n1 in ((0, 0), (16, 1350), (1350, 40), (700, 700), (64, 1)):
        g.append(bytes([2 | (n0 & 1)]) + rnd(64 + 12 + 3) + struct.pack("!H", n0) + rnd(n0 + n1))
    s["gcm_diff"] = g
    # hkdf_diff
    s["hkdf_diff"] = [bytes([kl - 1, sl - 1, n - 1]) + rnd(kl + n * sl)
                      for kl, sl, n in ((16, 16, 1), (24, 24, 4), (32, 32, 16), (16, 16, 16), (32, 32, 3), (5, 9, 7),
                                        (32, 32, 1), (16, 16, 5), (1, 1, 2))]
    # tun_offload / tun_gro packets
    pay = rnd(4000)
    t4 = tcp4("10.0.0.2", "10.0.0.1", tcp(40000, 80, 1000, 77, 0x18, pay))
    t6 = tcp6(tcp(40000, 80, 1000, 77, 0x18, pay))
    u4 = udp4("10.0.0.2", "10.0.0.1", udp(5000, 53, pay[:3000]))
    u6 = udp6(udp(5000, 53, pay[:3000]))
    to = []
    for mode, pkts in (
        (2, [vnet(1, 1, 40, 1400, 20, 16) + t4]),
        (2, [vnet(1, 4, 60, 1380, 40, 16) + t6]),
        (2, [vnet(1, 5, 28, 1200, 20, 6) + u4, vnet(1, 5, 48, 1200, 40, 6) + u6]),
        (2, [vnet(1, 0x81, 40, 536, 20, 16) + t4[:2000]]),
        (1, [vnet(1, 0, 0, 0, 20, 16) + t4[:1300], vnet(1, 0, 0, 0, 20, 6) + u4[:1000], vnet() + ping]),
        (0, [ping, t4[:1400]]),
        (3, [vnet(1, 1, 54, 1400, 34, 16) + eth(t4), vnet(1, 4, 74, 1380, 54, 16) + eth(t6, True)]),
        (3, [vnet(1, 1, 58, 1400, 38, 16) + eth(t4, vlan=True)]),
    ):
        to.append(bytes([mode]) + b"".join(rec(p) for p in pkts))
    s["tun_offload"] = to

    def flow(v6: bool, n: int, size: int, l2: bool = False, psh_last: bool = True) -> list[bytes]:
        out, seq = [], 5000
        for i in range(n):
            fl = 0x18 if (psh_last and i == n - 1) else 0x10
            seg = tcp(40000, 80, seq, 99, fl, rnd(size if i < n - 1 else size // 2))
            p = tcp6(seg) if v6 else tcp4("10.0.0.1", "10.0.0.2", seg, ident=i + 1)
            out.append(eth(p, v6) if l2 else p)
            seq += len(seg) - 20
        return out

    gr = [bytes([0]) + b"".join(rec(p) for p in flow(False, 8, 1400)),
          bytes([0]) + b"".join(rec(p) for p in flow(True, 5, 1380)),
          bytes([1]) + b"".join(rec(p) for p in flow(False, 4, 1400, True)),
          bytes([1]) + b"".join(rec(p) for p in flow(True, 3, 1000, True)),
          bytes([0]) + b"".join(rec(p) for p in [*flow(False, 3, 500), ping, *flow(True, 3, 500)]),
          bytes([0]) + b"".join(rec(p) for p in flow(False, 40, 100))]
    s["tun_gro"] = gr
    # faketcp
    seg = tcp(41000, 8443, 123456, 654321, 0x18, b"datagram over fake tcp")
    ft = [b"\x01" + tcp4("10.1.0.2", "10.1.0.1", seg), b"\x00" + seg,
          b"\x01" + tcp4("10.1.0.2", "10.1.0.1", tcp(41000, 8443, 1, 0, 0x02)),
          b"\x01" + tcp4("10.1.0.2", "10.1.0.1", tcp(41000, 8443, 1, 2, 0x14)),
          b"\x00" + tcp(41000, 8443, 9, 9, 0x18, b"x" * 100, b"\x01\x01\x08\x0a" + b"\0" * 8)]
    s["faketcp"] = ft

    # socks5 udp frames
    def frame(atyp: int, host: bytes, port: int, data: bytes) -> bytes:
        h = struct.pack("!HBB", len(data), 0, atyp)
        if atyp == 3:
            h += bytes([len(host)])
        return h + host + struct.pack("!H", port) + data

    f4 = frame(1, bytes([127, 0, 0, 1]), 9, b"hello v4")
    f6 = frame(4, bytes(15) + b"\x01", 9, b"hello v6")
    fd = frame(3, b"localhost", 9, b"hello name")
    fm = frame(4, bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1]), 9, b"mapped")
    s["socks_udp"] = [b"\x00" + f4 + f6 + fd, b"\x03" + f4 * 5, b"\xff" + frame(1, bytes(4), 1, rnd(2000)) + f6,
                      b"\x00" + fm + frame(3, b"x" * 255, 53, b"q"), b"\x10" + f4 + f4[:7],
                      b"\x00" + f4 + b"\x00\x00\x00\x01"]
    s["socks_relay"] = [b"\x00" + struct.pack("!H", 9) + b"datagram!" + f4 + f6,
                        b"\x01" + struct.pack("!H", 20) + rnd(20) + fd,
                        b"\x00" + struct.pack("!H", 1350) + rnd(1350) + f4 * 3 + fm,
                        b"\x00\x00\x00" + f4 + b"\x00\x00"]
    s["socks_assoc"] = [b"\0\0" + f4[2:], b"\0\0" + f6[2:], b"\0\0" + fd[2:], b"\0\0" + fm[2:],
                        b"\0\0\x01" + f4[3:], b"\0\0" + frame(3, b"x" * 255, 53, b"q")[2:]]
    # ws
    w = []
    for n, key in ((5, None), (125, b"abcd"), (126, b"wxyz"), (1000, None), (65536, b"1234")):
        if n < 126:
            h = bytes([0x82, n | (0x80 if key else 0)])
        elif n < 65536:
            h = bytes([0x82, 126 | (0x80 if key else 0)]) + struct.pack("!H", n)
        else:
            h = bytes([0x82, 127 | (0x80 if key else 0)]) + struct.pack("!Q", n)
        w.append(bytes([14]) + b"kkkk" + b"\x01" + h + (key or b"") + rnd(min(n, 300)))
    w.append(bytes([3]) + b"kkkk\x02" + b"\x89\x80abcd\x8a\x00\x88\x82wxyz\x03\xe8")
    s["ws"] = w
    # ws_reader: opts (role, in place), piece size, output size, max_frame/37, then a stream
    wrng = random.Random(18)  # its own generator: the seeds of the other targets stay as they were

    def wrnd(n: int) -> bytes:
        return bytes(wrng.getrandbits(8) for _ in range(n))

    def wsf(op: int, payload: bytes, fin: bool = True, key: bytes | None = None) -> bytes:
        n = len(payload)
        b1 = 0x80 if key else 0
        if n < 126:
            h = bytes([(0x80 if fin else 0) | op, b1 | n])
        elif n < 65536:
            h = bytes([(0x80 if fin else 0) | op, b1 | 126]) + struct.pack("!H", n)
        else:
            h = bytes([(0x80 if fin else 0) | op, b1 | 127]) + struct.pack("!Q", n)
        if key:
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        return h + (key or b"") + payload

    def stream(key: bytes | None) -> bytes:
        return (wsf(1, b"Hel", False, key) + wsf(9, b"ping", True, key) + wsf(0, b"lo", True, key)
                + wsf(2, wrnd(300), True, key) + wsf(2, b"", True, key) + wsf(10, b"x", True, key)
                + wsf(2, wrnd(70), True, key) + wsf(8, b"\x03\xe8bye", True, key))
    wr = [bytes([0, 0, 0, 0]) + stream(None), bytes([1, 7, 5, 0]) + stream(b"wxyz"),
          bytes([3, 1, 1, 0]) + stream(b"\x00\xff\x10\x01"), bytes([0, 13, 0, 2]) + wsf(2, wrnd(100)) + wsf(2, b"z"),
          bytes([0, 0, 0, 0]) + wsf(2, wrnd(1000)) + wsf(8, b"\x03\xe8\xff"),
          bytes([1, 0, 64, 0]) + wsf(2, wrnd(65536), True, b"kkkk"),
          bytes([0, 3, 0, 0]) + bytes([0x82, 126, 0, 5]) + b"abcde" + bytes([0xC2, 0]),
          bytes([0, 0, 0, 0]) + wsf(2, b"a") + bytes([0x80, 1]) + b"b"]
    s["ws_reader"] = wr
    # tunnel
    ip_a = bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 2])
    ip_b = bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 3])
    own = bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1])
    p_ab = icmp4_echo("10.0.0.2", "10.0.0.3")
    p_ba = icmp4_echo("10.0.0.3", "10.0.0.2")
    tn = []
    for b0 in (0, 1 << 3, 4 << 3, 2, 4, 1):
        body = rec(bytes([1, 3]) + ip_a) + rec(bytes([2, 3]) + ip_b) + rec(bytes([1, 1]) + p_ab) + \
            rec(bytes([2, 1]) + p_ba) + rec(bytes([3, 3]) + own) + rec(bytes([9, 1]) + icmp6_echo()) + \
            rec(bytes([1, 0]) + b"GOST" + bytes(16)) + rec(bytes([2, 5]) + bytes([10, 0, 0, 3, 192, 168, 50, 9]))
        if b0 & 1:
            body = rec(bytes([1, 1]) + eth(p_ab)) + rec(bytes([2, 1]) + eth(p_ba)[6:] + eth(p_ba)[:6])
        tn.append(bytes([b0]) + body)
    s["tunnel"] = tn
    # stack
    syn4 = tcp4("10.9.0.2", "93.184.216.34", tcp(40001, 443, 1000, 0, 0x02, b"",
                                                 b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + bytes(8) + b"\x01\x03\x03\x07"))
    ack4 = tcp4("10.9.0.2", "93.184.216.34", tcp(40001, 443, 1001, 1, 0x18, b"\x16\x03\x01\x00\x05hello"))
    fin4 = tcp4("10.9.0.2", "93.184.216.34", tcp(40001, 443, 1011, 1, 0x11))
    syn6 = tcp6(tcp(40002, 80, 2000, 0, 0x02, b"", b"\x02\x04\x05\x8c"), 2, 0x22)
    query = b"\x12\x34\x01\x00\x00\x01" + bytes(6) + b"\x07example\x03com\x00\x00\x01\x00\x01"
    d4 = udp4("10.9.0.2", "8.8.8.8", udp(5353, 53, query))
    d6 = udp6(udp(5353, 53, b"q6"))
    st = []
    for b0 in (0, 1, 2):
        pre = vnet() if b0 & 1 else b""
        pk = [(2, syn4), (0, ack4), (4, fin4), (1, syn6), (3, d4), (3, d4), (2, d6),
              (0, icmp4_echo("10.9.0.2", "1.1.1.1")), (0, icmp6_echo())]
        st.append(bytes([b0]) + b"".join(rec(bytes([f]) + pre + p) for f, p in pk))
    frag = ip4("10.9.0.2", "8.8.8.8", 17, udp(1, 2, rnd(64)))
    frag = frag[:6] + b"\x20\x00" + frag[8:]
    st.append(b"\x00" + rec(b"\x00" + frag))
    tso = tcp4("10.9.0.2", "1.2.3.4", tcp(1, 2, 3, 4, 0x18, rnd(3000)))
    st.append(b"\x01" + rec(b"\x02" + vnet(1, 1, 40, 1400, 20, 16) + tso))
    s["stack"] = st
    rf = lambda d: struct.pack("!H", len(d)) + d  # noqa: E731
    s["dgram_frames"] = [b"\x00" + f4 + f6 + fd, b"\x01" + rf(b"hello") + rf(b"") + rf(bytes(range(256)) * 5),
                         b"\x00" + f4 + b"\x00\x00\x00\x01", b"\x01" + rf(bytes(3000)) + b"\x00",
                         b"\x00" + frame(1, bytes(4), 1, bytes(2000)) * 3]
    return s


def main() -> int:
    total = 0
    for target, items in seeds().items():
        d = OUT / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for i, b in enumerate(items):
            (d / f"seed-{i:03d}").write_bytes(b)
            total += len(b)
        print(f"{target}: {len(items)} seeds")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
