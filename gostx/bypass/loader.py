"""Bypasses from the config model (`bypasses:` and the services', hops' and nodes' references).

    registry = build_bypasses(config)               # name -> Bypass, built once; references checked
    group = registry.for_hop(hop_config)            # BypassGroup of `bypass` + `bypasses`, or None

Build the registry once per config (the runner) and hand it to the services: the service's group
(`for_service`) is checked by the handler (gostx.bypass.levels.service_rejects), the hops' and
nodes' groups by the chain router (hop_cuts, node_excluded, route_candidates).

Patterns come from `matchers` (each trimmed; empty ones skipped) followed by `file.path` (one a
line, '#' comments). `reload` is logged and ignored: the rules are read once at start. Sources gostx
does not have (redis, http, plugin), an unreadable file, two bypasses with one name and a reference
to an unknown name are GostErrors with one line (gost would warn or silently skip; see README).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from gostx.bypass.bypass import Bypass, BypassGroup, parse_pattern_lines
from gostx.config.model import BypassConfig, Config, ForwardNodeConfig, HopConfig, NodeConfig, ServiceConfig
from gostx.errors import GostError
from gostx.log import FieldLogger, get_logger


def load_bypass(cfg: BypassConfig, log: FieldLogger | None = None) -> Bypass:
    """One BypassConfig -> Bypass (GostError when it cannot be built as configured)."""
    log = log or get_logger(kind="bypass", bypass=cfg.name)
    where = f"bypass '{cfg.name}'"
    for source, present in (("redis", cfg.redis is not None and bool(cfg.redis.addr)),
                            ("http", cfg.http is not None and bool(cfg.http.url)),
                            ("plugin", cfg.plugin is not None)):
        if present:
            raise GostError(f"{where}: the {source} source is not supported (use matchers or file)")
    patterns = [m.strip() for m in cfg.matchers if m.strip()]
    if cfg.file is not None and cfg.file.path:
        patterns += _read_file(cfg.file.path, where)
    if cfg.reload:
        log.info(f"reload every {cfg.reload} is not supported: the rules were loaded once")
    log.debug(f"load items {len(patterns)}")
    return Bypass(cfg.name, patterns, whitelist=cfg.whitelist or cfg.reverse)


def _read_file(path: str, where: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_pattern_lines(f.read())
    except OSError as exc:
        raise GostError(f"{where}: cannot read file {path}: {exc.strerror or exc}") from None


class BypassRegistry(Mapping[str, Bypass]):
    """The named bypasses of one config (a read-only name -> Bypass mapping), and the groups its
    services, hops and nodes reference."""

    def __init__(self, bypasses: dict[str, Bypass]) -> None:
        self.bypasses = bypasses

    def __getitem__(self, name: str) -> Bypass:
        return self.bypasses[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.bypasses)

    def __len__(self) -> int:
        return len(self.bypasses)

    def get(self, name: str) -> Bypass:  # type: ignore[override]  # a GostError naming the known ones, never None
        try:
            return self.bypasses[name]
        except KeyError:
            known = ", ".join(sorted(self.bypasses)) or "none defined"
            raise GostError(f"bypass '{name}' not found (bypasses: {known})") from None

    def group(self, name: str = "", names: Iterable[str] = ()) -> BypassGroup | None:
        """`bypass: name` + `bypasses: [names]` as one group, or None when both are empty."""
        members = [self.get(n) for n in (name, *names) if n]
        return BypassGroup(members) if members else None

    def for_service(self, service: ServiceConfig) -> BypassGroup | None:
        return self.group(service.bypass, service.bypasses)

    def for_hop(self, hop: HopConfig) -> BypassGroup | None:
        return self.group(hop.bypass, hop.bypasses)

    def for_node(self, node: NodeConfig | ForwardNodeConfig) -> BypassGroup | None:
        return self.group(node.bypass, node.bypasses)


def build_bypasses(config: Config, check: bool = True) -> BypassRegistry:
    """Every entry of `bypasses:` built once, by name; with `check`, also a GostError for any
    service, hop or node that names a bypass the config lacks (see check_references)."""
    bypasses: dict[str, Bypass] = {}
    for cfg in config.bypasses:
        if not cfg.name:
            get_logger(kind="bypass").warning("a bypass without a name is ignored (nothing can refer to it)")
            continue
        if cfg.name in bypasses:
            raise GostError(f"bypass '{cfg.name}' is defined twice")
        bypasses[cfg.name] = load_bypass(cfg)
    registry = BypassRegistry(bypasses)
    if check:
        check_references(config, registry)
    return registry


def check_references(config: Config, registry: BypassRegistry) -> None:
    """GostError for the first service, hop or node that names a bypass the config lacks."""
    def check(owner: str, name: str, names: Iterable[str]) -> None:
        for n in (name, *names):
            if n and n not in registry:
                raise GostError(f"{owner}: bypass '{n}' not found")

    for service in config.services:
        check(f"service '{service.name}'", service.bypass, service.bypasses)
        if service.forwarder is not None:
            for fnode in service.forwarder.nodes:
                check(f"service '{service.name}' forwarder node '{fnode.name}'", fnode.bypass, fnode.bypasses)
    hops = [*config.hops, *(hop for chain in config.chains for hop in chain.hops)]
    for hop in hops:
        check(f"hop '{hop.name}'", hop.bypass, hop.bypasses)
        for node in hop.nodes:
            check(f"hop '{hop.name}' node '{node.name}'", node.bypass, node.bypasses)
