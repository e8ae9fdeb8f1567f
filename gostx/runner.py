"""Run every service of a config in one asyncio loop until SIGINT/SIGTERM.

Start: each service in config order (listener.init, handler.init, preUp); if one fails, the ones
already started are stopped (in reverse order) and the failure is raised as one GostError line.
Then all serve concurrently (postUp, serve). A service whose serve ends or fails is logged and
stopped; when none is left the run ends with exit code 1. SIGINT/SIGTERM stop every service (preDown,
close, postDown; reverse order) and the run ends with exit code 0. A second signal while stopping
abandons the clean stop (exit code 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from gostx.config.model import Config
from gostx.errors import GostError
from gostx.log import get_logger
from gostx.service import Service, describe_error

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Runner:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = get_logger(kind="runner")
        # Build every service first: unknown types fail before anything starts.
        self.services = [Service(cfg, config, i) for i, cfg in enumerate(config.services)]
        self.started: list[Service] = []
        self._stop = asyncio.Event()
        self._signals = 0
        self._main: asyncio.Task[int] | None = None

    def request_stop(self, signame: str = "") -> None:
        self._signals += 1
        if self._signals == 1:
            self.log.info(f"{signame or 'stop'} received, stopping services")
            self._stop.set()
        elif self._main is not None:
            self.log.warning(f"{signame} received again, exiting without a clean stop")
            self._main.cancel()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """Unhandled errors inside the loop become one log line, never a traceback on stderr."""
        exc = context.get("exception")
        message = str(context.get("message") or "unhandled error")
        if isinstance(exc, BaseException):
            self.log.error(f"{message}: {type(exc).__name__}: {exc}", exc_info=exc)
        else:
            self.log.error(message)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_exception)
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.request_stop, sig.name)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)

    async def run(self) -> int:
        """Start, serve until stopped; returns the exit code. Raises GostError if a service cannot start."""
        self._main = asyncio.current_task()
        self._install_signals()
        try:
            return await self._run()
        finally:
            self._remove_signals()

    async def _run(self) -> int:
        try:
            for svc in self.services:
                if self._stop.is_set():
                    break
                await svc.start()
                self.started.append(svc)
        except BaseException:
            await self.stop_all()
            raise
        if self._stop.is_set():
            await self.stop_all()
            return 0
        tasks = {svc.run(): svc for svc in self.started}
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            while tasks and not self._stop.is_set():
                done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
                for task in tasks.keys() & done:  # the services' tasks that ended (not stop_wait)
                    await self._service_ended(tasks.pop(task), task)
        finally:
            stop_wait.cancel()
            await self.stop_all()
        if self._stop.is_set():
            return 0
        raise GostError("all services stopped")

    async def _service_ended(self, svc: Service, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            svc.log.error(f"service failed: {describe_error(exc)}", exc_info=exc)
        else:
            svc.log.warning("service ended")
        await svc.stop()

    async def stop_all(self) -> None:
        for svc in reversed(self.started):
            try:
                await svc.stop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                svc.log.error(f"stop failed: {describe_error(exc)}", exc_info=exc)


def run(config: Config) -> int:
    """Run the config's services until SIGINT/SIGTERM; returns the exit code (GostError on failure)."""

    async def main() -> int:
        return await Runner(config).run()

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        return 1
