"""`make demo`: a gost tun:// tunnel (aes-128-gcm) between two network namespaces, measured and torn down.

    python -m bench.demo [--seconds S] [--gost "CMD"]

It creates namespaces A (client) and B (server) joined by veth, measures the bare link, starts
`gost` on both sides exactly as the seed's TUN example (plus a cipher), pings across, runs iperf3
through the tunnel, prints one summary and removes everything, also on failure. Exit status 0 when
the tunnel carried traffic, 1 with an `error:` line otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
import time
from collections.abc import Sequence

from bench.measure import TEST_TITLES, Sample, measure_tests
from bench.rig import Rig, RigError, check_host
from bench.tunnels import CLIENT_TUN_IP, SERVER_TUN_IP, Endpoint, GostTunnel, TunnelDown, gost_tun, tail_lines

METHOD = "aes-128-gcm"
STEPS = 6


class DemoError(Exception):
    """The demo cannot go on; str() is the one-line reason."""


def say(line: str) -> None:
    print(line, flush=True)


def step(n: int, text: str) -> None:
    say(f"[{n}/{STEPS}] {text}")


def _value(sample: Sample) -> Sample:
    if sample.value is None:
        raise DemoError(f"{TEST_TITLES.get(sample.test, sample.test)} failed: {sample.error}")
    return sample


def _check_engine(gost_cmd: Sequence[str] | None) -> None:
    if gost_cmd is None and importlib.util.find_spec("gostx._engine") is None:
        raise DemoError("the gostx C extension is not built (run `make build` or `make demo`)")


def _show_logs(tunnel: GostTunnel) -> None:
    for label, path in tunnel.logs().items():
        lines = tail_lines(path, 3, limit=200)
        if lines:
            say(f"      {label}, last lines of its output:")
            for line in lines:
                say(f"        {line}")


def run_demo(seconds: float, gost_cmd: list[str] | None, timeout: float) -> int:
    say(f"gostx demo: a gost tun:// tunnel ({METHOD}) between two network namespaces")
    step(1, "checking the host: root, ip, iperf3, ping, /dev/net/tun, the gostx extension")
    check_host()
    _check_engine(gost_cmd)
    with Rig(prefix="gxdm") as rig:
        a, b = f"{rig.a.name} (client, {rig.a_ip})", f"{rig.b.name} (server, {rig.b_ip})"
        step(2, f"created namespaces {a} and {b}, joined by veth; TCP congestion control {rig.tcp_cc}")
        tcp_cc = rig.tcp_cc

        step(3, f"measuring the bare veth link: ping, iperf3 {seconds:g} s")
        bare = Endpoint(rig.b_ip, ())
        bare_ping, bare_tcp = (_value(s) for s in measure_tests(rig, bare, ("ping", "tcp1"), seconds, "bare"))
        say(f"      bare veth: {bare_ping.value:.0f} µs RTT, {bare_tcp.value:.2f} Gbit/s")

        tunnel = gost_tun(METHOD, named=False, command=gost_cmd)
        try:
            step(4, "starting gost on both sides, as the seed's TUN example (with a cipher):")
            for side, line in tunnel.shell_lines(rig):
                where = f"server in {rig.b.name}" if side == "b" else f"client in {rig.a.name}"
                say(f"      {where}: {line}")
            say(f"      waiting up to {timeout:g} s for {SERVER_TUN_IP} to answer ping from {CLIENT_TUN_IP}")
            started = time.monotonic()
            try:
                endpoint = tunnel.start(rig, timeout)
            except TunnelDown as exc:
                _show_logs(tunnel)
                raise DemoError(f"the gost tunnel did not come up: {exc}") from None
            up_after = time.monotonic() - started
            say(f"      tunnel up after {up_after:.1f} s")
            step(5, f"pinging across and running iperf3 {seconds:g} s through the tunnel")
            samples = measure_tests(rig, endpoint, ("ping", "tcp1"), seconds, "tunnel")
            if any(s.value is None for s in samples):
                _show_logs(tunnel)
            tun_ping, tun_tcp = (_value(s) for s in samples)
            say(f"      tunnel: {tun_ping.value:.0f} µs RTT, {tun_tcp.value:.2f} Gbit/s")
        finally:
            step(6, "tearing down: stopping gost, deleting the namespaces")
            tunnel.stop()
    _summary(seconds, up_after, bare_ping, bare_tcp, tun_ping, tun_tcp, tcp_cc)
    return 0


def _summary(
    seconds: float,
    up_after: float,
    bare_ping: Sample,
    bare_tcp: Sample,
    tun_ping: Sample,
    tun_tcp: Sample,
    tcp_cc: str,
) -> None:
    rtt, bare_rtt = tun_ping.value or 0.0, bare_ping.value or 0.0
    gbps, bare_gbps = tun_tcp.value or 0.0, bare_tcp.value or 0.0
    ratio = gbps / bare_gbps if bare_gbps else 0.0
    say("")
    say("== summary")
    ends = f"{CLIENT_TUN_IP} <-> {SERVER_TUN_IP}"
    say(f"  tunnel      up after {up_after:.1f} s: tun:// {METHOD}, {ends} over veth")
    say(f"  RTT         {rtt:.0f} µs through the tunnel, {bare_rtt:.0f} µs bare (+{rtt - bare_rtt:.0f} µs)")
    say(
        f"  throughput  {gbps:.2f} Gbit/s through the tunnel, {bare_gbps:.2f} Gbit/s bare "
        f"= {ratio:.2f}x the bare link (iperf3 {seconds:g} s, 1 TCP stream, {tcp_cc})"
    )
    if tun_tcp.cpu_percent is not None:
        say(
            f"  gost        {tun_tcp.cpu_percent:.0f}% CPU during iperf3 (both ends, 100% = one core), "
            f"peak RSS {(tun_tcp.peak_rss_kib or 0) / 1024:.1f} MiB"
        )
    say("  cleaned up  gost stopped, namespaces deleted")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="iperf3 duration (default 5)")
    parser.add_argument("--gost", default=None, help="command that runs gost (default: this checkout)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds the tunnel gets to come up")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.timeout <= 0:
        parser.error("--seconds and --timeout must be positive")
    gost_cmd = shlex.split(args.gost) if args.gost else None
    try:
        return run_demo(args.seconds, gost_cmd, args.timeout)
    except (DemoError, RigError) as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("error: interrupted; the namespaces and processes were removed")
        return 130


if __name__ == "__main__":
    sys.exit(main())
