"""The tunnel's UDP socket: bound like gost (the server binds the service address, dual-stack unless the
host is an IPv4 literal; a v2 client also binds its service address), with large buffers."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket

from gostx.errors import GostError

BUFFER_BYTES = 4 << 20
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def split_host_port(addr: str) -> tuple[str, int]:
    """gost's `host:port` (`[v6]:port`, `:port`) -> (host, port); one-line error when malformed."""
    host, sep, port_text = addr.rpartition(":")
    if not sep:
        raise GostError(f"bad address {addr!r}: expected host:port")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise GostError(f"bad address {addr!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise GostError(f"bad address {addr!r}: port {port} out of range")
    return host, port


def resolve(host: str, port: int) -> tuple[str, int, int]:
    """Resolve once, as gost does at start: (ip, port, family). An empty host means this machine."""
    if not host:
        return "127.0.0.1", port, socket.AF_INET
    try:
        ip = ipaddress.ip_address(host)
        return str(ip), port, socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    except ValueError:
        pass
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise GostError(f"cannot resolve {host}: {exc.strerror}") from None
    family, _, _, _, sockaddr = info[0]
    return str(sockaddr[0]), port, family


def tune_buffers(sock: socket.socket) -> None:
    """4 MiB send and receive buffers (forced when CAP_NET_ADMIN allows): a burst of tunnel packets fits."""
    for force, plain in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, BUFFER_BYTES)
        except OSError:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, plain, BUFFER_BYTES)


def bind_udp(addr: str, family: int | None = None) -> socket.socket:
    """A non-blocking UDP socket bound to gost's `host:port`. family None: dual-stack unless the host
    is an IPv4 literal."""
    host, port = split_host_port(addr)
    if family is None:
        try:
            family = socket.AF_INET if ipaddress.ip_address(host).version == 4 else socket.AF_INET6
        except ValueError:
            family = socket.AF_INET6
    if family == socket.AF_INET6 and not socket.has_ipv6:
        family = socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        bind_host = host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        if family == socket.AF_INET6 and host and ipaddress.ip_address(host).version == 4:
            bind_host = f"::ffff:{host}"
        sock.bind((bind_host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise GostError(f"listen udp {addr}: address already in use") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise GostError(f"listen udp {addr}: address not available on this host") from None
        raise GostError(f"listen udp {addr}: {exc.strerror}") from None
    tune_buffers(sock)
    sock.setblocking(False)
    return sock
