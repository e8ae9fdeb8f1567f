"""Go-style addresses and listening sockets."""

from __future__ import annotations

import socket

import pytest

from gostx.addr import format_sockaddr, join_host_port, listen_socket, split_host_port
from gostx.errors import GostError


@pytest.mark.parametrize(("addr", "expected"), [
    (":8080", ("", 8080)),
    ("127.0.0.1:80", ("127.0.0.1", 80)),
    ("[::1]:443", ("::1", 443)),
    ("example.com:0", ("example.com", 0)),
    ("h:http", ("h", 80)),
])
def test_split_host_port(addr: str, expected: tuple[str, int]) -> None:
    assert split_host_port(addr) == expected


@pytest.mark.parametrize(("addr", "message"), [
    ("8080", "missing port in address"),
    ("::1:80", "too many colons"),
    ("[::1", "missing ']'"),
    ("[::1]80", "missing port"),
    ("h:99999", "invalid port"),
    ("h:", "invalid port"),
    ("h:no-such-service-name", "invalid port"),
])
def test_split_host_port_errors(addr: str, message: str) -> None:
    with pytest.raises(GostError, match=message):
        split_host_port(addr)


def test_format_sockaddr() -> None:
    assert format_sockaddr(("::ffff:10.0.0.1", 5, 0, 0)) == "10.0.0.1:5"
    assert format_sockaddr(("::1", 5, 0, 0)) == "[::1]:5"
    assert format_sockaddr(("10.0.0.1", 7)) == "10.0.0.1:7"
    assert join_host_port("fe80::1", 1) == "[fe80::1]:1"


def test_wildcard_listen_is_dual_stack() -> None:
    sock = listen_socket("tcp", ":0")
    try:
        port = sock.getsockname()[1]
        if sock.family == socket.AF_INET6:
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        sock.close()


@pytest.mark.parametrize("network", ["tcp", "udp"])
def test_address_in_use_reads_like_go(network: str) -> None:
    kind = socket.SOCK_STREAM if network == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if network == "tcp":
            taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GostError) as err:
            listen_socket(network, f"127.0.0.1:{port}")
    assert str(err.value) == f"listen {network} 127.0.0.1:{port}: bind: address already in use"
