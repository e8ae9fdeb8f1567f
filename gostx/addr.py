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


def split_host_port(addr: str) -> tuple[str, int]:
    """'h:p' / '[v6]:p' / ':p' -> (host, port); GostError on a malformed address or port."""
    text = addr.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise GostError(f"address {addr}: missing ']' in address")
        host, rest = text[1:end], text[end + 1:]
        if not rest.startswith(":"):
            raise GostError(f"address {addr}: missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise GostError(f"address {addr}: missing port in address")
        if ":" in host:
            raise GostError(f"address {addr}: too many colons in address")
    return host, parse_port(port_text, addr)


def parse_port(text: str, addr: str = "") -> int:
    if text.isdigit():
        port = int(text)
        if port <= 65535:
            return port
    elif text:
        with contextlib.suppress(OSError):
            return socket.getservbyname(text)
    raise GostError(f"address {addr or text}: invalid port {text!r}")


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
