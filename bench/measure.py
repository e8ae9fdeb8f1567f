"""One repetition of one row: bring its tunnel up, run its tests, sample the tunnel's CPU and memory.

A test that fails gives a Sample with an error instead of a value; a tunnel that does not come up
gives a RowRun with `down` set. Neither raises: the run goes on with the next row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.churn import CHURN_TESTS, CHURN_TITLES, ChurnError, churn, churn_seconds
from bench.flows import FlowsError, run_flows
from bench.matrix import Row
from bench.rig import Rig, RigError
from bench.tunnels import Endpoint, TunnelDown, one_line
from gostx.testing import iperf
from gostx.testing.ping import PingError, run_ping
from gostx.testing.procstats import CpuSampler

TEST_TITLES = {"ping": "ping RTT", "tcp1": "TCP 1 stream", "tcp4": "TCP 4 streams", "udp": "UDP 1400 B",
               "tcp1r": "TCP 1 stream B->A", "tcp4r": "TCP 4 streams B->A", "flows1000": "1000 TCP flows open",
               "srvcpu": "server CPU per GB (1 stream)",
               **CHURN_TITLES}
TEST_UNITS = {"ping": "µs", "tcp1": "Gbit/s", "tcp4": "Gbit/s", "udp": "pps", "tcp1r": "Gbit/s", "tcp4r": "Gbit/s",
              "flows1000": "flows", "srvcpu": "CPU s/GB", **{test: "flows/s" for test in CHURN_TESTS}}
TCP_STREAMS = {"tcp1": 1, "tcp4": 4, "tcp1r": 1, "tcp4r": 4}  # the *r tests: iperf3 -R (B sends to A)
PING_COUNT = 21  # the first reply is dropped: it pays for ARP and peer learning
PING_INTERVAL = 0.05


@dataclass
class Sample:
    test: str
    value: float | None = None  # Gbit/s for tcp*, received packets/s for udp, median RTT in µs for ping
    error: str | None = None
    cpu_percent: float | None = None  # the tunnel's processes during the test; None for the bare link
    peak_rss_kib: int | None = None
    detail: dict[str, float] = field(default_factory=dict)  # retransmits, loss_percent, gbps (udp)


@dataclass
class RowRun:
    key: str
    rep: int
    samples: list[Sample] = field(default_factory=list)
    down: str | None = None  # why the tunnel did not come up
    up_seconds: float | None = None


Progress = Callable[[str], None]


def _measure(rig: Rig, endpoint: Endpoint, test: str, seconds: float) -> Sample:
    sample = Sample(test)
    sampler = CpuSampler(endpoint.pids).start() if endpoint.pids else None
    try:
        if test == "ping":
            result = run_ping(rig.a, endpoint.target, count=PING_COUNT, interval=PING_INTERVAL, skip_first=1)
            if not result.rtts_us:
                raise PingError(f"no replies from {endpoint.target} ({result.loss_percent:.0f}% loss)")
            sample.value = result.median_us
            sample.detail = {"loss_percent": result.loss_percent, "min_us": min(result.rtts_us)}
        elif test in TCP_STREAMS:
            rig.ensure_iperf_server()
            tcp = iperf.run_tcp(rig.a, endpoint.target, seconds, streams=TCP_STREAMS[test],
                                reverse=test.endswith("r"), congestion=rig.tcp_cc)
            sample.value = tcp.gbps
            sample.detail = {"retransmits": float(tcp.retransmits)}
        elif test == "srvcpu":
            sample.value, sample.detail = server_cpu_per_gb(rig, endpoint, seconds)
        elif test == "flows1000":
            opened, rss_open = run_flows(rig, endpoint.target, endpoint.pids)
            sample.value = float(opened)
            if rss_open:
                sample.detail = {"rss_open_mib": rss_open / 1024}
        elif test in CHURN_TESTS:
            mode, inflight = CHURN_TESTS[test]
            result = churn(rig.a, rig.b, endpoint.target, inflight=inflight, seconds=churn_seconds(), mode=mode)
            sample.value = result.rate
            kind = "udp" if mode == "udp" else "tcp"
            sample.detail = {"failed": float(result.failed),
                             **{k: v for k in ("p50_ms", "p99_ms") if (v := result.p(kind, k)) is not None}}
        elif test == "udp":
            rig.ensure_iperf_server()
            udp = iperf.run_udp(rig.a, endpoint.target, seconds)
            sample.value = udp.received_pps
            sample.detail = {"gbps": udp.gbps, "loss_percent": udp.loss_percent}
        else:
            raise ValueError(f"unknown test {test!r}")
    except (iperf.IperfError, PingError, RigError, FlowsError, ChurnError) as exc:
        sample.error = one_line(str(exc))
    except Exception as exc:  # one failed test must not end the run: it shows as n/a with the reason
        sample.error = one_line(f"{type(exc).__name__}: {exc}")
    if sampler is not None:
        usage = sampler.stop()
        sample.cpu_percent, sample.peak_rss_kib = usage.cpu_percent, usage.peak_rss_kib
    return sample


def server_cpu_per_gb(rig: Rig, endpoint: Endpoint, seconds: float) -> tuple[float, dict[str, float]]:
    """One iperf3 stream at full speed; the CPU seconds the server end (B's processes) spent per GB
    carried (user + system, which hypervisor steal does not inflate)."""
    if not endpoint.server_pids:
        raise RigError("the row has no server process in B")
    rig.ensure_iperf_server()
    sampler = CpuSampler(endpoint.server_pids).start()
    started = time.monotonic()
    tcp = iperf.run_tcp(rig.a, endpoint.target, seconds, congestion=rig.tcp_cc)
    usage = sampler.stop()
    cpu_seconds = usage.cpu_percent / 100 * (time.monotonic() - started)
    gigabytes = tcp.gbps * tcp.seconds / 8
    if gigabytes <= 0:
        raise RigError("nothing was carried")
    return cpu_seconds / gigabytes, {"gbps": tcp.gbps, "server_cpu_percent": usage.cpu_percent}


def churn_cell(rate: float, detail: dict[str, float]) -> str:
    text = f"{rate:.0f} flows/s, {detail.get('failed', 0):.0f} failed"
    if "p50_ms" in detail:
        text += f", p50 {detail['p50_ms']:.1f} ms p99 {detail.get('p99_ms', 0):.1f} ms"
    return text


def describe(sample: Sample) -> str:
    if sample.value is None:
        return f"n/a ({sample.error})"
    if sample.test == "ping":
        text = f"{sample.value:.0f} µs"
    elif sample.test == "udp":
        text = f"{sample.value / 1000:.0f} kpps, {sample.detail['loss_percent']:.1f}% loss"
    elif sample.test in CHURN_TESTS:
        text = churn_cell(sample.value, sample.detail)
    elif sample.test == "srvcpu":
        text = f"{sample.value:.2f} CPU s/GB at {sample.detail.get('gbps', 0):.2f} Gbit/s"
    elif sample.test == "flows1000":
        text = f"{sample.value:.0f} flows"
        if "rss_open_mib" in sample.detail:
            text += f", RSS {sample.detail['rss_open_mib']:.1f} MiB while open"
    else:
        text = f"{sample.value:.2f} Gbit/s"
    if sample.cpu_percent is not None:
        text += f" (cpu {sample.cpu_percent:.0f}%, rss {(sample.peak_rss_kib or 0) / 1024:.1f} MiB)"
    return text


def measure_tests(
    rig: Rig,
    endpoint: Endpoint,
    tests: Sequence[str],
    seconds: float,
    label: str,
    progress: Progress | None = None,
) -> list[Sample]:
    """Run tests (ping, tcp1, tcp4, udp) from A to endpoint, one after the other."""
    samples = []
    for test in tests:
        sample = _measure(rig, endpoint, test, seconds)
        samples.append(sample)
        if progress:
            progress(f"{label}: {TEST_TITLES.get(test, test)} {describe(sample)}")
    return samples


def measure_row(
    rig: Rig,
    row: Row,
    *,
    seconds: float,
    rep: int = 1,
    timeout: float = 15.0,
    tests: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> RowRun:
    """Bring row's tunnel up in rig (none for the bare row), run its tests, and stop the tunnel."""
    run = RowRun(row.key, rep)
    tunnel = row.make_tunnel() if row.make_tunnel is not None else None
    started = time.monotonic()
    try:
        if tunnel is None:
            endpoint = Endpoint(rig.b_ip, ())
        else:
            try:
                endpoint = tunnel.start(rig, timeout)
            except TunnelDown as exc:
                run.down = one_line(str(exc))
            except Exception as exc:  # a row must never end the run: report it as n/a
                run.down = one_line(f"could not start: {type(exc).__name__}: {exc}")
            if run.down is not None:
                if progress:
                    progress(f"{row.title}: n/a ({run.down})")
                return run
        run.up_seconds = time.monotonic() - started
        run.samples = measure_tests(
            rig, endpoint, tests if tests is not None else row.tests, seconds, row.title, progress
        )
    finally:
        if tunnel is not None:
            tunnel.stop()
    return run
