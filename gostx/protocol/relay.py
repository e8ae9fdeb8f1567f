"""GOST's relay protocol (go-gost/relay v0.5.0). All integers are big endian.

    request   VER(1)=0x01 | CMD(1) | FEALEN(2) | FEATURES
    response  VER(1)=0x01 | STATUS(1) | FEALEN(2) | FEATURES
    feature   TYPE(1) | LEN(2) | DATA

CMD: the low nibble is the command (0x01 CONNECT, 0x02 BIND, 0x03 ASSOCIATE; 0 reads as CONNECT), bit 0x80
(FUDP) marks UDP. Features: 0x01 user/pass (`ULEN U PLEN P`), 0x02 address (`ATYP ADDR PORT`, as SOCKS5),
0x03 tunnel id (16+ bytes, kept opaque), 0x04 network (`uint16`: 0 tcp, 1 udp, 2 ip, 0x10 unix, 0x11
serial). A header whose version is not 1, that ends early, or whose feature list holds an unknown type or a
malformed feature fails the whole parse (RelayError), as in gost.

UDP over a relay stream: after a UDP CONNECT every datagram is `LEN(2) | PAYLOAD`, both directions.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gostx.addr import AddressError, decode_host, port_number
from gostx.net.stream import Stream

VERSION = 0x01

CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_ASSOCIATE = 0x03
CMD_MASK = 0x0F
FLAG_UDP = 0x80

STATUS_OK = 0x00
STATUS_BAD_REQUEST = 0x01
STATUS_UNAUTHORIZED = 0x02
STATUS_FORBIDDEN = 0x03
STATUS_TIMEOUT = 0x04
STATUS_SERVICE_UNAVAILABLE = 0x05
STATUS_HOST_UNREACHABLE = 0x06
STATUS_NETWORK_UNREACHABLE = 0x07
STATUS_INTERNAL_SERVER_ERROR = 0x08

STATUS_TEXT = {
    STATUS_OK: "ok", STATUS_BAD_REQUEST: "bad request", STATUS_UNAUTHORIZED: "unauthorized",
    STATUS_FORBIDDEN: "forbidden", STATUS_TIMEOUT: "timeout", STATUS_SERVICE_UNAVAILABLE: "service unavailable",
    STATUS_HOST_UNREACHABLE: "host unreachable", STATUS_NETWORK_UNREACHABLE: "network unreachable",
    STATUS_INTERNAL_SERVER_ERROR: "internal server error",
}

FEATURE_USER_AUTH = 0x01
FEATURE_ADDR = 0x02
FEATURE_TUNNEL = 0x03
FEATURE_NETWORK = 0x04

ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04

NETWORK_TCP = 0x00
NETWORK_UDP = 0x01
NETWORK_IP = 0x02
NETWORK_UNIX = 0x10
NETWORK_SERIAL = 0x11
NETWORK_NAMES = {NETWORK_TCP: "tcp", NETWORK_UDP: "udp", NETWORK_IP: "ip", NETWORK_UNIX: "unix",
                 NETWORK_SERIAL: "serial"}
NETWORK_IDS = {name: nid for nid, name in NETWORK_NAMES.items()}

HEADER_LEN = 4
FEATURE_HEADER_LEN = 3
MAX_FEATURES_LEN = 0xFFFF
MAX_DATAGRAM = 0xFFFF


class RelayError(ConnectionError):
    """A malformed relay header or a refused request (status != 0). A server answers `status` when it is
    set (an address feature naming no usable host: 0x01); else it closes without an answer, as gost."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# -- features --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserAuth:
    username: str = ""
    password: str = ""

    type = FEATURE_USER_AUTH

    def encode(self) -> bytes:
        user, password = self.username.encode(), self.password.encode()
        if len(user) > 0xFF or len(password) > 0xFF:
            raise RelayError("relay: user name or password longer than 255 bytes")
        return bytes([len(user)]) + user + bytes([len(password)]) + password

    @classmethod
    def decode(cls, data: bytes) -> UserAuth:
        if len(data) < 2:
            raise RelayError("relay: short user/pass feature")
        ulen = data[0]
        if len(data) < 1 + ulen + 1:
            raise RelayError("relay: short user/pass feature")
        plen = data[1 + ulen]
        if len(data) < 2 + ulen + plen:
            raise RelayError("relay: short user/pass feature")
        user = data[1:1 + ulen].decode("utf-8", "replace")
        password = data[2 + ulen:2 + ulen + plen].decode("utf-8", "replace")
        return cls(user, password)


