"""preUp/postUp/preDown/postDown commands: shlex-split, no shell, failures only logged."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gostx.config.metadata import Metadata
from gostx.hooks import hook_commands, run_command, run_hooks
from gostx.log import ROOT_LOGGER, get_logger, setup_logging


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    logger = logging.getLogger(ROOT_LOGGER)
    saved = (list(logger.handlers), logger.level)
    out = io.StringIO()
    setup_logging(None, level_override="debug", stream=out)
    yield out
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in saved[0]:
        logger.addHandler(h)
    logger.setLevel(saved[1])


def warnings(out: io.StringIO) -> list[str]:
    return [d["msg"] for d in map(json.loads, out.getvalue().splitlines()) if d["level"] == "warning"]


def py(code: str, *args: str) -> str:
    return shlex.join([sys.executable, "-c", code, *args])


def test_commands_run_in_order_split_like_a_shell(tmp_path: Path, log_lines: io.StringIO) -> None:
    out = tmp_path / "out"
    write = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"
    md = Metadata({"preUp": [py(write, str(out), "first arg"), py(write, str(out), "$HOME;x")]})
    asyncio.run(run_hooks(md, "preUp", get_logger()))
    # No shell: the space stays inside one argument, $HOME and ; are not interpreted.
    assert out.read_text().splitlines() == ["first arg", "$HOME;x"]
    assert warnings(log_lines) == []


def test_failing_command_only_warns_and_the_next_runs(tmp_path: Path, log_lines: io.StringIO) -> None:
    marker = tmp_path / "ran"
    touch = py("import pathlib,sys; pathlib.Path(sys.argv[1]).touch()", str(marker))
    md = Metadata({"postDown": [py("raise SystemExit(3)"), touch]})
    asyncio.run(run_hooks(md, "postDown", get_logger()))
    assert marker.exists()
    (warning,) = warnings(log_lines)
    assert "exited with status 3" in warning and warning.startswith("postDown:")


def test_missing_program_and_bad_quoting_are_warnings(log_lines: io.StringIO) -> None:
    log = get_logger()
    assert asyncio.run(run_command("/nonexistent/gostx-no-such-binary --x", "preUp", log)) is None
    assert asyncio.run(run_command("echo 'unterminated", "preUp", log)) is None
    found = warnings(log_lines)
    assert len(found) == 2
    assert "/nonexistent/gostx-no-such-binary" in found[0]
    assert "cannot split command" in found[1]


def test_exit_status_is_returned(log_lines: io.StringIO) -> None:
    assert asyncio.run(run_command(py("pass"), "postUp", get_logger())) == 0


def test_commands_come_from_metadata_case_insensitively() -> None:
    md = Metadata({"PREUP": ["a b", "c"], "postdown": "d"})
    assert hook_commands(md, "preUp") == ["a b", "c"]
    assert hook_commands(md, "postDown") == ["d"]
    assert hook_commands(md, "preDown") == []
    with pytest.raises(ValueError):
        hook_commands(md, "up")
