"""Helpers the command-line compiler shares: gost's metadata getters over a query snapshot, the
`auth=` decoder, the selector keys, port-range expansion and the named components (bypass,
admission, resolver, hosts) that query keys create.

The getters follow go-gost/x `metadata/util` as gost 3.2.6 uses it on command-line values: keys are
matched case-insensitively over a snapshot taken when the URL was read, the first key present wins,
and numbers/booleans are read with Go's strict `strconv` rules (a bad number reads as 0).
Deleting a consumed key, by contrast, uses the exact spelling (Go's `delete(m, "bypass")`), so
`Bypass=x` is read as a bypass *and* stays in the metadata, as in gost.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from gostx.addr import port_number
from gostx.config.duration import SECOND, format_go_duration, parse_go_duration
from gostx.config.gourl import URLError, join_host_port, split_host_port
from gostx.config.model import (
    AdmissionConfig,
    AuthConfig,
    BypassConfig,
    Config,
    ConfigError,
    HostMappingConfig,
    HostsConfig,
    NameserverConfig,
    ResolverConfig,
    SelectorConfig,
)
from gostx.config.numbers import parse_int

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)",
                    re.IGNORECASE)
_GO_BOOL = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
MAX_PORT = 65535


class QueryMetadata:
    """A case-insensitive snapshot of URL query metadata with gost's getter semantics."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = {str(k).lower(): v for k, v in data.items()}

    def _first(self, keys: tuple[str, ...]) -> tuple[bool, Any]:
        for key in keys:
            if key.lower() in self._data:
                return True, self._data[key.lower()]
        return False, None

    def get_string(self, *keys: str) -> str:
        found, value = self._first(keys)
        if not found or isinstance(value, (list, dict)) or value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def get_int(self, *keys: str) -> int:
        found, value = self._first(keys)
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if found and isinstance(value, str) and _INT.fullmatch(value):
            with contextlib.suppress(ValueError):  # out of range: 0, as Go's strconv error is ignored
                return parse_int(value)
        return 0

    def get_float(self, *keys: str) -> float:
        found, value = self._first(keys)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if found and isinstance(value, str) and _FLOAT.fullmatch(value):
            return float(value)
        return 0.0

    def get_bool(self, *keys: str) -> bool:
        found, value = self._first(keys)
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        return bool(found and isinstance(value, str) and _GO_BOOL.get(value, False))

    def get_duration_ns(self, *keys: str) -> int:
        """An int is seconds; a string is a Go duration, or else an integer of seconds."""
        found, value = self._first(keys)
        if isinstance(value, int) and not isinstance(value, bool):
            return value * SECOND
        if found and isinstance(value, str):
            try:
                ns = parse_go_duration(value)
            except ValueError:
                ns = 0
            if ns == 0 and _INT.fullmatch(value):
                with contextlib.suppress(ValueError):
                    ns = parse_int(value) * SECOND
            return ns
        return 0


def delete_keys(m: dict[str, Any], *keys: str) -> None:
    """Go's `delete(m, key)`: exact spelling only."""
    for key in keys:
        m.pop(key, None)


def take_object(m: dict[str, Any], key: str, add: Callable[[str], str]) -> str:
    """cmd.go's `if v := mdutil.GetString(md, key); v != "" { x.Key = addX(cfg, v); delete(md, key) }`:
    the named config object `add` makes of m[key] (removed from m), or "" when the key is empty."""
    value = QueryMetadata(m).get_string(key)
    if not value:
        return ""
    name = add(value)
    delete_keys(m, key)
    return name


def parse_auth(value: str, where: str) -> AuthConfig:
    """`auth=` is base64 (standard alphabet, padded) of `user[:pass]`."""
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: bad auth={value!r}: not base64 of \"user:pass\"") from None
    user, sep, password = text.partition(":")
    return AuthConfig(username=user, password=password if sep else "")


def parse_selector(m: dict[str, Any]) -> SelectorConfig | None:
    """`strategy`, `maxFails|max_fails`, `failTimeout|fail_timeout`; the rest default to
    round / 1 / 30s when any is given. Consumed keys are deleted from `m`."""
    md = QueryMetadata(m)
    strategy = md.get_string("strategy")
    max_fails = md.get_int("maxFails", "max_fails")
    fail_timeout = md.get_duration_ns("failTimeout", "fail_timeout")
    if strategy == "" and max_fails <= 0 and fail_timeout <= 0:
        return None
    delete_keys(m, "strategy", "maxFails", "max_fails", "failTimeout", "fail_timeout")
    return SelectorConfig(
        strategy=strategy or "round",
        max_fails=max_fails if max_fails > 0 else 1,
        fail_timeout=format_go_duration(fail_timeout if fail_timeout > 0 else 30 * SECOND),
    )


