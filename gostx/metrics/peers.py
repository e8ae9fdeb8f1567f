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
        prev, zero = self._prev, (0, 0, 0, 0)
        for key, _addr, learned, rx_b, rx_p, tx_b, tx_p in peers:
            ident = (key, learned)
            b0, b1, b2, b3 = prev.get(ident, zero)
            seen[ident] = (rx_b, rx_p, tx_b, tx_p)
            if rx_b >= b0 and rx_p >= b1 and tx_b >= b2 and tx_p >= b3:
                delta = (rx_b - b0, rx_p - b1, tx_b - b2, tx_p - b3)
            else:  # counters restarted under the same identity: count them from 0
                delta = (rx_b, rx_p, tx_b, tx_p)
            deltas.append((rx_b + tx_b, key, delta))
        self._prev = seen
        top = {key for _, key, _ in heapq.nlargest(self.top_n, deltas)} if self.top_n else set()
        rows, other = self._rows, self._other
        for _, key, delta in deltas:
            if delta == zero:
                continue
            row = rows.setdefault(key, [0, 0, 0, 0]) if key in top else other
            row[0] += delta[0]
            row[1] += delta[1]
            row[2] += delta[2]
            row[3] += delta[3]
        live_keys = {key for key, _ in seen}
        self._rows = {k: v for k, v in self._rows.items() if k in live_keys}
        out = [(k, _totals(v)) for k, v in self._rows.items() if k in top]
        out.append((OTHER, _totals(self._other)))
        return out


def _totals(row: list[int]) -> Totals:
    return row[0], row[1], row[2], row[3]
