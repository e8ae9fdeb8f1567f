"""`-api` and `-metrics` values -> APIConfig / MetricsConfig.

    parse_api_url("admin:secret@:18080?pathPrefix=/api&accesslog=true")
    parse_metrics_url(":9000?path=/m")

As gost does it: the value goes through `Norm` (so `:18080` and `host:port` need no scheme), the
URL host is the listen address, `user:pass@` becomes the auth, and the query gives `pathPrefix`/
`accesslog` (api) or `path` (metrics), with keys matched case-insensitively. gostx differences: a
`unix://` value keeps its socket path as the address (gost 3.2.6 loses it), and a bad URL or port
is an error instead of being used as a raw address.
"""

from __future__ import annotations

from gostx.addr import port_number
from gostx.config.cmdmeta import QueryMetadata
from gostx.config.cmdurl import describe_arg, norm
from gostx.config.gourl import URLError, split_host_port
from gostx.config.model import APIConfig, AuthConfig, ConfigError, MetricsConfig


def _parse(raw: str, flag: str) -> tuple[str, AuthConfig | None, QueryMetadata]:
    where = describe_arg(flag, raw)
    u = norm(raw, where)
    try:
        query = u.query()
    except URLError as exc:
        raise ConfigError(f"{where}: malformed query: {exc}") from None
    auth = None
    if u.has_user:
        auth = AuthConfig(username=u.username or "", password=u.password or "")
    if u.scheme == "unix":
        if not u.path:
            raise ConfigError(f"{where}: missing socket path (want unix:///path/to/socket)")
        return f"unix://{u.path}", auth, QueryMetadata(query)
    if u.host == "":
        raise ConfigError(f"{where}: missing listen address (want [user:pass@]host:port)")
    try:
        _, port = split_host_port(u.host)
    except URLError as exc:
        raise ConfigError(f"{where}: bad listen address {u.host!r}: {exc}") from None
    if port_number(port) is None:
        raise ConfigError(f"{where}: bad port {port[:40]!r} (want a number 0-65535)")
    return u.host, auth, QueryMetadata(query)


def parse_api_url(raw: str) -> APIConfig:
    """`-api "[user:pass@]host:port?pathPrefix=/x&accesslog=true"` -> APIConfig."""
    addr, auth, md = _parse(raw, "-api")
    return APIConfig(addr=addr, auth=auth, path_prefix=md.get_string("pathPrefix"),
                     accesslog=md.get_bool("accesslog"))


def parse_metrics_url(raw: str) -> MetricsConfig:
    """`-metrics "[user:pass@]host:port?path=/metrics"` -> MetricsConfig."""
    addr, auth, md = _parse(raw, "-metrics")
    return MetricsConfig(addr=addr, auth=auth, path=md.get_string("path"))
