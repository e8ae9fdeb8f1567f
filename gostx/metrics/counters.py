"""Per-service and per-chain-node counters with gost's meaning, counted once per flow.

A service counts its requests (connections, UDP sessions; for tun/tap/tungo the device), how many are
in flight, their durations (gost's histogram buckets), the bytes each moved (at its end: what pipe()
returns, what a C relay reports) and handler errors. A service whose bytes live in C (tun, tap, tungo)
gives a `live_bytes` reader instead, read at scrape time. Scrapes and `kill -USR1` read these plain
integers; nothing here is touched per packet or per chunk.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gostx.metrics.registry import MetricSink, register_source

# gost's buckets (X:metrics/prometheus.go) for request and node-connect durations, in seconds
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)
HOST = socket.gethostname()


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for le, n in zip([*(f"{b:g}" for b in DURATION_BUCKETS), "+Inf"], self.counts, strict=True):
            running += n
            out.append((le, float(running)))
        return out


@dataclass
class Request:
    """One flow of a service, from accept to close."""

    counters: ServiceCounters
    start: float = field(default_factory=time.monotonic)
    failed: bool = False

    def fail(self) -> None:
        self.failed = True


_current: contextvars.ContextVar[Request | None] = contextvars.ContextVar("gostx_request", default=None)


def current_request() -> Request | None:
    """The flow the running task serves (set by `ServiceCounters.request()`), e.g. to mark a dial failure."""
    return _current.get()


def fail_request() -> None:
    """The running task's flow failed (a handler error in gost's counters); no-op outside a flow."""
    req = _current.get()
    if req is not None:
        req.failed = True


class ServiceCounters:
    """gost's per-service counters (metrics gost_service_*, and the `counters` of `kill -USR1`)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.requests = 0
        self.in_flight = 0
        self.errors = 0
        self.input_bytes = 0    # from clients (gost: read from the client connection)
        self.output_bytes = 0   # to clients
        self.durations = Histogram()
        # (input, output) bytes held in C right now (tun/tap/tungo: the device's); added to the above
        self.live_bytes: Callable[[], tuple[int, int]] | None = None
        # (requests, in flight) counted in C (tungo's flows); added to the above
        self.live_requests: Callable[[], tuple[int, int]] | None = None
        # errors counted elsewhere (tungo's direct dials, made without a task per flow); added to the above
        self.live_errors: Callable[[], int] | None = None

    @contextmanager
    def request(self) -> Iterator[Request]:
        """Count one flow: in flight while the block runs; an exception or `fail()` counts an error."""
        req = Request(self)
        token = _current.set(req)
        self.requests += 1
        self.in_flight += 1
        try:
            yield req
        except asyncio.CancelledError:  # the service stops: not a handler error
            raise
        except BaseException:
            req.failed = True
            raise
        finally:
            _current.reset(token)
            self.in_flight -= 1
            self.durations.observe(time.monotonic() - req.start)
            if req.failed:
                self.errors += 1

    def add_bytes(self, input_bytes: int, output_bytes: int) -> None:
        """A flow ended having moved these bytes (from / to the client)."""
        self.input_bytes += max(int(input_bytes), 0)
        self.output_bytes += max(int(output_bytes), 0)

    def error(self) -> None:
        self.errors += 1

    def totals(self) -> dict[str, int]:
        inp, out = self.input_bytes, self.output_bytes
        requests, in_flight = self.requests, self.in_flight
        if self.live_bytes is not None:
            live_in, live_out = self.live_bytes()
            inp, out = inp + live_in, out + live_out
        if self.live_requests is not None:
            live_req, live_flight = self.live_requests()
            requests, in_flight = requests + live_req, in_flight + live_flight
        errors = self.errors + (self.live_errors() if self.live_errors is not None else 0)
        return {"requests": requests, "inFlight": in_flight, "errors": errors,
                "inputBytes": inp, "outputBytes": out}

    def collect(self, sink: MetricSink) -> None:
        t = self.totals()
        labels = {"host": HOST, "service": self.service}
        sink.counter("gost_service_requests_total", "Total number of requests", t["requests"], **labels)
        sink.gauge("gost_service_requests_in_flight", "Current in-flight requests", t["inFlight"], **labels)
        sink.histogram("gost_service_request_duration_seconds", "Distribution of request latencies",
                       self.durations.buckets(), self.durations.total, **labels)
        sink.counter("gost_service_transfer_input_bytes_total", "Total service input data transfer size in bytes",
                     t["inputBytes"], **labels)
        sink.counter("gost_service_transfer_output_bytes_total",
                     "Total service output data transfer size in bytes", t["outputBytes"], **labels)
        sink.counter("gost_service_handler_errors_total", "Total service handler errors", t["errors"], **labels)


# ---- the running services (gost_services and the gost_service_* families) -------------------------

_running: dict[int, ServiceCounters] = {}


def service_started(counters: ServiceCounters) -> None:
    _running[id(counters)] = counters


def service_stopped(counters: ServiceCounters) -> None:
    _running.pop(id(counters), None)


def running_services() -> list[ServiceCounters]:
    return list(_running.values())


# ---- chains: per (chain, node) connect durations and errors ----------------------------------------

class _NodeCounters:
    def __init__(self) -> None:
        self.connect = Histogram()
        self.errors = 0


_nodes: dict[tuple[str, str], _NodeCounters] = {}
_NODES_MAX = 4096  # chains and nodes come from the config: a bound that a config cannot reach by accident


def _node(chain: str, node: str) -> _NodeCounters | None:
    key = (chain, node)
    found = _nodes.get(key)
    if found is None and len(_nodes) < _NODES_MAX:
        found = _nodes[key] = _NodeCounters()
    return found


def chain_connected(chain: str, node: str, seconds: float) -> None:
    """A route through `chain` ending at `node` was established in `seconds`."""
    if (c := _node(chain, node)) is not None:
        c.connect.observe(seconds)


def chain_failed(chain: str, node: str) -> None:
    """Dialing through `chain` failed at `node`."""
    if (c := _node(chain, node)) is not None:
        c.errors += 1


def _collect_gost(sink: MetricSink) -> None:
    services = running_services()
    sink.gauge("gost_services", "Current number of services", len(services), host=HOST)
    for counters in services:
        counters.collect(sink)
    for (chain, node), c in list(_nodes.items()):
        labels = {"host": HOST, "chain": chain, "node": node}
        sink.histogram("gost_chain_node_connect_duration_seconds", "Distribution of chain node connect latencies",
                       c.connect.buckets(), c.connect.total, **labels)
        sink.counter("gost_chain_errors_total", "Total chain errors", c.errors, **labels)


register_source(_collect_gost)
