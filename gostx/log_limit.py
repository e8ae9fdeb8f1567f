"""Rate-limited log lines for failures a peer can cause at will (a wrong password, a failed TLS handshake,
a bad WebSocket frame): the first `burst` of a window are logged as they come, the rest are counted, and
the next line logged says how many were left out. A password-guessing or handshake flood then costs the
log a few lines per window, not one per attempt; the metrics still count every one of them.

    AUTH_FAILURES = RateLimitedLog()
    AUTH_FAILURES.log(ctx.log, logging.INFO, f"{peer}: authentication failed", extra={"remote": peer})
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

BURST = 10       # lines logged per window
WINDOW = 10.0    # seconds


class RateLimitedLog:
    """One kind of peer-caused failure line (one instance per kind, shared by every connection)."""

    def __init__(self, burst: int = BURST, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.window = window
        self.clock = clock
        self.started = 0.0   # when the current window began
        self.logged = 0      # lines logged in it
        self.left_out = 0    # lines not logged since the last one that was

    def log(self, logger: Any, level: int, msg: str, **kwargs: Any) -> bool:
        """logger.log(level, msg, **kwargs) unless this window's burst is spent; True when logged."""
        if not logger.isEnabledFor(level):
            return False
        now = self.clock()
        if self.logged == 0 or now - self.started >= self.window:
            self.started, self.logged = now, 0
        if self.logged >= self.burst:
            self.left_out += 1
            return False
        self.logged += 1
        if self.left_out:
            msg = f"{msg} ({self.left_out} more like it not logged)"
            kwargs["extra"] = {**kwargs.get("extra", {}), "notLogged": self.left_out}
            self.left_out = 0
        logger.log(level, msg, **kwargs)
        return True
