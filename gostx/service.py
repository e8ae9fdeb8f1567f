"""A service = listener + handler (+ chain), with gost's lifecycle and hook commands.

The plugin interface
--------------------
A listener plugin subclasses `Listener`, a handler plugin subclasses `Handler`; each registers under
gost's name in gostx.registry and is listed in gostx.plugins. Both get their own config section
(ListenerConfig / HandlerConfig, whose `metadata` each plugin parses itself) and the ServiceContext.

    class Listener(abc.ABC):
        def __init__(self, config: ListenerConfig, ctx: ServiceContext) -> None
        async def init(self) -> None     # bind sockets / create devices; raise GostError on failure
        async def close(self) -> None    # idempotent; also called after a failed init
    class Handler(abc.ABC):
        def __init__(self, config: HandlerConfig, ctx: ServiceContext) -> None
        async def init(self) -> None
        async def serve(self, listener: Listener) -> None   # runs until cancelled; drives its listener
        async def close(self) -> None    # idempotent

Every listener bounds its clients (gostx/listener/limits.py): `ctx.conn_limiter` caps concurrent
connections (gost's `climiter`, else a default), and TCP-based listeners have a `handshakeTimeout`.

Optional: a listener may override the `address` property (default: the service addr) that the
service logs as "listening on <address>" once it serves.

What a listener hands to its handler is between the two (e.g. TcpListener.accept() gives sockets,
UdpListener.accept() gives client sessions); a handler checks the listener type it can serve and
raises GostError for one it cannot.

Lifecycle (gost X:service/service.go): listener.init -> handler.init -> preUp  (= `start`), then
postUp -> handler.serve  (= `run`); on stop: preDown -> serve cancelled -> handler.close ->
listener.close -> postDown. Errors from init become GostError("<service>: <message>"); hook command
failures are only logged.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from dataclasses import dataclass, field

from gostx.config.metadata import Metadata
from gostx.config.model import (
    ChainConfig,
    Config,
    ForwarderConfig,
    HandlerConfig,
    ListenerConfig,
    ServiceConfig,
)
from gostx.errors import GostError
from gostx.hooks import run_hooks
from gostx.listener.limits import ConnLimiter, find_climiter, raise_open_file_limit
from gostx.log import FieldLogger, get_logger
from gostx.metrics.counters import ServiceCounters, service_started, service_stopped
from gostx.registry import handlers, listeners


@dataclass
class ServiceContext:
    """What every plugin of one service may read."""

    name: str
    addr: str
    metadata: Metadata  # the service metadata
    forwarder: ForwarderConfig | None
    chain: ChainConfig | None  # the handler's chain, resolved by name; None without one
    config: Config  # the whole config
    log: FieldLogger  # bound: service, kind, handler, listener
    # the service's cap on concurrent connections (its `climiter`, else the default: gostx/listener/limits.py)
    conn_limiter: ConnLimiter = field(default_factory=ConnLimiter)
    # gost's per-service counters (requests, bytes, errors): metrics and `kill -USR1` read them
    counters: ServiceCounters = field(default_factory=lambda: ServiceCounters(""))


class Listener(abc.ABC):
    def __init__(self, config: ListenerConfig, ctx: ServiceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.metadata = Metadata(config.metadata)

    @abc.abstractmethod
    async def init(self) -> None:
        """Bind sockets / create devices; raise GostError on failure."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything; idempotent."""

    @property
    def address(self) -> str:
        """What the service logs as "listening on ..." once it serves (the bound address)."""
        return self.ctx.addr


