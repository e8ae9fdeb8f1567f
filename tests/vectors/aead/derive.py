"""Derive tests/vectors/aead/gostx-derived.json: more Shadowsocks-AEAD UDP vectors for gostx.

Written from the format description (spec tuntap.md 2.2) with hashlib and the `cryptography`
package only, independent of gostx's C code. Deterministic: salts are SHA-256 of a label.
Run from the repository root:  python3 tests/vectors/aead/derive.py > tests/vectors/aead/gostx-derived.json
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_LEN = {"aes-128-gcm": 16, "aes-192-gcm": 24, "aes-256-gcm": 32, "chacha20-ietf-poly1305": 32}
ALIAS = {"aead_chacha20_poly1305": "chacha20-ietf-poly1305", "aead_aes_128_gcm": "aes-128-gcm"}


def evp_bytes_to_key(password: bytes, key_len: int) -> bytes:
    out, block = b"", b""
    while len(out) < key_len:
        block = hashlib.md5(block + password).digest()
        out += block
    return out[:key_len]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x1234, 0, 64, 17, 0, src, dst)
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return head + udp


def ipv6_echo_request(src: bytes, dst: bytes, payload: bytes) -> bytes:
    icmp = struct.pack("!BBHHH", 128, 0, 0, 0x4242, 1) + payload
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", checksum(pseudo + icmp)) + icmp[4:]
    return struct.pack("!IHBB16s16s", 6 << 28, len(icmp), 58, 64, src, dst) + icmp


def seal(method: str, key: bytes, salt: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    subkey = HKDF(hashes.SHA1(), len(key), salt, b"ss-subkey").derive(key)
    aead = ChaCha20Poly1305(subkey) if method.startswith("chacha") else AESGCM(subkey)
    return subkey, salt + aead.encrypt(bytes(12), plaintext, None)


def vector(
    label: str,
    method: str,
    note: str,
    plaintext: bytes,
    password: str | None = None,
    raw_key: bytes | None = None,
) -> dict[str, str | None]:
    canonical = ALIAS.get(method.lower(), method.lower())
    key_len = KEY_LEN[canonical]
    key = raw_key if raw_key is not None else evp_bytes_to_key(password.encode(), key_len)
    salt = hashlib.sha256(b"gostx-vector-salt-" + label.encode()).digest()[: max(key_len, 16)]
    subkey, datagram = seal(canonical, key, salt, plaintext)
    return {
        "label": label,
        "note": note,
        "method": method,
        "password": password,
        "raw_key": raw_key.decode() if raw_key is not None else None,
        "key": key.hex(),
        "salt": salt.hex(),
        "subkey": subkey.hex(),
        "plaintext": plaintext.hex(),
        "datagram": datagram.hex(),
    }


def main() -> None:
    v6 = ipv6_echo_request(
        bytes.fromhex("fd000123" + "00" * 11 + "02"),
        bytes.fromhex("fd000123" + "00" * 11 + "01"),
        b"gostx-vector-payload",
    )
    ip = ipv4_udp(bytes([192, 168, 123, 2]), bytes([192, 168, 123, 1]), 5000, 5001, b"tap frame payload")
    frame = bytes.fromhex("0200000000010200000000020800") + ip
    big = ipv4_udp(
        bytes([10, 0, 0, 2]),
        bytes([10, 0, 0, 1]),
        40000,
        5201,
        bytes((i * 7 + 3) & 0xFF for i in range(1400 - 28)),
    )
    vectors = [
        vector(
            "aes-192-ipv6", "aes-192-gcm", "IPv6 ICMPv6 echo request (a TUN packet)", v6, password="gostx"
        ),
        vector(
            "chacha-tap",
            "AEAD_CHACHA20_POLY1305",
            "Ethernet frame with IPv4/UDP (a TAP frame), alias name",
            frame,
            password="s3cret",
        ),
        vector(
            "aes-256-rawkey-1400",
            "aes-256-gcm",
            "1400-byte IPv4/UDP packet; raw 32-byte key (gost `key`)",
            big,
            raw_key=b"0123456789abcdef0123456789abcdef",
        ),
        vector(
            "aes-128-utf8-empty",
            "AEAD_AES_128_GCM",
            "UTF-8 password, empty plaintext (salt + tag only)",
            b"",
            password="pässwörd",
        ),
        vector(
            "aes-128-one-byte",
            "AES-128-GCM",
            "one byte of plaintext, upper-case name",
            b"\x45",
            password="s3cret",
        ),
    ]
    json.dump(
        {"format": "see README.md; derived by derive.py with hashlib + cryptography", "vectors": vectors},
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
