"""Bypass modes, groups, loading and the level semantics, with the gost docs' examples
(concepts/bypass.md: hop level, node level, bypass group, data sources) built from the same command
lines and YAML the docs show, and the seed's tungo example."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gostx.bypass import (
    Bypass,
    BypassGroup,
    HopRule,
    build_bypasses,
    check_references,
    hop_cuts,
    node_excluded,
    parse_pattern_lines,
    route_candidates,
    service_rejects,
)
from gostx.config.cmd import build_config
from gostx.config.loader import load_config
from gostx.config.model import BypassConfig, Config, FileLoader, RedisLoader
from gostx.errors import GostError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "config"


def yaml_config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "gost.yaml"
    path.write_text(text)
    return load_config(str(path))


def chain_rules(cfg: Config) -> list[HopRule]:
    registry = build_bypasses(cfg)
    return [HopRule(registry.for_hop(hop), [registry.for_node(n) for n in hop.nodes]) for hop in cfg.chains[0].hops]


# ----------------------------------------------------------------------------------------------
# Service level: `gost -L http://:8080?bypass=example.com` (docs) -> reject example.com only

@pytest.mark.parametrize(("addr", "rejected"), [("example.com:80", True), ("example.org:80", False),
                                                ("www.example.com:80", False)])
def test_docs_service_level(addr: str, rejected: bool) -> None:
    cfg = build_config(["http://:8080?bypass=example.com"], [])
    registry = build_bypasses(cfg)
    assert service_rejects(registry.for_service(cfg.services[0]), addr) is rejected


def test_no_service_bypass_rejects_nothing() -> None:
    cfg = build_config(["http://:8080"], [])
    assert build_bypasses(cfg).for_service(cfg.services[0]) is None
    assert not service_rejects(None, "example.com:80")


# ----------------------------------------------------------------------------------------------
# Hop level (docs): -F http://:8081?bypass=~example.com,.example.org -F http://:8082?bypass=example.com

HOP_DOCS_CLI = ["http://:8081?bypass=~example.com,.example.org", "http://:8082?bypass=example.com"]
HOP_DOCS_YAML = """
services:
- name: service-0
  addr: ":8080"
  handler: {type: http, chain: chain-0}
  listener: {type: tcp}
chains:
- name: chain-0
  hops:
  - name: hop-0
    bypass: bypass-0
    nodes:
    - {name: node-0, addr: ":8081", connector: {type: http}, dialer: {type: tcp}}
  - name: hop-1
    bypass: bypass-1
    nodes:
    - {name: node-0, addr: ":8082", connector: {type: http}, dialer: {type: tcp}}
bypasses:
- name: bypass-0
  whitelist: true
  matchers: [example.com, .example.org]
- name: bypass-1
  matchers: [example.com]
"""
HOP_DOCS_CASES = [
    ("www.example.com:80", []),          # fails hop-0's whitelist: no chain at all
    ("example.com:80", [[0]]),            # passes hop-0, cut at hop-1: only the :8081 node
    ("www.example.org:80", [[0], [0]]),  # passes both: the whole chain
]


@pytest.mark.parametrize(("addr", "route"), HOP_DOCS_CASES)
def test_docs_hop_level_from_the_command_line(addr: str, route: list[list[int]]) -> None:
    cfg = build_config([":8080"], HOP_DOCS_CLI)
    assert [b.whitelist for b in cfg.bypasses] == [True, False]
    assert route_candidates(chain_rules(cfg), addr) == route


@pytest.mark.parametrize(("addr", "route"), HOP_DOCS_CASES)
def test_docs_hop_level_from_yaml(tmp_path: Path, addr: str, route: list[list[int]]) -> None:
    assert route_candidates(chain_rules(yaml_config(tmp_path, HOP_DOCS_YAML)), addr) == route


# ----------------------------------------------------------------------------------------------
# Node level (docs): node-0 bypass [example.org], node-1 bypass [example.com]

NODE_DOCS_YAML = """
services:
- name: service-0
  addr: ":8080"
  handler: {type: http, chain: chain-0}
  listener: {type: tcp}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - {name: node-0, addr: ":8081", bypass: bypass-0, connector: {type: http}, dialer: {type: tcp}}
    - {name: node-1, addr: ":8082", bypass: bypass-1, connector: {type: http}, dialer: {type: tcp}}
