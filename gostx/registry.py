"""One registry per plugin kind, keyed by gost's names ("tcp", "udp", "tun", "relay", "wss", ...).

A plugin module registers its class at import time:

    @handlers.register("tcp")
    class TcpHandler(Handler): ...

gostx.plugins.load_builtin_plugins() imports every built-in plugin module, so the registries are
complete once it has run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from gostx.errors import GostError

T = TypeVar("T", bound=type)


class Registry:
    """Names -> plugin classes for one kind (handler, listener, connector, dialer)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: register the class under `name` (gost's exact spelling)."""
        if not name or name != name.strip():
            raise ValueError(f"bad {self.kind} name {name!r}")

        def decorate(cls: T) -> T:
            existing = self._classes.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"{self.kind} '{name}' is already registered by {existing.__qualname__}")
            self._classes[name] = cls
            return cls

        return decorate

    def get(self, name: str) -> Any:
        """The class registered as `name`; GostError "unknown <kind> type 'x' (supported: ...)" if none."""
        cls = self._classes.get(name)
        if cls is None:
            supported = ", ".join(self.names()) or "none"
            raise GostError(f"unknown {self.kind} type '{name}' (supported: {supported})")
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __len__(self) -> int:
        return len(self._classes)


handlers = Registry("handler")
listeners = Registry("listener")
connectors = Registry("connector")
dialers = Registry("dialer")
