"""One registry per plugin kind, keyed by gost's names ("tcp", "udp", "tun", "relay", "wss", ...).

A plugin module registers its class at import time:

    @handlers.register("tcp")
    class TcpHandler(Handler): ...

A registry also knows names it has not imported yet: `declare(name, module)` (the built-in plugins of
gostx.plugins.BUILTIN are declared from the start). `get(name)` imports a declared name's module on
first use; `names()`, `in` and `len()` count declared names without importing anything. So a process
imports only the plugins it uses, and an unknown name still lists every supported one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from gostx.errors import GostError
from gostx.plugins import BUILTIN

T = TypeVar("T", bound=type)


class Registry:
    """Names -> plugin classes for one kind (handler, listener, connector, dialer)."""

    def __init__(self, kind: str, declared: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._classes: dict[str, type] = {}
        self._modules: dict[str, str] = {}  # declared name -> the module that registers it
        for name, module in (declared or {}).items():
            self.declare(name, module)

    def declare(self, name: str, module: str) -> None:
        """Name a plugin whose module registers it when imported; get(name) imports it on first use."""
        if not name or name != name.strip():
            raise ValueError(f"bad {self.kind} name {name!r}")
        existing = self._modules.get(name)
        if existing is not None and existing != module:
            raise ValueError(f"{self.kind} '{name}' is already declared by {existing}")
        self._modules[name] = module

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
        if cls is None and name in self._modules:
            importlib.import_module(self._modules[name])
            cls = self._classes.get(name)
            if cls is None:
                raise GostError(f"{self.kind} type '{name}': module {self._modules[name]} does not register it")
        if cls is None:
            supported = ", ".join(self.names()) or "none"
            raise GostError(f"unknown {self.kind} type '{name}' (supported: {supported})")
        return cls

    def names(self) -> list[str]:
        """Every registered or declared name (importing nothing)."""
        return sorted(self._classes.keys() | self._modules.keys())

    def loaded(self) -> list[str]:
        """The names whose classes are registered (their modules imported)."""
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes or name in self._modules

    def __len__(self) -> int:
        return len(self._classes.keys() | self._modules.keys())


handlers = Registry("handler", BUILTIN["handler"])
listeners = Registry("listener", BUILTIN["listener"])
connectors = Registry("connector", BUILTIN["connector"])
dialers = Registry("dialer", BUILTIN["dialer"])
