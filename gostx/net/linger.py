"""Half-close for streams that cannot send one (WebSocket; TLS through Python's ssl, which cannot send a
close_notify and go on reading). gost's pipe closes a connection without CloseWrite (its WebSocket conn)
as soon as one direction ends; `Linger` does that for one stream: `start()` (from write_eof) arms a timer
of `seconds` (0 by default: at once); a read still waiting when it fires ends as EOF, so the relay of the
other direction ends and the connection closes. `await linger.wait(x)` returns x's result, or None once
the time is over."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

LINGER_SECONDS = 0.0
T = TypeVar("T")


class Linger:
    def __init__(self, seconds: float = LINGER_SECONDS) -> None:
        self.seconds = seconds
        self.expired = False
        self._handle: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Task[object] | None = None

    def start(self) -> None:
        if self._handle is None and not self.expired:
            self._handle = asyncio.get_running_loop().call_later(self.seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()

    async def wait(self, awaitable: Awaitable[T]) -> T | None:
        if self.expired:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            return None
        task = asyncio.current_task()
        self._waiter = task
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self.expired and task is not None and task.cancelling() == 1:
                task.uncancel()  # our own cancellation: the read ends as EOF
                return None
            raise
        finally:
            self._waiter = None

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
