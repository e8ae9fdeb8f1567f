"""Cipher names of gost's `method:password` (Shadowsocks AEAD on the tun/tap UDP tunnel,
docs/crypto.md): validation and normalisation for the config, and the Aead for a service.

The C engine holds the one table of names (csrc/crypto/aead.c); this module only wraps it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from gostx import _engine

SUPPORTED_METHODS: tuple[str, ...] = tuple(_engine.supported_ciphers())
PLAINTEXT_METHOD = "none"
REPLAY_CAPACITY_ENV = "SHADOWSOCKS_SF_CAPACITY"


def normalize_method(name: str) -> str:
    """The canonical name of a cipher ('AEAD_CHACHA20_POLY1305' -> 'chacha20-ietf-poly1305',
    'DUMMY' -> 'none'). Raises ValueError with a one-line message listing the supported names."""
    return _engine.canonical_cipher(name)


def is_supported(name: str) -> bool:
    try:
        normalize_method(name)
    except (TypeError, ValueError):
        return False
    return True


def is_plaintext(name: str) -> bool:
    """True for 'dummy'/'none': datagrams travel without encryption."""
    return normalize_method(name) == PLAINTEXT_METHOD


def replay_capacity(environ: Mapping[str, str] = os.environ) -> int:
    """Salts the replay filter remembers: SHADOWSOCKS_SF_CAPACITY as in go-shadowsocks2 (<= 0 turns
    the filter off), else the default 1e6. ValueError if the variable is not an integer."""
    raw = environ.get(REPLAY_CAPACITY_ENV, "").strip()
    if not raw:
        return _engine.AEAD_REPLAY_DEFAULT
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{REPLAY_CAPACITY_ENV} must be an integer, got {raw!r}") from None


def make_aead(
    method: str, password: str | bytes | None = None, key: str | bytes | None = None
) -> _engine.Aead:
    """The Aead for a service's `method:password` (or raw `key`, used as is when given, as gost's
    `key` metadata), with the replay capacity from the environment."""
    return _engine.Aead(method, password, key, replay_capacity=replay_capacity())
