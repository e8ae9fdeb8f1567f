"""A C WebSocket stream whose peer sent its last bytes and a close frame before the flow's other side was
joined: the stream has ended (and been let go) by the time `CStream.join` runs, yet the bytes it passed
to the socketpair still reach the peer socket, then the EOF, and join does not raise. (Seen in CI: a tungo
flow through `-F relay+wss://` whose target answered and closed at once got "the stream has ended" from
an unawaited task and an empty reply.)"""

from __future__ import annotations

import asyncio
import socket
import struct

from gostx.net.stream import SocketStream
from gostx.net.ws import ws_client_c
from gostx.protocol import websocket as wsp

PAYLOAD = b"the whole answer, then the close frame"


async def _server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    raw = await reader.readuntil(b"\r\n\r\n")
    answer, _head = wsp.server_accept(raw, "/ws")
    frame = bytes([0x82, len(PAYLOAD)]) + PAYLOAD         # one unmasked binary frame
    close = bytes([0x88, 2]) + struct.pack("!H", 1000)    # close 1000
    writer.write(answer + frame + close)
    await writer.drain()
    await reader.read()  # the client's close frame, then its FIN
    writer.close()


async def _run() -> tuple[tuple[int, int], bytes]:
    server = await asyncio.start_server(_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        cs = await ws_client_c(SocketStream(sock), None, None, None, "/ws", "example.test")
        for _ in range(500):  # the C stream reads the frame and the close, answers, and ends
            if cs._watch.ended:
                break
            await asyncio.sleep(0.01)
        assert cs._watch.ended, "the C stream did not end after the peer's close frame"
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        counts = await asyncio.wait_for(cs.join(SocketStream(ours)), 5)
        theirs.settimeout(5)
        got = b""
        while data := theirs.recv(1 << 16):
            got += data
        theirs.close()
        return counts, got


def test_join_after_the_stream_ended_passes_on_what_it_left() -> None:
    counts, got = asyncio.run(_run())
    assert got == PAYLOAD
    assert counts == (len(PAYLOAD), 0)