class Handler(abc.ABC):
    def __init__(self, config: HandlerConfig, ctx: ServiceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.metadata = Metadata(config.metadata)

    @abc.abstractmethod
    async def init(self) -> None:
        """Parse metadata, prepare; raise GostError on failure."""

    @abc.abstractmethod
    async def serve(self, listener: Listener) -> None:
        """Serve the listener until cancelled."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything; idempotent."""


UNSUPPORTED_HANDLERS = {"auto": "handler 'auto' is not supported yet"}


def resolve_chain(name: str, config: Config) -> ChainConfig | None:
    if not name:
        return None
    for chain in config.chains:
        if chain.name == name:
            return chain
    raise GostError(f"chain '{name}' not found")


def describe_error(exc: BaseException) -> str:
    """One line for an exception escaping a plugin."""
    if isinstance(exc, GostError):
        return str(exc)
    if isinstance(exc, OSError):
        return exc.strerror.lower() if exc.strerror else str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


class Service:
    """One configured service: builds its plugins, runs their lifecycle."""

    def __init__(self, cfg: ServiceConfig, config: Config, index: int = 0) -> None:
        self.name = cfg.name or f"service-{index}"
        handler_cfg = cfg.handler or HandlerConfig()
        listener_cfg = cfg.listener or ListenerConfig()
        self.handler_type = handler_cfg.type or "auto"
        self.listener_type = listener_cfg.type or "tcp"
        if self.handler_type not in handlers and self.handler_type in UNSUPPORTED_HANDLERS:
            raise GostError(f"{self.name}: {UNSUPPORTED_HANDLERS[self.handler_type]}")
        try:
            handler_cls = handlers.get(self.handler_type)
            listener_cls = listeners.get(self.listener_type)
            chain = resolve_chain(handler_cfg.chain, config)
            raise_open_file_limit()
            conn_limiter = ConnLimiter.from_config(find_climiter(cfg.climiter, config))
        except GostError as exc:
            raise GostError(f"{self.name}: {exc}") from None
        self.log: FieldLogger = get_logger(kind="service", service=self.name, handler=self.handler_type,
                                           listener=self.listener_type)
        self.metadata = Metadata(cfg.metadata)
        self.config = cfg
        self.counters = ServiceCounters(self.name)
        self.ctx = ServiceContext(name=self.name, addr=cfg.addr, metadata=self.metadata,
                                  forwarder=cfg.forwarder, chain=chain, config=config, log=self.log,
                                  conn_limiter=conn_limiter, counters=self.counters)
        # The listen address lives on the service; plugins read it from ctx.addr.
        self.listener: Listener = listener_cls(listener_cfg, self.ctx)
        self.handler: Handler = handler_cls(handler_cfg, self.ctx)
        self._started = False
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """listener.init -> handler.init -> preUp. On failure everything is released, GostError raised."""
        try:
            await self.listener.init()
            await self.handler.init()
        except asyncio.CancelledError:
            await self._release()
            raise
        except Exception as exc:
            self.log.debug("init failed", exc_info=True)
            await self._release()
            raise GostError(f"{self.name}: {describe_error(exc)}") from None
        await run_hooks(self.metadata, "preUp", self.log)
        self._started = True
        service_started(self.counters)

    def run(self) -> asyncio.Task[None]:
        """Start serving in a task: postUp, then handler.serve(listener)."""
        if not self._started:
            raise RuntimeError(f"service {self.name} is not started")
        if self._task is None:
            self._task = asyncio.create_task(self._serve(), name=f"gostx-{self.name}")
        return self._task

    async def _serve(self) -> None:
        await run_hooks(self.metadata, "postUp", self.log)
        address = self.listener.address
        self.log.info(f"listening on {address}", extra={"address": address})
        await self.handler.serve(self.listener)

    async def stop(self) -> None:
        """preDown -> cancel serve -> handler.close -> listener.close -> postDown. Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        service_stopped(self.counters)
        await run_hooks(self.metadata, "preDown", self.log)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._release()
        await run_hooks(self.metadata, "postDown", self.log)
        self.log.info("service stopped")

    def log_stats(self) -> None:
        """`kill -USR1`: the handler's own counters (tun, tap, tungo: from C), then gost's per-service ones."""
        if not self._started or self._stopped:
            return
        handler_stats = getattr(self.handler, "log_stats", None)
        if callable(handler_stats):
            handler_stats()
        self.log.info("service counters", extra={"counters": self.counters.totals()})

    async def _release(self) -> None:
        for closer in (self.handler.close, self.listener.close):
            try:
                await closer()
            except Exception:
                self.log.warning("close failed", exc_info=True)
