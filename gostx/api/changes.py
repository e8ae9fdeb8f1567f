"""The web API's changes to the running config, applied through the runner's service lifecycle.

Every change is checked on a candidate first (a chain, hop or bypass is built; a service is started):
a change that fails leaves the running config as it was. Objects are looked up by name, as gost does.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from gostx.api import errors
from gostx.config.convert import from_dict
from gostx.config.errors import ConfigError
from gostx.config.model import BypassConfig, ChainConfig, Config, HopConfig, ServiceConfig
from gostx.errors import GostError
from gostx.log import get_logger

if TYPE_CHECKING:
    from gostx.runner import Runner

KINDS: dict[str, tuple[str, type]] = {  # route -> (Config attribute, model class)
    "services": ("services", ServiceConfig),
    "chains": ("chains", ChainConfig),
    "hops": ("hops", HopConfig),
    "bypasses": ("bypasses", BypassConfig),
}

log = get_logger(kind="api")


def parse_object(kind: str, body: Any) -> Any:
    """The JSON body -> the model object; gost's 40001 for anything that is not one."""
    if not isinstance(body, dict):
        raise errors.invalid()
    try:
        return from_dict(KINDS[kind][1], body, kind)
    except ConfigError as exc:
        log.info(f"{kind}: {exc}")
        raise errors.invalid() from None


def _check_routing(config: Config) -> None:
    """Build every chain and bypass of a candidate config: GostError when one cannot be built."""
    from gostx.bypass import build_bypasses
    from gostx.chain.builder import build_chain, config_bypasses

    build_bypasses(config, check=True)
    bypass_of = config_bypasses(config)
    for chain in config.chains:
        build_chain(chain, config, bypass_of)


def _refresh_routing(runner: Runner) -> None:
    """Give every running router its chain rebuilt from the config, and every handler with a service
    bypass its new one: new connections use them, connections already made keep theirs."""
    from gostx.chain.builder import build_chain, config_bypasses, service_bypass
    from gostx.chain.router import live_routers

    config = runner.config
    bypass_of = config_bypasses(config)
    by_name = {c.name: c for c in config.chains if c.name}
    built: dict[str, Any] = {}
    for router in live_routers():
        name = router.chain.name if router.chain is not None else ""
        if name in by_name:
            if name not in built:
                built[name] = build_chain(by_name[name], config, bypass_of)
            router.replace_chain(built[name])
    for svc in runner.started:
        if hasattr(svc.handler, "bypass"):
            svc.handler.bypass = service_bypass(config, svc.name)


def _index(items: list[Any], name: str) -> int:
    return next((i for i, item in enumerate(items) if item.name == name), -1)


async def create(runner: Runner, kind: str, obj: Any) -> None:
    attr = KINDS[kind][0]
    items: list[Any] = getattr(runner.config, attr)
    if not obj.name:
        raise errors.invalid()
    if _index(items, obj.name) >= 0:
        raise errors.duplicated()
    if kind == "services":
        await _start_service(runner, obj, items, len(items))
        return
    await _apply_routing(runner, attr, [*items, obj])


async def replace(runner: Runner, kind: str, name: str, obj: Any) -> None:
    attr = KINDS[kind][0]
    items: list[Any] = getattr(runner.config, attr)
    at = _index(items, name)
    if at < 0:
        raise errors.not_found()
    obj = dataclasses.replace(obj, name=name)
    if kind == "services":
        old = items[at]
        await runner.remove_service(name)
        del items[at]
        try:
            await _start_service(runner, obj, items, at)
        except errors.ApiError:
            items.insert(at, old)  # gost leaves the old one stopped; gostx brings it back
            try:
                await runner.add_service(old)
            except GostError as exc:
                log.error(f"service {name}: the old service did not restart: {exc}")
            raise
        return
    await _apply_routing(runner, attr, [*items[:at], obj, *items[at + 1:]])


async def delete(runner: Runner, kind: str, name: str) -> None:
    attr = KINDS[kind][0]
    items: list[Any] = getattr(runner.config, attr)
    at = _index(items, name)
    if at < 0:
        raise errors.not_found()
    if kind == "services":
        await runner.remove_service(name)
        del items[at]
        log.info(f"service {name} deleted")
        return
    await _apply_routing(runner, attr, [*items[:at], *items[at + 1:]], deleting=True)


async def _start_service(runner: Runner, cfg: ServiceConfig, items: list[Any], at: int) -> None:
    items.insert(at, cfg)  # in the config first: plugins look their service up there (bypass, ports)
    try:
        await runner.add_service(cfg)
    except (GostError, ConfigError, OSError) as exc:
        items.remove(cfg)
        log.warning(f"service {cfg.name}: {exc}")
        raise errors.create_failed() from None
    log.info(f"service {cfg.name} created")


async def _apply_routing(runner: Runner, attr: str, new_items: list[Any], deleting: bool = False) -> None:
    """Chains, hops, bypasses: check the candidate, then commit and refresh the running routers. A deleted
    chain stays in use by the services that run with it (gost would dial them directly from then on)."""
    changes: dict[str, Any] = {attr: new_items}  # attr names a list field of Config
    candidate = dataclasses.replace(runner.config, **changes)
    try:
        if not deleting:
            _check_routing(candidate)
    except (GostError, ConfigError, OSError) as exc:
        log.warning(f"{attr}: {exc}")
        raise errors.create_failed() from None
    getattr(runner.config, attr)[:] = new_items  # the running services hold this Config object
    try:
        _refresh_routing(runner)
    except (GostError, ConfigError, OSError) as exc:
        log.warning(f"{attr}: running routers kept their chains: {exc}")
