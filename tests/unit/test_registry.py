"""Registries keyed by gost's names, and the built-in plugin list."""

from __future__ import annotations

import pytest

from gostx.errors import GostError
from gostx.plugins import BUILTIN_PLUGINS, load_builtin_plugins
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
