"""The chain framework without a network: selector strategies and filters, route cuts by hop/node bypass,
building chains from config (hop references, defaults, errors)."""

from __future__ import annotations

import pytest

from gostx.chain import Chain, FailMarker, Hop, Selector, build_chain
from gostx.chain.route import Node
from gostx.config.cmd import build_config
from gostx.config.metadata import Metadata
from gostx.config.model import ChainConfig, Config, HopConfig, NodeConfig, SelectorConfig
from gostx.errors import GostError
from gostx.plugins import load_builtin_plugins


class Item:
    def __init__(self, name: str, **md: object) -> None:
        self.name = name
        self.marker = FailMarker()
        self.metadata = Metadata(md)


def names(selector: Selector, items: list[Item], n: int, key: str = "") -> list[str]:
    return [selector.select(items, key).name for _ in range(n)]  # type: ignore[union-attr]


def test_round_robin_fifo_and_hash() -> None:
    items = [Item("a"), Item("b"), Item("c")]
    assert names(Selector(), items, 4) == ["a", "b", "c", "a"]
    assert names(Selector(SelectorConfig(strategy="fifo")), items, 3) == ["a", "a", "a"]
    hashed = names(Selector(SelectorConfig(strategy="hash")), items, 5, key="10.0.0.7")
    assert len(set(hashed)) == 1


def test_fail_filter_skips_a_failed_node_until_fail_timeout() -> None:
    items = [Item("a"), Item("b")]
    sel = Selector(SelectorConfig(strategy="fifo", max_fails=2, fail_timeout="50ms"))
    items[0].marker.mark()
    assert names(sel, items, 1) == ["a"]          # 1 failure < maxFails 2
    items[0].marker.mark()
    assert names(sel, items, 2) == ["b", "b"]     # filtered
    items[0].marker.last_fail -= 1.0              # failTimeout passed
    assert names(sel, items, 1) == ["a"]
    items[1].marker.mark()
    items[1].marker.mark()
    items[0].marker.mark()
    items[0].marker.mark()
    assert names(sel, items, 1) == ["a"]          # all failed: gostx tries them anyway (fails closed)


def test_backup_nodes_only_when_nothing_else() -> None:
    items = [Item("backup", backup=True), Item("main")]
    sel = Selector(SelectorConfig(strategy="round", max_fails=1))
    assert names(sel, items, 3) == ["main"] * 3
    items[1].marker.mark()
    assert names(sel, items, 2) == ["backup"] * 2


def test_unknown_strategy_is_a_one_line_error() -> None:
    with pytest.raises(GostError, match="unknown selector strategy 'best'"):
        Selector(SelectorConfig(strategy="best"))


class Contains:
    def __init__(self, *addrs: str) -> None:
        self.addrs = set(addrs)

    def contains(self, addr: str) -> bool:
        return addr in self.addrs


def chain_of(config: Config, bypass_of=None) -> Chain:  # type: ignore[no-untyped-def]
    load_builtin_plugins()
    return build_chain(config.chains[0], config, bypass_of)


def test_cli_hops_nodes_and_route_cut_by_bypass() -> None:
    cfg = build_config([":1080"], ["socks5://u:p@1.1.1.1:1080,2.2.2.2:1080?bypass=example.com",
                                   "http://3.3.3.3:8080"])
    seen: list[str] = []

    def bypass_of(name: str) -> Contains:
        seen.append(name)
        return Contains("example.com:443")

    chain = chain_of(cfg, bypass_of)
    assert seen == ["bypass-0"]
    assert [len(h.nodes) for h in chain.hops] == [2, 1]
    hop0 = chain.hops[0]
    assert [type(n.connector).__name__ for n in hop0.nodes] == ["Socks5Connector"] * 2
    assert hop0.nodes[0].connector.auth is not None and hop0.nodes[0].connector.auth.username == "u"
    assert [n.addr for n in chain.route("1.2.3.4:80")] in (["1.1.1.1:1080", "3.3.3.3:8080"],
                                                          ["2.2.2.2:1080", "3.3.3.3:8080"])
    assert chain.route("example.com:443") == []   # the first hop's bypass cuts the route: direct


def test_node_bypass_removes_the_candidate() -> None:
    load_builtin_plugins()
    cfg = build_config([":1080"], ["socks5://1.1.1.1:1080,2.2.2.2:1080"])
    chain = chain_of(cfg)
    first = chain.hops[0].nodes[0]
    first.bypass = Contains("10.0.0.1:22")
    assert {n.addr for _ in range(4) for n in chain.route("10.0.0.1:22")} == {"2.2.2.2:1080"}


def test_named_bypasses_come_from_the_config() -> None:
    cfg = build_config([":1080"], ["socks5://1.1.1.1:1080?bypass=*.example.com", "socks5://2.2.2.2:1080?bypass=~10.0.0.0/8"])
    chain = chain_of(cfg)
    assert chain.route("www.example.com:443") == []
    assert [n.addr for n in chain.route("10.1.2.3:22")] == ["1.1.1.1:1080", "2.2.2.2:1080"]
    assert [n.addr for n in chain.route("8.8.8.8:53")] == ["1.1.1.1:1080"]  # whitelist: not in it -> cut


def test_yaml_style_chain_with_top_level_hop_and_defaults() -> None:
    cfg = Config(
        hops=[HopConfig(name="shared", selector=SelectorConfig(strategy="fifo"),
                        metadata={"interface": "eth9", "so_mark": 7},
                        nodes=[NodeConfig(name="n0", addr="10.0.0.1:8080"),
                               NodeConfig(name="n1", addr="10.0.0.2:8080", metadata={"interface": "eth1"})])],
        chains=[ChainConfig(name="c", hops=[HopConfig(name="shared")])],
    )
    chain = chain_of(cfg)
    (hop,) = chain.hops
    assert isinstance(hop, Hop) and hop.selector.strategy == "fifo"
    n0, n1 = hop.nodes
    assert isinstance(n0, Node)
    assert type(n0.connector).__name__ == "HttpConnector" and type(n0.dialer).__name__ == "TcpDialer"
    assert n0.dial_options.interfaces == ["eth9"] and n0.dial_options.mark == 7
    assert n1.dial_options.interfaces == ["eth1"] and n1.dial_options.mark == 7


@pytest.mark.parametrize(("chain", "message"), [
    (ChainConfig(name="c", hops=[HopConfig(name="missing")]), "hop 'missing' not found"),
    (ChainConfig(name="c", hops=[HopConfig(name="h", nodes=[NodeConfig(name="n", addr="1.1.1.1:1")],
                                           selector=SelectorConfig(strategy="x"))]), "unknown selector"),
])
def test_bad_chain_configs(chain: ChainConfig, message: str) -> None:
    with pytest.raises(GostError, match=message):
        chain_of(Config(chains=[chain]))


def test_unknown_connector_names_the_supported_ones() -> None:
    from gostx.config.model import ConnectorConfig

    node = NodeConfig(name="n", addr="1.1.1.1:1", connector=ConnectorConfig(type="relay"))
    with pytest.raises(GostError, match="unknown connector type 'relay' \\(supported: http, socks, socks5"):
        chain_of(Config(chains=[ChainConfig(name="c", hops=[HopConfig(name="h", nodes=[node])])]))
