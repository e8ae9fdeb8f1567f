"""Keep a connection-based tunnel client connected: dial, run until the connection ends, dial again.

gost v2's tun/tap handler retries after 1 s, doubling up to 6 s. gostx does the same, and starts
again from 1 s after a connection that worked, so a server restart costs about a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from gostx.errors import GostError

T = TypeVar("T")


@dataclass
class Backoff:
    first: float = 1.0
    limit: float = 6.0
    current: float = 0.0

    def next(self) -> float:
        self.current = self.first if self.current == 0 else min(self.current * 2, self.limit)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


async def redial_forever(
    dial: Callable[[], Awaitable[T]],
    run: Callable[[T], Awaitable[None]],
    log: logging.LoggerAdapter[logging.Logger],
    what: str,
    backoff: Backoff | None = None,
) -> NoReturn:
    """dial(), then run(conn) until it returns (the connection ended); repeat, waiting backoff between
    failures and after every ended connection. Runs until cancelled."""
    backoff = backoff or Backoff()
    while True:
        try:
            conn = await dial()
        except (OSError, TimeoutError, GostError) as exc:
            delay = backoff.next()
            log.warning(f"{what}: {describe(exc)}; retrying in {delay:g}s")
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        await run(conn)
        delay = backoff.next()
        log.info(f"{what}: connection ended; reconnecting in {delay:g}s")
        await asyncio.sleep(delay)
