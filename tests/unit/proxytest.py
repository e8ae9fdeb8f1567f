"""Helpers for in-process proxy tests on loopback: run gost command lines (-L/-F) in this event loop,
talk to them with raw sockets, echo servers."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from gostx.config.cmd import build_config
from gostx.log import ROOT_LOGGER, setup_logging
from gostx.plugins import load_builtin_plugins
from gostx.runner import Runner


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    load_builtin_plugins()
    logger = logging.getLogger(ROOT_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    out = io.StringIO()
    setup_logging(None, level_override="debug", stream=out)
    try:
        yield out
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        for h in saved[0]:
            logger.addHandler(h)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]  # setup_logging turned it off: pytest's caplog would see nothing after


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def gost(services: list[str], nodes: list[str] | None = None) -> AsyncIterator[Runner]:
    """`gost -L ... -F ...` running in this loop until the block ends."""
    load_builtin_plugins()
    runner = Runner(build_config(services, nodes or []))
    task = asyncio.create_task(runner.run())
    for _ in range(500):
        if len(runner.started) == len(runner.services) or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    try:
        yield runner
    finally:
        runner.request_stop("TEST")
        assert await asyncio.wait_for(task, 10) == 0


@asynccontextmanager
async def echo_tcp(prefix: bytes = b"") -> AsyncIterator[int]:
    """A TCP echo server on loopback (each chunk sent back after `prefix`); yields its port."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(prefix + data if prefix else data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)  # type: ignore[attr-defined]


@asynccontextmanager
async def echo_udp() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_all(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything until the server closes (b"" if it closes at once)."""
    return await asyncio.wait_for(reader.read(), timeout)
