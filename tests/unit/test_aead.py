"""The C Shadowsocks-AEAD framing (gostx._engine.Aead) against an independent implementation of the
format written here with hashlib and the `cryptography` package, and against the known-answer
vectors in tests/vectors/aead/ (see its README for their sources)."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gostx._engine import Aead, derive_key

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "aead"
KEY_LEN = {"aes-128-gcm": 16, "aes-192-gcm": 24, "aes-256-gcm": 32, "chacha20-ietf-poly1305": 32}
CIPHERS = sorted(KEY_LEN)
SIZES = [
    0,
    1,
    2,
    15,
    16,
    17,
    20,
    31,
    32,
    33,
    63,
    64,
    65,
    127,
    128,
    255,
    256,
    576,
    1024,
    1279,
    1280,
    1400,
    1500,
]
SIZES += [1952, 2000, 4096, 9000, 65507 - 48]


# ---- the reference implementation -------------------------------------------------------------


def ref_key(password: bytes, key_len: int) -> bytes:
    """EVP_BytesToKey with MD5, one iteration, no salt."""
    out, block = b"", b""
    while len(out) < key_len:
        block = hashlib.md5(block + password).digest()
        out += block
    return out[:key_len]


def ref_aead(method: str, key: bytes, salt: bytes) -> AESGCM | ChaCha20Poly1305:
    subkey = HKDF(hashes.SHA1(), len(key), salt, b"ss-subkey").derive(key)
    return ChaCha20Poly1305(subkey) if method.startswith("chacha") else AESGCM(subkey)


def ref_seal(method: str, key: bytes, plaintext: bytes, salt: bytes | None = None) -> bytes:
    salt = salt if salt is not None else os.urandom(max(len(key), 16))
    return salt + ref_aead(method, key, salt).encrypt(bytes(12), plaintext, None)


def ref_open(method: str, key: bytes, datagram: bytes) -> bytes:
    n = max(len(key), 16)
    return ref_aead(method, key, datagram[:n]).decrypt(bytes(12), datagram[n:], None)


def load(name: str) -> list[dict[str, str]]:
    return json.loads((VECTORS / name).read_text())["vectors"]


ALL_VECTORS = [("shared", v) for v in load("ss-aead-udp.json")] + [
    ("derived", v) for v in load("gostx-derived.json")
]


# ---- known answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "v"), ALL_VECTORS, ids=lambda x: x if isinstance(x, str) else x["method"])
def test_vector(source: str, v: dict[str, str]) -> None:
    plaintext, datagram, salt = (bytes.fromhex(v[k]) for k in ("plaintext", "datagram", "salt"))
    method = v["method"]
    if v.get("raw_key"):
        sender = Aead(method, key=v["raw_key"].encode())
        receiver = Aead(method, key=bytes.fromhex(v["key"]))
    else:
        assert derive_key(method, v["password"].encode()).hex() == v["key"]
        sender, receiver = Aead(method, v["password"].encode()), Aead(method, v["password"])
    assert len(salt) == sender.salt_len
    assert sender.seal(plaintext, salt) == datagram
    assert receiver.open(datagram) == plaintext
    assert receiver.open_many([datagram]) == [None]  # the same salt again: a replay
    # the reference implementation agrees with the file (a stale derived file fails here)
    key = bytes.fromhex(v["key"])
    assert ref_seal(sender.method, key, plaintext, salt) == datagram
    assert HKDF(hashes.SHA1(), len(key), salt, b"ss-subkey").derive(key).hex() == v["subkey"]


# ---- cross-checks in both directions ------------------------------------------------------------


@pytest.mark.parametrize("method", CIPHERS)
def test_key_derivation_matches_reference(method: str) -> None:
    for password in (b"", b"x", b"s3cret", "pässwörd".encode(), bytes(range(256))):
        assert derive_key(method, password) == ref_key(password, KEY_LEN[method])


@pytest.mark.parametrize("method", CIPHERS)
def test_c_seal_reference_open(method: str) -> None:
    key = ref_key(b"cross-check", KEY_LEN[method])
    sealer = Aead(method, key=key)
    rng = random.Random(method)
    for size in SIZES:
        plaintext = rng.randbytes(size)
        datagram = sealer.seal(plaintext)
        assert len(datagram) == size + sealer.overhead
        assert ref_open(method, key, datagram) == plaintext
    # and the reference refuses what it should: another key, a flipped tag bit
    datagram = sealer.seal(b"tamper")
    with pytest.raises(InvalidTag):
        ref_open(method, ref_key(b"other", KEY_LEN[method]), datagram)
    with pytest.raises(InvalidTag):
        ref_open(method, key, datagram[:-1] + bytes([datagram[-1] ^ 1]))


@pytest.mark.parametrize("method", CIPHERS)
def test_reference_seal_c_open(method: str) -> None:
    key = ref_key(b"cross-check", KEY_LEN[method])
    opener = Aead(method, b"cross-check")
    rng = random.Random(method)
    for size in SIZES:
        plaintext = rng.randbytes(size)
        assert opener.open(ref_seal(method, key, plaintext)) == plaintext
    assert opener.drops == {"short_pkt": 0, "auth": 0, "replay": 0}


@pytest.mark.parametrize("method", CIPHERS)
def test_batch_path_both_directions(method: str) -> None:
    key = ref_key(b"batch", KEY_LEN[method])
    aead = Aead(method, key=key)
    rng = random.Random(1)
    # more than one batch (128), every size from 1 to 2000 across them
    packets = [rng.randbytes(size) for size in range(1, 2001, 7)] + [rng.randbytes(1400) for _ in range(200)]
    sealed = aead.seal_many(packets)
    assert [ref_open(method, key, d) for d in sealed] == packets
    assert len({d[: aead.salt_len] for d in sealed}) == len(packets)  # a fresh salt each
    opener = Aead(method, key=key)
    assert opener.open_many([ref_seal(method, key, p) for p in packets]) == packets


def test_seal_many_empty_packet_is_sealed() -> None:
    aead = Aead("aes-128-gcm", b"pw")
    out = aead.seal_many([b"", b"abc"])
    assert len(out[0]) == aead.overhead and ref_open("aes-128-gcm", ref_key(b"pw", 16), out[0]) == b""
    assert ref_open("aes-128-gcm", ref_key(b"pw", 16), out[1]) == b"abc"
