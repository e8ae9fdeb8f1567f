"""smux v1 has no flow control, so gostx's session bounds what a peer can make it hold (gostx/net/smux.py):
a stream nobody reads is reset once MAX_STREAM_BUFFER bytes wait in it, and all streams together hold at
most MAX_SESSION_BUFFER before the session stops reading its connection."""

from __future__ import annotations

import asyncio
import socket
import struct

from gostx.net import smux
from gostx.net.stream import SocketStream

HEADER = struct.Struct("<BBHI")  # VER CMD LENGTH(le) SID(le), written from the smux v1 spec


def psh(sid: int, data: bytes) -> bytes:
    return HEADER.pack(1, 2, len(data), sid) + data


async def read_frames(sock: socket.socket, until_fin: int, timeout: float = 5) -> list[tuple[int, int]]:
    """(cmd, sid) of the frames the session sends, until a FIN for until_fin."""
    loop = asyncio.get_running_loop()
    buf, seen = b"", []
    async with asyncio.timeout(timeout):
        while True:
            while len(buf) >= HEADER.size:
                _, cmd, length, sid = HEADER.unpack(buf[:HEADER.size])
                if len(buf) < HEADER.size + length:
                    break
                buf = buf[HEADER.size + length:]
                seen.append((cmd, sid))
                if cmd == 1 and sid == until_fin:
                    return seen
            buf += await loop.sock_recv(sock, 65536)


def test_a_flooded_stream_that_is_never_read_is_reset_at_its_cap() -> None:
    async def main() -> None:
        ours, peer = socket.socketpair()
        ours.setblocking(False)
        peer.setblocking(False)
        session = smux.SmuxSession(SocketStream(ours))
        runner = asyncio.ensure_future(session.run())
        stream = await session.open()
        loop = asyncio.get_running_loop()
        chunk = b"x" * smux.MAX_FRAME
        total = 8 * smux.MAX_STREAM_BUFFER  # 2 MiB at a stream nobody reads
        peak = 0
        for _ in range(total // len(chunk)):
            await loop.sock_sendall(peer, psh(stream.sid, chunk))
            await asyncio.sleep(0)
            peak = max(peak, stream.buffered, session.buffered)
        frames = await read_frames(peer, stream.sid)
        assert (0, stream.sid) in frames and frames[-1] == (1, stream.sid)  # SYN, then FIN: reset
        assert peak <= smux.MAX_STREAM_BUFFER
        assert session.resets == 1 and stream.buffered == 0 and session.buffered == 0
        try:
            await stream.read()
            raise AssertionError("a reset stream must not read as a clean EOF")
        except ConnectionResetError:
            pass
        assert not session.closed  # the session itself goes on
        runner.cancel()
        session.close()
        peer.close()

    asyncio.run(main())


def test_many_unread_streams_stop_the_session_reading_at_its_cap() -> None:
    async def main() -> None:
        ours, peer = socket.socketpair()
        ours.setblocking(False)
        peer.setblocking(False)
        session = smux.SmuxSession(SocketStream(ours))
        runner = asyncio.ensure_future(session.run())
        streams = [await session.open() for _ in range(32)]
        per_stream = smux.MAX_STREAM_BUFFER - smux.MAX_FRAME  # each under its own cap
        chunk = b"y" * smux.MAX_FRAME
        loop = asyncio.get_running_loop()

        async def flood() -> None:
            for s in streams:
                for _ in range(per_stream // len(chunk)):
                    await loop.sock_sendall(peer, psh(s.sid, chunk))

        writer = asyncio.ensure_future(flood())
        await asyncio.sleep(0.5)
        # 32 x 224 KiB = 7 MiB offered; the session holds at most its cap, the rest waits in the socket
        assert session.buffered <= smux.MAX_SESSION_BUFFER + smux.MAX_FRAME
        assert not writer.done()
        assert session.resets == 0
        # readers catch up: everything arrives
        got = 0
        for s in streams:
            want = per_stream // len(chunk) * len(chunk)
            n = 0
            while n < want:
                n += len(await asyncio.wait_for(s.read(1 << 20), 5))
            got += n
        await asyncio.wait_for(writer, 5)
        assert got == 32 * (per_stream // len(chunk)) * len(chunk)
        assert session.buffered == 0
        runner.cancel()
        session.close()
        peer.close()

    asyncio.run(main())
