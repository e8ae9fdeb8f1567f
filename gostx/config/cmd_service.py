"""`-L` URLs -> services (go-gost/x `config/cmd/cmd.go` `buildServiceConfig` and the per-service
part of `BuildConfigFromCmd`, gost 3.2.6)."""

from __future__ import annotations

import copy
import os

from gostx.config import names
from gostx.config.cmdmeta import (
    QueryMetadata,
    add_admission,
    add_bypass,
    add_hosts,
    add_resolver,
    delete_keys,
    expand_port_range,
    move_to_scope,
    parse_auth,
    parse_selector,
    split_scopes,
    take_object,
)
from gostx.config.cmdurl import cut_host, describe_arg, norm, query_of, split_scheme, userinfo_auth
from gostx.config.gourl import GoURL
from gostx.config.model import (
    Config,
    ForwarderConfig,
    ForwardNodeConfig,
    HandlerConfig,
    LimiterConfig,
    ListenerConfig,
    ServiceConfig,
    TLSConfig,
)

_SERVICE_LIMIT_KEY = "$"
_CONN_LIMIT_KEY = "$$"
SERVER_TLS_KEYS = ("tls.certFile", "certFile", "cert", "tls.keyFile", "keyFile", "key",
                   "tls.caFile", "caFile", "ca")


def build_services(raw: str, notes: list[str] | None = None) -> list[ServiceConfig]:
    """One -L value -> its services. An unknown handler type falls back to gost's `auto` (an unknown
    listener to tcp), as gost does; a line for each fallback is appended to `notes` (logged at start)."""
    where = describe_arg("-L", raw)
    s = raw.strip()
    if s == "":
        return []
    if s[0] == ":" or "://" not in s:
        s = "auto://" + s
    host, remain = cut_host(s)
    u = norm(remain, where)
    u.host = host

    handler, listener = split_scheme(u.scheme)
    services = [ServiceConfig(addr=addr) for addr in expand_port_range(u.host, where)]

    if handler not in names.HANDLERS:
        if notes is not None:
            notes.append(f"{where}: unknown handler type {handler!r}: serving gost's auto proxy (SOCKS5 and "
                         "HTTP, no authentication unless user:pass@ is given) instead")
        handler = "auto"
    if listener not in names.LISTENERS:
        if notes is not None and "+" in u.scheme:  # `tunn://` was named once, as the handler
            notes.append(f"{where}: unknown listener type {listener!r}: listening on tcp instead")
        listener = "udp" if handler == "ssu" else "tcp"

    targets = _forward_targets(u, where)
    if targets and handler != "relay":
        handler = listener if listener in names.FORWARD_LISTENERS else "forward"
    _assign_targets(services, targets)

    auth = userinfo_auth(u)
    m = query_of(u, where)
    md = QueryMetadata(m)

    encoded_auth = md.get_string("auth")
    if encoded_auth:  # gost 3.2.6: auth= wins even over user:pass@
        auth = parse_auth(encoded_auth, where)
    delete_keys(m, "auth")

    tls = _server_tls(md)
    delete_keys(m, *SERVER_TLS_KEYS)

    dns = md.get_string("dns")
    if dns:
        m["dns"] = dns.split(",")
    move_to_scope(m, md, "service", strings=("interface", "netns", "netns.out"),
                   ints=("so_mark", "proxyProtocol"))

    selector = parse_selector(m)
    service_md, handler_md, listener_md = split_scopes(m, ("service.", "handler.", "listener."))

    handler_cfg = HandlerConfig(type=handler, auth=auth, metadata=handler_md)
    listener_cfg = ListenerConfig(type=listener, tls=tls, metadata=listener_md)
    if listener in names.SSH_TRANSPORTS:
        handler_cfg.auth, listener_cfg.auth = None, auth

    for svc in services:
        if svc.forwarder is not None:
            svc.forwarder.selector = copy.deepcopy(selector)
        svc.handler = copy.deepcopy(handler_cfg)
        svc.listener = copy.deepcopy(listener_cfg)
        svc.metadata = copy.deepcopy(service_md)
    return services


