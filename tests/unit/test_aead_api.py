"""gostx._engine.Aead and gostx.cipher: names, keys, drops, replays, the plaintext cipher, threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from gostx import cipher
from gostx._engine import Aead, canonical_cipher, derive_key, supported_ciphers

ALIASES = {
    "aes-128-gcm": ["aes-128-gcm", "AES-128-GCM", "AEAD_AES_128_GCM", "aead_aes_128_gcm"],
    "aes-192-gcm": ["aes-192-gcm", "AES-192-GCM", "AEAD_AES_192_GCM"],
    "aes-256-gcm": ["aes-256-gcm", "Aes-256-Gcm", "AEAD_AES_256_GCM"],
    "chacha20-ietf-poly1305": ["chacha20-ietf-poly1305", "CHACHA20-IETF-POLY1305", "AEAD_CHACHA20_POLY1305"],
}
SIZES = {
    "aes-128-gcm": (16, 16),
    "aes-192-gcm": (24, 24),
    "aes-256-gcm": (32, 32),
    "chacha20-ietf-poly1305": (32, 32),
}


@pytest.mark.parametrize("canonical", sorted(ALIASES))
def test_aliases_are_case_insensitive_and_interoperate(canonical: str) -> None:
    names = ALIASES[canonical]
    for name in names:
        assert canonical_cipher(name) == canonical
        assert cipher.normalize_method(name) == canonical
    for a_name in names:
        for b_name in names:
            a, b = Aead(a_name, b"pw"), Aead(b_name, b"pw")
            assert a.method == b.method == canonical
            assert b.open(a.seal(b"packet")) == b"packet"


@pytest.mark.parametrize("canonical", sorted(SIZES))
def test_sizes(canonical: str) -> None:
    aead = Aead(canonical, b"pw")
    key_len, salt_len = SIZES[canonical]
    assert (aead.key_len, aead.salt_len, aead.overhead) == (key_len, salt_len, salt_len + 16)
    assert repr(aead) == f"Aead({canonical!r})"


@pytest.mark.parametrize(
    "name", ["aes-256-cfb", "chacha20", "rc4-md5", "xchacha20-ietf-poly1305", "", "aes_128_gcm"]
)
def test_unknown_cipher_is_one_clear_line(name: str) -> None:
    with pytest.raises(ValueError) as err:
        Aead(name, b"pw")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"unknown cipher {name!r}: supported are ")
    for supported in supported_ciphers():
        assert supported in message
    with pytest.raises(ValueError, match="unknown cipher"):
        cipher.normalize_method(name)
    assert not cipher.is_supported(name)


def test_supported_list() -> None:
    names = supported_ciphers()
    assert set(names) == {
        "aes-128-gcm",
        "aes-192-gcm",
        "aes-256-gcm",
        "chacha20-ietf-poly1305",
        "AEAD_AES_128_GCM",
        "AEAD_AES_192_GCM",
        "AEAD_AES_256_GCM",
        "AEAD_CHACHA20_POLY1305",
        "dummy",
        "none",
    }
    assert cipher.SUPPORTED_METHODS == tuple(names)
    assert all(cipher.is_supported(n) and cipher.is_supported(n.upper()) for n in names)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="needs a password or a key"):
        Aead("aes-128-gcm")
    with pytest.raises(ValueError, match="needs a key of 32 bytes, got 16"):
        Aead("aes-256-gcm", key=b"k" * 16)
    with pytest.raises(TypeError, match="cipher name must be str"):
        Aead(b"aes-128-gcm", b"pw")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="password must be bytes or str"):
        Aead("aes-128-gcm", 1234)  # type: ignore[arg-type]
    aead = Aead("aes-128-gcm", b"pw")
    with pytest.raises(ValueError, match="takes a salt of 16 bytes, got 3"):
        aead.seal(b"x", salt=b"abc")


def test_empty_lists_and_bad_items() -> None:
    aead = Aead("aes-128-gcm", b"pw")
    assert aead.seal_many([]) == [] and aead.open_many([]) == []
    with pytest.raises(TypeError, match="packet must be bytes or str, not int"):
        aead.seal_many([b"ok", 5])
    with pytest.raises(ValueError, match="replay_capacity 1000000000 is too large"):
        Aead("aes-128-gcm", b"pw", replay_capacity=10**9)


def test_key_wins_over_password_and_matches_derivation() -> None:
    by_password = Aead("chacha20-ietf-poly1305", "pw")
    by_key = Aead("chacha20-ietf-poly1305", b"ignored", key=derive_key("chacha20-ietf-poly1305", b"pw"))
    assert by_key.open(by_password.seal(b"same key")) == b"same key"


def test_drop_counters_single_packets() -> None:
    tx, rx = Aead("aes-256-gcm", b"pw"), Aead("aes-256-gcm", b"pw")
    good = tx.seal(b"data")
    with pytest.raises(ValueError, match=r"short datagram: 47 bytes, aes-256-gcm needs at least 48"):
        rx.open(good[:47])
    forged = bytearray(good)
    forged[-1] ^= 1
    with pytest.raises(ValueError, match="failed authentication"):
        rx.open(bytes(forged))
    assert rx.open(good) == b"data"
    with pytest.raises(ValueError, match="replayed datagram"):
        rx.open(good)
    assert rx.drops == {"short_pkt": 1, "auth": 1, "replay": 1}


def test_drop_counters_batch() -> None:
    tx, rx = Aead("aes-128-gcm", b"pw"), Aead("aes-128-gcm", b"pw")
    other = Aead("aes-128-gcm", b"other password")
    good = tx.seal_many([b"a" * 10, b"b" * 20, b"c" * 30])
    forged = bytearray(good[1])
    forged[20] ^= 0x80
    batch = [good[0], good[0][:31], bytes(forged), other.seal(b"wrong key"), good[2], good[2], b"", good[1]]
    assert rx.open_many(batch) == [b"a" * 10, None, None, None, b"c" * 30, None, None, b"b" * 20]
    assert rx.drops == {"short_pkt": 1, "auth": 2, "replay": 1}
    assert rx.open_many([good[0]]) == [None]
    assert rx.drops["replay"] == 2


def test_wrong_key() -> None:
    datagram = Aead("aes-192-gcm", b"right").seal(b"secret packet")
    wrong = Aead("aes-192-gcm", b"wrong")
    with pytest.raises(ValueError, match="forged, corrupt or wrong key"):
        wrong.open(datagram)
    assert wrong.drops["auth"] == 1
    assert Aead("aes-192-gcm", b"right").open(datagram) == b"secret packet"


def test_replay_and_reflection() -> None:
    a, b = Aead("chacha20-ietf-poly1305", b"pw"), Aead("chacha20-ietf-poly1305", b"pw")
    datagram = a.seal(b"once")
    with pytest.raises(ValueError, match="replayed"):
        a.open(datagram)  # our own salt sent back to us
    assert b.open(datagram) == b"once"
    with pytest.raises(ValueError, match="replayed"):
        b.open(datagram)
    unfiltered = Aead("chacha20-ietf-poly1305", b"pw", replay_capacity=0)
    assert unfiltered.open(datagram) == unfiltered.open(datagram) == b"once"


def test_forged_packets_do_not_poison_the_filter() -> None:
    tx, rx = Aead("aes-128-gcm", b"pw"), Aead("aes-128-gcm", b"pw")
    datagram = tx.seal(b"real")
    forged = datagram[:16] + bytes(len(datagram) - 16)  # same salt, garbage body
    assert rx.open_many([forged]) == [None]
    assert rx.open(datagram) == b"real"


@pytest.mark.parametrize("name", ["dummy", "DUMMY", "none", "None"])
def test_plaintext_cipher(name: str) -> None:
    aead = Aead(name)
    assert (aead.method, aead.key_len, aead.salt_len, aead.overhead) == ("none", 0, 0, 0)
    assert aead.seal(b"clear") == b"clear" and aead.open(b"clear") == b"clear"
    assert aead.open(b"clear") == b"clear"  # no replay filter on plaintext
    assert aead.seal_many([b"x", b"yy"]) == [b"x", b"yy"]
    assert aead.open_many([b"x", b"yy"]) == [b"x", b"yy"]
    assert cipher.is_plaintext(name)
    assert aead.drops == {"short_pkt": 0, "auth": 0, "replay": 0}


def test_replay_capacity_from_environment() -> None:
    assert cipher.replay_capacity({}) == 1_000_000
    assert cipher.replay_capacity({"SHADOWSOCKS_SF_CAPACITY": "5000"}) == 5000
    assert cipher.replay_capacity({"SHADOWSOCKS_SF_CAPACITY": "-1"}) == -1
    with pytest.raises(ValueError, match="SHADOWSOCKS_SF_CAPACITY must be an integer, got 'lots'"):
        cipher.replay_capacity({"SHADOWSOCKS_SF_CAPACITY": "lots"})


def test_make_aead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWSOCKS_SF_CAPACITY", "0")
    a = cipher.make_aead("AEAD_AES_256_GCM", "pw")
    datagram = a.seal(b"p")
    assert cipher.make_aead("aes-256-gcm", "pw").open(datagram) == b"p"
    assert a.open(datagram) == b"p"  # filter off: our own salt is not remembered
    raw = cipher.make_aead("aes-128-gcm", key="0123456789abcdef")
    assert raw.key_len == 16


def test_seal_and_open_in_parallel_threads() -> None:
    """One thread seals while another opens on the same Aead (the GIL is released in C)."""
    shared = Aead("aes-256-gcm", b"threads")
    peer_in, peer_out = Aead("aes-256-gcm", b"threads"), Aead("aes-256-gcm", b"threads")
    packets = [bytes([i % 256]) * (100 + i) for i in range(300)]
    inbound = peer_out.seal_many(packets)
    errors: list[str] = []

    def seal_loop() -> None:
        for _ in range(20):
            if peer_in.open_many(shared.seal_many(packets)) != packets:
                errors.append("seal")

    def open_loop() -> None:
        for _ in range(20):
            fresh = peer_out.seal_many(packets)
            if shared.open_many(fresh) != packets:
                errors.append("open")
        if shared.open_many(inbound) != packets:
            errors.append("inbound")

    threads = [threading.Thread(target=seal_loop), threading.Thread(target=open_loop)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert shared.drops == {"short_pkt": 0, "auth": 0, "replay": 0}


def test_crypto_impls_names_the_code_in_use_and_gx_crypto_openssl_forces_openssl() -> None:
    """Which AES-GCM / HKDF code runs depends on the CPU; GX_CRYPTO=openssl (any case) must switch both
    AES-GCM and HKDF to OpenSSL (the choice is made once per process, so each setting gets a process of
    its own)."""
    code = "from gostx._engine import crypto_impls; import json; print(json.dumps(crypto_impls()))"
    env = {k: v for k, v in os.environ.items() if k not in ("GX_CRYPTO", "GX_GCM")}
    auto = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                     check=True).stdout)
    for value in ("openssl", "OpenSSL"):
        forced = json.loads(subprocess.run([sys.executable, "-c", code], env={**env, "GX_CRYPTO": value},
                                           capture_output=True, text=True, check=True).stdout)
        assert forced == {"aes-gcm": "openssl", "hkdf-sha1": "openssl", "simd": auto["simd"]}, (value, forced)
    assert auto["aes-gcm"] in {"vaes-avx512", "vaes-avx2", "openssl"}
    assert auto["hkdf-sha1"] in {"avx512", "sha-ni", "openssl"}
    if not auto["simd"]:                               # built with GX_NO_SIMD=1: OpenSSL only
        assert auto == {"aes-gcm": "openssl", "hkdf-sha1": "openssl", "simd": False}
        return
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        flags = f.read()
    if " vaes" in flags and " vpclmulqdq" in flags and " avx2" in flags:
        assert auto["aes-gcm"].startswith("vaes-")     # ours wherever the CPU can run it
    if " sha_ni" in flags or " avx512bw" in flags:
        assert auto["hkdf-sha1"] != "openssl"
