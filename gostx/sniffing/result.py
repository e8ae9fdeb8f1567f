"""What an incremental sniffer says about the bytes it has seen so far."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SniffState(enum.Enum):
    NEED_MORE = "need-more"  # a prefix of this protocol's header: give more bytes (same start)
    FOUND = "found"          # the header is complete; `host` is set, or None if it names none
    NOT_THIS = "not-this"    # not this protocol, malformed, or over the size limit: take the normal path


@dataclass(frozen=True)
class SniffResult:
    """The outcome of one parse over the bytes seen so far (the parsers keep no state: call again
    with a longer buffer that starts at the same byte when the state is NEED_MORE).

    `host` is the name the client asked for (TLS SNI, HTTP Host) without brackets or port; `port` is
    the port it named or the protocol's default (80, 443); `consumed` counts the bytes of the header
    (ClientHello records, HTTP request head) once found; `reason` says why in a few words (for logs).
    """

    state: SniffState
    host: str | None = None
    port: int | None = None
    consumed: int = 0
    reason: str = ""

    @property
    def address(self) -> str | None:
        """`host:port` (`[v6]:port`), or None without a host."""
        if self.host is None or self.port is None:
            return None
        return join_host_port(self.host, self.port)


def need_more(reason: str = "") -> SniffResult:
    return SniffResult(SniffState.NEED_MORE, reason=reason)


def not_this(reason: str) -> SniffResult:
    return SniffResult(SniffState.NOT_THIS, reason=reason)


def found(host: str | None, port: int | None, consumed: int, reason: str = "") -> SniffResult:
    return SniffResult(SniffState.FOUND, host=host, port=port if host is not None else None,
                       consumed=consumed, reason=reason)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
