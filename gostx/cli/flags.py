"""gost's command-line flags, parsed with the rules of Go's `flag` package.

`-x` and `--x` are the same flag; a value is given as `-L v` or `-L=v`; a bool flag takes no separate
value (`-D`, or `-D=false`); parsing stops at the first non-flag argument or at `--`. Errors read
like Go's ("flag provided but not defined: -x") and are reported with exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FlagSpec:
    name: str
    kind: str  # "list" (repeatable string), "string" or "bool"
    metavar: str
    help: str


FLAGS: tuple[FlagSpec, ...] = (
    FlagSpec("L", "list", "url", "service, repeatable: -L tcp://:8080/192.168.1.1:80"),
    FlagSpec("F", "list", "url", "chain node, repeatable: each -F adds one hop"),
    FlagSpec("C", "string", "file", "configuration file (yaml or json), '-' for stdin, or inline JSON"),
    FlagSpec("O", "string", "format", "print the merged configuration as yaml or json, then exit"),
    FlagSpec("D", "bool", "", "debug mode (log level debug)"),
    FlagSpec("DD", "bool", "", "trace mode (log level trace)"),
    FlagSpec("V", "bool", "", "print the version and exit"),
    FlagSpec("api", "string", "addr", "API service address, [user:pass@]host:port[?pathPrefix=/api&accesslog=true]"),
    FlagSpec("metrics", "string", "addr", "metrics service address, [user:pass@]host:port[?path=/metrics]"),
)
_BY_NAME = {f.name: f for f in FLAGS}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class FlagError(Exception):
    """A command line Go's flag package would reject (exit code 2, usage printed)."""


class HelpRequested(Exception):
    """-h / -help / --help."""


@dataclass
class Options:
    services: list[str] = field(default_factory=list)  # -L
    nodes: list[str] = field(default_factory=list)  # -F
    config_source: str = ""  # -C
    output_format: str = ""  # -O
    debug: bool = False  # -D
    trace: bool = False  # -DD
    version: bool = False  # -V
    api: str = ""  # -api
    metrics: str = ""  # -metrics
    args: list[str] = field(default_factory=list)  # what is left after the flags

    def apply(self, spec: FlagSpec, value: str | bool) -> None:
        attr = {"L": "services", "F": "nodes", "C": "config_source", "O": "output_format", "D": "debug",
                "DD": "trace", "V": "version", "api": "api", "metrics": "metrics"}[spec.name]
        if spec.kind == "list":
            getattr(self, attr).append(value)
        else:
            setattr(self, attr, value)


def parse_bool(text: str, flag: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FlagError(f'invalid boolean value "{text}" for -{flag}: parse error')


def parse_flags(argv: list[str]) -> Options:
    """Parse the arguments after the program name; FlagError / HelpRequested as Go would."""
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if len(arg) < 2 or arg[0] != "-":
            break
        minuses = 2 if arg[1] == "-" else 1
        if arg == "--":
            i += 1
            break
        name = arg[minuses:]
        if not name or name[0] in "-=":
            raise FlagError(f"bad flag syntax: {arg}")
        i += 1
        name, has_value, value = name.partition("=")
        spec = _BY_NAME.get(name)
        if spec is None:
            if name in ("h", "help"):
                raise HelpRequested()
            raise FlagError(f"flag provided but not defined: -{name}")
        if spec.kind == "bool":
            opts.apply(spec, parse_bool(value, name) if has_value else True)
            continue
        if not has_value:
            if i >= len(argv):
                raise FlagError(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        opts.apply(spec, value)
    opts.args = argv[i:]
    return opts
