"""The `gost` command (also `gostx` and `python -m gostx`): gost's flags, gost's behaviour.

The flags follow Go's `flag` package (gostx.cli.flags), which an option-parsing library such as
click cannot express: `-DD` is a flag of its own, not `-D` twice; `-V=false`; single-dash long names
such as `-api`; `-x` and `--x` are the same. So the entry point is plain: argv in, exit code out (no
click: it cost memory in every gost process and parsed nothing; bench/README.md has the figure).

Exit codes: 0 after a clean stop (SIGINT/SIGTERM), -V, -h or -O; 2 for a command line Go's flag
package would reject (message + usage); 1 for any other error, printed as ONE line on stderr:
`gost: error: <message>`.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn, TextIO

from gostx.cli.flags import FlagError, HelpRequested, Options, parse_flags
from gostx.cli.usage import usage_text, version_line
from gostx.config.model import ConfigError
from gostx.errors import GostError

PROG = "gost"


def error_line(message: str, stream: TextIO | None = None) -> None:
    text = " ".join(str(message).split()) or "unknown error"
    print(f"{PROG}: error: {text}", file=stream or sys.stderr, flush=True)


def _check_args(opts: Options, argv: list[str]) -> None:
    if f" {' '.join(argv)} ".find(" -- ") >= 0:
        raise GostError("running several gost groups separated by ' -- ' is not supported")
    if opts.args:
        raise FlagError(f"unexpected argument {opts.args[0]!r} (flags go before it; see -h)")


def run_cli(argv: list[str]) -> int:
    """The whole program; returns the exit code."""
    try:
        opts = parse_flags(argv)
        _check_args(opts, argv)
    except HelpRequested:
        sys.stdout.write(usage_text(PROG))
        return 0
    except FlagError as exc:
        print(exc, file=sys.stderr)
        sys.stderr.write(usage_text(PROG))
        return 2
    except GostError as exc:
        error_line(str(exc))
        return 1
    if opts.version:
        print(version_line())
        return 0
    try:
        return _run(opts)
    except (GostError, ConfigError) as exc:
        error_line(str(exc))
        return 1


def _run(opts: Options) -> int:
    # plugins are imported by name on first use (gostx.registry): only the ones this config runs
    from gostx.cli.compose import compose_config

    notes: list[str] = []
    cfg = compose_config(opts, notes=notes)
    if opts.output_format:
        from gostx.config.dump import dump_config

        sys.stdout.write(dump_config(cfg, "json" if opts.output_format == "json" else "yaml"))
        sys.stdout.flush()
        return 0
    from gostx.log import setup_logging
    from gostx.runner import run

    log = setup_logging(cfg.log)
    for note in notes:  # e.g. an unknown -L scheme, which gost quietly serves as its auto proxy
        log.bind(kind="config").warning(note)
    if not cfg.services and not (cfg.api and cfg.api.addr):  # with the web API, services may come later
        raise GostError("no services to run: give -L (e.g. -L tcp://:8080/10.0.0.1:80) or -C <config file>")
    return run(cfg, opts.config_source)


def main(argv: list[str] | None = None) -> NoReturn:
    """The console entry point: run gost's command line and exit with its code (130 after Ctrl-C)."""
    try:
        code = run_cli(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `gost -h | head -1`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)
