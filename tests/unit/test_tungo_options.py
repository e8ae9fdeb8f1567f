"""tungo metadata (spec v3.md 3.1/3.2), the dns option, the plugin's checks, and the routing-loop memory."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import stat
from pathlib import Path

import pytest

from gostx.config.cmd import build_config
from gostx.config.metadata import Metadata
from gostx.config.model import ChainConfig, Config, HandlerConfig, ListenerConfig, ServiceConfig
from gostx.errors import GostError
from gostx.handler.tungo.options import TungoHandlerOptions
from gostx.handler.tungo.upstream import OwnSockets, address_key
from gostx.listener.tungo import dns as tungo_dns
from gostx.listener.tungo.options import TungoOptions, parse_dns
from gostx.log import get_logger
from gostx.plugins import load_builtin_plugins
from gostx.service import Service

load_builtin_plugins()


def test_listener_defaults_are_gosts() -> None:
    opts = TungoOptions.from_metadata(Metadata({}))
    assert (opts.name, opts.mtu, opts.nets, opts.routes, opts.dns) == ("tungo", 1420, [], [], [])


def test_listener_options_from_the_seed_command_line() -> None:
    config = build_config(["tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&dns=1.1.1.1"], [])
    service = config.services[0]
    assert service.handler is not None and service.listener is not None
    assert service.handler.type == "tungo" and service.listener.type == "tungo"
    opts = TungoOptions.from_metadata(Metadata(service.listener.metadata))
    assert opts.name == "tungo" and opts.mtu == 1420
    assert opts.nets == [ipaddress.ip_interface("192.168.123.1/24")]
    assert opts.dns == [ipaddress.ip_address("1.1.1.1")]  # the CLI's list form is honoured (gost drops it)


def test_listener_options_every_key_and_the_tun_prefix() -> None:
    md = Metadata({"tun.name": "tg9", "tun.mtu": 9000, "tun.net": "10.9.0.1/24,fd00:9::1/64",
                   "tun.gw": "10.9.0.2", "tun.route": "10.10.0.0/16,bogus", "routes": ["10.11.0.0/16 10.9.0.3"],
                   "tun.dns": "1.1.1.1, 2606:4700:4700::1111"})
    opts = TungoOptions.from_metadata(md)
    assert (opts.name, opts.mtu) == ("tg9", 9000)
    assert [str(n) for n in opts.nets] == ["10.9.0.1/24", "fd00:9::1/64"]
    assert [str(r) for r in opts.routes] == ["10.10.0.0/16 via 10.9.0.2", "10.11.0.0/16 via 10.9.0.3"]
    assert [str(d) for d in opts.dns] == ["1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("md, message", [
    ({"mtu": "big"}, "mtu 'big' is not a number"),
    ({"mtu": 100}, "mtu 100 is out of range"),
    ({"gw": "nope"}, "gw 'nope' is not an IP address"),
    ({"dns": "1.1.1.1,dns.google"}, "dns 'dns.google' is not an IP address"),
    ({"net": "10.0.0.1"}, "is not an address with a prefix length"),
])
def test_listener_bad_values_are_one_line_errors(md: dict[str, object], message: str) -> None:
    with pytest.raises(GostError) as info:
        TungoOptions.from_metadata(Metadata(md))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_parse_dns_forms() -> None:
    assert parse_dns(None) == []
    assert parse_dns(["8.8.8.8", " 1.1.1.1 "]) == [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("1.1.1.1")]
    assert parse_dns("8.8.8.8,,") == [ipaddress.ip_address("8.8.8.8")]


@pytest.mark.parametrize("value, seconds", [("30s", 30.0), ("2m", 120.0), (45, 45.0), ("1m30s", 90.0), ("0", 30.0)])
def test_handler_udp_timeout(value: object, seconds: float) -> None:
    assert TungoHandlerOptions.from_metadata(Metadata({"udpTimeout": value})).udp_timeout == seconds
    assert TungoHandlerOptions.from_metadata(Metadata({"tungo.udpTimeout": value})).udp_timeout == seconds


def test_handler_defaults() -> None:
    opts = TungoHandlerOptions.from_metadata(Metadata({}))
    assert opts.udp_timeout == 30.0


def _service(handler_md: dict[str, object] | None = None, chain: bool = False) -> Service:
    chains = [ChainConfig(name="chain-0")] if chain else []
    cfg = ServiceConfig(name="service-0", addr=":0",
                        handler=HandlerConfig(type="tungo", chain="chain-0" if chain else "",
                                              metadata=dict(handler_md or {})),
                        listener=ListenerConfig(type="tungo"))
    return Service(cfg, Config(services=[cfg], chains=chains))


def _cli_service(listen: str, *forward: str) -> Service:
    config = build_config([listen], list(forward))
    return Service(config.services[0], config)


def test_a_socks5_chain_builds_the_router() -> None:
    service = _cli_service("tungo://:0?net=192.168.123.1/24", "socks5://10.0.0.9:1080?interface=eth9")
    handler = service.handler

    async def scenario() -> None:
        await handler.init()
        try:
            assert [n.addr for n in handler.router.route("10.201.0.1:80")] == ["10.0.0.9:1080"]
        finally:
            await handler.close()

    asyncio.run(scenario())


def test_a_chain_this_project_cannot_build_is_a_one_line_error() -> None:
    # gost registers `ss`; gostx has no shadowsocks connector
    service = _cli_service("tungo://:0?net=192.168.123.1/24", "ss+wss://10.0.0.9:443?interface=eth0")
    with pytest.raises(GostError) as info:
        asyncio.run(service.handler.init())
    assert "ss" in str(info.value) and "\n" not in str(info.value)


def test_sniffing_options_are_gosts() -> None:
    service = _cli_service("tungo://:0?net=192.168.123.1/24&sniffing=true&sniffing.timeout=1s"
                           "&sniffing.fallback=true")
    sniffing = service.handler.sniffing
    assert (sniffing.enabled, sniffing.timeout, sniffing.fallback, sniffing.dns) == (True, 1.0, True, True)


def test_own_sockets_remember_local_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    own = OwnSockets(memory=10.0)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind(("::1", 0))
        own.add(sock)
        port = sock.getsockname()[1]
    assert ("0:0:0:0:0:0:0:1", port) in own  # any spelling of the address
    assert ("::1", port + 1) not in own
    now = [1000.0]
    monkeypatch.setattr("gostx.handler.tungo.upstream.time.monotonic", lambda: now[0])
    own2 = OwnSockets(memory=10.0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        own2.add(sock)
        addr = sock.getsockname()
    assert addr in own2
    now[0] += 11
    assert addr not in own2


def test_address_key() -> None:
    assert address_key("FD00::0001", 5) == ("fd00::1", 5)
    assert address_key("fe80::1%eth0", 5) == ("fe80::1", 5)


def test_dns_without_resolved_is_logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(tungo_dns, "resolved_available", lambda: False)
    log = get_logger(kind="test")
    with caplog.at_level(logging.WARNING):
        applied = asyncio.run(tungo_dns.apply_link_dns("tungo", [ipaddress.ip_address("1.1.1.1")], log))
    assert applied is False
    assert "dns 1.1.1.1 is not applied to tungo: systemd-resolved is not running here" in caplog.text


def _fake_resolvectl(tmp_path: Path, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "resolvectl"
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_dns_through_resolvectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "args"
    bin_dir = _fake_resolvectl(tmp_path, f'echo "$@" > {record}\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(tungo_dns, "RESOLVED_RUNTIME_DIR", str(tmp_path))
    servers = [ipaddress.ip_address("1.1.1.1"), ipaddress.ip_address("9.9.9.9")]
    assert asyncio.run(tungo_dns.apply_link_dns("tungo", servers, get_logger(kind="test"))) is True
    assert record.read_text().split() == ["dns", "tungo", "1.1.1.1", "9.9.9.9"]


def test_dns_resolvectl_failure_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    bin_dir = _fake_resolvectl(tmp_path, 'echo "Failed to set DNS: link not managed" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(tungo_dns, "RESOLVED_RUNTIME_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        ok = asyncio.run(tungo_dns.apply_link_dns("tungo", [ipaddress.ip_address("1.1.1.1")], get_logger(kind="t")))
    assert ok is False
    assert "resolvectl: Failed to set DNS: link not managed" in caplog.text


def test_one_tungo_service_per_process() -> None:
    first, second = _service(), _service()
    second.name = second.ctx.name = "service-1"

    async def scenario() -> None:
        await first.handler.init()
        try:
            with pytest.raises(GostError, match=r"only one tungo service per process \(service-0 is one\)"):
                await second.handler.init()
        finally:
            await first.handler.close()
        await second.handler.init()  # the first one is gone
        await second.handler.close()

    asyncio.run(scenario())