bypasses:
- {name: bypass-0, matchers: [example.org]}
- {name: bypass-1, matchers: [example.com]}
"""


@pytest.mark.parametrize(("addr", "route"), [
    ("example.com:80", [[0]]),      # node-1 excluded
    ("example.org:80", [[1]]),      # node-0 excluded
    ("example.net:80", [[0, 1]]),   # both candidates
])
def test_docs_node_level(tmp_path: Path, addr: str, route: list[list[int]]) -> None:
    assert route_candidates(chain_rules(yaml_config(tmp_path, NODE_DOCS_YAML)), addr) == route


def test_all_nodes_excluded_cuts_the_route() -> None:
    black = Bypass("b", ["*"])
    rules = [HopRule(None, [None]), HopRule(None, [black, black]), HopRule(None, [None])]
    assert route_candidates(rules, "x:1") == [[0]]
    assert node_excluded(black, "x:1") and not node_excluded(None, "x:1")


# ----------------------------------------------------------------------------------------------
# Bypass group (docs): hop bypasses [bypass-0 (whitelist 172.10.0.0/16), bypass-1 (blacklist ...)]

GROUP_DOCS_YAML = """
chains:
- name: chain-0
  hops:
  - name: hop-0
    bypasses: [bypass-0, bypass-1]
    nodes:
    - {name: node-0, addr: 192.168.1.1:8080, connector: {type: http}, dialer: {type: tcp}}
bypasses:
- name: bypass-0
  whitelist: true
  matchers: [172.10.0.0/16]
- name: bypass-1
  matchers: [127.0.0.1, localhost, '*.example.com', .example.org]
"""


@pytest.mark.parametrize(("addr", "cut"), [
    ("172.10.1.1:80", False),     # in the whitelist, not blacklisted: through the chain
    ("8.8.8.8:53", True),         # outside the whitelist: all whitelist members say bypass
    ("a.example.com:443", True),  # outside the whitelist (and blacklisted)
])
def test_docs_bypass_group(tmp_path: Path, addr: str, cut: bool) -> None:
    cfg = yaml_config(tmp_path, GROUP_DOCS_YAML)
    group = build_bypasses(cfg).for_hop(cfg.chains[0].hops[0])
    assert hop_cuts(group, addr) is cut


@pytest.mark.parametrize(("members", "bypassed"), [
    ([], False),
    ([("black", True)], True), ([("black", False)], False),
    ([("black", False), ("black", True)], True),
    ([("white", True)], True), ([("white", False)], False),
    ([("white", True), ("white", False)], False),
    ([("white", True), ("white", True)], True),
    ([("white", False), ("black", True)], True),   # no whitelist consensus, a blacklist says bypass
    ([("white", False), ("black", False)], False),
    ([("white", True), ("black", False)], True),
])
def test_group_rule(members: list[tuple[str, bool]], bypassed: bool) -> None:
    """Whitelist members: all must say bypass; else any blacklist member saying bypass wins."""
    bypasses = []
    for i, (mode, says_bypass) in enumerate(members):
        white = mode == "white"
        # a whitelist says bypass when it does NOT match; a blacklist when it does
        patterns = ["hit.example"] if says_bypass != white else ["other.example"]
        bypasses.append(Bypass(f"m{i}", patterns, whitelist=white))
    group = BypassGroup(bypasses)
    assert group.contains("hit.example:80") is bypassed
    assert not group.whitelist


# ----------------------------------------------------------------------------------------------
# The seed: tungo with sniffing, -F relay+wss://SERVER_IP:443?interface=eth0&bypass=example.com

SEED_CASES = [("example.com:443", True), ("example.com:80", True), ("www.example.com:443", False),
              ("203.0.113.9:443", False)]


@pytest.mark.parametrize(("addr", "direct"), SEED_CASES)
def test_seed_sniffing_example_from_the_command_line(addr: str, direct: bool) -> None:
    cfg = build_config(
        ["tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&dns=1.1.1.1&interface=eth0&sniffing=true"],
        ["relay+wss://SERVER_IP:443?interface=eth0&bypass=example.com"])
    registry = build_bypasses(cfg)
    assert registry.for_service(cfg.services[0]) is None  # the -F bypass is hop level only
    assert (route_candidates(chain_rules(cfg), addr) == []) is direct


@pytest.mark.parametrize(("addr", "direct"), SEED_CASES)
def test_seed_sniffing_example_from_yaml(addr: str, direct: bool) -> None:
    cfg = load_config(str(VECTORS / "tun2socks-sniffing.yaml"))
    assert (route_candidates(chain_rules(cfg), addr) == []) is direct


# ----------------------------------------------------------------------------------------------
# Modes, sources, errors

@pytest.mark.parametrize(("value", "whitelist"), [("~a.example,b.example", True), ("a.example,b.example", False)])
def test_tilde_on_the_command_line_is_whitelist(value: str, whitelist: bool) -> None:
    cfg = build_config([f"http://:8080?bypass={value}"], [])
    bypass = build_bypasses(cfg)["bypass-0"]
    assert bypass.whitelist is whitelist
    assert bypass.patterns == ["a.example", "b.example"]
    assert bypass.contains("c.example:80") is whitelist


@pytest.mark.parametrize(("flags", "whitelist"), [({}, False), ({"whitelist": True}, True),
                                                  ({"reverse": True}, True)])
def test_whitelist_and_reverse_fields(flags: dict[str, bool], whitelist: bool) -> None:
    cfg = Config(bypasses=[BypassConfig(name="b", matchers=["x.example"], **flags)])
    assert build_bypasses(cfg)["b"].contains("y.example:1") is whitelist


FILE_TEXT = """# ip, cidr, domain or wildcard
127.0.0.1
172.10.0.0/16   # office
localhost
   *.example.com
