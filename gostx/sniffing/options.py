"""The sniffing options of a handler's metadata, read with gost's rules.

    sniffing                 bool  HTTP/TLS host sniffing on TCP, DNS question sniffing on UDP
    sniffing.timeout         dur   how long to wait for a flow's first 5 bytes; 0 = forever (gost)
    sniffing.fallback        bool  if dialing the sniffed name fails, dial the original IP:port
    sniffing.udp             bool  gost parses it and ignores it (`sniffing` alone turns DNS sniffing
                                   on); gostx honours an explicit false: no DNS sniffing
    sniffing.responseTimeout dur   time allowed for the upstream's first reply bytes; 0 = 30s

Durations are seconds as a number or Go duration text ("1s", "500ms", "1m"); a value that is
neither is a GostError (gost would silently read it as 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gostx.config.metadata import Metadata, parse_duration
from gostx.errors import GostError

DEFAULT_RESPONSE_TIMEOUT = 30.0


@dataclass(frozen=True)
class SniffingOptions:
    enabled: bool = False
    timeout: float = 0.0  # seconds; 0 = wait for the first bytes without a limit
    fallback: bool = False
    udp: bool = True
    response_timeout: float = DEFAULT_RESPONSE_TIMEOUT

    @property
    def dns(self) -> bool:
        """Sniff the DNS question of UDP flows."""
        return self.enabled and self.udp

    @classmethod
    def from_metadata(cls, md: Metadata | Mapping[str, Any] | None) -> SniffingOptions:
        meta = md if isinstance(md, Metadata) else Metadata(md)
        response_timeout = _duration(meta, "sniffing.responseTimeout")
        return cls(
            enabled=meta.get_bool("sniffing"),
            timeout=_duration(meta, "sniffing.timeout"),
            fallback=meta.get_bool("sniffing.fallback"),
            udp=meta.get_bool("sniffing.udp", default=True),
            response_timeout=response_timeout if response_timeout > 0 else DEFAULT_RESPONSE_TIMEOUT,
        )


def _duration(meta: Metadata, key: str) -> float:
    raw = meta.raw(key)
    if raw is None or raw == "":
        return 0.0
    seconds = parse_duration(raw)
    if seconds is None:
        raise GostError(f"{key}: invalid duration {raw!r} (want seconds or Go duration text such as 1s, 500ms)")
    return max(seconds, 0.0)
