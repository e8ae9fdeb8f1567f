"""Many concurrent relay+wss connections held by one gost server: its RSS and thread count.

    python -m bench.conns [--count N] [--inflight K] [--hold S]      (BENCH_CONNS, default 10000)

The rig's namespace B runs `gost -L relay+wss://:443` and a sink on B's 127.0.0.1:9100 that accepts and
holds TCP connections. A runs one asyncio client (bench/conns_client.py) that opens N connections to the
server, each a full TLS handshake, WebSocket upgrade and relay CONNECT to the sink, keeps K of them in
progress at a time, and holds all of them open. The server's VmRSS, thread count and open fds are read
from /proc before (idle) and while the N connections are held; every process runs with RLIMIT_NOFILE
raised (`prlimit`), since N connections cost the server 3N descriptors (the TLS socket, the upstream socket
and the relay's done eventfd). The server's connection cap (gostx's default 4096) is raised to N with
gost's `climiter`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.rig import Rig, RigError
from bench.tunnels import gostx_command
from gostx.testing.netns import Namespace, wait_until

RELAY_PORT = 443
SINK_PORT = 9100
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # soft = hard for every process (raising hard
# needs CAP_SYS_RESOURCE; a container without it caps one process near NOFILE / 3 relayed connections)
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conns_client.py")

SINK = """
import asyncio, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
held = []
async def hold(reader, writer):
    held.append(writer)
    while await reader.read(65536):
        pass
async def main():
    server = await asyncio.start_server(hold, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


@dataclass(frozen=True)
class ProcState:
    rss_kib: int
    threads: int
    fds: int
    kinds: str  # "socket 2000, pipe 4000, ..." (what the descriptors are)


def proc_state(pid: int) -> ProcState:
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":", 1)[0] if ":" in target else "file"
        if kind == "anon_inode":
            kind = target.split(":", 1)[1].strip("[]")
        kinds[kind] = kinds.get(kind, 0) + 1
    text = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return ProcState(int(fields["VmRSS"].split()[0]), int(fields["Threads"]), sum(kinds.values()), text)


def _listening(ns: Namespace, port: int) -> bool:
    return bool(ns.run(["ss", "-Hltn", f"sport = :{port}"], check=False).stdout.strip())


def run(count: int, inflight: int, hold: float) -> int:
    with Rig(prefix="gxbc") as rig:
        sink = rig.b.popen([sys.executable, "-c", SINK, str(SINK_PORT)])
        assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
        log = open(rig.log_path("gost-server"), "wb")
        server = rig.b.popen(["prlimit", f"--nofile={NOFILE}:{NOFILE}", "--", *gostx_command(),
                              "-L", f"relay+wss://:{RELAY_PORT}?climiter={count + 64}"],
                             stdout=log, stderr=subprocess.STDOUT)
        if 3 * count + 100 > NOFILE:
            print(f"== warning: {count} connections need about {3 * count} descriptors in the server; this "
                  f"machine's hard limit is {NOFILE} (raising it needs CAP_SYS_RESOURCE)", file=sys.stderr)
        if not wait_until(lambda: _listening(rig.b, RELAY_PORT), 20):
            raise RigError("gost -L relay+wss://:443 did not listen")
        time.sleep(0.5)
        idle = proc_state(server.pid)
        print(f"== server idle: RSS {idle.rss_kib / 1024:.1f} MiB, {idle.threads} threads, {idle.fds} fds",
              file=sys.stderr, flush=True)
        started = time.monotonic()
        client = rig.a.popen(["prlimit", f"--nofile={NOFILE}:{NOFILE}", "--", sys.executable, CLIENT,
                              rig.b_ip, str(RELAY_PORT), f"127.0.0.1:{SINK_PORT}", str(count), str(inflight)],
                             stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert client.stdout is not None and client.stdin is not None
        line = client.stdout.readline().decode().split()  # "held N failed M"
        opened = time.monotonic() - started
        held, failed = (int(line[1]), int(line[3])) if len(line) == 4 else (0, count)
        time.sleep(hold)
        busy = proc_state(server.pid)
        per_conn = (busy.rss_kib - idle.rss_kib) / held if held else 0.0
        print(f"| relay+wss server, {count} connections | {held} held, {failed} failed, opened in {opened:.1f} s "
              f"| RSS {idle.rss_kib / 1024:.1f} -> {busy.rss_kib / 1024:.1f} MiB ({per_conn:.1f} KiB a connection) "
              f"| threads {idle.threads} -> {busy.threads} | fds {idle.fds} -> {busy.fds} ({busy.kinds}) |")
        client.stdin.close()
        rig.a.stop(client)
        rig.b.stop(server)
        log.close()
        return 0 if held == count else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conns", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=int(os.environ.get("BENCH_CONNS", "10000")))
    parser.add_argument("--inflight", type=int, default=200, help="connections being opened at once")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds to hold them before measuring")
    args = parser.parse_args(argv)
    if args.count <= 0 or args.inflight <= 0:
        print("error: --count and --inflight must be positive", file=sys.stderr)
        return 2
    try:
        return run(args.count, args.inflight, args.hold)
    except RigError as exc:
        print(f"error: the bench rig cannot run here: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
