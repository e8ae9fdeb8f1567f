"""Flags + files + environment -> the one Config that runs (gost's override order)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gostx.cli.compose import compose_config, find_default_config
from gostx.cli.flags import parse_flags
from gostx.plugins import load_builtin_plugins

load_builtin_plugins()

FILE = """
services:
- name: from-file
  addr: :7000
  handler: {type: tcp}
  listener: {type: tcp}
  forwarder: {nodes: [{name: t, addr: "10.0.0.9:70"}]}
log:
  level: error
  format: text
"""


def compose(*argv: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return compose_config(parse_flags(list(argv)), env=env or {})


def test_file_and_cli_services_are_concatenated(tmp_path: Path) -> None:
    cfg_file = tmp_path / "gost.yaml"
    cfg_file.write_text(FILE)
    cfg = compose("-C", str(cfg_file), "-L", "udp://:5353/10.0.0.1:53")
    assert [s.name for s in cfg.services] == ["from-file", "service-0"]
    assert cfg.log is not None and (cfg.log.level, cfg.log.format) == ("error", "text")


def test_debug_and_trace_flags_override_the_file_level(tmp_path: Path) -> None:
    cfg_file = tmp_path / "gost.yaml"
    cfg_file.write_text(FILE)
    cfg = compose("-C", str(cfg_file), "-D")
    assert cfg.log is not None and (cfg.log.level, cfg.log.format) == ("debug", "text")
    cfg = compose("-C", str(cfg_file), "-D", "-DD")
    assert cfg.log is not None and cfg.log.level == "trace"
    cfg = compose("-L", "tcp://:1/h:2", "-D")
    assert cfg.log is not None and cfg.log.level == "debug"


def test_environment_overrides_come_before_flags(tmp_path: Path) -> None:
    cfg_file = tmp_path / "gost.yaml"
    cfg_file.write_text(FILE)
    env = {"GOST_LOGGER_LEVEL": "warn", "GOST_API": ":9999", "GOST_METRICS": ":9100",
           "GOST_PROFILING": ":6060"}
    cfg = compose("-C", str(cfg_file), env=env)
    assert cfg.log is not None and (cfg.log.level, cfg.log.format) == ("warn", "")  # replaces the whole log
    assert cfg.api is not None and cfg.api.addr == ":9999"
    assert cfg.metrics is not None and cfg.metrics.addr == ":9100"
    assert cfg.profiling is not None and cfg.profiling.addr == ":6060"
    cfg = compose("-C", str(cfg_file), "-DD", "-api", ":18080", env=env)
    assert cfg.log is not None and cfg.log.level == "trace"
    assert cfg.api is not None and cfg.api.addr == ":18080"


def test_api_and_metrics_flags_are_parsed_into_the_model() -> None:
    cfg = compose("-api", "user:pass@:18080?pathPrefix=/x", "-metrics", ":9000?path=/m")
    assert cfg.api is not None and cfg.api.addr == ":18080" and cfg.api.path_prefix == "/x"
    assert cfg.api.auth is not None and cfg.api.auth.username == "user"
    assert cfg.metrics is not None and (cfg.metrics.addr, cfg.metrics.path) == (":9000", "/m")


def test_default_config_is_found_in_the_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "gost.yml").write_text(FILE)
    dirs = (str(tmp_path / "first"), str(tmp_path / "second"))
    assert find_default_config(dirs) == str(tmp_path / "second" / "gost.yml")
    assert find_default_config((str(tmp_path / "first"),)) is None
    # With no -C, -L or -api the search path is used (here: only the current directory).
    monkeypatch.chdir(tmp_path / "second")
    (tmp_path / "second" / "gost.yaml").write_text(FILE.replace("from-file", "from-cwd"))
    monkeypatch.setattr("gostx.cli.compose.DEFAULT_CONFIG_DIRS", (".",))
    assert [s.name for s in compose().services] == ["from-cwd"]
    assert [s.name for s in compose("-L", "tcp://:1/h:2").services] == ["service-0"]
