"""-C sources -> Config, merging with the command line, and every way a config source can be bad."""

from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gostx.config import loader
from gostx.config.cmd import build_config
from gostx.config.loader import load_config, merge
from gostx.config.model import (
    APIConfig,
    Config,
    ConfigError,
    LogConfig,
    MetricsConfig,
    ProfilingConfig,
    TLSConfig,
    to_dict,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "config"
SEED = Path("/work/shared/seeds/tun2socks.md")
SEED_FILES = ["tun2socks-linux.yaml", "tun2socks-windows.yaml", "tun2socks-macos.yaml",
              "tun2socks-sniffing.yaml"]

TUNGO_LISTENER_MD = {"name": "tungo", "net": "192.168.123.1/24", "mtu": 1420, "dns": "1.1.1.1"}
RELAY_WSS_CHAIN = {"name": "chain-0", "hops": [{
    "name": "hop-0",
    "nodes": [{"name": "node-0", "addr": "SERVER_IP:443", "connector": {"type": "relay"},
               "dialer": {"type": "wss"}}],
    "metadata": {"interface": "eth0"},
}]}


def _tungo_service(handler_md: dict[str, Any], service_md: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "service-0", "addr": ":0",
        "handler": {"type": "tungo", "chain": "chain-0", "metadata": handler_md},
        "listener": {"type": "tungo", "metadata": TUNGO_LISTENER_MD},
        "metadata": service_md,
    }


SEED_EXPECTED = {
    "tun2socks-linux.yaml": {
        "services": [_tungo_service({"udpTimeout": "30s"}, {"postUp": [
            "ip route delete default",
            "ip route add default via 192.168.1.1 dev eth0 metric 10",
            "ip route add default dev tungo metric 1",
        ]})],
        "chains": [RELAY_WSS_CHAIN],
    },
    "tun2socks-windows.yaml": {
        "services": [_tungo_service({"udpTimeout": "30s"}, {"postUp": [
            "netsh interface ipv4 add route 0.0.0.0/0 tungo 192.168.123.1 metric=1",
        ]})],
        "chains": [RELAY_WSS_CHAIN],
    },
    "tun2socks-macos.yaml": {
        "services": [_tungo_service({"udpTimeout": "30s"}, {"postUp": [
            "route add -net 1.0.0.0/8 192.168.123.1",
            "route add -net 2.0.0.0/8 192.168.123.1",
        ]})],
        "chains": [RELAY_WSS_CHAIN],
    },
    "tun2socks-sniffing.yaml": {
        "services": [_tungo_service(
            {"sniffing": True, "sniffing.udp": True, "sniffing.timeout": "1s", "sniffing.fallback": True},
            {"interface": "eth0"})],
        "chains": [{"name": "chain-0", "hops": [{**RELAY_WSS_CHAIN["hops"][0], "bypass": "bypass-0"}]}],
        "bypasses": [{"name": "bypass-0", "matchers": ["example.com"]}],
    },
}


@pytest.mark.parametrize("name", SEED_FILES)
def test_seed_yaml_blocks_load_unchanged(name: str) -> None:
    assert to_dict(load_config(str(VECTORS / name))) == SEED_EXPECTED[name]


def test_vectors_are_the_seed_blocks_verbatim() -> None:
    if not SEED.exists():
        pytest.skip(f"{SEED} is not on this machine")
    blocks = re.findall(r"```yaml[^\n]*\n(.*?)```", SEED.read_text(), re.S)
    assert [textwrap.dedent(b) for b in blocks] == [(VECTORS / n).read_text() for n in SEED_FILES]


def test_seed_yaml_gives_the_same_services_and_chains_as_the_seed_cli() -> None:
    """The doc presents the Linux CLI line and the Linux YAML block as the same thing; the parts
    both express agree (the YAML adds postUp and udpTimeout; CLI values are strings)."""
    from_file = load_config(str(VECTORS / "tun2socks-linux.yaml"))
    from_cli = build_config(["tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&dns=1.1.1.1"],
                            ["relay+wss://SERVER_IP:443?interface=eth0"])
    for cfg in (from_file, from_cli):
        svc = cfg.services[0]
        assert svc.handler is not None and svc.listener is not None
        assert (svc.name, svc.addr, svc.handler.type, svc.handler.chain, svc.listener.type) == \
            ("service-0", ":0", "tungo", "chain-0", "tungo")
        assert str(svc.listener.metadata["mtu"]) == "1420"
        hop = cfg.chains[0].hops[0]
        assert hop.metadata == {"interface": "eth0"}
        assert hop.nodes[0].addr == "SERVER_IP:443"


YAML_TEXT = """\
services:
- name: s1
  addr: ":8080"
  handler: {type: socks5, retries: "3"}
  listener: {type: tcp}
  metadata: {enableStats: yes, stamp: 2024-01-01, time: 1:20}
hops:
- name: h1
  selector: {strategy: fifo, failTimeout: 1m30s}
  nodes: [{name: n1, addr: "1.2.3.4:1080"}]
limiters:
- {name: l1, limits: "$ 1MB 2MB,$$ 10KB"}
api: {addr: ":18080", accesslog: "true"}
"""


def test_yaml_file_values_and_weak_typing(tmp_path: Path) -> None:
    path = tmp_path / "gost.yml"
    path.write_text(YAML_TEXT)
    cfg = load_config(str(path))
    assert to_dict(cfg) == {
        "services": [{"name": "s1", "addr": ":8080", "handler": {"type": "socks5", "retries": 3},
                      "listener": {"type": "tcp"},
                      "metadata": {"enableStats": "yes", "stamp": "2024-01-01", "time": "1:20"}}],
        "hops": [{"name": "h1", "selector": {"strategy": "fifo", "maxFails": 1, "failTimeout": "1m30s"},
                  "nodes": [{"name": "n1", "addr": "1.2.3.4:1080"}]}],
        "limiters": [{"name": "l1", "limits": ["$ 1MB 2MB", "$$ 10KB"]}],
        "api": {"addr": ":18080", "accesslog": True},
    }


def test_keys_match_case_insensitively_and_unknown_keys_are_ignored() -> None:
    cfg = load_config('{"SERVICES": [{"Name": "x", "ADDR": ":1", "Handler": {"TYPE": "http"}, "bogus": 1}]}')
    assert to_dict(cfg) == {"services": [{"name": "x", "addr": ":1", "handler": {"type": "http"}}]}


def test_integer_durations_are_nanoseconds_as_in_gost() -> None:
    cfg = load_config('{"hops": [{"name": "h", "selector": {"failTimeout": 30000000000}, "reload": 5}]}')
    assert cfg.hops[0].selector is not None
    assert cfg.hops[0].selector.fail_timeout == "30s"
    assert cfg.hops[0].reload == "5ns"


@pytest.mark.parametrize(("filename", "text"), [
    ("gost.json", '{"services": [{"name": "a", "addr": ":1"}]}'),
    ("gost.yaml", "services:\n- name: a\n  addr: :1\n"),
    ("gost", "services:\n- name: a\n  addr: :1\n"),
    ("gost.conf", '{\n\t"services": [{"name": "a", "addr": ":1"}]\n}'),  # tabs: JSON that YAML rejects
    ("gost.toml", '[[services]]\nname = "a"\naddr = ":1"\n'),
])
def test_file_types(tmp_path: Path, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text)
    assert to_dict(load_config(str(path))) == {"services": [{"name": "a", "addr": ":1"}]}


@pytest.mark.parametrize("text", ['{"services": [{"name": "a", "addr": ":1"}]}',
                                  "services:\n- name: a\n  addr: :1\n",
                                  '  \n {"services": [{"name": "a", "addr": ":1"}]}'])
def test_stdin(text: str) -> None:
    assert to_dict(load_config("-", stdin=io.StringIO(text))) == {"services": [{"name": "a", "addr": ":1"}]}


def test_inline_json() -> None:
    cfg = load_config('{"services":[{"name":"a","addr":":1","listener":{"type":"udp"}}]}')
    assert to_dict(cfg) == {"services": [{"name": "a", "addr": ":1", "listener": {"type": "udp"}}]}


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert load_config(str(path)) == Config()


def _write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("name", "text", "words"), [
    ("bad.yaml", "services:\n- name: a\n  addr: [:1\nchains: x\n", ["YAML syntax error", "line 3"]),
    ("tabs.yaml", "services:\n\t- name: a\n", ["YAML syntax error", "line 2"]),
    ("list.yaml", "- name: a\n", ["top level must be a mapping", "a list"]),
    ("scalar.yaml", "hello\n", ["top level must be a mapping", "hello"]),
    ("dup.yaml", "services: []\nservices: []\n", ["already defined", "line 2"]),
    ("handler.yaml", "services:\n- name: a\n  handler: tungo\n",
     ["services[0].handler", "expected a mapping", "a string"]),
    ("retries.yaml", "services:\n- handler: {retries: many}\n", ["services[0].handler.retries", "integer"]),
    ("secure.yaml", "tls: {secure: maybe}\n", ["tls.secure", "boolean"]),
    ("duration.yaml", "hops:\n- selector: {failTimeout: 10x}\n",
     ["hops[0].selector.failTimeout", "unknown unit"]),
    ("duration2.yaml", "hops:\n- selector: {failTimeout: '30'}\n", ["failTimeout", "missing unit"]),
    ("metadata.yaml", "services:\n- metadata: [a, b]\n", ["services[0].metadata", "expected a mapping"]),
    ("bad.json", '{"services": [}', ["JSON syntax error", "line 1"]),
    ("latin1.yaml", b"services: [\xff]\n", ["not UTF-8"]),
    ("bad.toml", "services = [", ["TOML syntax error"]),
])
def test_bad_files(tmp_path: Path, name: str, text: str | bytes, words: list[str]) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"-C {path}: ")
    assert "\n" not in message
    for word in words:
        assert word in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^-C .*nope\.yaml: no such file$"):
        load_config(str(tmp_path / "nope.yaml"))


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(str(tmp_path))


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root reads any file, so the permission error is simulated where the loader opens files."""
    path = _write(tmp_path, "secret.yaml", "services: []\n")

    def deny(*_args: Any, **_kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(loader, "open", deny, raising=False)
    with pytest.raises(ConfigError, match=r"secret\.yaml: permission denied$"):
        load_config(path)


@pytest.mark.parametrize(("source", "stdin", "words"), [
    ("", None, ["-C: empty value"]),
    ("{not json}", None, ["-C (inline JSON)", "JSON syntax error", "column 2"]),
    ("[1]", None, ["no such file"]),
    ("-", "[1, 2]\n", ["-C - (stdin)", "top level must be a mapping"]),
    ("-", "{broken", ["-C - (stdin)", "JSON syntax error"]),
])
def test_bad_sources(source: str, stdin: str | None, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(source, stdin=io.StringIO(stdin) if stdin is not None else None)
    for word in words:
        assert word in str(info.value)


def test_merge_concatenates_lists_file_first_and_cli_scalars_win() -> None:
    file_cfg = load_config(json.dumps({
        "services": [{"name": "file-svc", "addr": ":1"}],
        "chains": [{"name": "file-chain", "hops": []}],
        "bypasses": [{"name": "file-bypass", "matchers": ["a"]}],
        "tls": {"certFile": "file.pem"}, "log": {"level": "info"}, "api": {"addr": ":1"},
        "metrics": {"addr": ":2"}, "profiling": {"addr": ":3"},
    }))
    cli_cfg = build_config(["socks5://:1080?bypass=b"], ["relay://h:8443"])
    cli_cfg.log = LogConfig(level="debug")
    cli_cfg.api = APIConfig(addr=":9")
    before_file, before_cli = to_dict(file_cfg), to_dict(cli_cfg)

    merged = merge(file_cfg, cli_cfg)

    assert [s.name for s in merged.services] == ["file-svc", "service-0"]
    assert [c.name for c in merged.chains] == ["file-chain", "chain-0"]
    assert [b.name for b in merged.bypasses] == ["file-bypass", "bypass-0"]
    assert merged.log == LogConfig(level="debug")
    assert merged.api == APIConfig(addr=":9")
    assert merged.tls == TLSConfig(cert_file="file.pem")
    assert merged.metrics == MetricsConfig(addr=":2")
    assert merged.profiling == ProfilingConfig(addr=":3")
    assert (to_dict(file_cfg), to_dict(cli_cfg)) == (before_file, before_cli)


def test_merge_without_a_file_is_the_cli_config() -> None:
    cli_cfg = build_config([":8080"], [])
    assert merge(None, cli_cfg) == cli_cfg
    assert merge(None, cli_cfg) is not cli_cfg


def test_toml_dates_in_metadata_become_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "gost.toml", '[[services]]\nname = "a"\n[services.metadata]\nat = 1979-05-27\n')
    assert load_config(path).services[0].metadata == {"at": "1979-05-27"}
