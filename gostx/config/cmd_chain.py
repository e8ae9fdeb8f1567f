"""`-F` URLs -> the hops of chain `chain-0` (go-gost/x `config/cmd/cmd.go` node part and
`buildNodeConfig`, gost 3.2.6)."""

from __future__ import annotations

import copy
from typing import Any

from gostx.config import names
from gostx.config.cmd_service import SERVER_TLS_KEYS
from gostx.config.cmdmeta import (
    QueryMetadata,
    add_bypass,
    add_hosts,
    add_resolver,
    delete_keys,
    move_to_scope,
    parse_auth,
    parse_selector,
    split_scopes,
    take_object,
)
from gostx.config.cmdurl import describe_arg, norm, query_of, split_scheme, userinfo_auth
from gostx.config.gourl import GoURL
from gostx.config.model import (
    Config,
    ConfigError,
    ConnectorConfig,
    DialerConfig,
    HopConfig,
    NodeConfig,
    TLSConfig,
)

_CLIENT_TLS_KEYS = (*SERVER_TLS_KEYS, "tls.secure", "secure", "tls.servername", "serverName")


def build_hop(raw: str, index: int, cfg: Config, notes: list[str] | None = None) -> HopConfig:
    where = describe_arg("-F", raw)
    u = norm(raw, where)
    m = query_of(u, where)
    md = QueryMetadata(m)

    hop = HopConfig(name=f"hop-{index}", selector=parse_selector(m))
    hop.bypass = take_object(m, "bypass", lambda v: add_bypass(cfg, v))
    hop.resolver = take_object(m, "resolver", lambda v: add_resolver(cfg, v))
    hop.hosts = take_object(m, "hosts", lambda v: add_hosts(cfg, v))
    move_to_scope(m, md, "hop", strings=("interface",), ints=("so_mark", "proxyProtocol"))

    hop_md: dict[str, Any] = {}
    for key in list(m):
        if key.startswith(("node.", "connector.", "dialer.")):
            continue
        if key.startswith("hop."):
            hop_md[key[len("hop."):]] = m.pop(key)
        elif key not in hop_md:
            hop_md[key] = m[key]
    hop.metadata = hop_md

    template, explicit_server_name = _build_node(u, m, where, notes)
    for host in template.addr.split(","):
        if host == "":
            continue
        node = copy.deepcopy(template)
        node.name = f"node-{len(hop.nodes)}"
        node.addr = host
        _set_node_server_name(node, host, explicit_server_name)
        hop.nodes.append(node)
    if not hop.nodes:
        raise ConfigError(f"{where}: missing host:port of the node")
    return hop


def _build_node(u: GoURL, m: dict[str, Any], where: str,
                notes: list[str] | None = None) -> tuple[NodeConfig, bool]:
    md = QueryMetadata(m)
    connector, dialer = split_scheme(u.scheme)
    if connector not in names.CONNECTORS:  # gost's fallback, said once in the log (see build_config)
        if notes is not None:
            notes.append(f"{where}: unknown connector type {connector!r}: using http instead")
        connector = "http"
    if dialer not in names.DIALERS:
        if notes is not None and "+" in u.scheme:
            notes.append(f"{where}: unknown dialer type {dialer!r}: dialing tcp instead")
        dialer = "udp" if connector == "ssu" else "tcp"

    auth = userinfo_auth(u)
    encoded_auth = md.get_string("auth")
    if encoded_auth and auth is None:
        auth = parse_auth(encoded_auth, where)
    delete_keys(m, "auth")

    server_name = md.get_string("tls.servername", "servername")
    tls = TLSConfig(
        cert_file=md.get_string("tls.certFile", "certFile", "cert"),
        key_file=md.get_string("tls.keyFile", "keyFile", "key"),
        ca_file=md.get_string("tls.caFile", "caFile", "ca"),
        secure=md.get_bool("tls.secure", "secure"),
        server_name=server_name,
    )
    delete_keys(m, *_CLIENT_TLS_KEYS)

    node_md, connector_md, dialer_md = split_scopes(m, ("node.", "connector.", "dialer."))

    node = NodeConfig(
        addr=u.host,
        metadata=node_md,
        connector=ConnectorConfig(type=connector, auth=auth, metadata=connector_md),
        dialer=DialerConfig(type=dialer, tls=tls, metadata=dialer_md),
    )
    if dialer in names.SSH_TRANSPORTS:
        assert node.connector is not None and node.dialer is not None
        node.connector.auth, node.dialer.auth = None, auth
    return node, server_name != ""


def _set_node_server_name(node: NodeConfig, host: str, explicit: bool) -> None:
    """The dialer TLS serverName defaults to the node's host; a TLS block with nothing set is
    dropped."""
    assert node.dialer is not None
    tls = node.dialer.tls
    if tls is None:
        return
    if not explicit:
        tls.server_name = GoURL(host=host).hostname()
    if not tls.secure and not tls.cert_file and not tls.ca_file and not tls.server_name:
        node.dialer.tls = None
