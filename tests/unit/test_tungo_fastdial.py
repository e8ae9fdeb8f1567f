"""tungo's task-free direct dials (gostx.handler.tungo.fastdial): connect, refusal, timeout, close."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import pytest

from gostx.handler.tungo.fastdial import DirectDials
from gostx.handler.tungo.upstream import OwnSockets
from gostx.log import get_logger
from gostx.net.direct import DialOptions


class FakeStack:
    def __init__(self) -> None:
        self.connected: dict[int, int] = {}
        self.dropped: list[int] = []

    def connect(self, flow_id: int, fd: int) -> None:
        self.connected[flow_id] = fd

    def drop(self, flow_id: int) -> None:
        self.dropped.append(flow_id)


def _free_closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _settle(dials: DirectDials, seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if not len(dials):
            return
        await asyncio.sleep(0.01)


def test_connects_hands_the_fd_over_and_records_the_source() -> None:
    async def main() -> tuple[FakeStack, OwnSockets, tuple[str, int]]:
        server = socket.create_server(("127.0.0.1", 0))
        stack, own = FakeStack(), OwnSockets()
        dials = DirectDials(stack, DialOptions(), 0, 5.0, own, get_logger(kind="test"))  # type: ignore[arg-type]
        dials.start("tcp", 7, ("192.168.123.2", 40000), server.getsockname())
        await _settle(dials)
        conn, peer = server.accept()
        conn.close()
        server.close()
        return stack, own, peer

    stack, own, peer = asyncio.run(main())
    assert list(stack.connected) == [7] and stack.dropped == []
    fd = stack.connected[7]
    try:
        assert socket.socket(fileno=os.dup(fd)).getsockname()[1] == peer[1]
    finally:
        os.close(fd)
    assert peer in own


def test_a_refused_dial_drops_the_flow_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    port = _free_closed_port()

    async def main() -> FakeStack:
        stack = FakeStack()
        dials = DirectDials(stack, DialOptions(), 1, 5.0, OwnSockets(), get_logger(kind="test"))  # type: ignore[arg-type]
        dials.start("tcp", 3, ("192.168.123.2", 40001), ("127.0.0.1", port))
        await _settle(dials)
        return stack

    root = logging.getLogger("gostx")
    propagate, root.propagate = root.propagate, True
    try:
        with caplog.at_level(logging.DEBUG, logger="gostx"):
            stack = asyncio.run(main())
    finally:
        root.propagate = propagate
    assert stack.connected == {} and stack.dropped == [3]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"tcp 192.168.123.2:40001 -> 127.0.0.1:{port}: "
                        f"dial tcp 127.0.0.1:{port} via direct: connection refused"]
    attempts = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and "attempt" in r.getMessage()]
    assert len(attempts) == 2  # retries=1: two attempts, as the Router makes


def test_a_timeout_and_close_drop_the_flow() -> None:
    async def main() -> tuple[FakeStack, FakeStack]:
        timed_out = FakeStack()
        dials = DirectDials(timed_out, DialOptions(), 0, 0.05, OwnSockets(), get_logger(kind="test"))  # type: ignore[arg-type]
        dials.start("tcp", 1, ("192.168.123.2", 40002), ("192.0.2.1", 9))  # TEST-NET-1: never answers
        await _settle(dials)
        closed = FakeStack()
        dials = DirectDials(closed, DialOptions(), 0, 30.0, OwnSockets(), get_logger(kind="test"))  # type: ignore[arg-type]
        dials.start("tcp", 2, ("192.168.123.2", 40003), ("192.0.2.1", 9))
        await asyncio.sleep(0.01)
        dials.close()
        assert len(dials) == 0
        return timed_out, closed

    timed_out, closed = asyncio.run(main())
    assert timed_out.dropped == [1] and timed_out.connected == {}
    assert closed.dropped == [2] and closed.connected == {}


def test_many_dials_share_one_timer_and_a_finished_dial_is_not_timed_out() -> None:
    """The dials share one epoll set and one deadline queue: each completes once, and the deadline of a
    dial that connected (still queued) must not drop its flow when it comes."""
    async def main() -> tuple[FakeStack, DirectDials]:
        server = socket.create_server(("127.0.0.1", 0), backlog=64)
        stack = FakeStack()
        dials = DirectDials(stack, DialOptions(), 0, 0.2, OwnSockets(), get_logger(kind="test"))  # type: ignore[arg-type]
        for flow_id in range(1, 33):
            dials.start("tcp", flow_id, ("192.168.123.2", 41000 + flow_id), server.getsockname())
        dials.start("tcp", 99, ("192.168.123.2", 40999), ("192.0.2.1", 9))  # never answers: times out
        await asyncio.sleep(0.1)
        assert len(stack.connected) == 32
        dials.start("tcp", 100, ("192.168.123.2", 40998), ("192.0.2.1", 9))
        assert len(dials.deadlines) == len(dials) <= 2   # only the dials in flight: the connected ones left
        await asyncio.sleep(0.5)   # past every deadline
        server.close()
        return stack, dials

    stack, dials = asyncio.run(main())
    try:
        assert sorted(stack.connected) == list(range(1, 33))
        assert stack.dropped == [99, 100]
        assert len(dials) == 0 and not dials.connecting and not dials.deadlines
    finally:
        for fd in stack.connected.values():
            os.close(fd)
