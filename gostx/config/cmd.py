"""gost's command line (`-L` services, `-F` chain nodes) compiled into the config model, as
go-gost/x `config/cmd/cmd.go` does for gost 3.2.6.

    build_config(["tungo://:0?net=192.168.123.1/24"], ["relay+wss://SRV:443?interface=eth0"])

Where gost would quietly do something useless, gostx stops with a ConfigError instead: a bad port
or port range (gost: port 0), a query with a bad %-escape or a `;` (gost: drops the pair), an -F node
without a host. Deliberate differences from 3.2.6, all harmless for valid input:
- each service of a port range gets its own copy of the handler/listener and its own bypass,
  admission, resolver, hosts and limiters (3.2.6 shares one handler, so only the first service of
  `:8000-8002?bypass=x` got the bypass; gost HEAD copies too);
- each node of `-F "socks5://h1:p,h2:p"` gets its own host as the dialer TLS serverName (3.2.6 gives
  every node the text "h1:p,h2");
- empty items in a forward-target list (`/a:1,,b:2`) are skipped.
"""

from __future__ import annotations

from gostx.config import names
from gostx.config.cmd_chain import build_hop
from gostx.config.cmd_service import build_services, extract_service_components
from gostx.config.cmdurl import norm
from gostx.config.model import ChainConfig, Config, ServiceConfig

__all__ = ["build_config", "norm"]


def build_config(services: list[str], nodes: list[str], notes: list[str] | None = None) -> Config:
    """-L URLs and -F URLs -> Config. Raises ConfigError naming the offending argument; what gost does
    silently but a user should hear of (an unknown -L or -F type) is appended to `notes`."""
    cfg = Config()
    chain: ChainConfig | None = None
    if nodes:
        chain = ChainConfig(name="chain-0")
        cfg.chains.append(chain)
        for i, node in enumerate(nodes):
            chain.hops.append(build_hop(node, i, cfg, notes))

    built: list[ServiceConfig] = []
    for svc in services:
        built.extend(build_services(svc, notes))

    for i, service in enumerate(built):
        assert service.handler is not None and service.listener is not None
        service.name = f"service-{i}"
        if chain is not None:
            if service.listener.type in names.CHAINED_LISTENERS:
                service.listener.chain = chain.name
            else:
                service.handler.chain = chain.name
        cfg.services.append(service)
        extract_service_components(service, cfg)
    return cfg
