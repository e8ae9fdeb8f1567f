"""asyncio helpers shared by the relays."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def until_first_done(*coros: Coroutine[Any, Any, Any]) -> None:
    """Run the coroutines until one of them returns or fails, then cancel the others and wait for all
    of them (their exceptions are swallowed: the caller is ending the relay either way)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
