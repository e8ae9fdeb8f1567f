"""The gost v3 config model: one dataclass per YAML object, keys spelled as gost spells them.

The CLI (-L/-F) and config files (-C) both produce a `Config`; `-O yaml|json` prints one. Field order
is gost's output order (go-gost/x `config/config.go`, the x version gost 3.2.6 pins). A field's
YAML/JSON key is its name unless its flags say otherwise (`flags(key="maxFails")`, see
`gostx.config.convert`). Loading matches keys case-insensitively, as viper does, and ignores keys it
does not know. Metadata maps stay plain dicts with the user's spelling: each plugin reads its own
keys through `gostx.config.metadata.Metadata`, which is case-insensitive.

Durations (fields flagged `duration`) are stored as canonical Go text ("30s", "1m30s"; "" = unset);
convert with `gostx.config.duration.duration_seconds`. A config file may give Go text or an
integer, which (as in gost, via mapstructure) means nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gostx.config.convert import flags, from_dict, is_empty, to_dict, yaml_key
from gostx.config.errors import ConfigError

__all__ = ["ConfigError", "from_dict", "is_empty", "to_dict", "yaml_key"]

Metadata = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# Small shared objects.


@dataclass
class AuthConfig:
    username: str = field(default="", metadata=flags(always=True))
    password: str = ""
    file: str = ""


@dataclass
class TLSOptions:
    min_version: str = field(default="", metadata=flags(key="minVersion"))
    max_version: str = field(default="", metadata=flags(key="maxVersion"))
    cipher_suites: list[str] = field(default_factory=list, metadata=flags(key="cipherSuites"))
    alpn: list[str] = field(default_factory=list)


@dataclass
class TLSConfig:
    cert_file: str = field(default="", metadata=flags(key="certFile"))
    key_file: str = field(default="", metadata=flags(key="keyFile"))
    ca_file: str = field(default="", metadata=flags(key="caFile"))
    secure: bool = False
    server_name: str = field(default="", metadata=flags(key="serverName"))
    options: TLSOptions | None = None
    validity: str = field(default="", metadata=flags(duration=True))
    common_name: str = field(default="", metadata=flags(key="commonName"))
    organization: str = ""


@dataclass
class TLSNodeConfig:
    server_name: str = field(default="", metadata=flags(key="serverName"))
    secure: bool = False
    options: TLSOptions | None = None


@dataclass
class PluginConfig:
    type: str = field(default="", metadata=flags(always=True))
    addr: str = field(default="", metadata=flags(always=True))
    tls: TLSConfig | None = None
    timeout: str = field(default="", metadata=flags(duration=True))
    token: str = ""


@dataclass
class FileLoader:
    path: str = field(default="", metadata=flags(always=True))


@dataclass
class RedisLoader:
    addr: str = field(default="", metadata=flags(always=True))
    db: int = 0
    username: str = ""
    password: str = ""
    key: str = ""
    type: str = ""


@dataclass
class HTTPLoader:
    url: str = field(default="", metadata=flags(always=True))
    timeout: str = field(default="", metadata=flags(duration=True))


@dataclass
class SelectorConfig:
    """A node selector. The defaults are what gost applies when a config gives none."""

    strategy: str = field(default="round", metadata=flags(always=True))
    max_fails: int = field(default=1, metadata=flags(key="maxFails", always=True))
    fail_timeout: str = field(default="10s", metadata=flags(key="failTimeout", always=True, duration=True))


@dataclass
class SockOptsConfig:
    mark: int = 0


@dataclass
class ChainGroupConfig:
    chains: list[str] = field(default_factory=list)
    selector: SelectorConfig | None = None


# ----------------------------------------------------------------------------------------------
# Services.


@dataclass
class HandlerConfig:
    type: str = field(default="auto", metadata=flags(always=True))
    retries: int = 0
    chain: str = ""
    chain_group: ChainGroupConfig | None = field(default=None, metadata=flags(key="chainGroup"))
    auther: str = ""
    authers: list[str] = field(default_factory=list)
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    limiter: str = ""
    observer: str = ""
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ListenerConfig:
    type: str = field(default="tcp", metadata=flags(always=True))
    chain: str = ""
    chain_group: ChainGroupConfig | None = field(default=None, metadata=flags(key="chainGroup"))
    auther: str = ""
    authers: list[str] = field(default_factory=list)
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class NodeFilterConfig:
    host: str = ""
    protocol: str = ""
    path: str = ""


@dataclass
class NodeMatcherConfig:
    rule: str = ""
    priority: int = 0


@dataclass
class HTTPNodeConfig:
    host: str = ""
    header: dict[str, str] = field(default_factory=dict)
    request_header: dict[str, str] = field(default_factory=dict, metadata=flags(key="requestHeader"))
    response_header: dict[str, str] = field(default_factory=dict, metadata=flags(key="responseHeader"))
    rewrite: list[dict[str, Any]] = field(default_factory=list)
    rewrite_url: list[dict[str, Any]] = field(default_factory=list, metadata=flags(key="rewriteURL"))
    rewrite_body: list[dict[str, Any]] = field(default_factory=list, metadata=flags(key="rewriteBody"))
    auth: AuthConfig | None = None


@dataclass
class ForwardNodeConfig:
    name: str = ""
    addr: str = ""
    network: str = ""
    bypass: str = ""
    bypasses: list[str] = field(default_factory=list)
    protocol: str = ""
    host: str = ""
    path: str = ""
    filter: NodeFilterConfig | None = None
    matcher: NodeMatcherConfig | None = None
    auth: AuthConfig | None = None
    http: HTTPNodeConfig | None = None
    tls: TLSNodeConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ForwarderConfig:
    name: str = ""
    hop: str = ""
    selector: SelectorConfig | None = None
    nodes: list[ForwardNodeConfig] = field(default_factory=list, metadata=flags(always=True))


@dataclass
class RecorderObject:
    name: str = field(default="", metadata=flags(always=True))
    record: str = field(default="", metadata=flags(always=True))
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ServiceConfig:
    name: str = field(default="", metadata=flags(always=True))
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
    recorders: list[RecorderObject] = field(default_factory=list)
    handler: HandlerConfig | None = None
    listener: ListenerConfig | None = None
    forwarder: ForwarderConfig | None = None
    metadata: Metadata = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Chains.


@dataclass
class ConnectorConfig:
    type: str = field(default="http", metadata=flags(always=True))
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class DialerConfig:
    type: str = field(default="tcp", metadata=flags(always=True))
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class NodeConfig:
    name: str = field(default="", metadata=flags(always=True))
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
    filter: NodeFilterConfig | None = None
    matcher: NodeMatcherConfig | None = None
    http: HTTPNodeConfig | None = None
    tls: TLSNodeConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class HopConfig:
    name: str = field(default="", metadata=flags(always=True))
    interface: str = ""
    sockopts: SockOptsConfig | None = None
    selector: SelectorConfig | None = None
    bypass: str = ""
    bypasses: list[str] = field(default_factory=list)
    resolver: str = ""
    hosts: str = ""
    nodes: list[NodeConfig] = field(default_factory=list)
    reload: str = field(default="", metadata=flags(duration=True))
    file: FileLoader | None = None
    redis: RedisLoader | None = None
    http: HTTPLoader | None = None
    plugin: PluginConfig | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ChainConfig:
    name: str = field(default="", metadata=flags(always=True))
    hops: list[HopConfig] = field(default_factory=list, metadata=flags(always=True))
    metadata: Metadata = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Named components referenced by services, hops and nodes.


@dataclass
class AutherConfig:
    name: str = field(default="", metadata=flags(always=True))
    auths: list[AuthConfig] = field(default_factory=list)
    reload: str = field(default="", metadata=flags(duration=True))
    file: FileLoader | None = None
    redis: RedisLoader | None = None
    http: HTTPLoader | None = None
    plugin: PluginConfig | None = None


@dataclass
class AdmissionConfig:
    name: str = field(default="", metadata=flags(always=True))
    reverse: bool = False
    whitelist: bool = False
    matchers: list[str] = field(default_factory=list)
    reload: str = field(default="", metadata=flags(duration=True))
    file: FileLoader | None = None
    redis: RedisLoader | None = None
    http: HTTPLoader | None = None
    plugin: PluginConfig | None = None


@dataclass
class BypassConfig:
    name: str = field(default="", metadata=flags(always=True))
    reverse: bool = False
    whitelist: bool = False
    matchers: list[str] = field(default_factory=list)
    reload: str = field(default="", metadata=flags(duration=True))
    file: FileLoader | None = None
    redis: RedisLoader | None = None
    http: HTTPLoader | None = None
    plugin: PluginConfig | None = None


@dataclass
class NameserverConfig:
    addr: str = field(default="", metadata=flags(always=True))
    chain: str = ""
    prefer: str = ""
    client_ip: str = field(default="", metadata=flags(key="clientIP"))
    hostname: str = ""
    ttl: str = field(default="", metadata=flags(duration=True))
    timeout: str = field(default="", metadata=flags(duration=True))
    async_: bool = field(default=False, metadata=flags(key="async"))
    only: str = ""


@dataclass
class ResolverConfig:
    name: str = field(default="", metadata=flags(always=True))
    nameservers: list[NameserverConfig] = field(default_factory=list)
    plugin: PluginConfig | None = None


@dataclass
class HostMappingConfig:
    ip: str = field(default="", metadata=flags(always=True))
    hostname: str = field(default="", metadata=flags(always=True))
    aliases: list[str] = field(default_factory=list)


@dataclass
class HostsConfig:
    name: str = field(default="", metadata=flags(always=True))
    mappings: list[HostMappingConfig] = field(default_factory=list)
    reload: str = field(default="", metadata=flags(duration=True))
    file: FileLoader | None = None
    redis: RedisLoader | None = None
    http: HTTPLoader | None = None
    plugin: PluginConfig | None = None


@dataclass
class IngressRuleConfig:
    hostname: str = field(default="", metadata=flags(always=True))
    endpoint: str = field(default="", metadata=flags(always=True))


@dataclass
class IngressConfig:
    name: str = field(default="", metadata=flags(always=True))
    rules: list[IngressRuleConfig] = field(default_factory=list)
    reload: str = field(default="", metadata=flags(duration=True))
    file: FileLoader | None = None
    redis: RedisLoader | None = None
    http: HTTPLoader | None = None
    plugin: PluginConfig | None = None


@dataclass
class SDConfig:
    name: str = field(default="", metadata=flags(always=True))
    plugin: PluginConfig | None = None


@dataclass
class RouterRouteConfig:
    net: str = ""
    dst: str = ""
    gateway: str = field(default="", metadata=flags(always=True))


@dataclass
class RouterConfig:
    name: str = field(default="", metadata=flags(always=True))
    routes: list[RouterRouteConfig] = field(default_factory=list)
    reload: str = field(default="", metadata=flags(duration=True))
    file: FileLoader | None = None
    redis: RedisLoader | None = None
    http: HTTPLoader | None = None
    plugin: PluginConfig | None = None


@dataclass
class LogRotationConfig:
    max_size: int = field(default=0, metadata=flags(key="maxSize"))
    max_age: int = field(default=0, metadata=flags(key="maxAge"))
    max_backups: int = field(default=0, metadata=flags(key="maxBackups"))
    local_time: bool = field(default=False, metadata=flags(key="localTime"))
    compress: bool = False


@dataclass
class FileRecorder:
    path: str = field(default="", metadata=flags(always=True))
    sep: str = ""
    rotation: LogRotationConfig | None = None


@dataclass
class TCPRecorder:
    addr: str = field(default="", metadata=flags(always=True))
    timeout: str = field(default="", metadata=flags(always=True, duration=True))


@dataclass
class HTTPRecorder:
    url: str = field(default="", metadata=flags(always=True))
    timeout: str = field(default="", metadata=flags(duration=True))
    header: dict[str, str] = field(default_factory=dict)


@dataclass
class RedisRecorder:
    addr: str = field(default="", metadata=flags(always=True))
    db: int = 0
    username: str = ""
    password: str = ""
    key: str = ""
    type: str = ""


@dataclass
class RecorderConfig:
    name: str = field(default="", metadata=flags(always=True))
    file: FileRecorder | None = None
    tcp: TCPRecorder | None = None
    http: HTTPRecorder | None = None
    redis: RedisRecorder | None = None
    plugin: PluginConfig | None = None


@dataclass
class LimiterConfig:
    name: str = field(default="", metadata=flags(always=True))
    limits: list[str] = field(default_factory=list)
    reload: str = field(default="", metadata=flags(duration=True))
    file: FileLoader | None = None
    redis: RedisLoader | None = None
    http: HTTPLoader | None = None
    plugin: PluginConfig | None = None


@dataclass
class ObserverConfig:
    name: str = field(default="", metadata=flags(always=True))
    plugin: PluginConfig | None = None


@dataclass
class LogConfig:
    output: str = ""
    level: str = ""
    format: str = ""
    rotation: LogRotationConfig | None = None


@dataclass
class LoggerConfig:
    name: str = field(default="", metadata=flags(always=True))
    log: LogConfig | None = None


@dataclass
class ProfilingConfig:
    addr: str = field(default="", metadata=flags(always=True))


@dataclass
class APIConfig:
    addr: str = field(default="", metadata=flags(always=True))
    path_prefix: str = field(default="", metadata=flags(key="pathPrefix"))
    accesslog: bool = False
    auth: AuthConfig | None = None
    auther: str = ""


@dataclass
class MetricsConfig:
    addr: str = field(default="", metadata=flags(always=True))
    path: str = ""
    auth: AuthConfig | None = None
    auther: str = ""


@dataclass
class Config:
    services: list[ServiceConfig] = field(default_factory=list, metadata=flags(always=True))
    chains: list[ChainConfig] = field(default_factory=list)
    hops: list[HopConfig] = field(default_factory=list)
    authers: list[AutherConfig] = field(default_factory=list)
    admissions: list[AdmissionConfig] = field(default_factory=list)
    bypasses: list[BypassConfig] = field(default_factory=list)
    resolvers: list[ResolverConfig] = field(default_factory=list)
    hosts: list[HostsConfig] = field(default_factory=list)
    ingresses: list[IngressConfig] = field(default_factory=list)
    routers: list[RouterConfig] = field(default_factory=list)
    sds: list[SDConfig] = field(default_factory=list)
    recorders: list[RecorderConfig] = field(default_factory=list)
    limiters: list[LimiterConfig] = field(default_factory=list)
    climiters: list[LimiterConfig] = field(default_factory=list)
    rlimiters: list[LimiterConfig] = field(default_factory=list)
    observers: list[ObserverConfig] = field(default_factory=list)
    loggers: list[LoggerConfig] = field(default_factory=list)
    tls: TLSConfig | None = None
    log: LogConfig | None = None
    profiling: ProfilingConfig | None = None
    api: APIConfig | None = None
    metrics: MetricsConfig | None = None
