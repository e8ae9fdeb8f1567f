"""Waiting for a relay that runs in C (on the relay engine's threads), from the event loop.

    relay.start()
    async with released_when_done(relay) as done:
        await asyncio.wait([done, other_task], return_when=asyncio.FIRST_COMPLETED)
    relay.stats()   # final: the engine has let go of the relay

`counted_as="socks_assoc"` (a kind of gostx/metrics/sources.py ENDED_RELAY_HELP) adds the relay's final
counters to the metrics' totals once the engine has let go of it.

Every C relay (TcpSpliceRelay, SocksUdpRelay, SocksAssociateRelay, DgramFrames) has an eventfd that
becomes readable once the engine has let go of it, and cancel() (never blocks) / stop() (cancel and wait).
On leaving the block the relay is cancelled (a no-op when it ended by itself) and the engine's letting go
is awaited on the loop; a second cancellation waits for it in C instead (short).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from gostx.metrics.sources import relay_ended


class CRelay(Protocol):
    @property
    def event_fd(self) -> int: ...

    def cancel(self) -> None: ...

    def stop(self) -> object: ...

    def stats(self) -> dict[str, int]: ...


@contextlib.asynccontextmanager
async def released_when_done(relay: CRelay, counted_as: str | None = None) -> AsyncIterator[asyncio.Future[None]]:
    """Yields a future that completes when the engine has let go of the (started) relay; its counters
    then go into the metrics' totals of `counted_as` (when given)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    fd = relay.event_fd

    def release() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, release)
    try:
        yield done
    finally:
        relay.cancel()
        try:
            if not done.done():
                await asyncio.shield(done)  # the engine lets go within one of its rounds
        except asyncio.CancelledError:
            relay.stop()
            raise
        finally:
            loop.remove_reader(fd)
            if counted_as is not None:
                relay_ended(counted_as, relay.stats())