def move_to_scope(m: dict[str, Any], md: QueryMetadata, scope: str,
                  strings: tuple[str, ...], ints: tuple[str, ...]) -> None:
    """Keys such as `interface` belong to one scope only: re-key them `<scope>.<key>` (a string
    when non-empty, an int when positive, as gost reads them)."""
    for key in strings:
        value = md.get_string(key)
        if value:
            m[f"{scope}.{key}"] = value
            delete_keys(m, key)
    for key in ints:
        number = md.get_int(key)
        if number > 0:
            m[f"{scope}.{key}"] = number
            delete_keys(m, key)


def split_scopes(m: dict[str, Any], prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    """One metadata map per prefix (e.g. `service.`, `handler.`, `listener.`): a prefixed key goes
    to its scope only, prefix stripped, and wins over a plain key of the same name; every other
    key goes to all of them."""
    scopes: list[dict[str, Any]] = [{} for _ in prefixes]
    for key, value in m.items():
        if not key.startswith(prefixes):
            for scope in scopes:
                scope[key] = value
    for key, value in m.items():
        for prefix, scope in zip(prefixes, scopes, strict=True):
            if key.startswith(prefix):
                scope[key[len(prefix):]] = value
                break
    return scopes


def _port(text: str, addr: str, where: str) -> int:
    port = port_number(text)
    if port is None:
        raise ConfigError(f"{where}: bad port {_short(text)!r} in {_short(addr)!r} (want a number 0-{MAX_PORT})")
    return port


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


def expand_port_range(addr: str, where: str) -> list[str]:
    """`host:8000-8002` -> one address per port (gost's AddrPortRange). An address that is not
    `host:port` (no port, a URL, a path) is returned unchanged. Bad ports raise ConfigError, where
    gost would quietly turn them into port 0."""
    if "://" in addr:
        return [addr]
    try:
        host, port = split_host_port(addr)
    except URLError:
        return [addr]
    bounds = port.split("-")
    if len(bounds) == 1:
        return [join_host_port(host, str(_port(port, addr, where)))]
    if len(bounds) != 2:
        raise ConfigError(f"{where}: bad port range {port!r} in {addr!r} (want LOW-HIGH)")
    try:
        low, high = _port(bounds[0], addr, where), _port(bounds[1], addr, where)
    except ConfigError:
        raise ConfigError(
            f"{where}: bad port range {port!r} in {addr!r} (want LOW-HIGH, each 0-{MAX_PORT})") from None
    if low > high:
        raise ConfigError(f"{where}: bad port range {port!r} in {addr!r} (LOW is above HIGH)")
    return [join_host_port(host, str(p)) for p in range(low, high + 1)]


def _matchers(value: str) -> tuple[bool, list[str]]:
    whitelist = value.startswith("~")
    if whitelist:
        value = value[1:]
    return whitelist, [s for s in value.split(",") if s != ""]


def add_bypass(cfg: Config, value: str) -> str:
    """`bypass=[~]a,b` -> a new `bypass-N` (N counts all bypasses so far); returns its name."""
    whitelist, matchers = _matchers(value)
    bypass = BypassConfig(name=f"bypass-{len(cfg.bypasses)}", whitelist=whitelist, matchers=matchers)
    cfg.bypasses.append(bypass)
    return bypass.name


def add_admission(cfg: Config, value: str) -> str:
    whitelist, matchers = _matchers(value)
    admission = AdmissionConfig(name=f"admission-{len(cfg.admissions)}", whitelist=whitelist,
                                matchers=matchers)
    cfg.admissions.append(admission)
    return admission.name


def add_resolver(cfg: Config, value: str, prefer: str = "") -> str:
    resolver = ResolverConfig(
        name=f"resolver-{len(cfg.resolvers)}",
        nameservers=[NameserverConfig(addr=s, prefer=prefer) for s in value.split(",") if s != ""],
    )
    cfg.resolvers.append(resolver)
    return resolver.name


def add_hosts(cfg: Config, value: str) -> str:
    """`hosts=example.com:1.2.3.4,...` (items without ':' are skipped, as in gost)."""
    mappings = []
    for item in value.split(","):
        hostname, sep, ip = item.partition(":")
        if sep:
            mappings.append(HostMappingConfig(hostname=hostname, ip=ip))
    hosts = HostsConfig(name=f"hosts-{len(cfg.hosts)}", mappings=mappings)
    cfg.hosts.append(hosts)
    return hosts.name
