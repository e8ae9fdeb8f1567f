"""gost's configuration: the dataclass model (`model`), the command line compiled into it (`cmd`),
config files (`loader`), `-O` output (`dump`) and the `-api`/`-metrics` flags (`apiurl`)."""

from gostx.config.apiurl import parse_api_url, parse_metrics_url
from gostx.config.model import Config, ConfigError

__all__ = ["Config", "ConfigError", "parse_api_url", "parse_metrics_url"]
