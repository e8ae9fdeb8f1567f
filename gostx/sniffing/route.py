"""Where a sniffed TCP flow is dialed (gost's tungo dial function).

With a sniffed host the flow is dialed as `host:<original destination port>` (so the CONNECT target
sent upstream is the name and the far end resolves it); if that dial fails, the original IP:port is
tried only when `sniffing.fallback` is on. Without a host (no SNI/Host, not HTTP/TLS, timeout), the
original destination is dialed.

    for target in dial_targets(outcome, "93.184.215.14:443", options.fallback):
        try: return await router.dial("tcp", target)
        except OSError: continue
"""

from __future__ import annotations

from gostx.sniffing.result import join_host_port
from gostx.sniffing.stream import SniffOutcome


def dial_targets(outcome: SniffOutcome, original: str, fallback: bool) -> list[str]:
    """The addresses to try in order for a flow to `original` ("ip:port" or "[v6]:port")."""
    if outcome.host is None:
        return [original]
    port = original.rsplit(":", 1)[1]
    by_name = join_host_port(outcome.host, int(port))
    return [by_name, original] if fallback and by_name != original else [by_name]
