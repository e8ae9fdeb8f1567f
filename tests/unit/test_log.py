"""Logging like gost's logrus: JSON lines by default, text on request, levels, outputs."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from gostx.config.model import LogConfig
from gostx.errors import GostError
from gostx.log import ROOT_LOGGER, TRACE, format_time, get_logger, parse_level, setup_logging
from tests.unit.logtest import restore_logger  # noqa: F401 (an autouse fixture)

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_line_has_level_msg_time_and_fields_sorted() -> None:
    out = io.StringIO()
    setup_logging(None, stream=out)
    get_logger(service="service-0", kind="service").info("listening on [::]:8080", extra={"local": ":8080"})
    (line,) = lines(out)
    data = json.loads(line)
    assert data["level"] == "info" and data["msg"] == "listening on [::]:8080"
    assert data["service"] == "service-0" and data["kind"] == "service" and data["local"] == ":8080"
    assert TIME_RE.match(data["time"])
    assert list(data) == sorted(data)  # Go's encoder sorts map keys


def test_json_does_not_escape_html_or_unicode() -> None:
    out = io.StringIO()
    setup_logging(LogConfig(format="json"), stream=out)
    get_logger().info("a <-> b & é")
    assert '"msg":"a <-> b & é"' in out.getvalue()


def test_levels_filter_and_are_named_like_logrus() -> None:
    out = io.StringIO()
    setup_logging(LogConfig(level="warn"), stream=out)
    log = get_logger()
    log.info("hidden")
    log.debug("hidden")
    log.warning("shown")
    log.error("shown too")
    levels = [json.loads(x)["level"] for x in lines(out)]
    assert levels == ["warning", "error"]


def test_level_override_wins_and_trace_is_below_debug() -> None:
    out = io.StringIO()
    setup_logging(LogConfig(level="error"), level_override="trace", stream=out)
    log = get_logger()
    log.trace("t")
    log.debug("d")
    assert [json.loads(x)["level"] for x in lines(out)] == ["trace", "debug"]
    assert TRACE < logging.DEBUG

    out2 = io.StringIO()
    setup_logging(None, level_override="debug", stream=out2)
    get_logger().trace("not shown")
    get_logger().debug("shown")
    assert [json.loads(x)["msg"] for x in lines(out2)] == ["shown"]


def test_text_format() -> None:
    out = io.StringIO()
    setup_logging(LogConfig(format="text"), stream=out)
    get_logger(service="service-0").info("hello world", extra={"remote": "1.2.3.4:5"})
    (line,) = lines(out)
    pattern = r'^time="[^"]+" level=info msg="hello world" remote="1\.2\.3\.4:5" service=service-0$'
    assert re.match(pattern, line)


def test_bind_adds_fields_and_exceptions_become_an_error_field() -> None:
    out = io.StringIO()
    setup_logging(None, stream=out)
    log = get_logger(service="s").bind(handler="tcp")
    try:
        raise OSError("boom")
    except OSError:
        log.error("failed", exc_info=True)
    data = json.loads(lines(out)[0])
    assert (data["service"], data["handler"], data["error"]) == ("s", "tcp", "boom")
    assert len(lines(out)) == 1  # no traceback lines


def test_file_output_is_appended_and_its_directory_created(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "gost.log"
    setup_logging(LogConfig(output=str(path)))
    get_logger().info("one")
    setup_logging(LogConfig(output=str(path), format="text"))
    get_logger().info("two")
    for h in logging.getLogger(ROOT_LOGGER).handlers:
        h.flush()
    content = path.read_text().splitlines()
    assert json.loads(content[0])["msg"] == "one"
    assert "msg=two" in content[1]


def test_output_none_discards(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(LogConfig(output="none"))
    get_logger().error("nothing")
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_stdout_output(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(LogConfig(output="stdout"))
    get_logger().info("to stdout")
    assert json.loads(capsys.readouterr().out)["msg"] == "to stdout"


@pytest.mark.parametrize(("log", "message"), [
    (LogConfig(level="loud"), "log: unknown level 'loud'"),
    (LogConfig(format="xml"), "log: unknown format 'xml'"),
])
def test_bad_settings_are_one_line_errors(log: LogConfig, message: str) -> None:
    with pytest.raises(GostError, match=message):
        setup_logging(log, stream=io.StringIO())


def test_unwritable_output_is_a_gost_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(GostError, match="log: cannot open output"):
        setup_logging(LogConfig(output=str(blocker / "gost.log")))


def test_parse_level_names() -> None:
    assert parse_level("") == logging.INFO
    assert parse_level("WARN") == parse_level("warning") == logging.WARNING
    assert parse_level("fatal") == logging.CRITICAL


def test_time_layout_utc() -> None:
    import os
    import time
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        assert format_time(0.5) == "1970-01-01T00:00:00.500Z"
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
