"""Run every service of a config in one asyncio loop until SIGINT/SIGTERM.

Start: each service in config order (listener.init, handler.init, preUp); if one fails, the ones
already started are stopped (in reverse order) and the failure is raised as one GostError line.
Then all serve concurrently (postUp, serve). A service whose serve ends or fails is logged and
stopped; when none is left the run ends with exit code 1 (unless the web API runs: services may be
added through it). SIGINT/SIGTERM stop every service (preDown, close, postDown; reverse order) and the
run ends with exit code 0. A second signal while stopping abandons the clean stop (exit code 1).
SIGUSR1 logs every running service's counters.

`metrics:` and `api:` (gostx/metrics/server.py, gostx/api/) are served on this loop. The API changes
services at runtime through `add_service` / `remove_service` / `replace_service`: the others never
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from gostx.config.model import Config, ServiceConfig
from gostx.errors import GostError
from gostx.log import get_logger
from gostx.service import Service, describe_error

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Runner:
    def __init__(self, config: Config, config_path: str = "") -> None:
        self.config = config
        self.config_path = config_path  # -C's file, if one was given
        self.log = get_logger(kind="runner")
        # Build every service first: unknown types fail before anything starts.
        self.services = [Service(cfg, config, i) for i, cfg in enumerate(config.services)]
        self.started: list[Service] = []
        self._stop = asyncio.Event()
        self._signals = 0
        self._main: asyncio.Task[int] | None = None
        self._tasks: dict[asyncio.Task[None], Service] = {}
        self._changed: asyncio.Event | None = None
        self._servers: list[Any] = []  # the metrics and API servers
        self._next_index = len(self.services)

    # ---- services at runtime (the web API) ------------------------------------------------------------
    def running(self, name: str) -> Service | None:
        return next((s for s in self.started if s.name == name), None)

    async def add_service(self, cfg: ServiceConfig) -> Service:
        """Build, start and serve one more service (GostError when it cannot start; nothing is left)."""
        svc = Service(cfg, self.config, self._next_index)
        self._next_index += 1
        await svc.start()
        self.started.append(svc)
        self._tasks[svc.run()] = svc
        if self._changed is not None:
            self._changed.set()
        return svc

    async def remove_service(self, name: str) -> bool:
        """Stop a running service (its port / device is free when this returns). False: not running."""
        svc = self.running(name)
        if svc is None:
            return False
        for task, owner in list(self._tasks.items()):
            if owner is svc:
                del self._tasks[task]
        self.started.remove(svc)
        await svc.stop()
        if self._changed is not None:
            self._changed.set()
        return True

    def log_all_stats(self) -> None:
        """SIGUSR1: every running service's counters."""
        for svc in list(self.started):
            try:
                svc.log_stats()
            except Exception as exc:
                svc.log.warning(f"stats: {describe_error(exc)}")

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
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, self.log_all_stats)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (*STOP_SIGNALS, signal.SIGUSR1):
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

    async def _start_servers(self) -> None:
        if self.config.metrics is not None and self.config.metrics.addr:
            from gostx.metrics.server import MetricsServer

            metrics = MetricsServer(self.config.metrics)
            await metrics.start()
            self._servers.append(metrics)
        if self.config.api is not None and self.config.api.addr:
            from gostx.api.server import ApiServer

            api = ApiServer(self.config.api, self)
            await api.start()
            self._servers.append(api)

    async def _close_servers(self) -> None:
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                await server.close()
        self._servers.clear()

    @property
    def keeps_running(self) -> bool:
        """With the web API a run goes on without services (they may be added through it), as gost's."""
        return self.config.api is not None and bool(self.config.api.addr)

    async def _run(self) -> int:
        self._changed = asyncio.Event()
        try:
            await self._start_servers()
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
        for svc in self.started:
            self._tasks[svc.run()] = svc
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            while (self._tasks or self.keeps_running) and not self._stop.is_set():
                self._changed.clear()
                changed = asyncio.create_task(self._changed.wait())
                try:
                    waiting: list[asyncio.Task[Any]] = [stop_wait, changed, *self._tasks]
                    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                for task in done:
                    ended = self._tasks.pop(task, None)
                    if ended is not None:
                        await self._service_ended(ended, task)
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
        try:
            for svc in reversed(self.started):
                try:
                    await svc.stop()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    svc.log.error(f"stop failed: {describe_error(exc)}", exc_info=exc)
        finally:
            await self._close_servers()


def run(config: Config, config_path: str = "") -> int:
    """Run the config's services until SIGINT/SIGTERM; returns the exit code (GostError on failure)."""

    async def main() -> int:
        return await Runner(config, config_path).run()

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        return 1
