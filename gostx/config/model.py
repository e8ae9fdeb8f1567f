"""The gost v3 config model: one dataclass per YAML object, keys spelled as gost spells them.

The CLI (-L/-F) and config files (-C) both produce a `Config`; `-O yaml|json` prints one. Field order
is gost's output order. A field's YAML key is its name unless the field says otherwise
(`field(metadata={"key": "maxFails"})`). Loading matches keys case-insensitively, as viper does, and
ignores keys it does not know. Metadata maps stay plain dicts: each plugin reads its own keys.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

Metadata = dict[str, Any]


def _key(name: str) -> dict[str, str]:
    return {"key": name}


@dataclass
class AuthConfig:
    username: str = ""
    password: str = ""
    file: str = ""


@dataclass
class TLSOptions:
    min_version: str = field(default="", metadata=_key("minVersion"))
    max_version: str = field(default="", metadata=_key("maxVersion"))
    cipher_suites: list[str] = field(default_factory=list, metadata=_key("cipherSuites"))
    alpn: list[str] = field(default_factory=list)


@dataclass
class TLSConfig:
    cert_file: str = field(default="", metadata=_key("certFile"))
    key_file: str = field(default="", metadata=_key("keyFile"))
    ca_file: str = field(default="", metadata=_key("caFile"))
    secure: bool = False
    server_name: str = field(default="", metadata=_key("serverName"))
    options: TLSOptions | None = None
    validity: str = ""
    common_name: str = field(default="", metadata=_key("commonName"))
    organization: str = ""


@dataclass
class SelectorConfig:
    strategy: str = "round"
    max_fails: int = field(default=1, metadata=_key("maxFails"))
    fail_timeout: Any = field(default="10s", metadata=_key("failTimeout"))


@dataclass
class SockOptsConfig:
    mark: int = 0


@dataclass
class HandlerConfig:
    type: str = "auto"
    retries: int = 0
    chain: str = ""
    auther: str = ""
    authers: list[str] = field(default_factory=list)
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    limiter: str = ""
    observer: str = ""
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ListenerConfig:
    type: str = "tcp"
    chain: str = ""
    auther: str = ""
    authers: list[str] = field(default_factory=list)
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ConnectorConfig:
    type: str = "http"
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class DialerConfig:
    type: str = "tcp"
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ForwardNodeConfig:
    name: str = ""
    addr: str = ""
    network: str = ""
    bypass: str = ""
    bypasses: list[str] = field(default_factory=list)
    tls: TLSConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ForwarderConfig:
    hop: str = ""
    selector: SelectorConfig | None = None
    nodes: list[ForwardNodeConfig] = field(default_factory=list)


@dataclass
class NodeConfig:
    name: str = ""
    addr: str = ""
    network: str = ""
    bypass: str = ""
    bypasses: list[str] = field(default_factory=list)
    resolver: str = ""
    hosts: str = ""
    connector: ConnectorConfig | None = None
    dialer: DialerConfig | None = None
    interface: str = ""
    netns: str = ""
    sockopts: SockOptsConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class HopConfig:
    name: str = ""
    interface: str = ""
    sockopts: SockOptsConfig | None = None
    selector: SelectorConfig | None = None
    bypass: str = ""
    bypasses: list[str] = field(default_factory=list)
    resolver: str = ""
    hosts: str = ""
    nodes: list[NodeConfig] = field(default_factory=list)
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ChainConfig:
    name: str = ""
    hops: list[HopConfig] = field(default_factory=list)
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ServiceConfig:
    name: str = ""
    addr: str = ""
    interface: str = ""
    sockopts: SockOptsConfig | None = None
    admission: str = ""
    admissions: list[str] = field(default_factory=list)
    bypass: str = ""
    bypasses: list[str] = field(default_factory=list)
    resolver: str = ""
    hosts: str = ""
    limiter: str = ""
    climiter: str = ""
    rlimiter: str = ""
    logger: str = ""
    loggers: list[str] = field(default_factory=list)
    observer: str = ""
    recorders: list[Any] = field(default_factory=list)
    handler: HandlerConfig | None = None
    listener: ListenerConfig | None = None
    forwarder: ForwarderConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class BypassConfig:
    name: str = ""
    whitelist: bool = False
    reverse: bool = False
    matchers: list[str] = field(default_factory=list)
    reload: Any = None
    file: dict[str, Any] | None = None


@dataclass
class AutherConfig:
    name: str = ""
    auths: list[AuthConfig] = field(default_factory=list)
    file: dict[str, Any] | None = None


@dataclass
class NameserverConfig:
    addr: str = ""
    chain: str = ""
    prefer: str = ""
    client_ip: str = field(default="", metadata=_key("clientIP"))
    hostname: str = ""
    ttl: Any = None
    timeout: Any = None
    async_: bool = field(default=False, metadata=_key("async"))
    only: str = ""


@dataclass
class ResolverConfig:
    name: str = ""
    nameservers: list[NameserverConfig] = field(default_factory=list)


@dataclass
class HostMappingConfig:
    ip: str = ""
    hostname: str = ""
    aliases: list[str] = field(default_factory=list)


@dataclass
class HostsConfig:
    name: str = ""
    mappings: list[HostMappingConfig] = field(default_factory=list)


@dataclass
class AdmissionConfig:
    name: str = ""
    whitelist: bool = False
    reverse: bool = False
    matchers: list[str] = field(default_factory=list)


@dataclass
class LimiterConfig:
    name: str = ""
    limits: list[str] = field(default_factory=list)


@dataclass
class LogRotationConfig:
    max_size: int = field(default=0, metadata=_key("maxSize"))
    max_age: int = field(default=0, metadata=_key("maxAge"))
    max_backups: int = field(default=0, metadata=_key("maxBackups"))
    local_time: bool = field(default=False, metadata=_key("localTime"))
    compress: bool = False


@dataclass
class LogConfig:
    output: str = ""
    level: str = ""
    format: str = ""
    rotation: LogRotationConfig | None = None


@dataclass
class APIConfig:
    addr: str = ""
    path_prefix: str = field(default="", metadata=_key("pathPrefix"))
    accesslog: bool = False
    auth: AuthConfig | None = None
    auther: str = ""


@dataclass
class MetricsConfig:
    addr: str = ""
    path: str = ""
    auth: AuthConfig | None = None
    auther: str = ""


@dataclass
class ProfilingConfig:
    addr: str = ""


@dataclass
class Config:
    services: list[ServiceConfig] = field(default_factory=list)
    chains: list[ChainConfig] = field(default_factory=list)
    hops: list[HopConfig] = field(default_factory=list)
    authers: list[AutherConfig] = field(default_factory=list)
    admissions: list[AdmissionConfig] = field(default_factory=list)
    bypasses: list[BypassConfig] = field(default_factory=list)
    resolvers: list[ResolverConfig] = field(default_factory=list)
    hosts: list[HostsConfig] = field(default_factory=list)
    limiters: list[LimiterConfig] = field(default_factory=list)
    climiters: list[LimiterConfig] = field(default_factory=list)
    rlimiters: list[LimiterConfig] = field(default_factory=list)
    tls: TLSConfig | None = None
    log: LogConfig | None = None
    profiling: ProfilingConfig | None = None
    api: APIConfig | None = None
    metrics: MetricsConfig | None = None


# ----------------------------------------------------------------------------------------------
# Generic conversion between the dataclasses and plain dicts (YAML/JSON trees).


class ConfigError(ValueError):
    """A config tree that does not fit the model: the message names the offending path."""


def yaml_key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


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


def _convert(value: Any, tp: Any, path: str) -> Any:
    tp = _strip_optional(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, path)
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):  # viper splits "a,b" into a list field
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return [_convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return {str(k): v for k, v in value.items()}
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__}")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return value != 0
        if isinstance(value, str) and value.strip().lower() in ("1", "t", "true", "0", "f", "false", ""):
            return value.strip().lower() in ("1", "t", "true")
        raise ConfigError(f"{path}: expected a boolean, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
    return value


def from_dict(cls: type, data: dict[str, Any], path: str = "") -> Any:
    """Build dataclass `cls` from a mapping; keys match case-insensitively, unknown keys are ignored."""
    hints = _hints(cls)
    lowered = {str(k).lower(): v for k, v in data.items()}
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = yaml_key(f)
        if key.lower() in lowered:
            kwargs[f.name] = _convert(lowered[key.lower()], hints[f.name], f"{path}.{key}" if path else key)
    return cls(**kwargs)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {} or value is False or value == 0


# Fields gost always prints even when empty/zero (spec v3.md 1.3 sketch).
_ALWAYS = {(SelectorConfig, "strategy"), (SelectorConfig, "max_fails"), (SelectorConfig, "fail_timeout"),
           (ForwarderConfig, "nodes")}


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain tree, leaving out empty fields (gost's omitempty); metadata keys sorted."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if (type(obj), f.name) not in _ALWAYS and f.name != "name" and _is_empty(value):
                continue
            if f.name == "name" and value == "":
                continue
            out[yaml_key(f)] = to_dict(value)
        return out
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(obj[k]) for k in sorted(obj, key=str)}
    return obj
