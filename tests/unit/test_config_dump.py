"""-O yaml|json: gost's layout, and dump-then-load gives the same Config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from config_cmd_cases import CASES

from gostx.config.cmd import build_config
from gostx.config.dump import dump_config
from gostx.config.loader import load_config
from gostx.config.model import (
    Config,
    HopConfig,
    NodeConfig,
    SelectorConfig,
    ServiceConfig,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "config"

# spec v3.md 1.3 sketch (gost -L "tungo://..." -F "relay+wss://SRV:443?interface=eth0" -O yaml), in
# yaml.v3's layout: struct fields in gost's order, metadata keys sorted, "1420" quoted.
TUNGO_YAML = """\
services:
  - name: service-0
    addr: :0
    handler:
      type: tungo
      chain: chain-0
      metadata:
        dns:
          - 1.1.1.1
        mtu: "1420"
        name: tungo
        net: 192.168.123.1/24
    listener:
      type: tungo
      metadata:
        dns:
          - 1.1.1.1
        mtu: "1420"
        name: tungo
        net: 192.168.123.1/24
    metadata:
      dns:
        - 1.1.1.1
      mtu: "1420"
      name: tungo
      net: 192.168.123.1/24
chains:
  - name: chain-0
    hops:
      - name: hop-0
        nodes:
          - name: node-0
            addr: SRV:443
            connector:
              type: relay
            dialer:
              type: wss
              tls:
                serverName: SRV
        metadata:
          interface: eth0
