"""Type stubs for gostx._engine (the C data plane)."""

ENGINE_ABI: int

# TUN/TAP devices (gostx/_tun.pxi)
TUN_F_CSUM: int
TUN_F_TSO4: int
TUN_F_TSO6: int
TUN_F_USO4: int
TUN_F_USO6: int
TUN_VNET_NONE: int
TUN_VNET_CSUM: int
TUN_VNET_GSO: int
TUN_MAX_QUEUES: int

def tun_vnet_mode(vnet_hdr: bool, offloads: int) -> int: ...
def tun_open(
    name: str, tap: bool, queues: int = 1, vnet_hdr: bool = False, gso: bool = False
) -> tuple[str, list[int], int]: ...
def tun_read_batch(fd: int, vnet_hdr: int = 0, max: int = 128, slot_size: int = 2048) -> list[bytes]: ...
def tun_write_batch(fd: int, packets: list[bytes], vnet_hdr: int = 0) -> int: ...
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
