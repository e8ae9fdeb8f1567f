"""Upstreams that are Python transports (a chain's TLS/WebSocket/relay streams) as an fd the C stack can
splice: one end of a socketpair goes to the stack, Python relays the other end to the transport.

This is the slow path (Python per chunk) that only chained flows take; a direct dial gives the stack a
real socket and no Python runs per byte. Half-close passes both ways (EOF -> write_eof / SHUT_WR).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

CHUNK = 1 << 16


class Bridges:
    """The relays of one handler: stream(reader, writer) -> the socket to hand to the stack."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        theirs.setblocking(False)
        task = asyncio.create_task(_relay(ours, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return theirs

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _relay(ours: socket.socket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    loop = asyncio.get_running_loop()

    async def stack_to_transport() -> None:
        while data := await loop.sock_recv(ours, CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def transport_to_stack() -> None:
        while data := await reader.read(CHUNK):
            await loop.sock_sendall(ours, data)
        with contextlib.suppress(OSError):
            ours.shutdown(socket.SHUT_WR)

    tasks = [asyncio.create_task(stack_to_transport()), asyncio.create_task(transport_to_stack())]
    try:  # both directions run to their EOF; an error in either ends both
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ours.close()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
