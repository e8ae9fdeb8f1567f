"""`make demo`: a gost tun:// tunnel (aes-128-gcm) between two network namespaces, measured and torn down.

    python -m bench.demo [--seconds S] [--gost "CMD"] [--no-peers]

It creates namespaces A (client) and B (server) joined by veth, measures the bare link, starts
`gost` on both sides exactly as the seed's TUN example (plus a cipher), pings across, runs iperf3
through the tunnel, then does the same through OpenVPN and wireguard-go (the tools a user would pick
instead) between the same namespaces, prints one summary and removes everything, also on failure.
Exit status 0 when the gostx tunnel carried traffic (a peer that is missing or fails is shown as
n/a), 1 with an `error:` line otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.measure import TEST_TITLES, Sample, measure_tests
from bench.peers import WireGuardGoTunnel
from bench.rig import Rig, RigError, check_host
from bench.tunnels import (
    CLIENT_TUN_IP,
    SERVER_TUN_IP,
    Endpoint,
    OpenVpnTunnel,
    ProcessTunnel,
    TunnelDown,
    gost_tun,
    tail_lines,
)

METHOD = "aes-128-gcm"
STEPS = 8


class DemoError(Exception):
    """The demo cannot go on; str() is the one-line reason."""


@dataclass
class PathResult:
    """One path between the namespaces, as the summary shows it."""

    title: str
    ping: Sample | None = None
    tcp: Sample | None = None
    down: str | None = None  # why a peer did not come up (the gostx tunnel failing ends the demo)


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


def _show_logs(tunnel: ProcessTunnel) -> None:
    for label, path in tunnel.logs().items():
        lines = tail_lines(path, 3, limit=200)
        if lines:
            say(f"      {label}, last lines of its output:")
            for line in lines:
                say(f"        {line}")


def _line(result: PathResult) -> str:
    ping, tcp = result.ping, result.tcp
    if result.down or ping is None or tcp is None:
        return f"      {result.title}: n/a ({result.down or 'no result'})"
    return f"      {result.title}: {ping.value:.0f} µs RTT, {tcp.value:.2f} Gbit/s"


def _peer(rig: Rig, title: str, tunnel: ProcessTunnel, seconds: float, timeout: float) -> PathResult:
    """Bring a peer tunnel up, measure it like the gostx tunnel, stop it. Its failure is a result
    (n/a with the reason), not the demo's."""
    result = PathResult(title)
    try:
        endpoint = tunnel.start(rig, timeout)
    except TunnelDown as exc:
        result.down = str(exc)
        say(_line(result))
        return result
    try:
        ping, tcp = measure_tests(rig, endpoint, ("ping", "tcp1"), seconds, title)
        if ping.value is None or tcp.value is None:
            result.down = (ping.error or tcp.error or "no result").strip()
        else:
            result.ping, result.tcp = ping, tcp
    finally:
        tunnel.stop()
    say(_line(result))
    return result


def run_demo(seconds: float, gost_cmd: list[str] | None, timeout: float, peers: bool = True) -> int:
    say(f"gostx demo: a gost tun:// tunnel ({METHOD}) between two network namespaces, beside OpenVPN and wireguard-go")
    step(1, "checking the host: root, ip, iperf3, ping, /dev/net/tun, the gostx extension")
    check_host()
    _check_engine(gost_cmd)
    results: list[PathResult] = []
    with Rig(prefix="gxdm") as rig:
        a, b = f"{rig.a.name} (client, {rig.a_ip})", f"{rig.b.name} (server, {rig.b_ip})"
        step(2, f"created namespaces {a} and {b}, joined by veth; TCP congestion control {rig.tcp_cc}")
        tcp_cc = rig.tcp_cc

        step(3, f"measuring the bare veth link: ping, iperf3 {seconds:g} s")
        bare = Endpoint(rig.b_ip, ())
        bare_ping, bare_tcp = (_value(s) for s in measure_tests(rig, bare, ("ping", "tcp1"), seconds, "bare"))
        results.append(PathResult("bare veth (no tunnel)", bare_ping, bare_tcp))
        say(_line(results[-1]))

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
            results.append(PathResult(f"gostx tun:// {METHOD}", tun_ping, tun_tcp))
            say(_line(results[-1]))
            tunnel.stop()
            if peers:
                step(6, f"the same through OpenVPN (UDP, AES-256-GCM, userspace): ping, iperf3 {seconds:g} s")
                results.append(_peer(rig, "OpenVPN AES-256-GCM", OpenVpnTunnel(), seconds, timeout))
                step(7, f"the same through wireguard-go (Debian's, ChaCha20-Poly1305): ping, iperf3 {seconds:g} s")
                results.append(_peer(rig, "wireguard-go", WireGuardGoTunnel(), seconds, timeout))
        finally:
            step(8, "tearing down: stopping every tunnel, deleting the namespaces")
            tunnel.stop()
    _summary(seconds, up_after, results, tcp_cc)
    return 0


