"""WebSocket framing cost per message: gostx's C frame builder (header + mask applied while copying: one
pass, one copy) against the same frame built in Python (struct header + the whole-int XOR trick, the
fastest pure-Python mask), and against a plain copy of the payload (the floor).

    python3 -m bench.ws_bench [--size 65536] [--messages 20000] [--repeat 5]

Each figure is the best of --repeat runs, in GB/s of payload.
"""

from __future__ import annotations

import argparse
import os
import struct
import time
from collections.abc import Callable

from gostx._engine import ws_frame, ws_mask


def python_frame(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
                            if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n))
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "little")
    return head + key + (int.from_bytes(payload, "little") ^ mask).to_bytes(n, "little")


def best_rate(fn: Callable[[], object], count: int, size: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        best = min(best, time.perf_counter() - start)
    return count * size / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    payload, key = os.urandom(args.size), os.urandom(4)
    assert ws_frame(payload, 2, True, key) == python_frame(payload, key)
    assert ws_mask(ws_frame(payload, 2, True, key)[-args.size:], key) == payload
    rows = [
        ("copy only (bytes(memoryview))", lambda: bytes(memoryview(payload))),
        ("C: ws_frame, masked (client)", lambda: ws_frame(payload, 2, True, key)),
        ("C: ws_frame, unmasked (server)", lambda: ws_frame(payload, 2, True, None)),
        ("C: ws_mask (server reads a client frame)", lambda: ws_mask(payload, key)),
        ("Python: struct + int XOR mask", lambda: python_frame(payload, key)),
    ]
    print(f"WebSocket framing, {args.size}-byte messages, best of {args.repeat} x {args.messages}:")
    for title, fn in rows:
        print(f"  {title:44s} {best_rate(fn, args.messages, args.size, args.repeat):6.2f} GB/s")


if __name__ == "__main__":
    main()
