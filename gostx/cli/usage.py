"""The `gost -h` text and the `-V` line."""

from __future__ import annotations

import platform
import sys

from gostx import __version__
from gostx.cli.flags import FLAGS
from gostx.registry import handlers, listeners

# URL forms gostx serves; plugins that add a form add a line here.
URL_EXAMPLES: list[tuple[str, str]] = [
    ("tcp://:8080/192.168.1.1:80", "TCP port forwarding (several targets: round robin)"),
    ("tcp://:8080/10.0.0.1:80,10.0.0.2:80", "TCP port forwarding over two targets"),
    ("udp://:5353/192.168.1.1:53?ttl=60s", "UDP port forwarding; a client's session ends after ttl idle"),
]

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
         "i686": "386", "armv7l": "arm", "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x"}


def version_line() -> str:
    machine = platform.machine().lower()
    arch = _ARCH.get(machine, machine or "unknown")
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"gost {__version__} (gostx; python {py} {sys.platform.rstrip('0123456789')}/{arch})"


def usage_text(prog: str = "gost") -> str:
    lines = [f"Usage of {prog}:", ""]
    for spec in FLAGS:
        head = f"-{spec.name}" + (f" {spec.metavar}" if spec.metavar else "")
        lines.append(f"  {head:<16} {spec.help}")
    lines += [
        "",
        "Flags may be written -L x, -L=x, --L x or --L=x; -h prints this help.",
        "",
        "Service URL (-L): [scheme://][user:pass@][host]:port[/target,...][?key=value&...]",
        "  scheme is handler+listener, or one name for both (tcp:// = tcp handler on a tcp listener).",
    ]
    lines += [f"  {url:<40} {what}" for url, what in URL_EXAMPLES]
    lines += [
        "",
        f"Handlers:  {', '.join(handlers.names()) or '-'}",
        f"Listeners: {', '.join(listeners.names()) or '-'}",
        "",
        "Config file (-C): gost v3 YAML/JSON (services, chains, hops, log, api, metrics, ...).",
        "Logging: log.level trace|debug|info|warn|error|fatal, log.format json|text,",
        "  log.output stderr|stdout|none|<file>. -D sets debug, -DD trace.",
    ]
    return "\n".join(lines) + "\n"
