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

# Whole command lines, as a user types them: (what it does, [command line, ...]). Every URL with `&` is
# quoted (the shell would cut it there). tests/unit/test_usage_examples.py parses each one.
COMMAND_EXAMPLES: list[tuple[str, list[str]]] = [
    ("TUN VPN (gost v2's AEAD cipher; without method:password@ it is plaintext), server and client:", [
        'gost -L "tun://aes-128-gcm:s3cret@:8421?net=192.168.123.1/24"',
        'gost -L "tun://aes-128-gcm:s3cret@:0/SERVER_IP:8421?net=192.168.123.2/24&mtu=1350"',
    ]),
    ("TAP (Ethernet frames; MAC learning and flooding), server and client:", [
        'gost -L "tap://:8421?net=192.168.124.1/24&name=tap0"',
        'gost -L "tap://:0/SERVER_IP:8421?net=192.168.124.2/24&name=tap0"',
    ]),
    ("tun2socks (tungo): TCP and UDP routed into the device leave through a SOCKS5 server:", [
        'gost -L "tungo://:0?name=tungo&net=192.168.125.1/24&route=10.0.0.0/8" -F socks5://SERVER_IP:1080',
    ]),
    ("A TUN client over a proxy chain (the server also runs -L socks5://:1080):", [
        'gost -L "tun://:0/:8421?net=192.168.123.2/24" -F socks5://SERVER_IP:1080',
    ]),
    ("TCP port forwarding through a chain of two hops (one hop per -F):", [
        'gost -L tcp://:8080/192.168.1.1:80 -F "socks5://user:pass@HOP1:1080" -F relay+wss://HOP2:443',
    ]),
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
    lines += ["", "Examples (quote a URL that has '&': the shell would cut it there):"]
    for what, commands in COMMAND_EXAMPLES:
        lines.append(f"  {what}")
        lines += [f"    {command}" for command in commands]
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
