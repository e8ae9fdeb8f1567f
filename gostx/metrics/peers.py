"""Per-peer rows with bounded cardinality: the top N peers by bytes, and one `other` row.

Each scrape reads every learned entry with its counters (one C call, gx_tunnel_peers) and adds what
each entry moved since the previous scrape to its own row when it is among the N largest (bytes since
it was learned), else to `other`. So every exported row only grows (a counter, as Prometheus wants),
however peers enter and leave the top N or the table: a row is exported while its peer is in the top N;
its total is kept while the peer stays learned, so it continues where it left off when it comes back.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable

OTHER = "other"
DEFAULT_TOP_N = 20

# (key, outer address, learned_ms, rx_bytes, rx_pkts, tx_bytes, tx_pkts), as _engine.Tunnel.peers()
PeerSnapshot = tuple[str, object, int, int, int, int, int]
# rx_bytes, rx_pkts, tx_bytes, tx_pkts
Totals = tuple[int, int, int, int]


def top_n_from_env() -> int:
    try:
        return max(0, min(int(os.environ.get("GOSTX_METRICS_TOP_PEERS", DEFAULT_TOP_N)), 1000))
    except ValueError:
        return DEFAULT_TOP_N


class PeerRows:
    def __init__(self, top_n: int = DEFAULT_TOP_N) -> None:
        self.top_n = top_n
        self._prev: dict[tuple[str, int], Totals] = {}   # (key, learned_ms) -> counters at the last scrape
        self._rows: dict[str, list[int]] = {}             # key -> exported totals
        self._other = [0, 0, 0, 0]

    def update(self, peers: Iterable[PeerSnapshot]) -> list[tuple[str, Totals]]:
        """Account one snapshot; returns the rows to export: [(peer, totals)], `other` last."""
        seen: dict[tuple[str, int], Totals] = {}
        deltas: list[tuple[int, str, Totals]] = []
        for key, _addr, learned, rx_b, rx_p, tx_b, tx_p in peers:
            ident = (key, learned)
            now: Totals = (rx_b, rx_p, tx_b, tx_p)
            before = self._prev.get(ident, (0, 0, 0, 0))
            seen[ident] = now
            delta = tuple(n - b if n >= b else n for n, b in zip(now, before, strict=True))
            deltas.append((rx_b + tx_b, key, delta))  # type: ignore[arg-type]
        self._prev = seen
        top = {key for _, key, _ in heapq.nlargest(self.top_n, deltas)} if self.top_n else set()
        for _, key, delta in deltas:
            row = self._rows.setdefault(key, [0, 0, 0, 0]) if key in top else self._other
            for i in range(4):
                row[i] += delta[i]
        learned = {key for key, _ in seen}
        self._rows = {k: v for k, v in self._rows.items() if k in learned}
        out = [(k, tuple(v)) for k, v in self._rows.items() if k in top]
        out.append((OTHER, tuple(self._other)))
        return out  # type: ignore[return-value]
