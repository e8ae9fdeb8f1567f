"""A PNG of a bench run: throughput per row with the peers beside gostx, and CPU per GB carried.

    python -m bench.chart bench/results/bench-<time>.json [out.png]

`make bench` draws one next to its .md and .json (bench-<time>.png). Rows are grouped as they are
compared: the bare veth, gostx's rows, the peers (other tools in the same run). CPU per GB is the
tunnel's CPU seconds (both ends) per gigabyte delivered: (CPU % / 100) / (Gbit/s / 8).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TEST = "tcp1"  # every tunnel row runs it
PEER_PREFIXES = ("go-gost", "openvpn", "wireguard-go", "hev-", "udp2raw", "ss-", "shadowsocks")
COLORS = {"bare": "#9e9e9e", "gostx": "#1f77b4", "peer": "#ff7f0e"}


@dataclass(frozen=True)
class Bar:
    title: str
    kind: str  # "bare", "gostx" or "peer"
    gbps: float
    cpu_s_per_gb: float | None
    peer: str | None  # the title of this gostx row's peer, when it ran


def kind_of(key: str, peer_keys: set[str]) -> str:
    if key == "bare":
        return "bare"
    if key in peer_keys or key.startswith(PEER_PREFIXES):
        return "peer"
    return "gostx"


def bars(doc: dict[str, Any], test: str = TEST) -> list[Bar]:
    """The rows of a bench JSON that measured `test`, gostx rows each followed by its peer."""
    rows = doc["rows"]
    peer_keys = {r.get("peer") for r in rows if r.get("peer")}
    titles = {r["key"]: r["title"] for r in rows}
    made: dict[str, Bar] = {}
    for row in rows:
        ts = row["tests"].get(test)
        if not ts or ts.get("median") is None:
            continue
        gbps = float(ts["median"])
        cpu = ts.get("cpu_percent")
        per_gb = (cpu / 100.0) / (gbps / 8.0) if cpu is not None and gbps > 0 else None
        peer = titles.get(row.get("peer") or "")
        made[row["key"]] = Bar(row["title"], kind_of(row["key"], peer_keys), gbps, per_gb, peer)
    ordered: list[Bar] = []
    for row in rows:  # a gostx row, then its peer (once), then the rest in the matrix's order
        bar = made.get(row["key"])
        if bar is None or bar in ordered:
            continue
        ordered.append(bar)
        peer_bar = made.get(row.get("peer") or "")
        if peer_bar is not None and peer_bar not in ordered:
            ordered.append(peer_bar)
    return ordered


def draw(doc: dict[str, Any], out_path: str, test: str = TEST) -> str:
    """Write the PNG; returns its path. Raises ImportError without matplotlib, ValueError with no rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    data = bars(doc, test)
    if not data:
        raise ValueError(f"no row of this run has a {test} result")
    info = doc.get("info", {})
    labels = [b.title for b in data]
    colors = [COLORS[b.kind] for b in data]
    height = 1.2 + 0.38 * len(data)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, height), sharey=True,
                                      gridspec_kw={"width_ratios": [3, 2]})
    ys = list(range(len(data)))
    left.barh(ys, [b.gbps for b in data], color=colors)
    left.set_xscale("log")
    left.set_xlabel("TCP 1 stream, Gbit/s (log scale)")
    for y, b in zip(ys, data, strict=True):
        left.text(b.gbps, y, f" {b.gbps:.2f}", va="center", fontsize=8)
    left.set_yticks(ys, labels, fontsize=8)
    left.invert_yaxis()
    per_gb = [b.cpu_s_per_gb or 0.0 for b in data]
    right.barh(ys, per_gb, color=colors)
    right.set_xlabel("tunnel CPU seconds per GB carried (both ends; lower is better)")
    for y, b in zip(ys, data, strict=True):
        text = f" {b.cpu_s_per_gb:.1f}" if b.cpu_s_per_gb is not None else " -"
        right.text(b.cpu_s_per_gb or 0.0, y, text, va="center", fontsize=8)
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=COLORS[k], label=name) for k, name in
               (("bare", "bare veth"), ("gostx", "gostx"), ("peer", "peer (another tool)"))]
    right.legend(handles=handles, loc="lower right", fontsize=8)
    fig.suptitle(
        f"gostx bench {info.get('date', '')}: {info.get('cpu_model', '')}, {info.get('cpus', '?')} CPUs, "
        f"{info.get('reps', '?')} reps x {info.get('seconds', '?')} s, medians; all rows in one run",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or len(args) > 2:
        print("usage: python -m bench.chart RUN.json [OUT.png]", file=sys.stderr)
        return 2
    out = args[1] if len(args) == 2 else args[0].removesuffix(".json") + ".png"
    try:
        with open(args[0], encoding="utf-8") as f:
            doc = json.load(f)
        print(draw(doc, out))
    except (OSError, ValueError, KeyError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
