"""-L/-F command lines -> config (as a plain dict), table-driven (the table: config_cmd_cases.py)."""

from __future__ import annotations

from typing import Any

import pytest
from config_cmd_cases import CASES

from gostx.config.cmd import build_config
from gostx.config.model import ConfigError, to_dict


@pytest.mark.parametrize(("services", "nodes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_command_line_to_config(services: list[str], nodes: list[str], expected: dict[str, Any]) -> None:
    assert to_dict(build_config(services, nodes)) == expected


def test_table_covers_enough_command_lines() -> None:
    assert len(CASES) >= 25


def test_gost_id_prefixes_forward_target_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_GOST_ID", "2")
    cfg = build_config(["tcp://:8080/1.1.1.1:80,2.2.2.2:80"], [])
    assert cfg.services[0].forwarder is not None
    assert [n.name for n in cfg.services[0].forwarder.nodes] == ["go-2@target-0", "go-2@target-1"]
    assert cfg.services[0].name == "service-0"


def test_port_range_services_do_not_share_objects() -> None:
    cfg = build_config(["tcp://:8000-8001/10.0.0.1:80?foo=1"], [])
    first, second = cfg.services
    assert first.handler is not second.handler and first.metadata is not second.metadata
    first.handler.metadata["foo"] = "changed"  # type: ignore[union-attr]
    assert second.handler.metadata["foo"] == "1"  # type: ignore[union-attr]


@pytest.mark.parametrize(("services", "nodes", "words"), [
    ([":99999"], [], ["-L \":99999\"", "bad port", "99999"]),
    (["tcp://:80a/1.2.3.4:80"], [], ["bad port", "80a"]),
    (["tcp://:8002-8000"], [], ["bad port range", "8002-8000"]),
    (["tcp://:8000-8001-8002"], [], ["bad port range"]),
    (["tcp://:8000-x"], [], ["bad port range"]),
    (["tcp://:8080/1.2.3.4:70000"], [], ["bad port", "70000"]),
    (["socks5://:1080?auth=!!!"], [], ["auth=", "base64"]),
    (["tun://:8421?name=%zz"], [], ["malformed query", "%zz"]),
    (["tun://:8421?a=1;b=2"], [], ["malformed query", "semicolon"]),
    (["tap://[method:password@][local_ip]:port[/remote_ip:port]?net=192.168.123.2/24"], [],
     ["malformed URL", "userinfo"]),
    ([":8080"], ["socks5://h:abc"], ["-F \"socks5://h:abc\"", "malformed URL", "invalid port"]),
    ([":8080"], ["socks5://h:1080-1090"], ["malformed URL", "invalid port"]),
    ([":8080"], [""], ["-F", "empty value"]),
    ([":8080"], ["socks5://?x=1"], ["missing host"]),
    ([":8080"], ["socks5://h b:1080"], ["malformed URL", "host name"]),
    ([":8080"], ["socks5://h:10\x0180"], ["malformed URL", "control character", "\\x01"]),
    ([":8080"], ["1socks://h:1080"], ["malformed URL"]),
])
def test_bad_command_lines_raise_config_error(services: list[str], nodes: list[str],
                                              words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(services, nodes)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_blank_service_values_are_skipped_like_gost() -> None:
    assert to_dict(build_config(["  ", ":8080"], [])) == {"services": [
        {"name": "service-0", "addr": ":8080", "handler": {"type": "auto"}, "listener": {"type": "tcp"}}]}
