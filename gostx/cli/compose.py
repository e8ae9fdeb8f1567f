"""From parsed flags to the one Config that runs.

-C gives a file config, -L/-F a CLI config; they are merged (file entries first). With neither -C,
-L nor -api, gost.yaml|yml|json is looked for in /etc/gost, ~/.gost and the current directory.
Then the overrides, in gost's order: env GOST_LOGGER_LEVEL, GOST_API, GOST_METRICS, GOST_PROFILING;
-D/-DD; -api/-metrics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from gostx.cli.flags import Options
from gostx.config import parse_api_url, parse_metrics_url
from gostx.config.cmd import build_config
from gostx.config.loader import load_config, merge
from gostx.config.model import APIConfig, Config, LogConfig, MetricsConfig, ProfilingConfig

DEFAULT_CONFIG_DIRS = ("/etc/gost", "~/.gost", ".")
DEFAULT_CONFIG_EXTS = ("yaml", "yml", "json")


def find_default_config(dirs: tuple[str, ...] | None = None) -> str | None:
    for folder in DEFAULT_CONFIG_DIRS if dirs is None else dirs:
        for ext in DEFAULT_CONFIG_EXTS:
            path = os.path.join(os.path.expanduser(folder), f"gost.{ext}")
            if os.path.isfile(path):
                return path
    return None


def compose_config(opts: Options, env: Mapping[str, str] | None = None, notes: list[str] | None = None) -> Config:
    """The merged config with every override applied; ConfigError on bad input; warnings for the
    start of the log appended to `notes` (gostx.config.cmd.build_config)."""
    env = os.environ if env is None else env
    source = opts.config_source
    if not source and not opts.services and not opts.nodes and not opts.api:
        source = find_default_config() or ""
    file_cfg = load_config(source) if source else None
    cfg = merge(file_cfg, build_config(opts.services, opts.nodes, notes))
    if env.get("GOST_LOGGER_LEVEL"):
        cfg.log = LogConfig(level=env["GOST_LOGGER_LEVEL"])
    if env.get("GOST_API"):
        cfg.api = APIConfig(addr=env["GOST_API"])
    if env.get("GOST_METRICS"):
        cfg.metrics = MetricsConfig(addr=env["GOST_METRICS"])
    if env.get("GOST_PROFILING"):
        cfg.profiling = ProfilingConfig(addr=env["GOST_PROFILING"])
    if opts.debug or opts.trace:
        cfg.log = cfg.log or LogConfig()
        cfg.log.level = "trace" if opts.trace else "debug"
    if opts.api:
        cfg.api = parse_api_url(opts.api)
    if opts.metrics:
        cfg.metrics = parse_metrics_url(opts.metrics)
    return cfg
