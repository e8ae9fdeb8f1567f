"""Type stubs for gostx._engine (the C data plane)."""

ENGINE_ABI: int

# Shadowsocks AEAD UDP packet framing (gostx/_aead.pxi)
AEAD_REPLAY_DEFAULT: int

def supported_ciphers() -> list[str]: ...
def canonical_cipher(name: str) -> str: ...
def derive_key(method: str, password: bytes | str) -> bytes: ...

class Aead:
    method: str
    key_len: int
    salt_len: int
    overhead: int
    def __init__(
        self,
        method: str,
        password: bytes | str | None = None,
        key: bytes | str | None = None,
        *,
        replay_capacity: int = ...,
    ) -> None: ...
    @property
    def drops(self) -> dict[str, int]: ...
    def seal(self, plaintext: bytes, salt: bytes | None = None) -> bytes: ...
    def open(self, datagram: bytes) -> bytes: ...
    def seal_many(self, packets: list[bytes]) -> list[bytes]: ...
    def open_many(self, datagrams: list[bytes]) -> list[bytes | None]: ...
