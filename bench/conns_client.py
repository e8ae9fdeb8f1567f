"""The client of bench/conns.py (run as a script inside namespace A):

    python conns_client.py HOST PORT TARGET COUNT INFLIGHT

Opens COUNT relay+wss connections to HOST:PORT (TLS without verification, a WebSocket upgrade on /ws, a
relay CONNECT to TARGET in one masked binary frame, the relay's reply read back), at most INFLIGHT at a
time, prints `held N failed M` and holds them until stdin closes. Standard library only.
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import ssl
import struct
import sys

RELAY_VERSION, CMD_CONNECT, FEATURE_ADDR, ATYP_IPV4 = 1, 1, 2, 1


def connect_request(target: str) -> bytes:
    host, _, port = target.rpartition(":")
    addr = bytes([ATYP_IPV4, *map(int, host.split("."))]) + struct.pack(">H", int(port))
    feature = struct.pack(">BH", FEATURE_ADDR, len(addr)) + addr
    return struct.pack(">BBH", RELAY_VERSION, CMD_CONNECT, len(feature)) + feature


def masked_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + mask + body  # payload < 126 bytes


async def open_one(host: str, port: int, target: str, ctx: ssl.SSLContext,
                   held: list[asyncio.StreamWriter]) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), 30)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            return False
        writer.write(masked_frame(connect_request(target)))
        first = await asyncio.wait_for(reader.readexactly(2), 30)
        reply = await reader.readexactly(first[1] & 0x7F)
        if reply[:2] != bytes([RELAY_VERSION, 0]):
            return False
        held.append(writer)
        return True
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
        return False


async def main() -> None:
    host, port, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    count, inflight = int(sys.argv[4]), int(sys.argv[5])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    held: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(inflight)

    async def gated() -> bool:
        async with gate:
            return await open_one(host, port, target, ctx, held)

    results = await asyncio.gather(*(gated() for _ in range(count)))
    print(f"held {sum(results)} failed {count - sum(results)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for writer in held:
        writer.close()


if __name__ == "__main__":
    asyncio.run(main())
