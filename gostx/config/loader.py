"""`-C` sources (a YAML/JSON file, `-` for stdin, inline JSON) -> Config, and merging it with the
command-line config.

    cfg = merge(load_config("gost.yaml"), build_config(services, nodes))

Every failure is a ConfigError with a one-line message naming the source: a missing or unreadable
file, a YAML/JSON syntax error (with its line and column), a top level that is not a mapping, a
value of the wrong type (with its key path, e.g. `services[0].handler`), nesting too deep for the
parsers (20000 '[').
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from gostx.config.model import Config, ConfigError, from_dict

if TYPE_CHECKING:
    import yaml

_SCALARS = ("tls", "log", "profiling", "api", "metrics")


def load_config(source: str, stdin: TextIO | None = None) -> Config:
    """The value of `-C`: `-` (stdin: JSON if its first non-space character is '{', else YAML),
    inline JSON (`{...}`), or a file path (.json is JSON, .yaml/.yml YAML, .toml TOML, anything
    else YAML, which also reads JSON; a '{' document that YAML rejects is retried as JSON)."""
    text_source = source.strip()
    if text_source == "":
        raise ConfigError("-C: empty value (want a file path, '-' for stdin, or inline JSON)")
    if text_source == "-":
        label = "-C - (stdin)"
        text = (stdin or sys.stdin).read()
        kind = "json" if text.lstrip().startswith("{") else "yaml"
    elif text_source.startswith("{") and text_source.endswith("}"):
        label, text, kind = "-C (inline JSON)", text_source, "json"
    else:
        label = f"-C {source}"
        text = _read_file(source, label)
        kind = _kind_from_extension(source)
    try:  # the parsers and the converter recurse: 20000 '[' must not be a RecursionError traceback
        tree = _parse(text, kind, label)
        if tree is None:
            return Config()
        if not isinstance(tree, dict):
            raise ConfigError(f"{label}: the top level must be a mapping of gost sections "
                              f"(services, chains, ...), got {_describe(tree)}")
        try:
            cfg: Config = from_dict(Config, tree)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{label}: nested too deeply") from None
    return cfg


def merge(file_cfg: Config | None, cli_cfg: Config) -> Config:
    """Every list is concatenated (file entries first); tls, log, profiling, api and metrics are
    the command line's when it sets them. The inputs are not modified."""
    if file_cfg is None:
        return copy.deepcopy(cli_cfg)
    merged = Config()
    for f in dataclasses.fields(Config):
        ours, theirs = getattr(file_cfg, f.name), getattr(cli_cfg, f.name)
        if f.name in _SCALARS:
            value = theirs if theirs is not None else ours
        else:
            value = [*ours, *theirs]
        setattr(merged, f.name, copy.deepcopy(value))
    return merged


def _read_file(path: str, label: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{label}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror or exc}") from None


def _kind_from_extension(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        return "json"
    if ext == ".toml":
        return "toml"
    if ext in (".yaml", ".yml"):
        return "yaml"
    return "auto"


def _parse(text: str, kind: str, label: str) -> Any:
    if kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{label}: JSON syntax error at line {exc.lineno}, "
                              f"column {exc.colno}: {exc.msg}") from None
    if kind == "toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{label}: TOML syntax error: {exc}") from None
    import yaml  # PyYAML and the yaml.v3 loader: imported only when a config file is read

    from gostx.config.yamlio import load_yaml

    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        if kind == "auto" and text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                pass
        _raise_yaml_error(exc, label)


def _raise_yaml_error(exc: yaml.YAMLError, label: str) -> NoReturn:
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        raise ConfigError(f"{label}: {_yaml_message(exc)}") from None
    raise ConfigError(f"{label}: YAML error: {str(exc).splitlines()[0]}") from None


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if mark is None:
        return f"YAML syntax error: {problem}"
    return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"a {type(value).__name__}"
