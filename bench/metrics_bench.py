"""-metrics cost: a tun tunnel's throughput with and without a scrape every second (same run,
alternating), and the time one scrape of a tun server with 1000 learned peers takes.

    python3 -m bench.metrics_bench [--seconds 3] [--reps 3] [--peers 1000] [--scrapes 50]

Throughput: the `tun-plain` rig (two namespaces, veth, one iperf3 TCP stream A -> B through
`tun://`), the server with `-metrics 127.0.0.1:19100`; "scraped" runs have curl fetching /metrics from
inside the server's namespace once a second for the whole iperf3 run. Runs alternate, so both halves
see the same machine. Needs root.

Scrape time: no root needed. gostx.testing.fakepeers makes a server Tunnel (socketpair device, UDP on
loopback) learn N peers through the C peer table (real datagrams, one inner source each); the figure
is the median of --scrapes calls of prometheus_client's generate_latest over gostx's collector
(every C counter copied out, the per-peer rows computed, the text rendered), after one warm-up scrape:
the scraping thread's CPU time (what a scrape costs) and the wall time (which a loaded machine inflates).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from gostx.metrics import register_source
from gostx.metrics.server import make_registry, scrape
from gostx.metrics.sources import TunnelSource
from gostx.testing.fakepeers import fake_peers

METRICS = "127.0.0.1:19100"


def scrape_ms(peers: int, scrapes: int) -> tuple[float, float, int]:
    fp = fake_peers(peers)
    try:
        learned = int(fp.tunnel.stats()["peers"])
        source = TunnelSource("gw", "tun")
        source.attach(fp.tunnel)
        handle = register_source(source)
        registry = make_registry()
        try:
            scrape(registry)
            times, cpu = [], []
            for _ in range(scrapes):
                start, start_cpu = time.perf_counter(), time.thread_time()
                scrape(registry)
                times.append(time.perf_counter() - start)
                cpu.append(time.thread_time() - start_cpu)
        finally:
            handle.close()
    finally:
        fp.close()
    return statistics.median(cpu) * 1000, statistics.median(times) * 1000, learned


def throughput(seconds: int, reps: int) -> tuple[list[float], list[float]]:
    from gostx.testing.gost import device_up, start_gost, tunnel_ready, wait_ping
    from gostx.testing.iperf import run_tcp, server_argv
    from gostx.testing.netns import Lab, make_pair

    plain: list[float] = []
    scraped: list[float] = []
    with Lab("gxm") as lab:
        pair = make_pair(lab)
        ready = lambda g: device_up("gx0")(g) and tunnel_ready(g)  # noqa: E731
        start_gost(pair.b, ["-L", "tun://:8421?net=192.168.123.1/24&name=gx0", "-metrics", METRICS],
                   ready=ready, debug=False)
        start_gost(pair.a, ["-L", f"tun://:8421/{pair.b_ip}:8421?net=192.168.123.2/24&name=gx0"], ready=ready,
                   debug=False)
        if not wait_ping(pair.a, "192.168.123.1"):
            raise SystemExit("the tunnel does not pass traffic")
        pair.b.popen(server_argv())
        time.sleep(0.5)
        loop = f"while true; do curl -s -o /dev/null http://{METRICS}/metrics; sleep 1; done"
        for _ in range(reps):
            for with_scrape in (False, True):
                scraper = pair.b.popen(["sh", "-c", loop], stdout=subprocess.DEVNULL) if with_scrape else None
                try:
                    gbps = run_tcp(pair.a, "192.168.123.1", seconds).gbps
                finally:
                    if scraper is not None:
                        pair.b.stop(scraper)
                (scraped if with_scrape else plain).append(gbps)
    return plain, scraped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--no-throughput", action="store_true", help="only the scrape time (no root needed)")
    args = parser.parse_args()
    cpu_ms, wall_ms, learned = scrape_ms(args.peers, args.scrapes)
    print(f"| one scrape, tun server with {learned} peers | {cpu_ms:.1f} ms CPU, {wall_ms:.1f} ms wall"
          f" (medians of {args.scrapes}) |")
    if args.no_throughput:
        return
    plain, scraped = throughput(args.seconds, args.reps)

    def show(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} Gbit/s ({min(values):.2f}-{max(values):.2f})"

    print(f"| tun-plain, TCP 1 stream, no scrape | {show(plain)} |")
    print(f"| tun-plain, TCP 1 stream, scraped every 1 s | {show(scraped)} |")


if __name__ == "__main__":
    main()