@dataclass(frozen=True)
class Addr:
    """An address feature. `host` is an IP string or a name ("" encodes as an empty name)."""

    host: str = ""
    port: int = 0

    type = FEATURE_ADDR

    @classmethod
    def parse(cls, address: str) -> Addr:
        """'host:port' / '[v6]:port' as gost's AddrFeature.ParseFrom: a bad or missing port reads as 0,
        and a string that does not split at all is all host."""
        host, sep, port = address.rpartition(":")
        if not sep or (":" in host and not (host.startswith("[") and host.endswith("]"))):
            return cls(address, 0)
        host = host[1:-1] if host.startswith("[") else host
        return cls(host, port_number(port) or 0)

    def join(self) -> str:
        """'host:port' as Go's net.JoinHostPort."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def encode(self) -> bytes:
        port = struct.pack(">H", self.port)
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            name = self.host.encode()
            if len(name) > 0xFF:
                raise RelayError(f"relay: host name longer than 255 bytes: {self.host[:40]}...") from None
            return bytes([ATYP_DOMAIN, len(name)]) + name + port
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return bytes([ATYP_IPV4 if ip.version == 4 else ATYP_IPV6]) + ip.packed + port

    @classmethod
    def decode(cls, data: bytes) -> Addr:
        if len(data) < 4:
            raise RelayError("relay: short address feature")
        atyp = data[0]
        if atyp == ATYP_IPV4:
            if len(data) < 1 + 4 + 2:
                raise RelayError("relay: short address feature")
            host, end = str(ipaddress.IPv4Address(data[1:5])), 5
        elif atyp == ATYP_IPV6:
            if len(data) < 1 + 16 + 2:
                raise RelayError("relay: short address feature")
            ip6 = ipaddress.IPv6Address(data[1:17])
            host, end = str(ip6.ipv4_mapped or ip6), 17  # Go prints a v4-mapped address as IPv4
        elif atyp == ATYP_DOMAIN:
            n = data[1]
            if len(data) < 4 + n:
                raise RelayError("relay: short address feature")
            try:  # an empty name is gost's "no host" (`03 00 PORT`)
                host, end = decode_host(data[2:2 + n]) if n else "", 2 + n
            except AddressError as exc:
                raise RelayError(f"relay: {exc}", STATUS_BAD_REQUEST) from None
        else:
            raise RelayError(f"relay: bad address type 0x{atyp:02x}")
        return cls(host, struct.unpack(">H", data[end:end + 2])[0])


@dataclass(frozen=True)
class Tunnel:
    """A tunnel (request) or connector (response) id; kept as the raw bytes."""

    id: bytes = bytes(16)

    type = FEATURE_TUNNEL

    def encode(self) -> bytes:
        return self.id

    @classmethod
    def decode(cls, data: bytes) -> Tunnel:
        if len(data) < 16:
            raise RelayError("relay: short tunnel feature")
        return cls(bytes(data))


@dataclass(frozen=True)
class Network:
    network: int = NETWORK_TCP

    type = FEATURE_NETWORK

    @property
    def name(self) -> str:
        return NETWORK_NAMES.get(self.network, "tcp")  # an unknown id reads as tcp, as in gost

    def encode(self) -> bytes:
        return struct.pack(">H", self.network)

    @classmethod
    def decode(cls, data: bytes) -> Network:
        if len(data) < 2:
            raise RelayError("relay: short network feature")
        return cls(struct.unpack(">H", data[:2])[0])


Feature = UserAuth | Addr | Tunnel | Network
FeatureT = TypeVar("FeatureT", UserAuth, Addr, Tunnel, Network)
_DECODERS: dict[int, Callable[[bytes], Feature]] = {
    FEATURE_USER_AUTH: UserAuth.decode, FEATURE_ADDR: Addr.decode, FEATURE_TUNNEL: Tunnel.decode,
    FEATURE_NETWORK: Network.decode}


def encode_features(features: list[Feature]) -> bytes:
    out = bytearray()
    for feature in features:
        data = feature.encode()
        out += struct.pack(">BH", feature.type, len(data)) + data
    if len(out) > MAX_FEATURES_LEN:
        raise RelayError("relay: features longer than 65535 bytes")
    return bytes(out)


def decode_features(buf: bytes) -> list[Feature]:
    features: list[Feature] = []
    pos = 0
    while pos < len(buf):
        if len(buf) - pos < FEATURE_HEADER_LEN:
            raise RelayError("relay: truncated feature header")
        ftype, flen = buf[pos], struct.unpack(">H", buf[pos + 1:pos + 3])[0]
        pos += FEATURE_HEADER_LEN
        if len(buf) - pos < flen:
            raise RelayError("relay: truncated feature")
        decoder = _DECODERS.get(ftype)
        if decoder is None:
            raise RelayError(f"relay: unknown feature type 0x{ftype:02x}")
        features.append(decoder(buf[pos:pos + flen]))
        pos += flen
    return features


# -- requests and responses ------------------------------------------------------------------------


@dataclass
class Request:
    cmd: int = CMD_CONNECT
    features: list[Feature] = field(default_factory=list)

    @property
    def command(self) -> int:
        return self.cmd & CMD_MASK

    @property
    def network(self) -> str:
        """The Network feature (default tcp), forced to udp by the FUDP flag."""
        if self.cmd & FLAG_UDP:
            return "udp"
        found = self.find(Network)
        return found.name if found is not None else "tcp"

    def find(self, kind: type[FeatureT]) -> FeatureT | None:
        """The feature of that kind (the last one when repeated, as gost reads them)."""
        chosen: FeatureT | None = None
        for feature in self.features:
            if isinstance(feature, kind):
                chosen = feature
        return chosen

    def encode(self) -> bytes:
        body = encode_features(self.features)
        return struct.pack(">BBH", VERSION, self.cmd, len(body)) + body


@dataclass
class Response:
    status: int = STATUS_OK
    features: list[Feature] = field(default_factory=list)

    def find(self, kind: type[FeatureT]) -> FeatureT | None:
        chosen: FeatureT | None = None
        for feature in self.features:
            if isinstance(feature, kind):
                chosen = feature
        return chosen

    def encode(self) -> bytes:
        body = encode_features(self.features)
        return struct.pack(">BBH", VERSION, self.status, len(body)) + body


OK_RESPONSE = Response().encode()  # 01 00 00 00


def parse_header(head: bytes) -> tuple[int, int]:
    """(CMD or STATUS, FEALEN) of a 4-byte header; RelayError when the version is not 1."""
    if len(head) < HEADER_LEN:
        raise RelayError("relay: short header")
    if head[0] != VERSION:
        raise RelayError(f"relay: bad version {head[0]}")
    return head[1], struct.unpack(">H", head[2:4])[0]


async def _read(stream: Stream) -> tuple[int, list[Feature]]:
    try:
        code, flen = parse_header(await stream.readexactly(HEADER_LEN))
        body = await stream.readexactly(flen) if flen else b""
    except ConnectionError as exc:
        if isinstance(exc, RelayError):
            raise
        raise RelayError(f"relay: {exc}") from None
    return code, decode_features(body)


async def read_request(stream: Stream) -> Request:
    cmd, features = await _read(stream)
    return Request(cmd, features)


async def read_response(stream: Stream) -> Response:
    status, features = await _read(stream)
    return Response(status, features)


def udp_frame(data: bytes) -> bytes:
    """One datagram on a relay UDP stream: LEN(2) | PAYLOAD."""
    if len(data) > MAX_DATAGRAM:
        raise RelayError(f"relay: datagram of {len(data)} bytes is too large")
    return struct.pack(">H", len(data)) + data
