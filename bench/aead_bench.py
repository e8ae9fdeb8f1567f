"""Shadowsocks-AEAD seal/open throughput: gostx's C batch path against the `cryptography` package.

    python3 -m bench.aead_bench [--size 1400] [--packets 20000] [--repeat 5]

The C side goes through Aead.seal_many/open_many (copy into a batch, seal or open it in C with the
GIL released, copy out). The `cryptography` side is the usual Python way of writing the same
format: one HKDF and one AESGCM/ChaCha20Poly1305 object per packet, as go-shadowsocks2 does in Go.
Each figure is the best of --repeat runs; Gbit/s counts plaintext bytes.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gostx._engine import Aead, derive_key

CIPHERS = ("aes-128-gcm", "aes-192-gcm", "aes-256-gcm", "chacha20-ietf-poly1305")
NONCE = bytes(12)


@dataclass
class Rate:
    seal_pps: float
    open_pps: float

    @property
    def both_pps(self) -> float:
        """Packets per second through seal and then open (one core doing both)."""
        return 1.0 / (1.0 / self.seal_pps + 1.0 / self.open_pps)


def best_time(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def bench_c(method: str, packets: list[bytes], repeat: int) -> Rate:
    sealer = Aead(method, b"bench")
    sealed = sealer.seal_many(packets)
    t_seal = best_time(lambda: sealer.seal_many(packets), repeat)
    t_open = float("inf")
    for _ in range(repeat):
        opener = Aead(method, b"bench")  # a fresh replay filter: the same datagrams again
        start = time.perf_counter()
        opened = opener.open_many(sealed)
        t_open = min(t_open, time.perf_counter() - start)
        if opened[0] != packets[0] or opener.drops != {"short_pkt": 0, "auth": 0, "replay": 0}:
            raise SystemExit(f"error: {method}: the C path did not open its own datagrams")
    return Rate(len(packets) / t_seal, len(packets) / t_open)


def bench_cryptography(method: str, packets: list[bytes], repeat: int) -> Rate:
    key = derive_key(method, b"bench")
    salt_len = max(len(key), 16)
    aead_class = ChaCha20Poly1305 if method.startswith("chacha") else AESGCM

    def seal(plaintext: bytes) -> bytes:
        salt = os.urandom(salt_len)
        subkey = HKDF(hashes.SHA1(), len(key), salt, b"ss-subkey").derive(key)
        return salt + aead_class(subkey).encrypt(NONCE, plaintext, None)

    def open_(datagram: bytes) -> bytes:
        salt = datagram[:salt_len]
        subkey = HKDF(hashes.SHA1(), len(key), salt, b"ss-subkey").derive(key)
        return aead_class(subkey).decrypt(NONCE, datagram[salt_len:], None)

    sealed = [seal(p) for p in packets]
    if open_(sealed[0]) != packets[0]:
        raise SystemExit(f"error: {method}: the cryptography path did not round-trip")
    t_seal = best_time(lambda: [seal(p) for p in packets], repeat)
    t_open = best_time(lambda: [open_(d) for d in sealed], repeat)
    return Rate(len(packets) / t_seal, len(packets) / t_open)


def gbit(pps: float, size: int) -> float:
    return pps * size * 8 / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.aead_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1400, help="plaintext bytes per packet (default 1400)")
    parser.add_argument("--packets", type=int, default=20000, help="packets per C run (default 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure, best kept (default 5)")
    parser.add_argument("--cipher", action="append", choices=CIPHERS, help="only this cipher (repeatable)")
    args = parser.parse_args(argv)
    if args.size < 0 or args.packets < 1 or args.repeat < 1:
        parser.error("--size must be >= 0, --packets and --repeat >= 1")

    packets = [os.urandom(args.size) for _ in range(args.packets)]
    py_packets = packets[: max(1, args.packets // 5)]  # the Python path is slower: fewer packets
    print(f"Shadowsocks-AEAD UDP, {args.size}-byte packets, best of {args.repeat}; Gbit/s of plaintext")
    header = (
        f"{'cipher':<24} {'path':<13} {'seal pkt/s':>11} {'open pkt/s':>11} {'seal Gb/s':>9} {'open Gb/s':>9}"
    )
    print(header + f" {'seal+open pkt/s':>15}")
    for method in args.cipher or CIPHERS:
        c = bench_c(method, packets, args.repeat)
        py = bench_cryptography(method, py_packets, args.repeat)
        for name, rate in (("C batch", c), ("cryptography", py)):
            print(
                f"{method:<24} {name:<13} {rate.seal_pps:>11,.0f} {rate.open_pps:>11,.0f} "
                f"{gbit(rate.seal_pps, args.size):>9.2f} {gbit(rate.open_pps, args.size):>9.2f} "
                f"{rate.both_pps:>15,.0f}"
            )
        seal_x, open_x, both_x = c.seal_pps / py.seal_pps, c.open_pps / py.open_pps, c.both_pps / py.both_pps
        print(f"{'':<24} {'C/crypto':<13} {seal_x:>10.1f}x {open_x:>10.1f}x {'':>9} {'':>9} {both_x:>14.1f}x")


if __name__ == "__main__":
    main()
