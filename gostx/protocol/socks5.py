"""SOCKS5 (RFC 1928, RFC 1929) and GOST's extensions, as gost's gosocks5 writes them.

Addresses: ATYP 0x01 IPv4 (4 bytes), 0x03 name (1-byte length + name), 0x04 IPv6 (16 bytes), then
PORT (2, big endian). GOST adds methods 0x80 (TLS) and 0x82 (TLS + user/pass), and commands 0xF2
(multiplexed BIND) and 0xF3 (UDP over TCP: frames `LEN(2) FRAG(1) ATYP ADDR PORT DATA`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

from gostx.addr import AddressError, decode_host, port_number
from gostx.net.packet import MAX_DATAGRAM, PacketConn, numeric_sockaddr
from gostx.net.stream import Stream

VERSION = 5

METHOD_NO_AUTH = 0x00
METHOD_USER_PASS = 0x02
METHOD_TLS = 0x80
METHOD_TLS_AUTH = 0x82
METHOD_NO_ACCEPTABLE = 0xFF

CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_UDP_ASSOCIATE = 0x03
CMD_MUX_BIND = 0xF2
CMD_UDP_TUN = 0xF3

ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04

REP_SUCCEEDED = 0x00
REP_FAILURE = 0x01
REP_NOT_ALLOWED = 0x02
REP_NET_UNREACHABLE = 0x03
REP_HOST_UNREACHABLE = 0x04
REP_CONN_REFUSED = 0x05
REP_TTL_EXPIRED = 0x06
REP_CMD_UNSUPPORTED = 0x07
REP_ADDR_UNSUPPORTED = 0x08

AUTH_VERSION = 0x01
AUTH_SUCCESS = 0x00
AUTH_FAILURE = 0x01

UDP_FRAG = 0x00  # gost v2 writes 0x00, v3 0xFF; every reader ignores it

REPLY_TEXT = {
    REP_FAILURE: "general failure", REP_NOT_ALLOWED: "not allowed", REP_NET_UNREACHABLE: "network unreachable",
    REP_HOST_UNREACHABLE: "host unreachable", REP_CONN_REFUSED: "connection refused",
    REP_TTL_EXPIRED: "TTL expired", REP_CMD_UNSUPPORTED: "command not supported",
    REP_ADDR_UNSUPPORTED: "address type not supported",
}


class Socks5Error(ConnectionError):
    """A SOCKS5 protocol violation or refusal. `reply` is the REP code to answer with, when one fits."""

    def __init__(self, message: str, reply: int | None = None) -> None:
        super().__init__(message)
        self.reply = reply


def split_addr(address: str) -> tuple[str, int]:
    """'host:port' / '[v6]:port' -> (host, port); Socks5Error when malformed."""
    host, sep, port = address.rpartition(":")
    number = port_number(port) if sep else None
    if number is None:
        raise Socks5Error(f"bad address {address[:80]!r}")
    return host.strip("[]"), number


def join_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def encode_addr(host: str, port: int) -> bytes:
    """ATYP ADDR PORT. IP strings as IPv4/IPv6 (v4-mapped as IPv4), anything else as a name; an empty
    host as IPv4 0.0.0.0 (gost's nil address)."""
    if not host:
        return bytes([ATYP_IPV4, 0, 0, 0, 0]) + struct.pack(">H", port)
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        try:
            name = host.encode("idna") if not host.isascii() else host.encode()
        except UnicodeError:
            raise Socks5Error(f"host name {host[:40]!r} cannot be encoded", REP_HOST_UNREACHABLE) from None
        if not 0 < len(name) <= 255:
            raise Socks5Error(f"host name too long: {host[:40]}...") from None
        return bytes([ATYP_DOMAIN, len(name)]) + name + struct.pack(">H", port)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
    return bytes([atyp]) + ip.packed + struct.pack(">H", port)


def decode_addr(buf: bytes, offset: int = 0) -> tuple[str, int, int] | None:
    """(host, port, end offset) of the address at buf[offset:], None when incomplete; Socks5Error when
    the address type is unknown or a name is empty (REP 0x08) or not a usable host name (REP 0x04:
    gostx.addr.decode_host)."""
    if len(buf) < offset + 1:
        return None
    atyp = buf[offset]
    if atyp == ATYP_IPV4:
        end = offset + 1 + 4 + 2
        if len(buf) < end:
            return None
        host = str(ipaddress.IPv4Address(buf[offset + 1:offset + 5]))
    elif atyp == ATYP_IPV6:
        end = offset + 1 + 16 + 2
        if len(buf) < end:
            return None
        host = str(ipaddress.IPv6Address(buf[offset + 1:offset + 17]))
    elif atyp == ATYP_DOMAIN:
        if len(buf) < offset + 2:
            return None
        n = buf[offset + 1]
        if n == 0:
            raise Socks5Error("empty host name", REP_ADDR_UNSUPPORTED)
        end = offset + 2 + n + 2
        if len(buf) < end:
            return None
        try:
            host = decode_host(bytes(buf[offset + 2:offset + 2 + n]))
        except AddressError as exc:
            raise Socks5Error(str(exc), REP_HOST_UNREACHABLE) from None
    else:
        raise Socks5Error(f"unknown address type 0x{atyp:02x}", REP_ADDR_UNSUPPORTED)
    port = struct.unpack(">H", buf[end - 2:end])[0]
    return host, port, end


async def read_addr(stream: Stream) -> tuple[str, int]:
    """ATYP ADDR PORT read exactly from the stream."""
    atyp = await stream.readexactly(1)
    if atyp[0] == ATYP_IPV4:
        rest = await stream.readexactly(6)
    elif atyp[0] == ATYP_IPV6:
        rest = await stream.readexactly(18)
    elif atyp[0] == ATYP_DOMAIN:
        n = await stream.readexactly(1)
        rest = n + await stream.readexactly(n[0] + 2)
    else:
        raise Socks5Error(f"unknown address type 0x{atyp[0]:02x}", REP_ADDR_UNSUPPORTED)
    decoded = decode_addr(atyp + rest)
    assert decoded is not None
    return decoded[0], decoded[1]


def request(cmd: int, host: str, port: int) -> bytes:
    """VER CMD RSV ATYP ADDR PORT (also a reply, with the REP code as cmd)."""
    return bytes([VERSION, cmd, 0]) + encode_addr(host, port)


async def read_request(stream: Stream) -> tuple[int, str, int]:
    """(cmd, host, port) of a request (or (rep, host, port) of a reply)."""
    head = await stream.readexactly(3)
    if head[0] != VERSION:
        raise Socks5Error(f"bad version {head[0]}")
    host, port = await read_addr(stream)
    return head[1], host, port


# -- UDP framing -----------------------------------------------------------------------------------


def udp_frame(data: bytes, host: str, port: int) -> bytes:
    """One 0xF3 frame: LEN(2) FRAG(1) ATYP ADDR PORT DATA. Empty datagrams cannot be framed."""
    if not 0 < len(data) <= 0xFFFF:
        raise Socks5Error(f"datagram of {len(data)} bytes cannot be framed")
    return struct.pack(">HB", len(data), UDP_FRAG) + encode_addr(host, port) + data


def parse_udp_frame(buf: bytes | bytearray | memoryview) -> tuple[bytes, str, int, int] | None:
    """(data, host, port, frame size) of the frame at the start of buf, None when incomplete;
    Socks5Error when malformed (LEN 0, bad ATYP)."""
    if len(buf) < 4:
        return None
    size = (buf[0] << 8) | buf[1]
    if size == 0:
        raise Socks5Error("UDP frame with LEN 0")
    decoded = decode_addr(bytes(buf[3:3 + 1 + 1 + 255 + 2]))
    if decoded is None:
        return None
    host, port, addr_end = decoded
    end = 3 + addr_end + size
    if len(buf) < end:
        return None
    return bytes(buf[3 + addr_end:end]), host, port, end


def udp_datagram(data: bytes, host: str, port: int) -> bytes:
    """RFC 1928 UDP request header + data: RSV(2)=0 FRAG(1)=0 ATYP ADDR PORT DATA."""
    return b"\x00\x00\x00" + encode_addr(host, port) + data


def parse_udp_datagram(buf: bytes) -> tuple[bytes, str, int]:
    """(data, host, port) of an RFC 1928 UDP datagram; Socks5Error when malformed or fragmented."""
    if len(buf) < 4:
        raise Socks5Error("short UDP datagram")
    if buf[2] != 0:
        raise Socks5Error("fragmented UDP datagram")
    decoded = decode_addr(buf, 3)
    if decoded is None:
        raise Socks5Error("truncated UDP datagram header")
    host, port, end = decoded
    return buf[end:], host, port


class UdpTunConn(PacketConn):
    """Datagrams as 0xF3 frames on a stream (the client side after the 0xF3 handshake).

    Reads take whole chunks of the stream and parse every frame in them; `sendmany` writes a batch of
    frames in one write. `stream`, `host` and `port` stay readable so the C tunnel engine can take the
    stream's socket over (gostx/net/stream.py CBridge) and frame the datagrams itself; do that before the
    first recvfrom (or push `take_buffered()` back into the stream)."""

    def __init__(self, stream: Stream, host: str, port: int) -> None:
        self.stream = stream
        self.host = host
        self.port = port
        self._buf = bytearray()

    async def recvfrom(self) -> tuple[bytes, str]:
        while True:
            parsed = parse_udp_frame(self._buf)
            if parsed is not None:
                data, host, port, size = parsed
                del self._buf[:size]
                return data, join_addr(host, port)
            chunk = await self.stream.read(1 << 16)
            if not chunk:
                raise ConnectionError("unexpected EOF" if self._buf else "stream closed")
            self._buf += chunk

    def take_buffered(self) -> bytes:
        data = bytes(self._buf)
        self._buf.clear()
        return data

    async def sendto(self, data: bytes, address: str = "") -> None:
        host, port = split_addr(address) if address else (self.host, self.port)
        if data:
            await self.stream.write(udp_frame(data, host, port))

    async def sendmany(self, datagrams: list[bytes]) -> None:
        """Datagrams to the dialed destination, framed and written at once."""
        head = encode_addr(self.host, self.port)
        frames = [struct.pack(">HB", len(d), UDP_FRAG) + head + d for d in datagrams if 0 < len(d) <= 0xFFFF]
        if frames:
            await self.stream.write(b"".join(frames))

    def close(self) -> None:
        self.stream.close()


class AssociateConn(PacketConn):
    """Standard UDP ASSOCIATE (the connector's `relay=udp`): RFC 1928 datagrams on a UDP socket to the
    relay address the server replied with; the TCP control stream is kept open for the association."""

    def __init__(self, stream: Stream, sock: socket.socket, host: str, port: int) -> None:
        self.stream = stream
        self.sock = sock
        self.host = host
        self.port = port
        self._loop = asyncio.get_running_loop()

    async def recvfrom(self) -> tuple[bytes, str]:
        while True:
            data = await self._loop.sock_recv(self.sock, MAX_DATAGRAM + 262)
            try:
                payload, host, port = parse_udp_datagram(data)
            except Socks5Error:
                continue  # not a relay datagram: ignore it
            return payload, join_addr(host, port)

    async def sendto(self, data: bytes, address: str = "") -> None:
        host, port = split_addr(address) if address else (self.host, self.port)
        await self._loop.sock_sendall(self.sock, udp_datagram(data, host, port))

    def close(self) -> None:
        self.sock.close()
        self.stream.close()


def associate_socket(relay_host: str, relay_port: int) -> socket.socket:
    """A UDP socket connected to the relay address of an ASSOCIATE reply (used exactly as given)."""
    family = socket.AF_INET6 if ":" in relay_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(numeric_sockaddr(join_addr(relay_host, relay_port), family))
    except BaseException:
        sock.close()
        raise
    return sock
