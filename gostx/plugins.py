"""The one explicit list of built-in plugins: every gost name with the module that registers it.

The registries (gostx.registry) know these names from the start but import a plugin's module only
when its name is first looked up, so a process imports the code of the plugins it runs and no other
(a tungo service does not load the TLS, WebSocket or HTTP code). `load_builtin_plugins()` imports
them all at once.
"""

from __future__ import annotations

import importlib

# kind -> gost name -> the module whose import registers that name
BUILTIN: dict[str, dict[str, str]] = {
    "listener": {
        "tcp": "gostx.listener.tcp",
        "udp": "gostx.listener.udp",
        "tun": "gostx.listener.tun",
        "tap": "gostx.listener.tun",
        "tls": "gostx.listener.tls",
        "ws": "gostx.listener.ws",
        "wss": "gostx.listener.ws",
        "tungo": "gostx.listener.tungo",
    },
    "handler": {
        "forward": "gostx.handler.forward",
        "tcp": "gostx.handler.tcp",
        "udp": "gostx.handler.udp",
        "tun": "gostx.handler.tun",
        "tap": "gostx.handler.tun",
        "tungo": "gostx.handler.tungo",
        "socks5": "gostx.handler.socks5",
        "socks": "gostx.handler.socks5",
        "http": "gostx.handler.http",
        "auto": "gostx.handler.auto",
        "relay": "gostx.handler.relay",
    },
    "dialer": {
        "tcp": "gostx.dialer.tcp",
        "tls": "gostx.dialer.tls",
        "ws": "gostx.dialer.ws",
        "wss": "gostx.dialer.ws",
    },
    "connector": {
        "socks5": "gostx.connector.socks5",
        "socks": "gostx.connector.socks5",
        "http": "gostx.connector.http",
        "relay": "gostx.connector.relay",
    },
}

BUILTIN_PLUGINS: tuple[str, ...] = tuple(dict.fromkeys(m for names in BUILTIN.values() for m in names.values()))


def load_builtin_plugins() -> None:
    """Import every built-in plugin module (idempotent); the registries import them on demand anyway."""
    for module in BUILTIN_PLUGINS:
        importlib.import_module(module)
