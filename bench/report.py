"""Render a bench run as a Markdown table and as JSON, with the machine it ran on."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.churn import CHURN_TESTS
from bench.measure import TEST_TITLES, churn_cell
from bench.summary import RowSummary, TestSummary


@dataclass(frozen=True)
class RunInfo:
    date: str  # UTC, ISO 8601
    cpu_model: str
    cpus: int
    kernel: str
    python: str
    iperf3: str
    openvpn: str
    reps: int
    seconds: float
    duration_s: float
    steal_pct: float | None = None  # CPU time the hypervisor gave to others during the run, in %
    crypto: str = ""  # the per-packet crypto code this CPU runs, e.g. "AES-GCM vaes-avx2, HKDF-SHA1 sha-ni"
    tcp_cc: str = ""  # TCP congestion control in the rig's namespaces (iperf3's), e.g. "cubic"


STEAL_WARN_PCT = 5.0


def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_times(stat_text: str | None = None) -> list[int]:
    """The machine-wide CPU time counters of /proc/stat's first line (user, nice, system, idle,
    iowait, irq, softirq, steal, ...), in clock ticks; [] when unreadable."""
    if stat_text is None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                stat_text = f.readline()
        except OSError:
            return []
    fields = stat_text.split()
    if not fields or fields[0] != "cpu":
        return []
    return [int(v) for v in fields[1:9]]


def steal_pct(before: Sequence[int], after: Sequence[int]) -> float | None:
    """The share of CPU time stolen by the hypervisor between two cpu_times() readings, in %."""
    if len(before) < 8 or len(after) < 8:
        return None
    delta = [b - a for a, b in zip(before[:8], after[:8], strict=True)]
    total = sum(delta)
    return round(100.0 * delta[7] / total, 1) if total > 0 else None


def steal_note(info: RunInfo) -> str | None:
    """A warning when the host took a noticeable share of this VM's CPU during the run."""
    if info.steal_pct is None or info.steal_pct < STEAL_WARN_PCT:
        return None
    return (
        f"Warning: the hypervisor took {info.steal_pct:g}% of this machine's CPU time (steal) during the run: "
        "the host was busy, the figures (and the ratios, less so) are not comparable with a quiet run."
    )


def crypto_line() -> str:
    """Which AES-GCM and HKDF-SHA1 code gostx runs on this CPU (the same in the bench's gost processes,
    which share the CPU and the environment): figures of two machines differ by it."""
    try:
        from gostx._engine import crypto_impls
    except ImportError:
        return ""
    impls = crypto_impls()
    return f"AES-GCM {impls['aes-gcm']}, HKDF-SHA1 {impls['hkdf-sha1']}"


def run_info(
    reps: int, seconds: float, duration_s: float, steal: float | None = None, tcp_cc: str = ""
) -> RunInfo:
    return RunInfo(
        date=datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        cpu_model=cpu_model(),
        cpus=os.cpu_count() or 0,
        kernel=platform.release(),
        python=platform.python_version(),
        iperf3=_first_line(["iperf3", "--version"]),
        openvpn=" ".join(_first_line(["openvpn", "--version"]).split()[:2]),
        reps=reps,
        seconds=seconds,
        duration_s=round(duration_s, 1),
        steal_pct=steal,
        crypto=crypto_line(),
        tcp_cc=tcp_cc,
    )


def _num(value: float, test: str) -> str:
    if test == "ping":
        return f"{value:.0f}"
    if test == "udp":
        return f"{value / 1000:.0f}k"
    if test == "srvcpu":
        return f"{value:.2f}"
    if test == "flows1000" or test in CHURN_TESTS:
        return f"{value:.0f}"
    return f"{value:.2f}"


def _median_cell(ts: TestSummary) -> str:
    if ts.median is None:
        return f"n/a ({ts.errors[0] if ts.errors else 'no result'})"
    if ts.test == "ping":
        return f"{ts.median:.0f} µs RTT"
    if ts.test == "udp":
        gbps, loss = ts.detail.get("gbps", 0.0), ts.detail.get("loss_percent", 0.0)
        return f"{ts.median / 1000:.0f} kpps = {gbps:.2f} Gbit/s, {loss:.1f}% loss"
    if ts.test in CHURN_TESTS:
        return churn_cell(ts.median, ts.detail)
    if ts.test == "srvcpu":
        return f"{ts.median:.2f} CPU s/GB (server) at {ts.detail.get('gbps', 0):.2f} Gbit/s"
    if ts.test == "flows1000":
        rss = ts.detail.get("rss_open_mib")
        return f"{ts.median:.0f} open at once" + (f", RSS {rss:.1f} MiB while open" if rss else "")
    return f"{ts.median:.2f} Gbit/s"


def _range_cell(ts: TestSummary) -> str:
    if ts.low is None or ts.high is None:
        return ""
    return f"{_num(ts.low, ts.test)}-{_num(ts.high, ts.test)}"


