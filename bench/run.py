"""`make bench`: the matrix of rows, each repeated, as a Markdown table and a JSON file.

    python -m bench.run [--reps N] [--seconds S] [--rows PATTERN,...] [--out DIR] [--list]

Each option also reads an environment variable: BENCH_REPS (3), BENCH_SECONDS (3), BENCH_ROWS (all),
BENCH_OUT (bench/results), BENCH_TUNNEL_TIMEOUT (15). Repetitions are interleaved (rep 1 of every
row, then rep 2, ...) so that the ratios to the bare veth compare runs made side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence

from bench.chart import draw
from bench.matrix import ROWS, Row, select_rows
from bench.measure import RowRun, measure_row
from bench.report import cpu_times, markdown, run_info, steal_note, steal_pct, write
from bench.rig import Rig, RigError
from bench.summary import RowSummary, add_bare_comparison, summarize_row

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _positive(kind: type[int] | type[float], name: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be positive, got {text!r}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=_positive(int, "BENCH_REPS"), default=env.get("BENCH_REPS", "3"))
    parser.add_argument(
        "--seconds", type=_positive(float, "BENCH_SECONDS"), default=env.get("BENCH_SECONDS", "3")
    )
    parser.add_argument(
        "--rows", default=env.get("BENCH_ROWS", ""), help="comma-separated row keys, substrings or globs"
    )
    parser.add_argument(
        "--out", default=env.get("BENCH_OUT", DEFAULT_OUT), help="directory for the .md and .json"
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float, "BENCH_TUNNEL_TIMEOUT"),
        default=env.get("BENCH_TUNNEL_TIMEOUT", "15"),
        help="seconds a tunnel gets to pass traffic",
    )
    parser.add_argument(
        "--tests", default=env.get("BENCH_TESTS", ""),
        help="comma-separated tests (ping, tcp1, tcp4, udp, ...): each row runs only those it has",
    )
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    args = parser.parse_args(argv)
    # argparse applies `type` to string defaults, so the environment is validated like the flags.
    return args


def progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def run_matrix(rig: Rig, rows: Sequence[Row], reps: int, seconds: float, timeout: float) -> list[RowSummary]:
    runs: dict[str, list[RowRun]] = {row.key: [] for row in rows}
    for rep in range(1, reps + 1):
        print(f"== rep {rep}/{reps}", file=sys.stderr, flush=True)
        for row in rows:
            previous = runs[row.key]
            if previous and all(run.down for run in previous):
                continue  # it never came up: do not spend another timeout on it
            runs[row.key].append(
                measure_row(rig, row, seconds=seconds, rep=rep, timeout=timeout, progress=progress)
            )
    summaries = [summarize_row(row, runs[row.key]) for row in rows]
    add_bare_comparison(summaries)
    return summaries


def write_chart(json_path: str) -> str:
    """Draw the run's PNG next to its JSON; returns the line to print (also when it cannot)."""
    png = json_path.removesuffix(".json") + ".png"
    try:
        with open(json_path, encoding="utf-8") as f:
            draw(json.load(f), png)
    except ImportError:
        return "no chart: matplotlib is not installed (pip install matplotlib, or make deps)"
    except (OSError, ValueError) as exc:
        return f"no chart: {exc}"
    return f"wrote {png}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rows = select_rows([p.strip() for p in args.rows.split(",") if p.strip()])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    only = {t.strip() for t in args.tests.split(",") if t.strip()}
    if only:
        rows = [dataclasses.replace(row, tests=tuple(t for t in row.tests if t in only)) for row in rows]
        rows = [row for row in rows if row.tests]
        if not rows:
            print(f"error: no chosen row runs any of the tests {sorted(only)}", file=sys.stderr)
            return 2
    if args.list:
        for row in ROWS:
            print(f"{row.key:28} {row.title}  [{', '.join(row.tests)}]")
        return 0
    started = time.monotonic()
    ticks_before = cpu_times()
    print(
        f"== gostx bench: {len(rows)} rows x {args.reps} reps, {args.seconds:g} s per iperf3 run",
        file=sys.stderr,
        flush=True,
    )
    try:
        with Rig() as rig:
            print(
                f"== namespaces {rig.a.name} (client) and {rig.b.name} (server), TCP {rig.tcp_cc}",
                file=sys.stderr,
                flush=True,
            )
            summaries = run_matrix(rig, rows, args.reps, args.seconds, args.timeout)
            tcp_cc = rig.tcp_cc
    except RigError as exc:
        print(f"error: the bench rig cannot run here: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; namespaces and processes were removed", file=sys.stderr)
        return 130
    info = run_info(
        args.reps, args.seconds, time.monotonic() - started, steal_pct(ticks_before, cpu_times()), tcp_cc
    )
    table = markdown(summaries, info)
    md_path, json_path = write(summaries, info, args.out)
    print(table)
    print(f"== wrote {md_path} and {json_path}", file=sys.stderr)
    print(f"== {write_chart(json_path)}", file=sys.stderr)
    note = steal_note(info)
    if note:
        print(f"== {note}", file=sys.stderr)
    bare = next((s for s in summaries if s.key == "bare"), None)
    if bare is None or not any(ts.ok for ts in bare.tests.values()):
        print("error: the bare veth link gave no result, so no ratio could be computed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
