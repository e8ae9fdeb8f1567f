"""Property tests (hypothesis) of the command line and config compilers: gost's flags, -L/-F URLs, and
-C YAML/JSON documents, random and mutated from valid ones. The only exceptions allowed are the
project's own (FlagError/HelpRequested for flags, ConfigError/GostError for values); what compiles
must also dump (`-O yaml`, `-O json`) without an exception."""

from __future__ import annotations

import io
import json

from hypothesis import example, given
from hypothesis import strategies as st
from propertytest import FEW, PROPS, mutated

from gostx.cli.flags import FlagError, HelpRequested, parse_flags
from gostx.config import parse_api_url, parse_metrics_url
from gostx.config.cmd import build_config
from gostx.config.dump import dump_config
from gostx.config.loader import load_config
from gostx.config.model import Config, ConfigError
from gostx.errors import GostError

SCHEMES = ["", "socks5", "http", "relay", "auto", "tcp", "udp", "tun", "tungo", "forward", "relay+wss", "socks5+tls",
           "http+ws", "rtcp", "tunn", "a+b+c", "https", "ss", "unix"]
HOSTS = ["", ":1080", "127.0.0.1:8080", "[::1]:80", "h:8000-8002", "h:1-", "u:p@h:1", ":" + "9" * 30, "[::1",
         "h:65536", "@:1", "%zz:1"]
KEYS = ["net", "route", "routes", "retries", "readTimeout", "udp", "bind", "auth", "bypass", "dns", "ttl",
        "interface", "so_mark", "mtu", "keepAlive", "peer", "gw", "tls.certFile", "limiter", "climiter",
        "rlimiter", "admission", "hosts", "resolver", "strategy", "maxFails", "failTimeout", "1" * 30]
VALUES = st.one_of(st.sampled_from(["", "1", "-1", "true", "1.5", "10.0.0.1/24", "a,b", "%zz", "1s", "9" * 40,
                                    "dXNlcjpwYXNz", "..", "/", "::", "[", "\x00"]),
                   st.text(max_size=12))


@st.composite
def cli_url(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(SCHEMES))
    host = draw(st.one_of(st.sampled_from(HOSTS), st.text(max_size=12)))
    path = draw(st.sampled_from(["", "/10.0.0.1:80", "/a:1,b:2", "/:0", "/", "/[::1]:53", "/x"]))
    pairs = draw(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4))
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return (f"{scheme}://" if scheme else "") + host + path + (f"?{query}" if query else "")


URLS = st.one_of(cli_url(), st.text(max_size=40),
                 mutated(cli_url().map(lambda u: u.encode("utf-8", "surrogatepass"))).map(
                     lambda b: b.decode("utf-8", "replace")))


def dumps_cleanly(cfg: Config) -> None:
    dump_config(cfg, "yaml")
    json.loads(dump_config(cfg, "json"))


@PROPS
@given(st.lists(URLS, max_size=2), st.lists(URLS, max_size=2))
@example(["socks5://:" + "1" * 5000], [])
@example(["socks5://:1080?" + "1" * 5000 + "=1"], [])
@example(["tun://:8421?net=10.0.0.1/24&route=" + "a" * 300], [])
@example([":1080?retries=" + "1" * 5000], ["relay://h:" + "2" * 5000])
def test_cli_url_compiler(services: list[str], nodes: list[str]) -> None:
    try:
        cfg = build_config(services, nodes)
    except (ConfigError, GostError):
        return
    dumps_cleanly(cfg)


@PROPS
@given(URLS)
@example(":" + "1" * 5000)
def test_api_and_metrics_urls(raw: str) -> None:
    for parse in (parse_api_url, parse_metrics_url):
        try:
            parse(raw)
        except (ConfigError, GostError):
            pass


@PROPS
@given(st.lists(st.one_of(st.sampled_from(["-L", "-F", "-C", "-D", "-DD", "-V", "-V=false", "-O", "-api", "-h",
                                           "--", "-", "--L=x", "-metrics", "-L=", "-=", "---x"]),
                          st.text(max_size=10)), max_size=6))
def test_flag_parsing(argv: list[str]) -> None:
    try:
        parse_flags(argv)
    except (FlagError, HelpRequested, GostError):
        pass


