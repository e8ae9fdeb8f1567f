"""Failures a peer can cause at will are logged rate-limited: RateLimitedLog on its own (a clock the test
moves), and a socks5 server that a password guesser hits 25 times in a row."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client.parser import text_string_to_metric_families

from gostx.log_limit import RateLimitedLog
from gostx.metrics.server import make_registry, scrape
from tests.unit.proxytest import captured_logs, connect, free_port, gost


class Lines:
    """A logger stand-in that keeps what would be logged."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str, dict[str, object]]] = []

    def isEnabledFor(self, level: int) -> bool:  # logging.Logger's name
        return level >= logging.INFO

    def log(self, level: int, msg: str, **kwargs: object) -> None:
        self.lines.append((level, msg, kwargs))


def test_a_burst_per_window_then_a_count_of_what_was_left_out() -> None:
    now = [100.0]
    limited = RateLimitedLog(burst=3, window=10.0, clock=lambda: now[0])
    out = Lines()
    logged = [limited.log(out, logging.INFO, f"fail {i}", extra={"remote": "p"}) for i in range(8)]
    assert logged == [True, True, True, False, False, False, False, False]
    assert [m for _, m, _ in out.lines] == ["fail 0", "fail 1", "fail 2"]
    now[0] += 9.9  # still the same window
    assert not limited.log(out, logging.INFO, "fail 8")
    now[0] += 0.2  # a new window: logged, with the six left out
    assert limited.log(out, logging.INFO, "fail 9", extra={"remote": "p"})
    level, msg, kwargs = out.lines[-1]
    assert msg == "fail 9 (6 more like it not logged)" and level == logging.INFO
    assert kwargs["extra"] == {"remote": "p", "notLogged": 6}
    assert limited.log(out, logging.INFO, "fail 10") and out.lines[-1][1] == "fail 10"  # the count starts anew
    # a level that is not enabled logs nothing and spends nothing
    assert not limited.log(out, logging.DEBUG, "quiet") and limited.logged == 2


def test_a_password_guesser_gets_a_few_log_lines_not_one_per_guess() -> None:
    async def guess(port: int, password: bytes) -> bytes:
        reader, writer = await connect(port)
        writer.write(b"\x05\x01\x02" + b"\x01\x05alice" + bytes([len(password)]) + password)
        got = await asyncio.wait_for(reader.read(4), 5)
        writer.close()
        return got

    async def scenario() -> tuple[list[bytes], float]:
        port = free_port()
        async with gost([f"socks5://alice:right@127.0.0.1:{port}"]) as runner:
            replies = [await guess(port, b"wrong%d" % i) for i in range(25)]
            replies.append(await guess(port, b"right"))
            await asyncio.sleep(0.2)  # the last flow's counters settle
            name = runner.services[0].name
            errors = sum(s.value for family in text_string_to_metric_families(scrape(make_registry()).decode())
                         for s in family.samples
                         if s.name == "gost_service_handler_errors_total" and s.labels.get("service") == name)
            return replies, errors

    with captured_logs() as logs:
        replies, errors = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert replies[:25] == [b"\x05\x02\x01\x01"] * 25  # every guess refused
    assert replies[25] == b"\x05\x02\x01\x00"             # the right password still accepted
    failed = [line for line in logs.getvalue().splitlines() if "authentication failed" in line]
    assert len(failed) == 10, failed  # the window's burst (gostx/log_limit.py BURST)
    # every refused guess is a handler error in gost's counters (+1: the right one then sent no request)
    assert errors == 25 + 1