"""


def _tungo() -> Config:
    return build_config(["tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&dns=1.1.1.1"],
                        ["relay+wss://SRV:443?interface=eth0"])


def test_yaml_text_of_the_spec_sketch() -> None:
    assert dump_config(_tungo(), "yaml") == TUNGO_YAML


@pytest.mark.parametrize("fmt", ["yaml", "YAML", "yml", "", "anything"])
def test_any_format_but_json_is_yaml(fmt: str) -> None:
    assert dump_config(_tungo(), fmt) == TUNGO_YAML


def test_json_layout() -> None:
    text = dump_config(_tungo(), "json")
    assert text.endswith("}\n")
    assert text.startswith('{\n  "services": [\n    {\n      "name": "service-0",\n      "addr": ":0",\n')
    assert json.loads(text)["chains"][0]["hops"][0]["metadata"] == {"interface": "eth0"}


def test_durations_yaml_text_json_nanoseconds() -> None:
    cfg = Config(hops=[HopConfig(name="h", selector=SelectorConfig(strategy="fifo", max_fails=2,
                                                                    fail_timeout="1m30s"),
                                 nodes=[NodeConfig(name="n", addr="a:1")])])
    assert "      failTimeout: 1m30s\n" in dump_config(cfg, "yaml")
    assert json.loads(dump_config(cfg, "json"))["hops"][0]["selector"] == {
        "strategy": "fifo", "maxFails": 2, "failTimeout": 90_000_000_000}


def test_always_printed_fields() -> None:
    cfg = Config(services=[ServiceConfig()], hops=[HopConfig(selector=SelectorConfig(strategy="", max_fails=0,
                                                                                      fail_timeout=""))])
    assert dump_config(cfg, "yaml") == (
        'services:\n  - name: ""\nhops:\n  - name: ""\n    selector:\n'
        '      strategy: ""\n      maxFails: 0\n      failTimeout: 0s\n')
    assert dump_config(Config(), "yaml") == "services: []\n"
    assert dump_config(Config(), "json") == '{\n  "services": null\n}\n'


def test_metadata_key_order_yaml_natural_json_bytes() -> None:
    md = {"ab": 1, "a10": 2, "a2": 3, "a.b": 4, "B": 5}
    cfg = Config(services=[ServiceConfig(name="s", metadata=md)])
    yaml_keys = [line.split(":")[0].strip() for line in dump_config(cfg, "yaml").splitlines()[3:]]
    assert yaml_keys == ["B", "a.b", "a2", "a10", "ab"]
    json_keys = list(json.loads(dump_config(cfg, "json"))["services"][0]["metadata"])
    assert json_keys == ["B", "a.b", "a10", "a2", "ab"]


def test_json_escapes_html_like_go_and_prints_integral_floats_as_integers() -> None:
    cfg = Config(services=[ServiceConfig(name="a<b>&c", metadata={"f": 2.0, "g": 2.5})])
    text = dump_config(cfg, "json")
    assert '"name": "a\\u003cb\\u003e\\u0026c"' in text
    assert '"f": 2,' in text and '"g": 2.5' in text


def test_yaml_quotes_and_literal_blocks() -> None:
    cfg = Config(services=[ServiceConfig(name="s", metadata={
        "star": "*.example.com", "num": "8080", "yes": "yes", "multi": "line1\nline2", "plain": "a b:c"})])
    text = dump_config(cfg, "yaml")
    assert '      star: "*.example.com"\n' in text
    assert '      num: "8080"\n' in text
    assert '      "yes": "yes"\n' in text
    assert "      multi: |-\n        line1\n        line2\n" in text
    assert "      plain: a b:c\n" in text


def _round_trip(cfg: Config, fmt: str, tmp_path: Path) -> Config:
    path = tmp_path / f"out.{fmt}"
    path.write_text(dump_config(cfg, fmt))
    return load_config(str(path))


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize(("services", "nodes"), [c[1:3] for c in CASES], ids=[c[0] for c in CASES])
def test_command_line_config_round_trips(services: list[str], nodes: list[str], fmt: str,
                                         tmp_path: Path) -> None:
    cfg = build_config(services, nodes)
    assert _round_trip(cfg, fmt, tmp_path) == cfg


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("name", ["tun2socks-linux.yaml", "tun2socks-sniffing.yaml"])
def test_seed_config_round_trips(name: str, fmt: str, tmp_path: Path) -> None:
    cfg = load_config(str(VECTORS / name))
    assert _round_trip(cfg, fmt, tmp_path) == cfg


def test_rich_config_round_trips(tmp_path: Path) -> None:
    text = json.dumps({
        "services": [{"name": "s", "addr": ":1", "sockopts": {"mark": 3},
                      "handler": {"type": "relay", "chainGroup": {"chains": ["a", "b"],
                                                                  "selector": {"strategy": "hash"}}},
                      "recorders": [{"name": "r", "record": "recorder.service.handler"}],
                      "forwarder": {"hop": "h", "nodes": [{
                          "name": "t", "addr": "a:1",
                          "http": {"host": "x", "header": {"B": "1", "A": "2"}},
                          "tls": {"serverName": "x", "secure": True},
                          "matcher": {"rule": "Host(`x`)", "priority": 2}}]}}],
        "resolvers": [{"name": "r", "nameservers": [{"addr": "1.1.1.1", "ttl": "60s", "timeout": 2000000000,
                                                     "async": True, "clientIP": "1.2.3.4"}]}],
        "routers": [{"name": "rt", "routes": [{"dst": "10.0.0.0/8", "gateway": "10.0.0.1"}]}],
        "recorders": [{"name": "rec", "file": {"path": "/tmp/x", "sep": "\n"}}],
        "loggers": [{"name": "l", "log": {"output": "stdout", "rotation": {"maxSize": 10}}}],
        "tls": {"validity": "8760h", "commonName": "gost.run"},
        "log": {"level": "debug"}, "profiling": {"addr": ":6060"},
        "api": {"addr": ":18080", "pathPrefix": "/api", "auth": {"username": "u"}},
        "metrics": {"addr": ":9000", "path": "/m"},
    })
    cfg = load_config(text)
    assert cfg.resolvers[0].nameservers[0].timeout == "2s"
    for fmt in ("yaml", "json"):
        assert _round_trip(cfg, fmt, tmp_path) == cfg