def _vs_bare_cell(row: RowSummary, ts: TestSummary) -> str:
    if row.key == "bare":
        return "baseline" if ts.ok else ""
    if ts.vs_bare is None:
        return ""
    if ts.test == "ping":
        return f"{ts.vs_bare:+.0f} µs"
    if ts.test == "udp":
        return f"{ts.vs_bare:.2f}x pps"
    return f"{ts.vs_bare:.2f}x"


def _vs_peer_cell(row: RowSummary, ts: TestSummary) -> str:
    if ts.vs_peer is None or not row.peer:
        return ""
    if ts.test == "ping":
        return f"{ts.vs_peer:+.0f} µs vs {row.peer}"
    return f"{ts.vs_peer:.2f}x {row.peer}"


def _cpu_cell(ts: TestSummary) -> str:
    return f"{ts.cpu_percent:.0f}" if ts.cpu_percent is not None and ts.ok else "-"


def _rss_cell(ts: TestSummary) -> str:
    return f"{ts.peak_rss_kib / 1024:.1f} MiB" if ts.peak_rss_kib and ts.ok else "-"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(rows: Sequence[RowSummary], info: RunInfo) -> str:
    lines = [
        f"gostx bench, {info.date}: {info.cpu_model}, {info.cpus} CPUs, Linux {info.kernel}; "
        f"{info.iperf3}"
        + (f" over TCP {info.tcp_cc}" if info.tcp_cc else "")
        + f"; {info.reps} reps of {info.seconds:g} s each (median, min-max); "
        f"run took {info.duration_s / 60:.1f} min"
        + (f"; CPU steal {info.steal_pct:g}%" if info.steal_pct is not None else "")
        + (f"; crypto: {info.crypto}." if info.crypto else "."),
        "",
        "| Row | Test | Median | Min-max | vs bare veth | vs peer | CPU % (tunnel) | Peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.down is not None:
            lines.append(f"| {_escape(row.title)} | all | n/a ({_escape(row.down)}) | | | | | |")
            continue
        for ts in row.tests.values():
            title = TEST_TITLES.get(ts.test, ts.test)
            failed = len(ts.errors)
            note = (
                f" ({failed} of {len(ts.values) + failed} failed: {ts.errors[0]})" if failed and ts.ok else ""
            )
            cells = [
                _escape(row.title),
                title,
                _escape(_median_cell(ts) + note),
                _range_cell(ts),
                _vs_bare_cell(row, ts),
                _vs_peer_cell(row, ts),
                _cpu_cell(ts),
                _rss_cell(ts),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if row.down_reps:
            lines.append(
                f"| {_escape(row.title)} | | {row.down_reps} of {row.reps} reps did not come up | | | | | |"
            )
    lines += [
        "",
        "TCP: iperf3 receiver goodput, A -> B. UDP: 1400-byte datagrams at an unlimited rate, "
        "packets/s received. Ping: median RTT of 20 echoes, 50 ms apart, after one warm-up echo. "
        "vs bare veth: the ratio to the bare link measured in this same run (ping: added µs). "
        "vs peer: the same against the tool a user would pick instead (its own row, same run). "
        "CPU %: both tunnel ends together, 100 = one core. Peak RSS: the largest VmHWM of the "
        "tunnel's processes.",
    ]
    ratios = ratio_lines(rows)
    if ratios:
        lines += ["", "| Ratio (same run, medians) | Value | Target |", "|---|---|---|", *ratios]
    note = steal_note(info)
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def ratio_lines(rows: Sequence[RowSummary]) -> list[str]:
    """The issue's ratios (bench/tls_rows.py RATIOS) whose two rows ran and gave a median."""
    from bench.tls_rows import RATIOS

    by_key = {row.key: row for row in rows}
    out = []
    for ratio in RATIOS:
        num, den = by_key.get(ratio.numerator), by_key.get(ratio.denominator)
        a = num.tests.get(ratio.test) if num else None
        b = den.tests.get(ratio.test) if den else None
        if a is None or b is None or a.median is None or not b.median:
            continue
        value = a.median / b.median
        met = value <= ratio.target if ratio.at_most else value >= ratio.target
        target = f"{'<=' if ratio.at_most else '>='} {ratio.target:g}x ({'met' if met else 'not met'})"
        out.append(f"| {_escape(ratio.label)} | {value:.2f}x | {target} |")
    return out


def to_json(rows: Sequence[RowSummary], info: RunInfo) -> dict[str, Any]:
    return {"info": asdict(info), "rows": [asdict(row) for row in rows]}


def write(rows: Sequence[RowSummary], info: RunInfo, out_dir: str) -> tuple[str, str]:
    """Write bench-<UTC time>.md and .json into out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    stamp = info.date.replace(":", "").replace("-", "").replace("+0000", "Z")
    md_path = os.path.join(out_dir, f"bench-{stamp}.md")
    json_path = os.path.join(out_dir, f"bench-{stamp}.json")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(markdown(rows, info))
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(to_json(rows, info), f, indent=2, ensure_ascii=False)
        f.write("\n")
    return md_path, json_path
