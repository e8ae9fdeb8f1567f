"""The `flows1000` test: 1000 TCP connections held open at once through the tunnel (the tunnel's peak RSS
during the test is what it measures; the value is how many connections were open together).

B runs a server that accepts and holds connections; A opens them in batches of 100, writes a few bytes on
each, holds them all for HOLD_SECONDS, then closes them."""

from __future__ import annotations

import textwrap

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


def run_flows(rig: Rig, target: str) -> int:
    """Open FLOWS connections from A to target:PORT (a holding server in B) and hold them; returns how
    many were open together."""
    server = rig.b.popen(["python3", "-c", SERVER])
    try:
        if server.stdout is None or server.stdout.readline().strip() != b"ready":
            raise FlowsError("the holding server in B did not start")
        result = rig.a.run(["python3", "-c", CLIENT, target], check=False, timeout=120)
        lines = result.stdout.split()
        if result.returncode != 0 or not lines:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise FlowsError(f"opening {FLOWS} connections failed: {last[:160]}")
        return int(lines[0])
    finally:
        rig.b.stop(server)
