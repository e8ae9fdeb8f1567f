"""Registries keyed by gost's names, and the built-in plugin list: declared by name, imported on use."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gostx.errors import GostError
from gostx.plugins import BUILTIN, BUILTIN_PLUGINS, load_builtin_plugins
from gostx.registry import Registry, connectors, dialers, handlers, listeners


def test_register_get_names() -> None:
    reg = Registry("handler")

    @reg.register("b")
    class B:
        pass

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and reg.get("b") is B
    assert reg.names() == ["a", "b"]
    assert "a" in reg and "c" not in reg
    assert len(reg) == 2


def test_unknown_name_is_a_one_line_error_listing_supported() -> None:
    reg = Registry("listener")
    reg.register("tcp")(type("T", (), {}))
    reg.register("udp")(type("U", (), {}))
    with pytest.raises(GostError) as err:
        reg.get("quic")
    assert str(err.value) == "unknown listener type 'quic' (supported: tcp, udp)"


def test_names_are_exact() -> None:
    reg = Registry("dialer")
    reg.register("wss")(type("W", (), {}))
    with pytest.raises(GostError):
        reg.get("WSS")


def test_two_classes_cannot_share_a_name() -> None:
    reg = Registry("connector")
    first = type("First", (), {})
    reg.register("relay")(first)
    reg.register("relay")(first)  # the same class again is harmless (module reloads)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("relay")(type("Second", (), {}))


def test_bad_names_are_refused() -> None:
    with pytest.raises(ValueError):
        Registry("handler").register(" tcp")


def test_builtin_plugins_register_under_gost_names() -> None:
    load_builtin_plugins()
    load_builtin_plugins()  # idempotent
    assert {"tcp", "udp", "forward"} <= set(handlers.names())
    assert {"tcp", "udp"} <= set(listeners.names())
    assert all(m.startswith("gostx.") for m in BUILTIN_PLUGINS)
    assert connectors.kind == "connector" and dialers.kind == "dialer"


def test_declared_names_count_without_importing_and_import_on_get(monkeypatch: pytest.MonkeyPatch) -> None:
    module = "gostx_test_lazy_plugin"
    reg = Registry("handler", {"lazy": module, "tcp": "gostx.handler.tcp"})
    assert "lazy" in reg and reg.names() == ["lazy", "tcp"] and len(reg) == 2
    assert module not in sys.modules and reg.loaded() == []

    class Lazy:
        pass

    fake = type(sys)(module)
    monkeypatch.setitem(sys.modules, module, fake)  # "importing" it registers the class
    reg.register("lazy")(Lazy)
    assert reg.get("lazy") is Lazy and reg.loaded() == ["lazy"]


def test_a_declared_module_that_does_not_register_its_name_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gostx_test_empty_plugin", type(sys)("gostx_test_empty_plugin"))
    reg = Registry("dialer", {"ghost": "gostx_test_empty_plugin"})
    with pytest.raises(GostError, match="module gostx_test_empty_plugin does not register it"):
        reg.get("ghost")


def test_unknown_name_lists_declared_names_too() -> None:
    reg = Registry("listener", {"tcp": "gostx.listener.tcp", "wss": "gostx.listener.ws"})
    with pytest.raises(GostError) as err:
        reg.get("quic")
    assert str(err.value) == "unknown listener type 'quic' (supported: tcp, wss)"


def test_every_builtin_name_is_registered_by_its_module() -> None:
    registries = {"handler": handlers, "listener": listeners, "connector": connectors, "dialer": dialers}
    for kind, names in BUILTIN.items():
        for name in names:
            cls = registries[kind].get(name)
            assert isinstance(cls, type), (kind, name)


ROOT = Path(__file__).resolve().parents[2]

LAZY_PROBE = textwrap.dedent("""
    import json, sys
    from gostx.cli.main import run_cli  # the `gost` entry point's module
    from gostx.cli.compose import compose_config
    from gostx.cli.flags import parse_flags
    from gostx.registry import handlers, listeners

    cfg = compose_config(parse_flags(["-L", "tungo://:0?name=gxlazy&net=192.168.123.2/24&interface=eth0"]))
    service = cfg.services[0]
    handlers.get(service.handler.type)
    listeners.get(service.listener.type)
    import gostx.log, gostx.runner  # what the CLI imports to run the service
    before = set(sys.modules)
    handlers.get("socks5")
    print(json.dumps({"modules": sorted(before), "after_socks5": "gostx.handler.socks5" in sys.modules}))
""")


def test_a_tungo_service_imports_only_what_it_runs() -> None:
    """A fresh interpreter that parses a tungo command line and looks its plugins up, as `gost` does:
    the tungo modules are there; other plugins, pyroute2, click, PyYAML and the TLS/WebSocket code are not
    (each costs RSS in a process that never uses it). A later lookup imports its plugin."""
    out = subprocess.run([sys.executable, "-c", LAZY_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}).stdout
    report = json.loads(out)
    modules = set(report["modules"])
    assert {"gostx.handler.tungo", "gostx.listener.tungo"} <= modules
    absent = {"pyroute2", "click", "yaml", "cryptography", "gostx.net.tls", "gostx.net.ws", "gostx.protocol.socks5_tls",
              "gostx.handler.socks5", "gostx.handler.http", "gostx.handler.relay", "gostx.handler.tun",
              "gostx.listener.tcp", "gostx.listener.ws", "gostx.listener.tls", "gostx.listener.tun",
              "gostx.dialer.tls", "gostx.dialer.ws", "gostx.connector.relay", "gostx.connector.socks5",
              "logging.handlers"}
    assert modules & absent == set()
    assert report["after_socks5"] is True


def test_unknown_handler_type_is_gosts_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    from gostx.cli.main import run_cli

    cfg = {"services": [{"name": "svc", "addr": ":0", "handler": {"type": "nope"}, "listener": {"type": "tcp"}}]}
    assert run_cli(["-C", json.dumps(cfg)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gost: error: svc: unknown handler type 'nope' (supported: ")
    listed = err.rstrip("\n").split("(supported: ", 1)[1].rstrip(")").split(", ")
    assert set(BUILTIN["handler"]) <= set(listed)  # every built-in, imported or not (other tests may add more)
