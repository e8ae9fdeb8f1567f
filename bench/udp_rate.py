"""The lossless UDP rate of the UDP relays: iperf3 -u, 1400-byte datagrams, stepped -b.

    python3 -m bench.udp_rate [--rows udp-forward,socks5-udp,ss-udp] [--seconds 1] [--reps 1]

`bare` is iperf3 from A straight to B (no relay): the ceiling of the rig itself. Each other row puts a
relay between iperf3 -c in A (talking to 127.0.0.1:5201) and iperf3 -s in B. The row
steps the offered rate (-b) up and reports the highest rate whose loss stayed under 0.1% (then halves the
gap to the first lossy step once, to narrow it):

- `udp-forward`: A: `gost -L udp://127.0.0.1:5201/B:5201 -L tcp://127.0.0.1:5201/B:5201` (the TCP forward
  carries iperf3's control connection).
- `socks5-udp`: the same forwards with `-F socks5://B:1080?relay=udp` (standard UDP ASSOCIATE) in A, and
  `gost -L socks5://:1080?udp=true` in B: both the chained client and the ASSOCIATE server.
- `udp-forward-python`, `socks5-udp-python`: the same with GOSTX_UDP_ENGINE=0, the Python per-datagram
  relays gostx had before the C ones (kept for this comparison).
- `ss-udp`: shadowsocks-libev, the peer: `ss-server -u` in B, `ss-tunnel -u` in A forwarding 127.0.0.1:5201
  to B's iperf3 (TCP and UDP), aes-128-gcm.

Beside it, `--cpu-rate` (default 40 Mbit/s, a rate every row carries): the relay processes' CPU (user +
system, both ends, 100 = one core) while iperf3 sends at that rate for `--seconds`.

iperf3 runs with `-w 4M` (`--window`) on both ends: with the kernel's default 208 KiB socket buffer the
receiving iperf3 itself drops a burst that a batching relay delivers at once (`ss -m` shows the drops on
iperf3's socket, not the relay's), and every row then measures iperf3. The steps double the rate, then
halve the gap to the first lossy step twice;
a row's figure is the received rate of its best lossless step (iperf3 sends less than `-b` above its own
speed, about 1 Gbit/s of 1400-byte datagrams from one iperf3 on this machine: the `bare` row shows it,
and a step that falls short of its `-b` ends the climb). At the end, the lossless-rate ratios against the peers.

Numbers from a shared 2-core machine only mean something as ratios within one run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable, Sequence
from statistics import median

from bench.rig import Rig
from bench.tunnels import ProcessTunnel, Role, TunnelDown, gostx_command
from gostx.testing import iperf
from gostx.testing.procstats import CpuSampler

PORT = iperf.DEFAULT_PORT
SOCKS_PORT = 1080
SS_PORT = 8388
SS_METHOD = "aes-128-gcm"
SS_PASSWORD = "gostx-bench"
LOSS_LIMIT = 0.1  # percent
STEPS_MBPS = (25, 50, 100, 200, 400, 800, 1600, 3200, 6400)
SENDER_SHORTFALL = 0.9  # a step whose sender reached less than this part of -b ends the climb (the rig's ceiling)
BISECTIONS = 2  # halvings of the gap between the best lossless step and the first lossy one
# iperf3's socket buffers (-w, both ends): with the kernel's default 208 KiB the receiving iperf3 drops a
# burst of a few hundred microseconds, which caps every row at what iperf3 itself takes, not the relay
WINDOW = "4M"
# (row, peer, target, at_most): the lossless-rate ratios of issue 18, same run
RATIOS = (
    ("udp-forward", "ss-udp", 5.0),
    ("socks5-udp", "ss-udp", 5.0),
    ("udp-forward", "udp-forward-python", 10.0),
    ("socks5-udp", "socks5-udp-python", 10.0),
)


def _udp_forward(rig: Rig) -> list[Role]:
    cmd = gostx_command()
    b = rig.b_ip
    return [Role("a", "gost forward", [*cmd, "-L", f"udp://127.0.0.1:{PORT}/{b}:{PORT}",
                                       "-L", f"tcp://127.0.0.1:{PORT}/{b}:{PORT}"])]


def _udp_forward_python(rig: Rig) -> list[Role]:
    return [Role(r.side, r.label, ["env", "GOSTX_UDP_ENGINE=0", *r.argv]) for r in _udp_forward(rig)]


def _socks5_udp_python(rig: Rig) -> list[Role]:
    return [Role(r.side, r.label, ["env", "GOSTX_UDP_ENGINE=0", *r.argv]) for r in _socks5_udp(rig)]


def _socks5_udp(rig: Rig) -> list[Role]:
    cmd = gostx_command()
    b = rig.b_ip
    return [
        Role("b", "gost socks5", [*cmd, "-L", f"socks5://:{SOCKS_PORT}?udp=true"]),
        Role("a", "gost forward", [*cmd, "-L", f"udp://127.0.0.1:{PORT}/{b}:{PORT}",
                                   "-L", f"tcp://127.0.0.1:{PORT}/{b}:{PORT}",
                                   "-F", f"socks5://{b}:{SOCKS_PORT}?relay=udp"]),
    ]


def _ss_udp(rig: Rig) -> list[Role]:
    b = rig.b_ip
    common = ["-k", SS_PASSWORD, "-m", SS_METHOD, "-u"]
    return [
        Role("b", "ss-server", ["ss-server", "-s", b, "-p", str(SS_PORT), *common]),
        Role("a", "ss-tunnel", ["ss-tunnel", "-s", b, "-p", str(SS_PORT), "-b", "127.0.0.1", "-l", str(PORT),
                                "-L", f"{b}:{PORT}", *common]),
    ]


ROWS: dict[str, Callable[[Rig], list[Role]]] = {
    "bare": lambda rig: [],
    "udp-forward": _udp_forward,
    "udp-forward-python": _udp_forward_python,
    "socks5-udp": _socks5_udp,
    "socks5-udp-python": _socks5_udp_python,
    "ss-udp": _ss_udp,
}


def _udp_at(rig: Rig, target: str, mbps: int, seconds: int, window: str = WINDOW) -> iperf.UdpResult:
    argv = ["iperf3", "-c", target, "-p", str(PORT), "-J", "-t", str(seconds), "-u",
            "-l", str(iperf.UDP_PAYLOAD), "-b", f"{mbps}M", "--connect-timeout", "3000"]
    if window:
        argv += ["-w", window]
    return iperf.parse_udp(iperf.run_client(rig.a, argv, seconds))


def lossless_rate(rig: Rig, target: str, seconds: int, steps: Sequence[int] = STEPS_MBPS,
                  window: str = WINDOW) -> tuple[float, list[str]]:
    """The highest received rate (Mbit/s) of a step with loss < LOSS_LIMIT, and one note per step."""
    best = 0.0
    notes: list[str] = []
    lossy: float | None = None

    def step(mbps: float) -> bool:
        nonlocal best
        try:
            res = _udp_at(rig, target, int(mbps), seconds, window)
        except iperf.IperfError as exc:
            notes.append(f"{mbps:.0f}M: {exc}")
            return False
        ok = res.loss_percent < LOSS_LIMIT
        notes.append(f"{mbps:.0f}M: {res.gbps * 1000:.0f} Mbit/s received, {res.loss_percent:.2f}% loss")
        if ok:
            best = max(best, res.gbps * 1000)  # received: above its own speed iperf3 sends less than -b
        return ok and res.gbps * 1000 >= mbps * SENDER_SHORTFALL

    for mbps in steps:
        if not step(mbps):
            lossy = mbps
            break
    for _ in range(BISECTIONS if lossy is not None and best > 0 else 0):
        assert lossy is not None
        middle = (best + lossy) / 2
        if lossy - best < 0.05 * lossy:
            break
        if not step(middle):
            lossy = middle
    return best, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--seconds", type=int, default=1)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--cpu-rate", type=int, default=40, help="Mbit/s of the CPU measurement")
    parser.add_argument("--max", type=int, default=0, help="highest step tried, Mbit/s (0: all)")
    parser.add_argument("--window", default=WINDOW,
                        help="iperf3 -w, both ends (\"\": the kernel default, 208 KiB)")
    args = parser.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        print(f"unknown rows: {', '.join(unknown)} (known: {', '.join(ROWS)})", file=sys.stderr)
        return 2
    if "ss-udp" in rows and shutil.which("ss-server") is None:
        print("ss-udp: shadowsocks-libev is not installed (apt-get install shadowsocks-libev)", file=sys.stderr)
        rows.remove("ss-udp")
    results: dict[str, list[float]] = {r: [] for r in rows}
    cpu: dict[str, list[float]] = {r: [] for r in rows}
    with Rig() as rig:
        for rep in range(args.reps):
            for row in rows:
                target = rig.b_ip if row == "bare" else "127.0.0.1"
                tunnel = ProcessTunnel(target=target, ready="tcp", roles=ROWS[row](rig))
                try:
                    endpoint = tunnel.start(rig, 15)
                except TunnelDown as exc:
                    print(f"{row}: n/a ({exc})", flush=True)
                    continue
                try:
                    sampler = CpuSampler(endpoint.pids).start()
                    _udp_at(rig, target, args.cpu_rate, max(args.seconds, 2), args.window)
                    cpu[row].append(sampler.stop().cpu_percent)
                    steps = [m for m in STEPS_MBPS if not args.max or m <= args.max]
                    rate, notes = lossless_rate(rig, target, args.seconds, steps, args.window)
                finally:
                    tunnel.stop()
                results[row].append(rate)
                print(f"{row} rep {rep + 1}: lossless {rate:.0f} Mbit/s ({'; '.join(notes)}); "
                      f"CPU {cpu[row][-1]:.0f}% at {args.cpu_rate} Mbit/s", flush=True)
    print(f"\n| Row | Lossless rate, 1400 B datagrams (Mbit/s), each rep | relay CPU % at {args.cpu_rate} Mbit/s |")
    print("|---|---|---|")
    for row, rates in results.items():
        print(f"| {row} | {', '.join(f'{r:.0f}' for r in rates) or 'n/a'} | "
              f"{', '.join(f'{c:.0f}' for c in cpu[row]) or 'n/a'} |")
    ratio_lines = []
    for row, peer, target in RATIOS:
        if results.get(row) and results.get(peer) and median(results[peer]) > 0:
            value = median(results[row]) / median(results[peer])
            verdict = "met" if value >= target else "not met"
            ratio_lines.append(f"| {row} vs {peer} | {value:.1f}x | >= {target:g}x ({verdict}) |")
    for peer in sorted({peer for _, peer, _ in RATIOS}):
        if results.get("bare") and results.get(peer) and median(results[peer]) > 0:
            value = median(results["bare"]) / median(results[peer])
            ratio_lines.append(f"| bare (the rig's ceiling) vs {peer} | {value:.1f}x | the most any row can show |")
    if ratio_lines:
        print("\n| Lossless rate ratio (same run, medians) | Value | Target |\n|---|---|---|")
        print("\n".join(ratio_lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
