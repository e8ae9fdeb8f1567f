"""gost's flags parsed with Go `flag` rules, and the CLI's exit codes for flag-level input."""

from __future__ import annotations

import pytest

from gostx.cli.flags import FlagError, HelpRequested, parse_flags
from gostx.cli.main import run_cli
from gostx.cli.usage import version_line


@pytest.mark.parametrize("argv", [
    ["-L", "tcp://:8080/h:80"],
    ["-L=tcp://:8080/h:80"],
    ["--L", "tcp://:8080/h:80"],
    ["--L=tcp://:8080/h:80"],
])
def test_value_flag_forms_are_equivalent(argv: list[str]) -> None:
    assert parse_flags(argv).services == ["tcp://:8080/h:80"]


def test_repeatable_flags_keep_order() -> None:
    opts = parse_flags(["-L", "a", "-F", "x", "-L=b", "--F", "y", "--L=c"])
    assert opts.services == ["a", "b", "c"]
    assert opts.nodes == ["x", "y"]


def test_value_may_start_with_a_dash() -> None:
    # Go takes the next argument as the value whatever it looks like.
    assert parse_flags(["-C", "-"]).config_source == "-"


def test_single_dash_long_flags() -> None:
    opts = parse_flags(["-api", ":18080", "--metrics=:9000", "-O", "json", "-C=gost.yml"])
    assert (opts.api, opts.metrics, opts.output_format, opts.config_source) == (
        ":18080", ":9000", "json", "gost.yml")


def test_bool_flags() -> None:
    assert parse_flags(["-D"]).debug is True
    assert parse_flags(["-DD"]).trace is True
    assert parse_flags(["-DD"]).debug is False
    assert parse_flags(["--V"]).version is True
    assert parse_flags(["-D=false"]).debug is False
    assert parse_flags(["-D=1"]).debug is True


def test_bool_flag_does_not_consume_next_argument() -> None:
    opts = parse_flags(["-D", "-L", "x"])
    assert opts.debug and opts.services == ["x"]


def test_parsing_stops_at_first_non_flag_and_at_double_dash() -> None:
    assert parse_flags(["-D", "extra", "-L", "x"]).args == ["extra", "-L", "x"]
    opts = parse_flags(["-L", "x", "--", "-L", "y"])
    assert opts.services == ["x"] and opts.args == ["-L", "y"]


@pytest.mark.parametrize(("argv", "message"), [
    (["-x"], "flag provided but not defined: -x"),
    (["--nope=1"], "flag provided but not defined: -nope"),
    (["-L"], "flag needs an argument: -L"),
    (["---L", "x"], "bad flag syntax: ---L"),
    (["-=x"], "bad flag syntax: -=x"),
    (["-D=maybe"], 'invalid boolean value "maybe" for -D: parse error'),
])
def test_errors_read_like_go(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as err:
        parse_flags(argv)
    assert str(err.value) == message


@pytest.mark.parametrize("flag", ["-h", "-help", "--help", "--h"])
def test_help(flag: str) -> None:
    with pytest.raises(HelpRequested):
        parse_flags([flag])


def test_version_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["-V"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == version_line()
    assert out.startswith("gost 0.1.0 (gostx; python 3.")
    assert out.endswith(")") and "linux/" in out


def test_help_prints_usage_with_flags_and_url_forms(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["--help"]) == 0
    out = capsys.readouterr().out
    for needle in ("-L url", "-F url", "-C file", "-O format", "-D ", "-DD", "-V", "-api", "-metrics",
                   "tcp://:8080/", "udp://", "Handlers:", "Listeners:"):
        assert needle in out


def test_unknown_flag_prints_error_and_usage_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["-bogus"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "flag provided but not defined: -bogus"
    assert "Usage of gost:" in err


def test_leftover_argument_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["-L", "tcp://:1/h:2", "stray"]) == 2
    assert "unexpected argument 'stray'" in capsys.readouterr().err


def test_multi_group_form_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["-L", "tcp://:1/h:2", "--", "-L", "tcp://:3/h:4"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("gost: error: ") and "' -- '" in err
