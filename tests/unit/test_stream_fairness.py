"""A peer that keeps its socket full must not hold the event loop (SocketStream.read yields)."""

from __future__ import annotations

import asyncio
import socket

from gostx.net.stream import READS_PER_YIELD, SocketStream


def test_reading_a_full_socket_lets_other_tasks_run() -> None:
    async def main() -> tuple[int, int]:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        payload = b"x" * 64
        for _ in range(2000):  # far more small chunks than one read takes
            try:
                theirs.send(payload)
            except BlockingIOError:
                break
        stream = SocketStream(ours)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0)  # the ticker has run once
        start = ticks
        reads = 0
        for _ in range(READS_PER_YIELD * 8):
            if not await stream.read(64):
                break
            reads += 1
        during = ticks - start
        task.cancel()
        stream.close()
        theirs.close()
        return reads, during

    reads, during = asyncio.run(main())
    assert reads == READS_PER_YIELD * 8
    # without the yield every read completes at once and the ticker never runs during the loop
    assert during >= 8
