"""The C WebSocket reader (csrc/ws.c gx_ws_read, through _engine.ws_read) checked by foreign code: the
`websockets` package (its sans-I/O Protocol, RFC 6455) frames messages, pings and closes as a client
and as a server, and our reader gives back the same bytes and control frames in any split; our encoder's
frames read back in websockets; and for malformed streams both sides pick the same close code."""

from __future__ import annotations

import os
import random

import pytest
from websockets import frames  # test-only (Makefile PIP_PKGS)
from websockets.protocol import Protocol, Side, State

from gostx import _engine


def foreign_stream(side: object, seed: int) -> tuple[bytes, bytes, list[bytes], bytes]:
    """Messages framed by websockets on `side`: (stream, the data bytes, the ping payloads, close frame)."""
    rng = random.Random(seed)
    peer = Protocol(side, state=State.OPEN, max_size=None)
    data, pings = bytearray(), []
    for _ in range(15):
        kind = rng.randrange(6)
        if kind == 0:
            payload = rng.randbytes(rng.randrange(126))
            peer.send_ping(payload)
            pings.append(payload)
            continue
        if kind == 1:
            peer.send_pong(b"unasked")
            continue
        size = rng.choice((0, 1, 125, 126, 1000, 65535, 65536))
        body = rng.randbytes(size)
        data += body
        cuts = sorted(rng.sample(range(size + 1), min(2, size + 1)))
        parts = [body[: cuts[0]], body[cuts[0]: cuts[-1]], body[cuts[-1]:]]
        send = peer.send_binary if kind % 2 else peer.send_text
        send(parts[0], fin=False)
        peer.send_continuation(parts[1], fin=False)
        if kind == 5:
            peer.send_ping(b"between fragments")
            pings.append(b"between fragments")
        peer.send_continuation(parts[2], fin=True)
    stream = b"".join(peer.data_to_send())
    peer.send_close(4000, "done here")
    close = b"".join(peer.data_to_send())
    return stream, bytes(data), pings, close


@pytest.mark.parametrize("server", [True, False], ids=["client-frames", "server-frames"])
def test_foreign_frames_read_back_in_any_split(server: bool) -> None:
    stream, data, pings, close = foreign_stream(Side.CLIENT if server else Side.SERVER, 18)
    want = [("ping", 0, p) for p in pings] + [("close", 4000, b"done here")]
    for piece, out_size in ((0, 65536), (1, 7), (1000, 1), (4093, 65536)):
        got_data, events = _engine.ws_read(stream + close + b"\x82\x00", server, 0, piece, out_size)
        assert got_data == data, (piece, out_size)
        assert events == want, (piece, out_size)


def test_our_frames_read_in_websockets() -> None:
    """Client frames from our encoder (masked) into a websockets server, unmasked ones into a client."""
    rng = random.Random(7)
    for side, masked in ((Side.SERVER, True), (Side.CLIENT, False)):
        peer = Protocol(side, state=State.OPEN, max_size=None)
        body = rng.randbytes(70000)
        key = os.urandom(4) if masked else None
        wire = (_engine.ws_frame(body[:10], 2, False, key) + _engine.ws_frame(b"hi", 9, True, key)
                + _engine.ws_frame(body[10:200], 0, False, key) + _engine.ws_frame(body[200:], 0, True, key))
        for i in range(0, len(wire), 999):
            peer.receive_data(wire[i:i + 999])
        got = [(f.opcode, bytes(f.data), f.fin) for f in peer.events_received()]
        assert got == [(frames.Opcode.BINARY, body[:10], False), (frames.Opcode.PING, b"hi", True),
                       (frames.Opcode.CONT, body[10:200], False), (frames.Opcode.CONT, body[200:], True)]


def foreign_close_code(stream: bytes, server: bool, max_size: int | None) -> int | None:
    peer = Protocol(Side.SERVER if server else Side.CLIENT, state=State.OPEN, max_size=max_size)
    peer.receive_data(stream)
    peer.events_received()
    return peer.close_sent.code if peer.close_sent else None


BAD = [
    ("rsv1", b"\xc2\x00", False, None),
    ("opcode 3", b"\x83\x00", False, None),
    ("opcode 0xb", b"\x8b\x00", False, None),
    ("fragmented ping", b"\x09\x00", False, None),
    ("126-byte pong", b"\x8a\x7e\x00\x7e" + bytes(126), False, None),
    ("unmasked to a server", b"\x82\x01a", True, None),
    ("masked to a client", b"\x82\x81abcdx", False, None),
    ("continuation first", b"\x80\x01a", False, None),
    ("new message inside a fragmented one", b"\x02\x01a\x82\x01b", False, None),
    ("close of 1 byte", b"\x88\x01\x03", False, None),
    ("close code 1005", b"\x88\x02\x03\xed", False, None),
    ("close code 2999", b"\x88\x02\x0b\xb7", False, None),
    ("close reason not UTF-8", b"\x88\x03\x03\xe8\xff", False, None),
    ("frame over the cap", b"\x82\x7e\x01\x00" + bytes(256), False, 255),
]


@pytest.mark.parametrize(("name", "stream", "server", "cap"), BAD, ids=[b[0] for b in BAD])
def test_malformed_streams_get_the_same_close_code(name: str, stream: bytes, server: bool,
                                                   cap: int | None) -> None:
    theirs = foreign_close_code(stream, server, cap)
    _data, events = _engine.ws_read(stream, server, cap or 0, 1, 3)
    assert events and events[-1][0] == "error", name
    assert events[-1][1] == theirs, (name, events, theirs)


def test_non_minimal_lengths_accepted_like_websockets() -> None:
    """RFC 6455 5.2 asks senders for the minimal length encoding; readers (websockets, gorilla/websocket
    under gost) do not enforce it, and neither does ours."""
    stream = b"\x82\x7e\x00\x03abc" + b"\x82\x7f" + (2).to_bytes(8, "big") + b"de"
    peer = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    peer.receive_data(stream)
    assert [bytes(f.data) for f in peer.events_received()] == [b"abc", b"de"]
    assert _engine.ws_read(stream, False) == (b"abcde", [])
