"""Counters for operators: gost's Prometheus metrics, gostx's own (`gostx_*`, read from C) and the
per-service totals that `kill -USR1` logs.

Nothing here runs per packet or per chunk. Services count once per flow (`counters.ServiceCounters`);
C keeps its counters in atomic slots and one call per scrape copies them out (`sources`).

Adding a source of counters (e.g. a new C data path with a stats struct) is one registration:

    from gostx.metrics import register_source

    handle = register_source(lambda sink: sink.counters("gostx_xstream", engine.stats(), service=name))
    ...
    handle.close()        # when the service stops

A source is any callable (or object with `collect(sink)`) that writes samples into the `MetricSink`
it is given at scrape time; see gostx/metrics/registry.py and docs/operations.md.

A handler counts each flow once: `with ctx.counters.request():` around serving it (requests, in flight,
duration; an exception or `fail_request()` counts a handler error) and `ctx.counters.add_bytes(input,
output)` with the flow's totals when it ends (what pipe() returns, what a C relay reports).
"""

from gostx.metrics.counters import (
    ServiceCounters,
    chain_connected,
    chain_failed,
    current_request,
    fail_request,
)
from gostx.metrics.registry import MetricSink, SourceHandle, StatsSource, register_source

__all__ = [
    "MetricSink", "ServiceCounters", "SourceHandle", "StatsSource", "chain_connected", "chain_failed",
    "current_request", "fail_request", "register_source",
]