VALID_YAML = """services:
- name: a
  addr: 127.0.0.1:1080
  handler:
    type: socks5
    retries: 2
    auth:
      username: u
      password: p
    metadata:
      udp: true
      readTimeout: 10s
  listener:
    type: tcp
  forwarder:
    nodes:
    - name: n
      addr: 10.0.0.1:80
chains:
- name: c
  hops:
  - name: h
    nodes:
    - name: n
      addr: 1.2.3.4:443
      connector:
        type: relay
      dialer:
        type: wss
        metadata:
          path: /ws
log:
  level: info
"""

JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
JSON_TREES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
        ["services", "chains", "name", "addr", "handler", "listener", "type", "metadata", "hops", "nodes", "auth",
         "log", "level", "tls", "retries", "forwarder", "bypass", "bypasses", "matchers", "api", "net", "x"]),
        inner, max_size=4)), max_leaves=12)


def load(text: str) -> None:
    try:
        cfg = load_config("-", stdin=io.StringIO(text))
    except (ConfigError, GostError):
        return
    dumps_cleanly(cfg)


@PROPS
@given(st.one_of(st.text(max_size=200), mutated(VALID_YAML.encode()).map(lambda b: b.decode("utf-8", "replace"))))
@example("[" * 20000)
@example("net: 1.5\nservices: 7")
@example("services:\n- handler:\n    retries: " + "1" * 5000)
def test_yaml_config_loader(text: str) -> None:
    load(text)


@FEW
@given(st.dictionaries(st.sampled_from(["services", "chains", "hops", "log", "api", "tls", "bypasses", "x"]),
                       JSON_TREES, max_size=3))
def test_json_config_loader(tree: dict[str, object]) -> None:
    text = json.dumps(tree)
    load(text)
    try:
        load_config(text)  # inline JSON
    except (ConfigError, GostError):
        pass


@FEW
@given(st.lists(st.tuples(st.sampled_from(KEYS), JSON_TREES), max_size=4))
def test_yaml_metadata_of_any_type(pairs: list[tuple[str, object]]) -> None:
    services = [{"name": "s", "addr": ":1", "handler": {"type": "socks5", "metadata": dict(pairs)},
                 "listener": {"type": "tcp", "metadata": dict(pairs)}, "metadata": dict(pairs)}]
    load(json.dumps({"services": services}))


HANDLERS = ["socks5", "http", "relay", "auto", "tcp", "udp", "forward"]
LISTENERS = ["tcp", "tls", "ws", "wss", "mtls", "udp"]
MD_KEYS = ["readTimeout", "udp", "bind", "notls", "udpBufferSize", "publicAddr", "header", "nodelay", "path",
           "handshakeTimeout", "keepAlive", "ttl", "readBufferSize", "backlog", "retries", "sniffing",
           "sniffing.timeout", "sniffing.fallback", "proxyProtocol", "interface", "so_mark", "dialTimeout",
           "weight", "maxFails", "hash", "cert", "key", "ca", "mux", "queue", "readQueueSize", "limiter.in"]
MD_VALUES = st.one_of(JSON_LEAVES, st.lists(JSON_LEAVES, max_size=2), st.dictionaries(st.text(max_size=4), JSON_LEAVES,
                                                                                       max_size=2),
                      st.sampled_from(["1" * 5000, "-1", "1s", "nan", "inf", "1e999", "0x10", "\x00", "a" * 300]))


@FEW
@given(st.sampled_from(HANDLERS), st.sampled_from(LISTENERS),
       st.dictionaries(st.sampled_from(MD_KEYS), MD_VALUES, max_size=4),
       st.dictionaries(st.sampled_from(MD_KEYS), MD_VALUES, max_size=3))
def test_services_built_from_metadata_of_any_type(handler: str, listener: str, hmd: dict[str, object],
                                                  lmd: dict[str, object]) -> None:
    """A service (and its handler's metadata) built from a -C document: wrong types and hostile values
    are GostError/ConfigError, never a TypeError or ValueError out of a plugin."""
    import asyncio

    from gostx.plugins import load_builtin_plugins
    from gostx.service import Service

    load_builtin_plugins()
    tree = {"services": [{"name": "s", "addr": "127.0.0.1:1", "handler": {"type": handler, "metadata": hmd},
                          "listener": {"type": listener, "metadata": lmd},
                          "forwarder": {"nodes": [{"name": "t", "addr": "127.0.0.1:2"}]}}]}
    try:
        cfg = load_config(json.dumps(tree))
        service = Service(cfg.services[0], cfg)
        init = getattr(service.handler, "parse_metadata", None)
        if init is not None and handler in ("socks5", "http", "relay", "auto"):
            asyncio.run(service.handler.init())
    except (ConfigError, GostError):
        pass
