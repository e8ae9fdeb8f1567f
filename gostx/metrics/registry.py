"""The registry of stats sources read at scrape time, and the sink they write samples into.

A source is a callable `source(sink)` or an object with `collect(sink)`; it reads its counters (one C
call each) and adds samples. The sink groups samples by metric name, so several sources (e.g. two tun
services) can add to one metric family; the exposition is prometheus_client's.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

if TYPE_CHECKING:  # prometheus_client is imported only by a process that serves -metrics
    from prometheus_client.core import Metric

log = logging.getLogger("gostx.metrics")


@runtime_checkable
class StatsSource(Protocol):
    def collect(self, sink: MetricSink) -> None: ...


SourceFn = Callable[["MetricSink"], None]


@dataclass
class _Family:
    kind: str  # counter | gauge | histogram
    help: str
    samples: list[tuple[dict[str, str], object]] = field(default_factory=list)


class MetricSink:
    """Samples of one scrape, grouped by metric name (names without the `_total` suffix of counters)."""

    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}

    def _family(self, name: str, kind: str, help_text: str) -> _Family:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = _Family(kind, help_text)
        elif fam.kind != kind:
            raise ValueError(f"metric {name} is a {fam.kind}, not a {kind}")
        return fam

    def counter(self, name: str, help_text: str, value: float, **labels: str) -> None:
        """A counter; `name` may end in `_total` (the exposition adds it either way)."""
        self._family(name.removesuffix("_total"), "counter", help_text).samples.append((labels, value))

    def gauge(self, name: str, help_text: str, value: float, **labels: str) -> None:
        self._family(name, "gauge", help_text).samples.append((labels, value))

    def histogram(self, name: str, help_text: str, buckets: list[tuple[str, float]], total: float,
                  **labels: str) -> None:
        """buckets: cumulative [(le, count), ...] ending with ("+Inf", count)."""
        self._family(name, "histogram", help_text).samples.append((labels, (buckets, total)))

    def counters(self, prefix: str, stats: Mapping[str, int], gauges: frozenset[str] | set[str] = frozenset(),
                 help_text: str = "", **labels: str) -> None:
        """Every field of a C stats dict: `{prefix}_{field}_total` counters, and `{prefix}_{field}` gauges
        for the fields named in `gauges` (values that go up and down, e.g. flows open now)."""
        for key, value in stats.items():
            text = help_text or f"{prefix} {key.replace('_', ' ')}"
            if key in gauges:
                self.gauge(f"{prefix}_{key}", text, value, **labels)
            else:
                self.counter(f"{prefix}_{key}", text, value, **labels)

    def metrics(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for name, fam in self.families.items():
            label_names = sorted({k for labels, _ in fam.samples for k in labels})
            metric: Metric
            if fam.kind == "counter":
                metric = CounterMetricFamily(name, fam.help, labels=label_names)
            elif fam.kind == "gauge":
                metric = GaugeMetricFamily(name, fam.help, labels=label_names)
            else:
                metric = HistogramMetricFamily(name, fam.help, labels=label_names)
            for labels, value in fam.samples:
                values = [labels.get(k, "") for k in label_names]
                if isinstance(metric, HistogramMetricFamily):  # fam.kind == "histogram"
                    buckets, total = cast(tuple[list[tuple[str, float]], float], value)
                    metric.add_metric(values, buckets, total)
                else:
                    metric.add_metric(values, cast(float, value))
            yield metric


class SourceHandle:
    def __init__(self, key: int) -> None:
        self.key = key

    def close(self) -> None:
        with _lock:
            _sources.pop(self.key, None)


_lock = threading.Lock()
_ids = itertools.count()
_sources: dict[int, SourceFn] = {}


def register_source(source: SourceFn | StatsSource) -> SourceHandle:
    """Read `source` at every scrape until the handle is closed."""
    fn: SourceFn = source.collect if isinstance(source, StatsSource) else source
    key = next(_ids)
    with _lock:
        _sources[key] = fn
    return SourceHandle(key)


def collect_all() -> MetricSink:
    """Run every source once; a failing source is logged and skipped (the scrape goes on)."""
    with _lock:
        sources = list(_sources.values())
    sink = MetricSink()
    for fn in sources:
        try:
            fn(sink)
        except Exception as exc:  # a source must never break the scrape
            log.warning("metrics source failed: %s: %s", type(exc).__name__, exc)
    return sink


class SinkCollector:
    """The prometheus_client collector over every registered source."""

    def collect(self) -> Iterator[Metric]:
        yield from collect_all().metrics()
