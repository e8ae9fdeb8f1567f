"""Dataclass <-> plain tree (YAML/JSON documents) for the config model, with gost's rules.

Field flags (dataclass field metadata, made with `flags()`):
- `key`: the YAML/JSON key when it is not the field name;
- `always`: printed even when empty (gost has no `omitempty` on it: names, types, `addr`, the
  selector's three fields, `forwarder.nodes`, `chain.hops`, `services`);
- `duration`: a Go `time.Duration`, kept as canonical Go text.

Loading is viper + mapstructure as gost configures them: keys case-insensitive, unknown keys
ignored, weak typing (a number where a string is wanted, "a,b" or a single value where a list is
wanted), a null leaves the default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from gostx.config.duration import canonical_duration
from gostx.config.errors import ConfigError
from gostx.config.numbers import parse_int


def flags(*, key: str | None = None, always: bool = False, duration: bool = False) -> dict[str, Any]:
    """Field metadata for the model's dataclass fields (see the module docstring)."""
    meta: dict[str, Any] = {"always": always, "duration": duration}
    if key is not None:
        meta["key"] = key
    return meta




def yaml_key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


def is_always(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("always"))


def is_duration(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("duration"))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


_BOOL_TEXT = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False, "": False}


def _to_str(value: Any, path: str) -> str:
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{path}: expected a string, got {_type_name(value)}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
        return _BOOL_TEXT[value.strip().lower()]
    raise ConfigError(f"{path}: expected a boolean (true/false), got {value!r}")


def _to_int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0
        try:
            return parse_int(text, 0) if text.lower().startswith(("0x", "0o", "0b")) else parse_int(text)
        except ValueError:
            pass
    raise ConfigError(f"{path}: expected an integer, got {value!r}")


def _convert(value: Any, tp: Any, path: str) -> Any:
    tp = _strip_optional(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_type_name(value)}")
        return from_dict(typing.cast(type, tp), value, path)
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str) and not dataclasses.is_dataclass(item_tp):
            # viper/mapstructure split "a,b" into a list field
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif not isinstance(value, list):
            value = [value]  # mapstructure's weak typing wraps a single value
        return [_convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value) if v is not None]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_type_name(value)}")
        return {str(k): _plain(v) for k, v in value.items()}
    if tp is str:
        return _to_str(value, path)
    if tp is bool:
        return _to_bool(value, path)
    if tp is int:
        return _to_int(value, path)
    return value


def _plain(value: Any) -> Any:
    """A metadata value as a JSON/YAML-printable tree: TOML dates and YAML binaries become text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def from_dict(cls: type, data: dict[str, Any], path: str = "") -> Any:
    """Build dataclass `cls` from a mapping; keys match case-insensitively, unknown keys are
    ignored, a null value leaves the default. Bad types raise ConfigError naming the key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {_type_name(data)}")
    hints = _hints(cls)
    lowered = {str(k).lower(): v for k, v in data.items()}
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = yaml_key(f)
        if key.lower() not in lowered:
            continue
        value = lowered[key.lower()]
        if value is None:
            continue
        where = f"{path}.{key}" if path else key
        if is_duration(f):
            try:
                kwargs[f.name] = canonical_duration(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        else:
            kwargs[f.name] = _convert(value, hints[f.name], where)
    return cls(**kwargs)


def is_empty(value: Any, f: dataclasses.Field[Any] | None = None) -> bool:
    """Go's `omitempty`: zero strings/numbers/bools, nil pointers, empty lists and maps."""
    if f is not None and is_duration(f):
        return value in ("", "0s")
    return value is None or value is False or value == "" or value == 0 or value == [] or value == {}


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain tree, leaving out empty fields as gost does (omitempty); durations as Go
    text; map keys sorted."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if not is_always(f) and is_empty(value, f):
                continue
            if is_duration(f) and value == "":
                value = "0s"
            out[yaml_key(f)] = to_dict(value)
        return out
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(obj[k]) for k in sorted(obj, key=str)}
    return obj
