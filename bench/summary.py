"""Fold the repetitions of each row into medians, min-max ranges and ratios to the bare link."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.matrix import Row
from bench.measure import TEST_UNITS, RowRun


@dataclass
class TestSummary:
    test: str
    unit: str
    values: list[float]
    errors: list[str]
    median: float | None = None
    low: float | None = None
    high: float | None = None
    cpu_percent: float | None = None  # median over the repetitions
    peak_rss_kib: int | None = None  # the largest over the repetitions
    detail: dict[str, float] = field(default_factory=dict)  # medians of the per-run details
    vs_bare: float | None = None  # throughput: median / bare median; ping: median - bare median (µs)
    vs_peer: float | None = None  # the same against the row's peer (matrix.Row.peer), in the same run

    @property
    def ok(self) -> bool:
        return self.median is not None


@dataclass
class RowSummary:
    key: str
    title: str
    reps: int
    tests: dict[str, TestSummary]
    down: str | None = None  # set when the tunnel never came up: the row is "n/a (down)"
    down_reps: int = 0
    up_seconds: float | None = None
    peer: str | None = None  # the key of the row a user would pick instead


def _median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize_row(row: Row, runs: Sequence[RowRun]) -> RowSummary:
    downs = [run.down for run in runs if run.down]
    up_runs = [run for run in runs if not run.down]
    summary = RowSummary(
        key=row.key,
        title=row.title,
        reps=len(runs),
        tests={},
        down=downs[0] if downs and not up_runs else None,
        down_reps=len(downs),
        up_seconds=_median_or_none([run.up_seconds for run in up_runs if run.up_seconds is not None]),
        peer=row.peer,
    )
    tests = list(dict.fromkeys(s.test for run in up_runs for s in run.samples))
    for test in tests:
        samples = [s for run in up_runs for s in run.samples if s.test == test]
        values = [s.value for s in samples if s.value is not None]
        errors = [s.error for s in samples if s.error]
        ts = TestSummary(test, TEST_UNITS.get(test, ""), values, errors)
        if values:
            ts.median, ts.low, ts.high = statistics.median(values), min(values), max(values)
        cpu = [s.cpu_percent for s in samples if s.value is not None and s.cpu_percent is not None]
        ts.cpu_percent = _median_or_none(cpu)
        rss = [s.peak_rss_kib for s in samples if s.peak_rss_kib]
        ts.peak_rss_kib = max(rss) if rss else None
        keys = sorted({k for s in samples if s.value is not None for k in s.detail})
        ts.detail = {k: statistics.median([s.detail[k] for s in samples if k in s.detail]) for k in keys}
        summary.tests[test] = ts
    return summary


def _compare(ts: TestSummary, base: TestSummary | None) -> float | None:
    """Throughput: the ratio ts / base; ping: the microseconds ts adds to base; None without both."""
    if ts.median is None or base is None or base.median is None:
        return None
    if ts.test == "ping":
        return ts.median - base.median
    return ts.median / base.median if base.median > 0 else None


def add_bare_comparison(rows: Sequence[RowSummary]) -> None:
    """Fill vs_bare for every non-bare row from the bare row measured in the same run, and vs_peer
    for every row whose peer row ran too."""
    by_key = {r.key: r for r in rows}
    bare = by_key.get("bare")
    for row in rows:
        peer = by_key.get(row.peer) if row.peer else None
        for test, ts in row.tests.items():
            if bare is not None and row is not bare:
                ts.vs_bare = _compare(ts, bare.tests.get(test))
            if peer is not None:
                ts.vs_peer = _compare(ts, peer.tests.get(test))
