"""-api and -metrics values (spec v3.md 2.7)."""

from __future__ import annotations

import pytest

from gostx.config import ConfigError, parse_api_url, parse_metrics_url
from gostx.config.model import APIConfig, AuthConfig, MetricsConfig


@pytest.mark.parametrize(("raw", "expected"), [
    (":18080", APIConfig(addr=":18080")),
    ("localhost:18080", APIConfig(addr="localhost:18080")),
    ("admin:secret@:18080?pathPrefix=/api&accesslog=true",
     APIConfig(addr=":18080", path_prefix="/api", accesslog=True,
               auth=AuthConfig(username="admin", password="secret"))),
    ("http://u@127.0.0.1:18080?PATHPREFIX=/x&accessLog=1",
     APIConfig(addr="127.0.0.1:18080", path_prefix="/x", accesslog=True, auth=AuthConfig(username="u"))),
    ("[::1]:18080?accesslog=no", APIConfig(addr="[::1]:18080")),
    ("unix:///run/gost/api.sock", APIConfig(addr="unix:///run/gost/api.sock")),
])
def test_api(raw: str, expected: APIConfig) -> None:
    assert parse_api_url(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (":9000", MetricsConfig(addr=":9000")),
    ("user:pass@:9000?path=/m", MetricsConfig(addr=":9000", path="/m",
                                              auth=AuthConfig(username="user", password="pass"))),
    ("0.0.0.0:9000?Path=/metrics", MetricsConfig(addr="0.0.0.0:9000", path="/metrics")),
])
def test_metrics(raw: str, expected: MetricsConfig) -> None:
    assert parse_metrics_url(raw) == expected


@pytest.mark.parametrize(("parse", "raw", "words"), [
    (parse_api_url, "", ['-api ""', "empty value"]),
    (parse_api_url, ":abc", ["-api", "malformed URL", "invalid port"]),
    (parse_api_url, "18080", ["bad listen address", "missing port"]),
    (parse_api_url, ":99999", ["bad port", "99999"]),
    (parse_api_url, "unix://", ["missing socket path"]),
    (parse_api_url, ":18080?pathPrefix=%zz", ["malformed query"]),
    (parse_metrics_url, "?path=/m", ["-metrics", "missing listen address"]),
    (parse_metrics_url, "a b:9000", ["-metrics", "malformed URL"]),
])
def test_bad_values(parse: object, raw: str, words: list[str]) -> None:
    assert callable(parse)
    with pytest.raises(ConfigError) as info:
        parse(raw)
    for word in words:
        assert word in str(info.value)
