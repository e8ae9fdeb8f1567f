"""tungo's dial bookkeeping under churn: source ports in turn over a window (ports.py), and the loop
guard's memory of recent dials (OwnSockets), which must cost the same per dial at any flow rate."""

from __future__ import annotations

import socket
import time

import pytest

from gostx.handler.tungo.ports import PORT_WINDOW, SourcePorts, parse_port_list
from gostx.handler.tungo.upstream import OwnSockets, start_connect
from gostx.net.direct import DialOptions


def test_ports_cycle_over_a_window_of_the_range_skipping_reserved() -> None:
    ports = SourcePorts(40000, 40999, frozenset({40002}), start=40998, window=8)
    taken = [ports.take() for _ in range(16)]
    assert taken[:8] == [40998, 40999, 40000, 40001, 40003, 40004, 40005, 40998]  # wraps in the range
    assert taken[8:] == [40999, 40000, 40001, 40003, 40004, 40005, 40998, 40999]
    assert set(taken) == {40998, 40999, 40000, 40001, 40003, 40004, 40005}  # only the window, never 40002


def test_window_is_at_most_a_quarter_of_the_range() -> None:
    assert SourcePorts(32768, 60999).window == PORT_WINDOW
    assert SourcePorts(50000, 50099).window == 25
    assert SourcePorts(50000, 50000).window == 1
    assert SourcePorts(9, 3).low == 32768  # a nonsense range: the kernel's default


def test_reserved_ports_list() -> None:
    assert parse_port_list("8080,9000-9002\n") == frozenset({8080, 9000, 9001, 9002})
    assert parse_port_list("") == frozenset()
    assert parse_port_list("x,70000,5-3,22") == frozenset({22})


def test_start_connect_binds_the_taken_port_and_moves_on_when_it_is_busy() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()   # a listener on a port blocks any bind of it, SO_REUSEADDR or not
        busy = squatter.getsockname()[1]
        ports = SourcePorts(busy, busy + 15, start=busy, window=4)
        sock = start_connect("tcp", socket.AF_INET, server.getsockname(), DialOptions(), "", ports)
        try:
            assert sock.getsockname()[1] == busy + 1
            conn, peer = server.accept()
            conn.close()
            assert peer[1] == busy + 1
        finally:
            sock.close()


def test_start_connect_falls_back_to_the_kernel_port_after_the_tries() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        ports = SourcePorts(busy, busy, start=busy, window=1)   # the only port is taken
        sock = start_connect("tcp", socket.AF_INET, server.getsockname(), DialOptions(), "", ports)
        try:
            assert sock.getsockname()[1] not in (0, busy)
        finally:
            sock.close()


class FakeSock:
    def __init__(self, port: int) -> None:
        self.port = port

    def getsockname(self) -> tuple[str, int]:
        return ("10.200.1.1", self.port)


def test_own_sockets_cost_stays_flat_with_many_recent_dials() -> None:
    """30 000 dials within the memory (a churn of 1000 flows/s): each add is O(1). It rebuilt the whole
    table on every dial past 4096 entries (seconds here, and the tungo event loop stalled with it)."""
    own = OwnSockets(memory=1000.0)
    started = time.process_time()
    for port in range(30000):
        own.add(FakeSock(port))  # type: ignore[arg-type]
    assert time.process_time() - started < 1.0
    assert ("10.200.1.1", 0) in own and ("10.200.1.1", 29999) in own and len(own) == 30000


def test_own_sockets_expire_in_order_and_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("gostx.handler.tungo.upstream.time.monotonic", lambda: now[0])
    own = OwnSockets(memory=10.0, cap=3)
    for port in (1, 2, 3, 4):
        own.add(FakeSock(port))  # type: ignore[arg-type]
        now[0] += 1
    assert ("10.200.1.1", 1) not in own and len(own) == 3   # the cap dropped the oldest
    own.add(FakeSock(2))  # type: ignore[arg-type]  # renewed: its old entry must not expire it
    now[0] += 9.5   # 113.5: 3 (until 112) and 4 (113) expired, 2 (renewed until 114) not
    own.add(FakeSock(9))  # type: ignore[arg-type]
    assert ("10.200.1.1", 2) in own and ("10.200.1.1", 3) not in own and ("10.200.1.1", 4) not in own


def test_own_sockets_match_the_stacks_spelling_without_conversion() -> None:
    """The handler checks each new flow's source with has_key (no inet_pton/inet_ntop round trip): the
    stack and getsockname() both spell addresses as inet_ntop does, IPv6 included."""
    class Sock6:
        def getsockname(self) -> tuple[str, int, int, int]:
            return ("::1", 40000, 0, 0)   # an IPv6 socket's 4-tuple

    own = OwnSockets()
    own.add(FakeSock(5))  # type: ignore[arg-type]
    own.add(Sock6())  # type: ignore[arg-type]
    assert own.has_key(("10.200.1.1", 5)) and own.has_key(("::1", 40000))
    assert not own.has_key(("10.200.1.1", 6))
    assert ("0:0:0:0:0:0:0:1", 40000) in own   # other spellings still go through address_key
