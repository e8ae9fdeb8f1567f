"""gost's tungo handler metadata, read once. The sniffing keys are read by
gostx.sniffing.SniffingOptions."""

from __future__ import annotations

from dataclasses import dataclass

from gostx.config.metadata import Metadata

DEFAULT_UDP_TIMEOUT = 30.0   # seconds (gost's udpSessionTimeout)


@dataclass
class TungoHandlerOptions:
    udp_timeout: float = DEFAULT_UDP_TIMEOUT

    @classmethod
    def from_metadata(cls, md: Metadata) -> TungoHandlerOptions:
        timeout = md.get_duration("udpTimeout", "tungo.udpTimeout", default=DEFAULT_UDP_TIMEOUT)
        return cls(udp_timeout=timeout if timeout > 0 else DEFAULT_UDP_TIMEOUT)
