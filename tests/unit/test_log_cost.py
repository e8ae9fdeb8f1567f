"""The per-connection info lines stay cheap: bound fields are encoded once per logger, the timestamp's
date and zone once per second, and a line the level filters out builds nothing."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pytest

from gostx import log as gxlog
from gostx.log import format_time, get_logger, setup_logging
from tests.unit.logtest import restore_logger  # noqa: F401 (an autouse fixture)


def reference(line: dict[str, Any]) -> str:
    return json.dumps(line, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def test_json_lines_are_byte_identical_to_a_plain_sorted_encoding() -> None:
    out = io.StringIO()
    setup_logging(None, stream=out)
    log = get_logger(kind="handler", handler="socks5", service="sérvice \"0\"", n=3, flag=True,
                     nested={"b": 1, "a": [1, "x"]}, gone=None).bind(local="[::]:1080")
    for port in (1, 2):
        log.info(f"10.0.0.1:{port} <-> 10.0.0.2:80", extra={"remote": f"10.0.0.1:{port}", "dst": "10.0.0.2:80"})
    log.info("override", extra={"service": "other", "n": 4.5, "level": "ignored"})
    rows = out.getvalue().splitlines()
    assert len(rows) == 3
    for row in rows:
        data = json.loads(row)
        assert row == reference(data)
    first, _, third = (json.loads(r) for r in rows)
    assert first["service"] == "sérvice \"0\"" and first["nested"] == {"a": [1, "x"], "b": 1}
    assert first["gone"] is None and first["flag"] is True and first["n"] == 3
    assert third["service"] == "other" and third["n"] == 4.5 and third["level"] == "info"


def test_bound_fields_are_encoded_once_per_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    setup_logging(None, stream=out)
    log = get_logger(kind="handler", service="service-0")
    encoded: list[str] = []
    real = gxlog._fragment

    def counting(key: str, value: Any) -> str:
        encoded.append(key)
        return real(key, value)

    monkeypatch.setattr(gxlog, "_fragment", counting)
    for i in range(5):
        log.info("line", extra={"remote": f"peer{i}"})
    assert encoded.count("service") == 1 and encoded.count("kind") == 1
    assert encoded.count("remote") == 5


def test_a_filtered_line_is_not_formatted(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    setup_logging(None, level_override="warn", stream=out)

    def fail(*args: Any) -> str:
        raise AssertionError("formatted")

    monkeypatch.setattr(gxlog, "_fragment", fail)
    monkeypatch.setattr(gxlog, "format_time", fail)
    get_logger(kind="x").info("filtered", extra={"remote": "p"})
    assert out.getvalue() == ""


@pytest.mark.parametrize("created", [0.5, 1.0, 1.999, 1733580000.123456, 1733580000.9995, 1733580001.0])
def test_the_per_second_timestamp_matches_a_full_conversion(created: float) -> None:
    stamp = dt.datetime.fromtimestamp(int(created)).astimezone()
    offset = stamp.utcoffset() or dt.timedelta(0)
    zone = "Z" if offset == dt.timedelta(0) else stamp.strftime("%z")[:3] + ":" + stamp.strftime("%z")[3:]
    millis = int(round(created - int(created), 6) * 1000)
    expected = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{min(millis, 999):03d}" + zone
    format_time(created - 7)  # another second first: the cache is replaced, not reused
    assert format_time(created) == expected
    assert format_time(created) == expected
