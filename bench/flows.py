"""The `flows1000` test: 1000 TCP connections held open at once through the tunnel. The value is how
many connections were open together; the tunnel's resident memory (VmRSS, summed over its processes)
is sampled while they are all open, which is the "RSS with 1000 open flows" figure. (The row's Peak
RSS column is the high-water mark since the tunnel started, so it also holds the throughput tests.)

B runs a server that accepts and holds connections; A opens them in batches of 100, writes a few bytes on
each, holds them all for HOLD_SECONDS, then closes them."""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from bench.rig import Rig

FLOWS = 1000
PORT = 7100
HOLD_SECONDS = 3

SERVER = textwrap.dedent(f"""
    import asyncio, resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    held = []
    async def handle(reader, writer):
        held.append(writer)
        await reader.read()
        writer.close()
    async def main():
        server = await asyncio.start_server(handle, "0.0.0.0", {PORT}, backlog=4096)
        print("ready", flush=True)
        await server.serve_forever()
    asyncio.run(main())
""")

CLIENT = textwrap.dedent(f"""
    import asyncio, resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    async def main(host):
        conns = []
        for _ in range(0, {FLOWS}, 100):
            conns += await asyncio.wait_for(
                asyncio.gather(*(asyncio.open_connection(host, {PORT}) for _ in range(100))), 60)
        for _, writer in conns:
            writer.write(b"hello")
        await asyncio.gather(*(writer.drain() for _, writer in conns))
        print(len(conns), flush=True)
        await asyncio.sleep({HOLD_SECONDS})
        for _, writer in conns:
            writer.close()
    asyncio.run(main(sys.argv[1]))
""")


class FlowsError(RuntimeError):
    """The connections could not all be opened; str() says why."""


def rss_kib(pids: Sequence[int]) -> int:
    """VmRSS of the processes, summed (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(match.group(1)) if match else 0
    return total


def run_flows(rig: Rig, target: str, pids: Sequence[int] = ()) -> tuple[int, int]:
    """Open FLOWS connections from A to target:PORT (a holding server in B) and hold them; returns how
    many were open together and the largest VmRSS (KiB) of the tunnel's processes `pids` sampled while
    they were all open."""
    server = rig.b.popen(["python3", "-c", SERVER])
    client = None
    try:
        if server.stdout is None or server.stdout.readline().strip() != b"ready":
            raise FlowsError("the holding server in B did not start")
        client = rig.a.popen(["python3", "-c", CLIENT, target])
        assert client.stdout is not None
        line = client.stdout.readline().strip()     # printed once every connection is open
        peak = 0
        deadline = time.monotonic() + HOLD_SECONDS - 0.5
        while line and time.monotonic() < deadline:
            peak = max(peak, rss_kib(pids))
            time.sleep(0.1)
        _, err = client.communicate(timeout=120)
        if client.returncode != 0 or not line:
            last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise FlowsError(f"opening {FLOWS} connections failed: {last[:160]}")
        return int(line), peak
    finally:
        if client is not None:
            rig.a.stop(client)
        rig.b.stop(server)
