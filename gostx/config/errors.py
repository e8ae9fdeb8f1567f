"""The one exception type for bad user input in gostx.config."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input (a URL, a config file, a value): a one-line message that names the input."""
