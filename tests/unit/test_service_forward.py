"""tcp/udp port forwarding end to end on loopback, in-process (no root needed)."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from gostx.config.model import (
    Config,
    ForwarderConfig,
    ForwardNodeConfig,
    HandlerConfig,
    ListenerConfig,
    ServiceConfig,
)
from gostx.log import ROOT_LOGGER, setup_logging
from gostx.plugins import load_builtin_plugins
from gostx.runner import Runner


@pytest.fixture(autouse=True)
def logs() -> Iterator[io.StringIO]:
    load_builtin_plugins()
    logger = logging.getLogger(ROOT_LOGGER)
    saved = (list(logger.handlers), logger.level)
    out = io.StringIO()
    setup_logging(None, level_override="debug", stream=out)
    yield out
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in saved[0]:
        logger.addHandler(h)
    logger.setLevel(saved[1])


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def forward_service(kind: str, port: int, *targets: str, ttl: str = "") -> ServiceConfig:
    nodes = [ForwardNodeConfig(name=f"target-{i}", addr=t) for i, t in enumerate(targets)]
    return ServiceConfig(name=f"{kind}-fwd", addr=f"127.0.0.1:{port}", handler=HandlerConfig(type=kind),
                         listener=ListenerConfig(type=kind, metadata={"ttl": ttl} if ttl else {}),
                         forwarder=ForwarderConfig(nodes=nodes))


@asynccontextmanager
async def running(*services: ServiceConfig) -> AsyncIterator[Runner]:
    runner = Runner(Config(services=list(services)))
    task = asyncio.create_task(runner.run())
    for _ in range(100):
        if len(runner.started) == len(services):
            break
        await asyncio.sleep(0.02)
    try:
        yield runner
    finally:
        runner.request_stop("TEST")
        assert await asyncio.wait_for(task, 10) == 0


@asynccontextmanager
async def tcp_server(reply_prefix: bytes) -> AsyncIterator[int]:
    """Reads until EOF, then answers prefix + everything read (exercises half-close)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(reply_prefix + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def tcp_exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


def test_tcp_forward_with_half_close_and_bulk_data() -> None:
    async def scenario() -> None:
        async with tcp_server(b"A:") as target:
            port = free_port()
            async with running(forward_service("tcp", port, f"127.0.0.1:{target}")):
                payload = bytes(range(256)) * 20000  # 5 MB
                assert await tcp_exchange(port, payload) == b"A:" + payload

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_tcp_forward_round_robin_over_targets() -> None:
    async def scenario() -> None:
        async with tcp_server(b"A") as ta, tcp_server(b"B") as tb:
            port = free_port()
            async with running(forward_service("tcp", port, f"127.0.0.1:{ta}", f"127.0.0.1:{tb}")):
                replies = [await tcp_exchange(port, b"") for _ in range(4)]
                assert replies == [b"A", b"B", b"A", b"B"]

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_tcp_forward_skips_a_dead_target_with_retries(logs: io.StringIO) -> None:
    async def scenario() -> None:
        async with tcp_server(b"alive") as alive:
            port = free_port()
            svc = forward_service("tcp", port, f"127.0.0.1:{free_port()}", f"127.0.0.1:{alive}")
            assert svc.handler is not None
            svc.handler.retries = 1
            async with running(svc):
                assert [await tcp_exchange(port, b"") for _ in range(3)] == [b"alive"] * 3

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_tcp_forward_dial_failure_closes_client_and_logs(logs: io.StringIO) -> None:
    async def scenario() -> None:
        port = free_port()
        dead = free_port()
        async with running(forward_service("tcp", port, f"127.0.0.1:{dead}")):
            assert await tcp_exchange(port, b"") == b""

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert "connection refused" in logs.getvalue()


class EchoUdp(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]
        self.sources: set[tuple[str, int]] = set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sources.add(addr)
        self.transport.sendto(b"echo:" + data, addr)


async def udp_roundtrip(sock: socket.socket, port: int, payload: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, payload, ("127.0.0.1", port))
    return await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)


def udp_client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def open_sessions(listener: object) -> int:
    """Live sessions of a udp:// listener: its C forwarder's count (gostx/handler/forward/udp_engine.py)."""
    return int(listener.engine_forwarder.stats()["sessions_open"])  # type: ignore[attr-defined]


def test_udp_forward_two_clients_get_their_own_replies_and_sessions_expire(logs: io.StringIO) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        transport, echo = await loop.create_datagram_endpoint(EchoUdp, local_addr=("127.0.0.1", 0))
        target = transport.get_extra_info("sockname")[1]
        port = free_port(socket.SOCK_DGRAM)
        try:
            async with running(forward_service("udp", port, f"127.0.0.1:{target}", ttl="0.5s")) as runner:
                listener = runner.started[0].listener
                c1, c2 = udp_client(), udp_client()
                with c1, c2:
                    for i in range(3):
                        assert await udp_roundtrip(c1, port, b"one%d" % i) == b"echo:one%d" % i
                        assert await udp_roundtrip(c2, port, b"two%d" % i) == b"echo:two%d" % i
                    assert open_sessions(listener) == 2
                    assert len(echo.sources) == 2  # one upstream socket per client session
                    await asyncio.sleep(1.3)
                    assert open_sessions(listener) == 0
                    # A new datagram after expiry opens a new session with a new upstream socket.
                    assert await udp_roundtrip(c1, port, b"again") == b"echo:again"
                    assert len(echo.sources) == 3
        finally:
            transport.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert "session idle for 0.5s, closed" in logs.getvalue()


def test_udp_session_ends_on_port_unreachable(logs: io.StringIO) -> None:
    async def scenario() -> None:
        port = free_port(socket.SOCK_DGRAM)
        dead = free_port(socket.SOCK_DGRAM)
        async with running(forward_service("udp", port, f"127.0.0.1:{dead}")) as runner:
            with udp_client() as c:
                await asyncio.get_running_loop().sock_sendto(c, b"x", ("127.0.0.1", port))
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    if ">-<" in logs.getvalue():
                        break
            assert open_sessions(runner.started[0].listener) == 0

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert "connection refused" in logs.getvalue().lower()


def test_forward_without_target_fails_to_start() -> None:
    from gostx.errors import GostError

    async def scenario() -> None:
        await Runner(Config(services=[forward_service("tcp", free_port())])).run()

    with pytest.raises(GostError, match="tcp-fwd: handler tcp: no forward target"):
        asyncio.run(scenario())