def _server_tls(md: QueryMetadata) -> TLSConfig | None:
    """The listener's certificate, only when one is given (else gost's default certificate)."""
    cert = md.get_string("tls.certFile", "certFile", "cert")
    if cert == "":
        return None
    return TLSConfig(cert_file=cert, key_file=md.get_string("tls.keyFile", "keyFile", "key"),
                     ca_file=md.get_string("tls.caFile", "caFile", "ca"))


def _forward_targets(u: GoURL, where: str) -> list[ForwardNodeConfig]:
    prefix = f"go-{os.environ['_GOST_ID']}@" if os.environ.get("_GOST_ID") else ""
    remotes = u.escaped_path().strip("/")
    targets: list[ForwardNodeConfig] = []
    if remotes == "":
        return targets
    for item in remotes.split(","):
        if item == "":
            continue
        for addr in expand_port_range(item, where):
            targets.append(ForwardNodeConfig(name=f"{prefix}target-{len(targets)}", addr=addr))
    return targets


def _assign_targets(services: list[ServiceConfig], targets: list[ForwardNodeConfig]) -> None:
    """One service gets every target; several services share a single target; otherwise
    service i gets target i."""
    if not targets:
        return
    if len(services) == 1:
        services[0].forwarder = ForwarderConfig(nodes=targets)
        return
    for i, svc in enumerate(services):
        if len(targets) == 1:
            svc.forwarder = ForwarderConfig(nodes=copy.deepcopy(targets))
        elif i < len(targets):
            svc.forwarder = ForwarderConfig(nodes=[targets[i]])


def extract_service_components(service: ServiceConfig, cfg: Config) -> None:
    """Keys read from the handler metadata that become config objects. They are removed from the
    handler metadata only, so they stay visible in the listener and service metadata."""
    assert service.handler is not None
    mh = service.handler.metadata
    md = QueryMetadata(mh)

    retries = md.get_int("retries")
    if retries > 0:
        service.handler.retries = retries
        delete_keys(mh, "retries")
    service.admission = take_object(mh, "admission", lambda v: add_admission(cfg, v))
    service.bypass = take_object(mh, "bypass", lambda v: add_bypass(cfg, v))
    prefer = md.get_string("prefer")
    service.resolver = take_object(mh, "resolver", lambda v: add_resolver(cfg, v, prefer=prefer))
    service.hosts = take_object(mh, "hosts", lambda v: add_hosts(cfg, v))

    lin, lout = md.get_string("limiter.in"), md.get_string("limiter.out")
    cin, cout = md.get_string("limiter.conn.in"), md.get_string("limiter.conn.out")
    if lin or lout or cin or cout:
        limiter = LimiterConfig(name=f"limiter-{len(cfg.limiters)}")
        if lin or lout:
            limiter.limits.append(f"{_SERVICE_LIMIT_KEY} {lin} {lout}")
        if cin or cout:
            limiter.limits.append(f"{_CONN_LIMIT_KEY} {cin} {cout}")
        service.limiter = limiter.name
        cfg.limiters.append(limiter)
        delete_keys(mh, "limiter.in", "limiter.out", "limiter.conn.in", "limiter.conn.out")

    climit = md.get_int("climiter")
    if climit > 0:
        limiter = LimiterConfig(name=f"climiter-{len(cfg.climiters)}", limits=[f"$ {climit}"])
        service.climiter = limiter.name
        cfg.climiters.append(limiter)
        delete_keys(mh, "climiter")

    rlimit = md.get_float("rlimiter")
    if rlimit > 0:
        limiter = LimiterConfig(name=f"rlimiter-{len(cfg.rlimiters)}", limits=[f"$ {_go_float(rlimit)}"])
        service.rlimiter = limiter.name
        cfg.rlimiters.append(limiter)
        delete_keys(mh, "rlimiter")


def _go_float(value: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64): shortest exact digits, never an exponent."""
    if value == float("inf"):
        return "+Inf"
    text = repr(value)
    if "e" in text or "E" in text:
        from decimal import Decimal

        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text