.example.org#no space before the comment

# the end
"""


def test_file_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "bypass.txt"
    path.write_text(FILE_TEXT)
    assert parse_pattern_lines(FILE_TEXT) == [
        "127.0.0.1", "172.10.0.0/16", "localhost", "*.example.com", ".example.org"]
    cfg = Config(bypasses=[BypassConfig(name="f", matchers=["inline.example"], file=FileLoader(path=str(path)))])
    bypass = build_bypasses(cfg)["f"]
    assert bypass.patterns == ["inline.example", *parse_pattern_lines(FILE_TEXT)]
    for addr in ("inline.example:1", "172.10.9.9:22", "a.example.com:443", "www.example.org:80"):
        assert bypass.contains(addr), addr
    assert not bypass.contains("office:1")


def test_file_from_yaml(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text(FILE_TEXT)
    cfg = yaml_config(tmp_path, f"bypasses:\n- name: bypass-0\n  file:\n    path: {tmp_path / 'list.txt'}\n")
    assert build_bypasses(cfg)["bypass-0"].contains("localhost:80")


def test_inline_matchers_are_trimmed_and_empty_ones_dropped() -> None:
    cfg = Config(bypasses=[BypassConfig(name="b", matchers=[" a.example ", "", "  "])])
    assert build_bypasses(cfg)["b"].patterns == ["a.example"]


def test_reload_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(bypasses=[BypassConfig(name="r", matchers=["a.example"], reload="10s")])
    with caplog.at_level(logging.INFO, logger="gostx"):
        bypass = build_bypasses(cfg)["r"]
    assert bypass.contains("a.example:1")
    assert any("reload every 10s is not supported" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("cfg", "words"), [
    (Config(bypasses=[BypassConfig(name="x"), BypassConfig(name="x")]), "bypass 'x' is defined twice"),
    (Config(bypasses=[BypassConfig(name="x", redis=RedisLoader(addr="127.0.0.1:6379"))]),
     "bypass 'x': the redis source is not supported (use matchers or file)"),
    (Config(bypasses=[BypassConfig(name="x", file=FileLoader(path="/nonexistent/bypass.txt"))]),
     "bypass 'x': cannot read file /nonexistent/bypass.txt: No such file or directory"),
])
def test_bad_bypass_config_is_one_line_error(cfg: Config, words: str) -> None:
    with pytest.raises(GostError) as err:
        build_bypasses(cfg)
    assert str(err.value) == words


def test_unknown_reference_is_an_error(tmp_path: Path) -> None:
    cfg = yaml_config(tmp_path, HOP_DOCS_YAML.replace("bypass: bypass-1", "bypass: bypass-9"))
    with pytest.raises(GostError, match=r"^hop 'hop-1': bypass 'bypass-9' not found$"):
        build_bypasses(cfg)
    registry = build_bypasses(cfg, check=False)
    with pytest.raises(GostError, match=r"^hop 'hop-1': bypass 'bypass-9' not found$"):
        check_references(cfg, registry)
    with pytest.raises(GostError, match=r"^bypass 'bypass-9' not found \(bypasses: bypass-0, bypass-1\)$"):
        registry.for_hop(cfg.chains[0].hops[1])


@pytest.mark.parametrize(("text", "owner"), [
    ("services:\n- name: s\n  bypass: nope\n", "service 's'"),
    ("services:\n- name: s\n  forwarder:\n    nodes:\n    - {name: t, addr: 'a:1', bypasses: [nope]}\n",
     "service 's' forwarder node 't'"),
    ("hops:\n- name: h\n  nodes:\n  - {name: n, addr: 'a:1', bypass: nope}\n", "hop 'h' node 'n'"),
])
def test_unknown_references_everywhere(tmp_path: Path, text: str, owner: str) -> None:
    with pytest.raises(GostError, match=rf"^{owner}: bypass 'nope' not found$"):
        build_bypasses(yaml_config(tmp_path, text))


def test_registry_is_a_mapping() -> None:
    cfg = build_config(["http://:8080?bypass=a.example"], ["http://h:1?bypass=~b.example"])
    registry = build_bypasses(cfg)
    assert sorted(registry) == ["bypass-0", "bypass-1"] and len(registry) == 2
    assert dict(registry)["bypass-1"].whitelist is False and registry["bypass-0"].whitelist is True
