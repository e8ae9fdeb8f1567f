"""The lossless UDP rate of the UDP relays: iperf3 -u, 1400-byte datagrams, stepped -b.

    python3 -m bench.udp_rate [--rows udp-forward,socks5-udp,ss-udp] [--seconds 1] [--reps 1]

Each row puts a relay between iperf3 -c in A (talking to 127.0.0.1:5201) and iperf3 -s in B. The row
steps the offered rate (-b) up and reports the highest rate whose loss stayed under 0.1% (then halves the
gap to the first lossy step once, to narrow it):

- `udp-forward`: A: `gost -L udp://127.0.0.1:5201/B:5201 -L tcp://127.0.0.1:5201/B:5201` (the TCP forward
  carries iperf3's control connection).
- `socks5-udp`: the same forwards with `-F socks5://B:1080?relay=udp` (standard UDP ASSOCIATE) in A, and
  `gost -L socks5://:1080?udp=true` in B: both the chained client and the ASSOCIATE server.
- `ss-udp`: shadowsocks-libev, the peer: `ss-server -u` in B, `ss-tunnel -u` in A forwarding 127.0.0.1:5201
  to B's iperf3 (TCP and UDP), aes-128-gcm.

Numbers from a shared 2-core machine only mean something as ratios within one run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable, Sequence

from bench.rig import Rig
from bench.tunnels import ProcessTunnel, Role, TunnelDown, gostx_command
from gostx.testing import iperf

PORT = iperf.DEFAULT_PORT
SOCKS_PORT = 1080
SS_PORT = 8388
SS_METHOD = "aes-128-gcm"
SS_PASSWORD = "gostx-bench"
LOSS_LIMIT = 0.1  # percent
STEPS_MBPS = (25, 50, 100, 200, 400, 800, 1600, 3200, 6400)


def _udp_forward(rig: Rig) -> list[Role]:
    cmd = gostx_command()
    b = rig.b_ip
    return [Role("a", "gost forward", [*cmd, "-L", f"udp://127.0.0.1:{PORT}/{b}:{PORT}",
                                       "-L", f"tcp://127.0.0.1:{PORT}/{b}:{PORT}"])]


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
    "udp-forward": _udp_forward,
    "socks5-udp": _socks5_udp,
    "ss-udp": _ss_udp,
}


def _udp_at(rig: Rig, mbps: int, seconds: int) -> iperf.UdpResult:
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(PORT), "-J", "-t", str(seconds), "-u",
            "-l", str(iperf.UDP_PAYLOAD), "-b", f"{mbps}M", "--connect-timeout", "3000"]
    return iperf.parse_udp(iperf.run_client(rig.a, argv, seconds))


def lossless_rate(rig: Rig, seconds: int) -> tuple[float, list[str]]:
    """The highest offered rate (Mbit/s) with loss < LOSS_LIMIT, and one note per step."""
    best = 0.0
    notes: list[str] = []
    lossy: float | None = None

    def step(mbps: float) -> bool:
        nonlocal best
        try:
            res = _udp_at(rig, int(mbps), seconds)
        except iperf.IperfError as exc:
            notes.append(f"{mbps:.0f}M: {exc}")
            return False
        ok = res.loss_percent < LOSS_LIMIT
        notes.append(f"{mbps:.0f}M: {res.gbps * 1000:.0f} Mbit/s received, {res.loss_percent:.2f}% loss")
        if ok:
            best = max(best, mbps)
        return ok

    for mbps in STEPS_MBPS:
        if not step(mbps):
            lossy = mbps
            break
    if lossy is not None and best > 0:
        step((best + lossy) / 2)
    return best, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--seconds", type=int, default=1)
    parser.add_argument("--reps", type=int, default=1)
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
    with Rig() as rig:
        for rep in range(args.reps):
            for row in rows:
                tunnel = ProcessTunnel(target="127.0.0.1", ready="tcp", roles=ROWS[row](rig))
                try:
                    tunnel.start(rig, 15)
                except TunnelDown as exc:
                    print(f"{row}: n/a ({exc})", flush=True)
                    continue
                try:
                    rate, notes = lossless_rate(rig, args.seconds)
                finally:
                    tunnel.stop()
                results[row].append(rate)
                print(f"{row} rep {rep + 1}: lossless {rate:.0f} Mbit/s ({'; '.join(notes)})", flush=True)
    print("\n| Row | Lossless rate, 1400 B datagrams (Mbit/s), each rep |")
    print("|---|---|")
    for row, rates in results.items():
        print(f"| {row} | {', '.join(f'{r:.0f}' for r in rates) or 'n/a'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
