"""WebSocket control answers are bounded: a peer that floods pings and never reads the pongs costs one
pending pong (the newest ping's, RFC 6455 5.5.3), not one task and one frame per ping; the data writer
still gets its turn; the close log line counts the folded pings."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import threading

from gostx import _engine
from gostx.net.stream import SocketStream
from gostx.net.ws import OP_BINARY, OP_PING, OP_PONG, WsStream

PINGS = 20_000


def client_frame(opcode: int, payload: bytes) -> bytes:
    return _engine.ws_frame(payload, opcode, True, os.urandom(4))


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Unmasked server frames: (opcode, payload) of each complete one."""
    out, pos = [], 0
    while (header := _engine.ws_parse_header(data, pos)) is not None:
        hlen, plen, opcode, _fin, _rsv, _key = header
        if pos + hlen + plen > len(data):
            break
        out.append((opcode, data[pos + hlen:pos + hlen + plen]))
        pos += hlen + plen
    return out


async def _flood(caplog_records: list[logging.LogRecord]) -> None:
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the pongs block early
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws = WsStream(SocketStream(ours), client=False)
    pings = b"".join(client_frame(OP_PING, struct.pack(">I", i) + b"p" * 121) for i in range(PINGS))
    sender = threading.Thread(target=theirs.sendall, args=(pings + client_frame(OP_BINARY, b"end"),))
    sender.start()
    tasks_before = len(asyncio.all_tasks())
    most_tasks = 0
    got = b""
    while got != b"end":
        got += await asyncio.wait_for(ws.read(), 10)
        most_tasks = max(most_tasks, len(asyncio.all_tasks()) - tasks_before)
    await asyncio.to_thread(sender.join)
    # one control writer at most, whatever the peer sent; most pings were folded into later pongs
    assert most_tasks <= 1, f"{most_tasks} tasks for the control answers of {PINGS} pings"
    assert ws.pings == PINGS
    assert ws.pings_coalesced > PINGS // 2, ws.pings_coalesced

    # the data writer is not starved: once the peer reads, our data frame follows the pending pong
    async def drain() -> bytes:
        data = b""
        theirs.setblocking(False)
        loop = asyncio.get_running_loop()
        while not any(op == OP_BINARY for op, _ in parse_frames(data)):
            data += await loop.sock_recv(theirs, 65536)
        return data

    reader = asyncio.create_task(drain())
    await asyncio.wait_for(ws.write(b"data"), 10)
    received = parse_frames(await asyncio.wait_for(reader, 10))
    pongs = [struct.unpack(">I", p[:4])[0] for op, p in received if op == OP_PONG]
    assert pongs == sorted(pongs) and len(set(pongs)) == len(pongs), "pongs out of order or repeated"
    assert pongs and pongs[-1] == PINGS - 1, "the most recent ping was not answered"
    assert len(pongs) + ws.pings_coalesced == PINGS
    assert received[-1] == (OP_BINARY, b"data")
    ws.close()
    theirs.close()
    lines = [r.getMessage() for r in caplog_records if "pings answered only by the pong" in r.getMessage()]
    assert lines and f"{ws.pings_coalesced} of {PINGS} pings" in lines[0]


def test_ping_flood_keeps_one_pending_pong(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    asyncio.run(_flood(caplog.records))
