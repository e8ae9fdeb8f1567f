"""Go-style network addresses: "host:port", "[v6]:port", ":port"; listening sockets made like Go's.

Go listens on a wildcard address ("", "0.0.0.0", "::") with one dual-stack IPv6 socket and sets
SO_REUSEADDR; errors read like Go's: "listen tcp :8080: bind: address already in use".
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from typing import Any

from gostx.errors import GostError

_WILDCARDS = ("", "0.0.0.0", "::")
MAX_HOST_NAME = 255  # bytes on the wire (SOCKS5 and relay: a 1-byte length)
MAX_PORT_DIGITS = 5  # after leading zeros: longer digit strings are never parsed (int() of 5000 digits fails)


class AddressError(GostError):
    """A host name or port, from a peer or a command line, that cannot be used (not resolvable as text)."""


def check_host(host: str) -> str:
    """host itself when a resolver can take it: no control characters or spaces, an IP literal or a name
    IDNA can encode (labels of 1..63 bytes, at most 255 bytes in all); AddressError otherwise. Every
    parser of a peer's host name goes through this, so a bad name is the protocol's error reply, never
    a UnicodeError out of getaddrinfo."""
    if not host:
        raise AddressError("empty host name")
    shown = ascii(host[:64]) + ("..." if len(host) > 64 else "")
    if any(ord(c) <= 0x20 or c == "\x7f" for c in host):
        raise AddressError(f"host name {shown}: control character or space")
    try:
        encoded = host.encode("idna")
    except UnicodeError as exc:
        reason = str(exc.__cause__ or exc).removeprefix("encoding with 'idna' codec failed ")
        raise AddressError(f"host name {shown}: not a valid name ({reason})") from None
    if len(encoded) > MAX_HOST_NAME:
        raise AddressError(f"host name {shown}: longer than {MAX_HOST_NAME} bytes")
    return host


def decode_host(raw: bytes) -> str:
    """A host name read off the wire (SOCKS5 / relay ATYP 0x03): UTF-8 text that check_host accepts."""
    try:
        host = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AddressError(f"host name {raw[:64]!r}: not UTF-8") from None
    return check_host(host)


def split_host_port(addr: str) -> tuple[str, int]:
    """'h:p' / '[v6]:p' / ':p' -> (host, port); GostError on a malformed address or port."""
    text = addr.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise AddressError(f"address {addr}: missing ']' in address")
        host, rest = text[1:end], text[end + 1:]
        if not rest.startswith(":"):
            raise AddressError(f"address {addr}: missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise AddressError(f"address {addr}: missing port in address")
        if ":" in host:
            raise AddressError(f"address {addr}: too many colons in address")
    return host, parse_port(port_text, addr)


def parse_port(text: str, addr: str = "") -> int:
    """A decimal port (ASCII digits, leading zeros allowed) or a service name; AddressError otherwise."""
    number = port_number(text)
    if number is not None:
        return number
    if text and not text.isdigit() and "\x00" not in text and len(text) <= 64:
        with contextlib.suppress(OSError, UnicodeError):
            return socket.getservbyname(text)
    shown = text if len(text) <= 16 else text[:16] + "..."
    raise AddressError(f"address {addr[:80] or shown}: invalid port {shown!r}")


def port_number(text: str) -> int | None:
    """The port of a string of ASCII digits (0..65535), None for anything else (never int() of a
    5000-digit string)."""
    if not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > MAX_PORT_DIGITS:
        return None
    port = int(digits)
    return port if port <= 65535 else None


def is_wildcard(host: str) -> bool:
    return host in _WILDCARDS


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_sockaddr(sockaddr: Any) -> str:
    """A socket address tuple -> 'ip:port' ('[v6]:port'); IPv4-mapped IPv6 shown as IPv4."""
    if not isinstance(sockaddr, tuple) or len(sockaddr) < 2:
        return str(sockaddr)
    host, port = str(sockaddr[0]), int(sockaddr[1])
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return join_host_port(host, port)


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def _bind_targets(host: str, port: int, sock_type: int) -> list[tuple[int, Any]]:
    """(family, sockaddr) candidates for binding `host:port`."""
    if is_wildcard(host):
        if _has_ipv6():
            return [(socket.AF_INET6, ("::", port, 0, 0))]
        return [(socket.AF_INET, ("0.0.0.0", port))]
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        infos = socket.getaddrinfo(host, port, type=sock_type, flags=socket.AI_PASSIVE)
        return [(int(family), sockaddr) for family, _, _, _, sockaddr in infos]
    if ip.version == 6:
        infos = socket.getaddrinfo(host, port, socket.AF_INET6, sock_type, 0, socket.AI_NUMERICHOST)
        return [(socket.AF_INET6, infos[0][4])]
    return [(socket.AF_INET, (host, port))]


def listen_socket(network: str, addr: str, backlog: int = 4096) -> socket.socket:
    """A bound (and for tcp, listening) non-blocking socket; GostError with Go's wording on failure."""
    if network not in ("tcp", "udp"):
        raise ValueError(network)
    host, port = split_host_port(addr)
    sock_type = socket.SOCK_STREAM if network == "tcp" else socket.SOCK_DGRAM
    try:
        targets = _bind_targets(host, port, sock_type)
    except OSError as exc:
        raise GostError(f"listen {network} {addr}: lookup {host}: {_reason(exc)}") from None
    last: OSError | None = None
    for family, sockaddr in targets:
        sock = socket.socket(family, sock_type)
        try:
            if family == socket.AF_INET6 and is_wildcard(host):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if network == "tcp":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            if network == "tcp":
                sock.listen(backlog)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    assert last is not None or not targets
    reason = _reason(last) if last else "no address to bind"
    step = "bind: " if last and last.errno is not None else ""
    raise GostError(f"listen {network} {addr}: {step}{reason}")


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
