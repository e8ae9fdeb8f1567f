"""Service lifecycle and the runner, with recording plugins: order, failures, stop, signals."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gostx.config.model import Config, HandlerConfig, ListenerConfig, ServiceConfig
from gostx.errors import GostError
from gostx.log import ROOT_LOGGER, setup_logging
from gostx.plugins import load_builtin_plugins
from gostx.registry import handlers, listeners
from gostx.runner import Runner
from gostx.service import Handler, Listener, Service, ServiceContext

EVENTS: list[str] = []


def record(event: str) -> None:
    EVENTS.append(event)


@listeners.register("gx-test-recorder")
class RecorderListener(Listener):
    async def init(self) -> None:
        if self.metadata.get_bool("failInit"):
            raise GostError("cannot create device tun9")
        if self.metadata.get_bool("permInit"):
            raise PermissionError(1, "Operation not permitted")
        record(f"{self.ctx.name}:listener.init")

    async def close(self) -> None:
        record(f"{self.ctx.name}:listener.close")


@handlers.register("gx-test-recorder")
class RecorderHandler(Handler):
    async def init(self) -> None:
        if self.metadata.get_bool("failInit"):
            raise RuntimeError("bug in handler")
        record(f"{self.ctx.name}:handler.init")

    async def serve(self, listener: Listener) -> None:
        record(f"{self.ctx.name}:serve")
        if self.metadata.get_bool("crash"):
            raise OSError(5, "Input/output error")
        await asyncio.Event().wait()

    async def close(self) -> None:
        record(f"{self.ctx.name}:handler.close")


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[io.StringIO]:
    load_builtin_plugins()
    EVENTS.clear()
    logger = logging.getLogger(ROOT_LOGGER)
    saved = (list(logger.handlers), logger.level)
    out = io.StringIO()
    setup_logging(None, level_override="debug", stream=out)
    yield out
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in saved[0]:
        logger.addHandler(h)
    logger.setLevel(saved[1])


def hook(tmp_path: Path, stage: str, name: str) -> str:
    """A hook command that appends '<name>:<stage>' to events.txt (no shell involved)."""
    code = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"
    return shlex.join([sys.executable, "-c", code, str(tmp_path / "events.txt"), f"{name}:{stage}"])


def service(tmp_path: Path, name: str, handler_md: dict | None = None, listener_md: dict | None = None,
            handler: str = "gx-test-recorder", listener: str = "gx-test-recorder") -> ServiceConfig:
    md = {stage: [hook(tmp_path, stage, name)] for stage in ("preUp", "postUp", "preDown", "postDown")}
    return ServiceConfig(name=name, addr=":0", handler=HandlerConfig(type=handler, metadata=handler_md or {}),
                         listener=ListenerConfig(type=listener, metadata=listener_md or {}), metadata=md)


def hook_events(tmp_path: Path) -> list[str]:
    path = tmp_path / "events.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_lifecycle_order_matches_gost(tmp_path: Path) -> None:
    async def scenario() -> None:
        svc = Service(service(tmp_path, "s"), Config())
        await svc.start()
        record("started")
        svc.run()
        await asyncio.sleep(0.3)  # postUp runs, then serve
        record("stopping")
        await svc.stop()
        await svc.stop()  # idempotent

    asyncio.run(scenario())
    # Plugin events and hook events are in two logs; merge by the known checkpoints.
    assert EVENTS == ["s:listener.init", "s:handler.init", "started", "s:serve", "stopping",
                      "s:handler.close", "s:listener.close"]
    assert hook_events(tmp_path) == ["s:preUp", "s:postUp", "s:preDown", "s:postDown"]


def test_context_is_bound_for_plugins(tmp_path: Path) -> None:
    cfg = Config(services=[service(tmp_path, "svc-x")])

    async def scenario() -> ServiceContext:
        return Service(cfg.services[0], cfg).ctx

    ctx = asyncio.run(scenario())
    assert (ctx.name, ctx.addr, ctx.config, ctx.chain) == ("svc-x", ":0", cfg, None)
    assert ctx.log.extra == {"kind": "service", "service": "svc-x", "handler": "gx-test-recorder",
                             "listener": "gx-test-recorder"}


def test_unknown_types_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(GostError) as err:
        Service(service(tmp_path, "s", handler="nope"), Config())
    assert str(err.value).startswith("s: unknown handler type 'nope' (supported: ")
    assert "tcp" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GostError, match="s: unknown listener type 'kcpx'"):
        Service(service(tmp_path, "s", listener="kcpx"), Config())


def test_auto_is_the_default_handler(tmp_path: Path) -> None:
    cfg = ServiceConfig(name="", addr=":0")  # no handler section: gost's default type is auto
    assert Service(cfg, Config(), index=3).handler_type == "auto"


def test_missing_chain_is_an_error(tmp_path: Path) -> None:
    cfg = service(tmp_path, "s")
    assert cfg.handler is not None
    cfg.handler.chain = "chain-0"
    with pytest.raises(GostError, match="s: chain 'chain-0' not found"):
        Service(cfg, Config())


@pytest.mark.parametrize(("where", "md", "message"), [
    ("listener", {"failInit": True}, "s: cannot create device tun9"),
    ("listener", {"permInit": True}, "s: operation not permitted"),
    ("handler", {"failInit": True}, "s: internal error: RuntimeError: bug in handler"),
])
def test_init_failure_releases_and_skips_hooks(tmp_path: Path, where: str, md: dict, message: str) -> None:
    cfg = service(tmp_path, "s", **({"listener_md": md} if where == "listener" else {"handler_md": md}))

    async def scenario() -> None:
        await Service(cfg, Config()).start()

    with pytest.raises(GostError) as err:
        asyncio.run(scenario())
    assert str(err.value) == message
    assert EVENTS[-2:] == ["s:handler.close", "s:listener.close"]
    assert hook_events(tmp_path) == []


def test_runner_stops_started_services_when_a_later_one_fails(tmp_path: Path) -> None:
    cfg = Config(services=[service(tmp_path, "a"), service(tmp_path, "b", listener_md={"failInit": True})])

    async def scenario() -> None:
        await Runner(cfg).run()

    with pytest.raises(GostError, match="b: cannot create device tun9"):
        asyncio.run(scenario())
    assert hook_events(tmp_path) == ["a:preUp", "a:preDown", "a:postDown"]
    assert "a:listener.close" in EVENTS


def test_runner_nothing_starts_when_a_type_is_unknown(tmp_path: Path) -> None:
    cfg = Config(services=[service(tmp_path, "a"), service(tmp_path, "b", handler="nope")])
    with pytest.raises(GostError, match="unknown handler type 'nope'"):
        Runner(cfg)
    assert EVENTS == [] and hook_events(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_every_service_in_reverse_order_exit_zero(tmp_path: Path, sig: signal.Signals) -> None:
    cfg = Config(services=[service(tmp_path, "a"), service(tmp_path, "b")])

    async def scenario() -> int:
        runner = Runner(cfg)
        task = asyncio.create_task(runner.run())
        for _ in range(100):
            await asyncio.sleep(0.05)
            if EVENTS.count("a:serve") and EVENTS.count("b:serve"):
                break
        os.kill(os.getpid(), sig)
        return await asyncio.wait_for(task, 20)

    assert asyncio.run(scenario()) == 0
    events = hook_events(tmp_path)
    assert events[:2] == ["a:preUp", "b:preUp"]
    assert events[-4:] == ["b:preDown", "b:postDown", "a:preDown", "a:postDown"]
    assert EVENTS.index("b:listener.close") < EVENTS.index("a:handler.close")


def test_a_crashing_service_is_stopped_and_the_others_keep_running(
        tmp_path: Path, quiet_logs: io.StringIO) -> None:
    cfg = Config(services=[service(tmp_path, "ok"), service(tmp_path, "bad", handler_md={"crash": True})])

    async def scenario() -> int:
        runner = Runner(cfg)
        task = asyncio.create_task(runner.run())
        for _ in range(100):
            await asyncio.sleep(0.05)
            if "bad:postDown" in hook_events(tmp_path):
                break
        assert not task.done()
        runner.request_stop("TEST")
        return await asyncio.wait_for(task, 20)

    assert asyncio.run(scenario()) == 0
    assert "service failed: input/output error" in quiet_logs.getvalue()
    assert hook_events(tmp_path).count("ok:postDown") == 1


def test_when_every_service_has_ended_the_run_fails(tmp_path: Path) -> None:
    cfg = Config(services=[service(tmp_path, "bad", handler_md={"crash": True})])

    async def scenario() -> int:
        return await asyncio.wait_for(Runner(cfg).run(), 20)

    with pytest.raises(GostError, match="all services stopped"):
        asyncio.run(scenario())
    assert hook_events(tmp_path)[-1] == "bad:postDown"
