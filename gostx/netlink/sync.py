"""Run a netlink coroutine from synchronous code, with or without an event loop in this thread."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coro); when this thread already runs a loop (pyroute2 cannot nest in it), in a
    short-lived worker thread, blocking the caller until it is done (milliseconds for netlink).
    Asyncio code should await the *_async functions instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gostx-netlink") as pool:
        return pool.submit(asyncio.run, coro).result()
