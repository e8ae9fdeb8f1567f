"""The one explicit list of built-in plugins. Importing a module registers its classes."""

from __future__ import annotations

import importlib

BUILTIN_PLUGINS: tuple[str, ...] = (
    # listeners
    "gostx.listener.tcp",
    "gostx.listener.udp",
    "gostx.listener.tun",
    "gostx.listener.tls",
    "gostx.listener.ws",
    "gostx.listener.tungo",
    # handlers
    "gostx.handler.forward",
    "gostx.handler.tcp",
    "gostx.handler.udp",
    "gostx.handler.tun",
    "gostx.handler.tungo",
    "gostx.handler.socks5",
    "gostx.handler.http",
    "gostx.handler.auto",
    "gostx.handler.relay",
    # dialers
    "gostx.dialer.tcp",
    "gostx.dialer.tls",
    "gostx.dialer.ws",
    # connectors
    "gostx.connector.socks5",
    "gostx.connector.http",
    "gostx.connector.relay",
)


def load_builtin_plugins() -> None:
    """Import every built-in plugin module (idempotent)."""
    for module in BUILTIN_PLUGINS:
        importlib.import_module(module)
