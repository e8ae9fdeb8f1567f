"""Connection churn: many short flows always in flight, through tungo and directly over the veth.

The client (bench/churn_client.py) runs in namespace A, the echo server (bench/churn_server.py) in B;
both are single-threaded epoll programs, so the same client and server measure every path. A run
gives, per kind (TCP, UDP), the flows that completed per second, the failures (no answer within the
timeout, or an error) and the connect / exchange time percentiles.

Paths (the same as the bench rows): `direct`: A connects to B's veth address; `tungo`: A connects to
10.201.0.1 (B's loopback), routed into tungo (`route=10.201.0.1/32`), which dials it directly through
A's veth; `tungo-socks5`: the same with `-F socks5://B:1080` (a gost SOCKS5 server in B).

    python3 -m bench.churn [--inflight 400] [--seconds 30] [--modes tcp,udp,mix] [--paths direct,tungo,...]

builds its own two namespaces and prints one line per run, direct first, then each tungo path (run
alternately when repeated, so the ratio compares runs made side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gostx.testing.gost import GostProcess, start_gost
from gostx.testing.netns import Lab, Namespace, Pair, make_pair

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "churn_client.py")
SERVER = os.path.join(HERE, "churn_server.py")
PORT = 7300
TIMEOUT = 20.0     # seconds a flow gets for its connect and for its echo


# The bench's churn tests: test key -> (mode, flows in flight). The value is flows completed a second.
CHURN_TESTS = {"churn400": ("tcp", 400), "churn2000": ("tcp", 2000), "churnudp": ("udp", 400),
               "churnmix": ("mix", 400)}
CHURN_TITLES = {"churn400": "TCP churn, 400 in flight", "churn2000": "TCP churn, 2000 in flight",
                "churnudp": "UDP churn, 400 in flight", "churnmix": "TCP+UDP churn, 400 in flight"}
CHURN_SECONDS_ENV = "BENCH_CHURN_SECONDS"


def churn_seconds() -> float:
    """How long each bench churn test runs: $BENCH_CHURN_SECONDS, else 5."""
    try:
        value = float(os.environ.get(CHURN_SECONDS_ENV, "") or 5)
    except ValueError:
        value = 5.0
    return value if value > 0 else 5.0


class ChurnError(RuntimeError):
    """The churn client or server could not run; str() says why."""


@dataclass
class ChurnResult:
    mode: str
    inflight: int
    seconds: float
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return int(self.raw.get("ok", 0))

    @property
    def failed(self) -> int:
        return int(self.raw.get("failed", 0))

    @property
    def rate(self) -> float:
        return float(self.raw.get("rate", 0.0))

    def kind(self, kind: str) -> dict[str, Any]:
        return dict(self.raw.get(kind) or {})

    def p(self, kind: str, which: str) -> float | None:
        value = self.kind(kind).get(which)
        return None if value is None else float(value)

    def line(self) -> str:
        parts = [f"{self.mode} x{self.inflight}: {self.rate:.0f} flows/s, {self.failed} failed"]
        for kind, label in (("tcp", "connect"), ("udp", "exchange")):
            k = self.kind(kind)
            if k:
                parts.append(f"{kind} {k['rate']:.0f}/s {label} p50 {k['p50_ms']} ms p99 {k['p99_ms']} ms"
                             + (f" echo p50 {k['echo_p50_ms']} p99 {k['echo_p99_ms']} ms" if kind == "tcp" else "")
                             + (f" failures {k['reasons']}" if k["failed"] else ""))
        return "; ".join(parts)


class EchoServer:
    """bench/churn_server.py in a namespace, on the given addresses."""

    def __init__(self, ns: Namespace, addrs: Sequence[str], port: int = PORT) -> None:
        self.ns = ns
        self.proc = ns.popen(["python3", SERVER, ",".join(addrs), str(port)], stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != b"ready":
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            self.stop()
            raise ChurnError(f"the churn echo server did not start: {(err.strip().splitlines() or ['?'])[-1]}")

    def stop(self) -> None:
        self.ns.stop(self.proc)

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_client(ns: Namespace, host: str, *, inflight: int, seconds: float, mode: str = "tcp",
               port: int = PORT, timeout: float = TIMEOUT) -> ChurnResult:
    """Run the churn client in ns against host:port; raises ChurnError when it gives no result."""
    argv = ["python3", CLIENT, host, str(port), "--inflight", str(inflight), "--seconds", str(seconds),
            "--mode", mode, "--timeout", str(timeout)]
    out = ns.run(argv, check=False, timeout=seconds + timeout + 60)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise ChurnError(f"churn client failed ({out.returncode}): {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return ChurnResult(mode, inflight, seconds, json.loads(lines[-1]))


def churn(ns_client: Namespace, ns_server: Namespace, target: str, *, inflight: int, seconds: float,
          mode: str = "tcp", timeout: float = TIMEOUT) -> ChurnResult:
    """One run: an echo server in ns_server on target, the client in ns_client."""
    with EchoServer(ns_server, [target]):
        return run_client(ns_client, target, inflight=inflight, seconds=seconds, mode=mode, timeout=timeout)


# ---- a lab of its own: the bench rig's addressing without iperf3 ------------------------------------------

BEHIND = "10.201.0.1"       # on B's loopback; A reaches it only through tungo (bench/tunnels.BEHIND_TUNGO)
BYPASS_TABLE = "100"
SOCKS_PORT = 1080


def stack_up(g: GostProcess) -> bool:
    return any(str(r.get("msg", "")).startswith("tungo stack on ") for r in g.log_records())


def socks_up(g: GostProcess) -> bool:
    return any("listening" in str(r.get("msg", "")) for r in g.log_records())


class ChurnLab:
    """Namespaces A and B joined by veth (10.200.1.1 / .2), BEHIND on B's loopback, and the route that
    tungo's direct dials bound to A's veth take to it (`ip rule oif <veth> lookup 100`, as the bench
    rig's tungo rows). tungo is started on demand, direct or with `-F socks5://B:1080`."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.a, self.b = pair.a, pair.b
        self.b.run(["ip", "addr", "replace", f"{BEHIND}/32", "dev", "lo"])
        self.a.run(["ip", "route", "replace", "10.201.0.0/24", "via", pair.b_ip, "dev", pair.a_if,
                    "table", BYPASS_TABLE])
        self.a.run(["ip", "rule", "add", "oif", pair.a_if, "lookup", BYPASS_TABLE])
        self.socks: GostProcess | None = None

    def tungo(self, path: str, query: str = "") -> GostProcess:
        """Start tungo in A for `path` "tungo" (direct dials) or "tungo-socks5"; stop it with stop()."""
        url = f"tungo://:0?name=gxtungo&net=192.168.123.2/24&route={BEHIND}/32&interface={self.pair.a_if}{query}"
        extra: list[str] = []
        if path == "tungo-socks5":
            if self.socks is None or not self.socks.alive():
                self.socks = start_gost(self.b, ["-L", f"socks5://:{SOCKS_PORT}"], ready=socks_up, debug=False)
            url = url.replace(f"&interface={self.pair.a_if}", "")
            extra = ["-F", f"socks5://{self.pair.b_ip}:{SOCKS_PORT}?interface={self.pair.a_if}"]
        return start_gost(self.a, ["-L", url, *extra], ready=stack_up, debug=False)

    def target(self, path: str) -> str:
        return self.pair.b_ip if path == "direct" else BEHIND


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of pid, from /proc (the first thread: the main one)."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_per_flow(before: dict[int, float], after: dict[int, float], flows: int, main_tid: int) -> str:
    """gost's CPU per completed flow during a run: its main (Python) thread and the others (the stack's)."""
    if flows <= 0:
        return ""
    main = after.get(main_tid, 0.0) - before.get(main_tid, 0.0)
    rest = sum(v - before.get(tid, 0.0) for tid, v in after.items() if tid != main_tid)
    return (f"gost CPU per flow: {1e6 * (main + rest) / flows:.0f} us (Python thread {1e6 * main / flows:.0f}, "
            f"other threads {1e6 * rest / flows:.0f})")


def gost_stats(g: GostProcess) -> dict[str, Any]:
    try:
        return g.stats()
    except AssertionError:
        return {}


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.churn", description=__doc__.splitlines()[0])
    parser.add_argument("--inflight", default="400", help="comma list, e.g. 400,2000")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--modes", default="tcp")
    parser.add_argument("--paths", default="direct,tungo")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=TIMEOUT)
    parser.add_argument("--query", default="", help="appended to the tungo URL, e.g. '&udpTimeout=5s'")
    args = parser.parse_args(argv)
    paths = [p for p in args.paths.split(",") if p]
    with Lab("gxch") as lab:
        cl = ChurnLab(make_pair(lab))
        for rep in range(args.reps):
            for inflight in (int(n) for n in args.inflight.split(",")):
                for mode in args.modes.split(","):
                    for path in paths:
                        g = cl.tungo(path, args.query) if path != "direct" else None
                        try:
                            before = thread_cpu(g.proc.pid) if g is not None else {}
                            socks = cl.socks if path == "tungo-socks5" else None
                            socks_before = thread_cpu(socks.proc.pid) if socks is not None else {}
                            result = churn(cl.a, cl.b, cl.target(path), inflight=inflight, seconds=args.seconds,
                                           mode=mode, timeout=args.timeout)
                            print(f"rep {rep + 1} {path}: {result.line()}", flush=True)
                            if g is not None:
                                cpu = cpu_per_flow(before, thread_cpu(g.proc.pid), result.ok, g.proc.pid)
                                print(f"   {cpu}\n   stats: {gost_stats(g)}", flush=True)
                            if socks is not None:
                                cpu = cpu_per_flow(socks_before, thread_cpu(socks.proc.pid), result.ok, socks.proc.pid)
                                print(f"   socks5 server (B): {cpu}", flush=True)
                        finally:
                            if g is not None:
                                g.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