def _summary(seconds: float, up_after: float, results: list[PathResult], tcp_cc: str) -> None:
    bare, gostx = results[0], results[1]
    bare_gbps = bare.tcp.value if bare.tcp and bare.tcp.value else 0.0
    bare_rtt = bare.ping.value if bare.ping and bare.ping.value else 0.0
    gostx_gbps = gostx.tcp.value if gostx.tcp and gostx.tcp.value else 0.0
    say("")
    say(f"== summary: the same two namespaces, one after the other, iperf3 {seconds:g} s, 1 TCP stream, {tcp_cc}")
    say(f"  {'path':<28} {'throughput':>15} {'vs bare':>8} {'RTT':>9} {'CPU':>6}  {'gostx vs it':>11}")
    for result in results:
        if result.down or result.tcp is None or result.ping is None:
            say(f"  {result.title:<28} n/a ({result.down})")
            continue
        gbps, rtt = result.tcp.value or 0.0, result.ping.value or 0.0
        vs_bare = f"{gbps / bare_gbps:.2f}x" if bare_gbps else "-"
        cpu = f"{result.tcp.cpu_percent:.0f}%" if result.tcp.cpu_percent is not None else "-"
        vs_it = f"{gostx_gbps / gbps:.2f}x" if result is not gostx and result is not bare and gbps else ""
        added = f"+{rtt - bare_rtt:.0f}" if result is not bare else f"{rtt:.0f}"
        say(f"  {result.title:<28} {gbps:>8.2f} Gbit/s {vs_bare:>8} {added:>6} µs {cpu:>6}  {vs_it:>11}".rstrip())
    say(f"  gostx's tunnel was up {up_after:.1f} s after gost started; CPU is both ends, 100% = one core;")
    say("  gostx vs it: gostx's throughput divided by that tool's, both measured here.")
    say("  The bare link is two namespaces of one kernel: a memory copy with no wire, so every userspace")
    say("  tunnel is a small fraction of it. Compare the tunnels with each other, measured here in this run.")
    if gostx.tcp and gostx.tcp.peak_rss_kib:
        say(f"  gost's peak RSS {gostx.tcp.peak_rss_kib / 1024:.1f} MiB")
    say("  cleaned up  every tunnel stopped, namespaces deleted")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="iperf3 duration (default 5)")
    parser.add_argument("--gost", default=None, help="command that runs gost (default: this checkout)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds the tunnel gets to come up")
    parser.add_argument("--no-peers", action="store_true", help="measure gostx only, not OpenVPN and wireguard-go")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.timeout <= 0:
        parser.error("--seconds and --timeout must be positive")
    gost_cmd = shlex.split(args.gost) if args.gost else None
    try:
        return run_demo(args.seconds, gost_cmd, args.timeout, peers=not args.no_peers)
    except (DemoError, RigError) as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("error: interrupted; the namespaces and processes were removed")
        return 130


if __name__ == "__main__":
    sys.exit(main())
