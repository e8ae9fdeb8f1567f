"""Bench tunnels for TLS transports (issue 18's targets), beside relay_rows.py:

- `stunnel_forward`: stunnel (C, OpenSSL, TLS 1.3) as the peer to beat: a client stunnel in A accepts
  127.0.0.1:5201 and carries it over TLS to a server stunnel in B, which hands it to B's iperf3.
- `socks5_tls_forward`: gostx `tcp:// -F socks5+tls://`: A forwards 127.0.0.1:5201 through `-F
  socks5+tls://B:1443`; B runs `gost -L socks5+tls://:1443`.

Ratios the issue asks for (`RATIOS`) are computed from rows of the same run by bench/summary.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from bench.rig import Rig
from bench.tunnels import GostTunnel, ProcessTunnel, Role, TunnelDown
from gostx.testing import iperf

STUNNEL_PORT = 8443
SOCKS_TLS_PORT = 1443



@dataclass(frozen=True)
class Ratio:
    """numerator row / denominator row for one test, from the same run; the issue's target is `>= target`
    (or `<= target` when at_most)."""

    label: str
    numerator: str
    denominator: str
    test: str
    target: float
    at_most: bool = False


RATIOS: tuple[Ratio, ...] = (
    Ratio("tcp:// -F relay+wss:// vs stunnel", "relay-wss", "stunnel", "tcp1", 1.5),
    Ratio("tcp:// -F socks5+tls:// vs stunnel", "socks5-tls", "stunnel", "tcp1", 1.5),
    Ratio("tcp:// -F relay+wss:// vs tcp:// -F socks5://", "relay-wss", "socks5-connect", "tcp1", 0.6),
    Ratio("tcp:// -F socks5+tls:// vs tcp:// -F socks5://", "socks5-tls", "socks5-connect", "tcp1", 0.6),
    Ratio("tungo:// -F relay+wss:// vs tungo:// -F socks5://", "tungo-relay-wss", "tungo-socks5", "tcp1", 0.6),
    Ratio("server CPU per GB, relay+wss vs socks5", "relay-wss", "socks5-connect", "srvcpu", 2.0, at_most=True),
)


def stunnel_binary() -> str | None:
    return shutil.which("stunnel4") or shutil.which("stunnel")


def _self_signed(folder: str) -> tuple[str, str]:
    cert, key = os.path.join(folder, "stunnel.pem"), os.path.join(folder, "stunnel.key")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=gostx-bench", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=30)
    return cert, key


def _conf(path: str, name: str, options: dict[str, str]) -> str:
    lines = ["foreground = yes", "pid =", "debug = 4", "sslVersionMin = TLSv1.3", f"[{name}]",
             *(f"{k} = {v}" for k, v in options.items())]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


@dataclass
class StunnelTunnel(ProcessTunnel):
    """stunnel client in A (127.0.0.1:5201, plain) -> TLS 1.3 -> stunnel server in B -> B's iperf3."""

    target: str = "127.0.0.1"
    ready: str = "tcp"

    def prepare(self, rig: Rig) -> None:
        if stunnel_binary() is None:
            raise TunnelDown("stunnel is not installed (apt-get install stunnel4)")

    def build_roles(self, rig: Rig) -> list[Role]:
        binary = stunnel_binary() or "stunnel4"
        cert, key = _self_signed(rig.workdir)
        port = iperf.DEFAULT_PORT
        server = _conf(os.path.join(rig.workdir, "stunnel-server.conf"), "server", {
            "accept": f"{rig.b_ip}:{STUNNEL_PORT}", "connect": f"127.0.0.1:{port}", "cert": cert, "key": key})
        client = _conf(os.path.join(rig.workdir, "stunnel-client.conf"), "client", {
            "client": "yes", "accept": f"127.0.0.1:{port}", "connect": f"{rig.b_ip}:{STUNNEL_PORT}"})
        return [Role("b", "stunnel server", [binary, server]), Role("a", "stunnel client", [binary, client])]


def socks5_tls_forward(command: list[str] | None = None) -> GostTunnel:
    port = iperf.DEFAULT_PORT
    return GostTunnel(
        target="127.0.0.1",
        ready="tcp",
        server_args=["-L", f"socks5+tls://:{SOCKS_TLS_PORT}"],
        client_args=["-L", f"tcp://127.0.0.1:{port}/{{server}}:{port}", "-F",
                     f"socks5+tls://{{server}}:{SOCKS_TLS_PORT}"],
        command=command,
    )
