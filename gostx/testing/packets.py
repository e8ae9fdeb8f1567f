"""Helpers for tests that build raw packets."""

from __future__ import annotations

import struct


def inet_checksum(data: bytes, acc: int = 0) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum, `acc` added first."""
    if len(data) % 2:
        data += b"\0"
    acc += sum(struct.unpack(f"!{len(data) // 2}H", data))
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return ~acc & 0xFFFF
