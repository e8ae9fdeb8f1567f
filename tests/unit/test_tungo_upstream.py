"""Direct upstream dials for tungo flows: connected non-blocking sockets, remembered as our own."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gostx.handler.tungo.upstream import OwnSockets, dial_direct
from gostx.net.direct import DialOptions


def test_tcp_dial_connects_and_is_remembered() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        own = OwnSockets()
        sock = await dial_direct("tcp", "127.0.0.1", port, DialOptions(timeout=5), own)
        assert sock.type == socket.SOCK_STREAM and not sock.getblocking()
        assert sock.getpeername() == ("127.0.0.1", port)
        assert sock.getsockname() in own
        sock.close()
        server.close()

    asyncio.run(scenario())


def test_udp_dial_is_connected() -> None:
    async def scenario() -> None:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as peer:
            peer.bind(("::1", 0))
            own = OwnSockets()
            sock = await dial_direct("udp", "::1", peer.getsockname()[1], DialOptions(timeout=5), own)
            sock.send(b"ping")
            data, addr = peer.recvfrom(10)
            assert data == b"ping" and addr[:2] == sock.getsockname()[:2]
            assert sock.getsockname()[:2] in own
            sock.close()

    asyncio.run(scenario())


def test_refused_and_bad_source_are_oserrors() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(dial_direct("tcp", "127.0.0.1", free_port, DialOptions(timeout=5), OwnSockets()))
    wrong_family = DialOptions(timeout=5, interfaces=["::1"])
    with pytest.raises(OSError, match="does not match the target's address family"):
        asyncio.run(dial_direct("tcp", "127.0.0.1", free_port, wrong_family, OwnSockets()))
