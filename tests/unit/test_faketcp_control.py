"""Fake TCP's control plane without root: the nftables text, stale-table detection, addresses and
rules per role, the redial loop's backoff, and argument errors of the binding."""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
import sys

import pytest

from gostx import _engine
from gostx.errors import GostError
from gostx.tunnel import nft
from gostx.tunnel.faketcp import client_rules, listen_host, server_rules
from gostx.tunnel.nft import MuteRule, MuteTable, ruleset, stale_tables
from gostx.tunnel.redial import Backoff, redial_forever


def test_rules_text() -> None:
    assert MuteRule(4, sport=8421).text() == "ip ttl 1 tcp sport 8421 counter drop"
    assert MuteRule(6, sport=8421).text() == "ip6 hoplimit 1 tcp sport 8421 counter drop"
    assert MuteRule(4, dport=8421, daddr="10.0.0.2").text() == \
        "ip daddr 10.0.0.2 ip ttl 1 tcp dport 8421 counter drop"
    assert MuteRule(6, dport=443, daddr="fd00::2").text() == \
        "ip6 daddr fd00::2 ip6 hoplimit 1 tcp dport 443 counter drop"


def test_ruleset_is_one_table_with_an_output_chain() -> None:
    text = ruleset("gostx_1_0", [MuteRule(4, sport=1), MuteRule(6, sport=1)])
    assert text.splitlines() == [
        "table inet gostx_1_0 {",
        "  chain output {",
        "    type filter hook output priority filter; policy accept;",
        "    ip ttl 1 tcp sport 1 counter drop",
        "    ip6 hoplimit 1 tcp sport 1 counter drop",
        "  }",
        "}",
    ]


def test_table_names_are_per_process_and_endpoint() -> None:
    a, b = MuteTable([]), MuteTable([])
    assert a.name != b.name
    assert a.name.startswith(f"gostx_{__import__('os').getpid()}_")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_tables_are_those_of_dead_gostx_processes() -> None:
    dead = dead_pid()
    listing = json.dumps({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": f"gostx_{dead}_0", "handle": 1}},
        {"table": {"family": "inet", "name": f"gostx_{dead}_3", "handle": 2}},
        {"table": {"family": "inet", "name": "gostx_1_0", "handle": 3}},          # pid 1 lives
        {"table": {"family": "inet", "name": "gostx_777_0", "handle": 4}},        # our own (see below)
        {"table": {"family": "ip", "name": f"gostx_{dead}_1", "handle": 5}},      # not ours: other family
        {"table": {"family": "inet", "name": f"filter_{dead}_0", "handle": 6}},
        {"table": {"family": "inet", "name": f"gostx_{dead}_x", "handle": 7}},
    ]})
    assert stale_tables(listing, own_pid=777) == [f"gostx_{dead}_0", f"gostx_{dead}_3"]
    assert stale_tables("not json", own_pid=1) == []
    assert stale_tables("[]", own_pid=1) == []


def test_missing_nft_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(nft, "_SBIN", ("/nonexistent-sbin",))
    with pytest.raises(GostError, match=r"needs nftables.*apt-get install nftables"):
        nft.find_nft()
    table = MuteTable([MuteRule(4, sport=1)])
    with pytest.raises(GostError):
        table.install_sync()
    assert not table.installed
    table.remove_sync()   # nothing to remove: no error


@pytest.mark.parametrize(("host", "expected"), [
    ("", ("::", True)),
    ("10.1.2.3", ("10.1.2.3", False)),
    ("::ffff:10.1.2.3", ("10.1.2.3", False)),
    ("fd00::1", ("fd00::1", False)),
    ("localhost", ("127.0.0.1", False)),
])
def test_listen_host(host: str, expected: tuple[str, bool], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.has_ipv6", True)
    if host == "localhost":
        monkeypatch.setattr("socket.getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("127.0.0.1", 0))])
    assert listen_host(host) == expected


def test_unresolvable_listen_host() -> None:
    with pytest.raises(GostError, match="cannot resolve"):
        listen_host("no-such-host.invalid")


def test_rules_per_role() -> None:
    assert server_rules("::", True, 8421) == [MuteRule(4, sport=8421), MuteRule(6, sport=8421)]
    assert server_rules("10.0.0.1", False, 8421) == [MuteRule(4, sport=8421)]
    assert server_rules("fd00::1", False, 9) == [MuteRule(6, sport=9)]
    assert client_rules("10.0.0.2", 8421) == [MuteRule(4, dport=8421, daddr="10.0.0.2")]
    assert client_rules("::ffff:10.0.0.2", 8421) == [MuteRule(4, dport=8421, daddr="10.0.0.2")]
    assert client_rules("fd00::2", 8421) == [MuteRule(6, dport=8421, daddr="fd00::2")]


def test_backoff_doubles_to_six_seconds_and_resets() -> None:
    b = Backoff()
    assert [b.next() for _ in range(6)] == [1, 2, 4, 6, 6, 6]
    b.reset()
    assert b.next() == 1


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warning(self, msg: str) -> None:
        self.lines.append(("warning", msg))

    def info(self, msg: str) -> None:
        self.lines.append(("info", msg))


def test_redial_retries_failures_runs_connections_and_redials() -> None:
    attempts: list[str] = []
    runs: list[int] = []
    outcomes: list[object] = [OSError(errno.ECONNREFUSED, "Connection refused"), TimeoutError(), 1,
                              GostError("no route"), 2]
    log = Recorder()

    async def dial() -> int:
        outcome = outcomes.pop(0)
        attempts.append(type(outcome).__name__)
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, int)
        return outcome

    async def run(conn: int) -> None:
        runs.append(conn)
        if conn == 2:
            raise asyncio.CancelledError  # stand-in for the service stopping

    async def main() -> None:
        await redial_forever(dial, run, log, "fake tcp 10.0.0.2:8421", Backoff(first=0.001, limit=0.004))

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    assert runs == [1, 2]
    assert attempts == ["ConnectionRefusedError", "TimeoutError", "int", "GostError", "int"]
    assert log.lines[0] == ("warning", "fake tcp 10.0.0.2:8421: connection refused; retrying in 0.001s")
    assert log.lines[1] == ("warning", "fake tcp 10.0.0.2:8421: connect timed out; retrying in 0.002s")
    # after a connection ends the backoff starts again from the first step
    assert log.lines[2] == ("info", "fake tcp 10.0.0.2:8421: connection ended; reconnecting in 0.001s")
    assert log.lines[3] == ("warning", "fake tcp 10.0.0.2:8421: no route; retrying in 0.002s")


def test_binding_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        _engine.FakeTcp.dial("not-an-ip", 8421)
    with pytest.raises(ValueError, match="out of range"):
        _engine.FakeTcp.dial("10.0.0.1", 70000)
    with pytest.raises(ValueError, match="max_flows"):
        _engine.FakeTcp.listen("127.0.0.1", 8421, max_flows=0)
