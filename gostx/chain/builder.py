"""Config -> Chain and Router (go-gost/x config/parsing/chain, hop, node).

- A chain's hop entry with neither nodes nor a plugin names a top-level `hops:` entry.
- Node defaults: connector `http`, dialer `tcp`. A node reaches its address with `interface`/`so_mark`
  from its own metadata (or its `interface`/`sockopts` fields), else from its hop's.
- Bypasses are named (`hop.bypass`, `node.bypass`) and resolved by a `bypass_of(name)` function; by
  default the config's `bypasses:` (gostx.bypass): a hop bypass cuts the route, a node bypass drops the
  node from its hop's candidates.
"""

from __future__ import annotations

from collections.abc import Callable

from gostx.chain.plugin import Connector, Dialer, NodeSpec
from gostx.chain.route import Bypass, Chain, Hop, Node
from gostx.chain.router import Router
from gostx.chain.selector import Selector
from gostx.config.metadata import Metadata
from gostx.config.model import (
    ChainConfig,
    Config,
    ConnectorConfig,
    DialerConfig,
    HopConfig,
    NodeConfig,
    ServiceConfig,
)
from gostx.errors import GostError
from gostx.log import FieldLogger
from gostx.net.direct import DEFAULT_DIAL_TIMEOUT, DialOptions
from gostx.registry import connectors, dialers

BypassOf = Callable[[str], Bypass | None]


def _bypass(names: list[str], bypass_of: BypassOf | None, where: str) -> Bypass | None:
    names = [n for n in names if n]
    if not names:
        return None
    if bypass_of is None:
        raise GostError(f"{where}: no bypass registry")
    found = [b for b in (bypass_of(n) for n in names) if b is not None]
    if len(found) != len(names):
        raise GostError(f"{where}: bypass '{names[0]}' not found")
    if len(found) == 1:
        return found[0]
    return _AnyBypass(found)


class _AnyBypass:
    def __init__(self, bypasses: list[Bypass]) -> None:
        self.bypasses = bypasses

    def contains(self, addr: str) -> bool:
        return any(b.contains(addr) for b in self.bypasses)


def _dial_options(node: NodeConfig, hop: HopConfig) -> DialOptions:
    node_md, hop_md = Metadata(node.metadata), Metadata(hop.metadata)
    interfaces = (node_md.get_strings("interface") or ([node.interface] if node.interface else [])
                  or hop_md.get_strings("interface") or ([hop.interface] if hop.interface else []))
    mark = (node_md.get_int("so_mark", "sockopts.mark") or (node.sockopts.mark if node.sockopts else 0)
            or hop_md.get_int("so_mark", "sockopts.mark") or (hop.sockopts.mark if hop.sockopts else 0))
    return DialOptions(mark=mark, interfaces=[i for i in interfaces if i.rstrip("!")])  # `!`: strict


def build_node(cfg: NodeConfig, hop: HopConfig, bypass_of: BypassOf | None = None) -> Node:
    where = f"node {cfg.name or cfg.addr}"
    if not cfg.addr:
        raise GostError(f"{where}: no address")
    connector_cfg = cfg.connector or ConnectorConfig()
    dialer_cfg = cfg.dialer or DialerConfig()
    spec = NodeSpec(name=cfg.name, addr=cfg.addr, metadata=Metadata(cfg.metadata))
    try:
        connector: Connector = connectors.get(connector_cfg.type or "http")(connector_cfg, spec)
        dialer: Dialer = dialers.get(dialer_cfg.type or "tcp")(dialer_cfg, spec)
    except GostError as exc:
        raise GostError(f"{where}: {exc}") from None
    if dialer.multiplex:
        raise GostError(f"{where}: multiplexing dialer '{dialer_cfg.type}' is not supported yet")
    return Node(name=cfg.name, addr=cfg.addr, dialer=dialer, connector=connector,
                dial_options=_dial_options(cfg, hop), metadata=spec.metadata,
                bypass=_bypass([cfg.bypass, *cfg.bypasses], bypass_of, where))


def _resolve_hop(entry: HopConfig, config: Config) -> HopConfig:
    if entry.nodes or entry.plugin is not None:
        return entry
    for hop in config.hops:
        if hop.name == entry.name:
            return hop
    raise GostError(f"hop '{entry.name}' not found")


def config_bypasses(config: Config) -> BypassOf:
    """Names -> the config's bypasses (gostx.bypass); GostError for a bad or unknown one."""
    from gostx.bypass import build_bypasses

    registry = build_bypasses(config, check=False)
    return registry.get


def service_bypass(config: Config, service_name: str) -> Bypass | None:
    """The bypass (group) a service names (`service.bypass`, `bypasses`), or None."""
    from gostx.bypass import build_bypasses

    svc: ServiceConfig | None = next((s for s in config.services if s.name == service_name), None)
    if svc is None or not (svc.bypass or svc.bypasses):
        return None
    return build_bypasses(config, check=False).for_service(svc)


def build_chain(cfg: ChainConfig, config: Config, bypass_of: BypassOf | None = None) -> Chain:
    if bypass_of is None:
        bypass_of = config_bypasses(config)
    hops = []
    for entry in cfg.hops:
        hop_cfg = _resolve_hop(entry, config)
        where = f"chain {cfg.name}: hop {hop_cfg.name}"
        if hop_cfg.plugin is not None:
            raise GostError(f"{where}: hop plugins are not supported")
        if not hop_cfg.nodes:
            raise GostError(f"{where}: no nodes")
        try:
            nodes = [build_node(n, hop_cfg, bypass_of) for n in hop_cfg.nodes]
        except GostError as exc:
            raise GostError(f"{where}: {exc}") from None
        hops.append(Hop(name=hop_cfg.name, nodes=nodes, selector=Selector(hop_cfg.selector, where),
                        bypass=_bypass([hop_cfg.bypass, *hop_cfg.bypasses], bypass_of, where)))
    return Chain(name=cfg.name, hops=hops)


def build_router(chain: ChainConfig | None, config: Config, service_md: Metadata, retries: int = 0,
                 bypass_of: BypassOf | None = None, log: FieldLogger | None = None) -> Router:
    """The Router of one service: its handler's chain (may be None), `retries`, and from the service
    metadata `dialTimeout` plus `interface`/`so_mark` for direct dials."""
    direct = DialOptions.from_metadata(service_md)
    direct.check_privileges()
    timeout = service_md.get_duration("dialTimeout", default=DEFAULT_DIAL_TIMEOUT)
    built = build_chain(chain, config, bypass_of) if chain is not None else None
    return Router(built, retries=retries, timeout=timeout, direct=direct, log=log)
