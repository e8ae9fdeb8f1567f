"""The tunnels the bench and the demo put between namespace A (client) and B (server).

A tunnel starts its processes in the rig's two namespaces, waits until traffic passes end to end,
and hands back an Endpoint: the address A sends to and the PIDs whose CPU and memory count. Any
failure to come up is a TunnelDown with a one-line reason, never a crash: a row whose feature is
not there yet reports "n/a (<reason>)".
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench import openvpn
from gostx.testing import iperf
from gostx.testing.netns import Namespace
from gostx.testing.ping import reachable

if TYPE_CHECKING:
    from bench.rig import Rig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUNNEL_PORT = 8421
SOCKS_PORT = 1080
SERVER_TUN_IP = "192.168.123.1"
CLIENT_TUN_IP = "192.168.123.2"
TUN_PREFIX = 24
PASSWORD = "gostx-bench"  # a throwaway secret for a tunnel between two local namespaces
BEHIND_TUNGO = "10.201.0.1"  # an address on B's loopback that A reaches only through tungo


GOST_ENV = "BENCH_GOST"


def gostx_command() -> list[str]:
    """How to run `gost` for the gostx rows: $BENCH_GOST if set, else this checkout (python -m gostx)."""
    override = os.environ.get(GOST_ENV, "").strip()
    return shlex.split(override) if override else [sys.executable, "-m", "gostx"]


class TunnelDown(Exception):
    """The tunnel did not come up; str() is a one-line reason."""


@dataclass(frozen=True)
class Endpoint:
    target: str  # the address, as seen from A, that traffic to B's iperf3 server goes to
    pids: tuple[int, ...]  # the tunnel's processes (both ends): CPU% and peak RSS are theirs
    server_pids: tuple[int, ...] = ()  # those of them in B (the server end)


@dataclass
class Role:
    """One process of a tunnel: which side it runs on and its command line."""

    side: str  # "a" (client) or "b" (server)
    label: str  # "server" / "client" in messages
    argv: list[str]


@dataclass
class ProcessTunnel:
    """A tunnel made of one process per side; `ready` is "ping" (ICMP to the target) or "tcp" (iperf3)."""

    target: str = SERVER_TUN_IP
    ready: str = "ping"
    roles: list[Role] = field(default_factory=list)
    _started: list[tuple[Namespace, subprocess.Popen[bytes], str, str]] = field(default_factory=list)
    _logs: dict[str, str] = field(default_factory=dict)  # label -> log file; kept after stop()

    def prepare(self, rig: Rig) -> None:
        """Make files or addresses the roles need (before any process starts)."""

    def build_roles(self, rig: Rig) -> list[Role]:
        return self.roles

    def configure(self, rig: Rig, timeout: float) -> None:
        """Set up what exists only once the processes run (e.g. a device they created)."""

    def start(self, rig: Rig, timeout: float) -> Endpoint:
        try:
            self.prepare(rig)
            for role in self.build_roles(rig):
                self._spawn(rig, role)
            self.configure(rig, timeout)
            self._wait_up(rig, timeout)
        except TunnelDown:
            self.stop()
            raise
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self.stop()
            raise TunnelDown(f"could not start: {one_line(str(exc))}") from exc
        return Endpoint(self.target, tuple(proc.pid for _, proc, _, _ in self._started),
                        tuple(proc.pid for ns, proc, _, _ in self._started if ns is rig.b))

    def stop(self) -> None:
        for ns, proc, _, _ in reversed(self._started):
            ns.stop(proc)
        self._started.clear()

    def logs(self) -> dict[str, str]:
        """Each process's log file (stdout and stderr), by label; still there after stop()."""
        return dict(self._logs)

    def _spawn(self, rig: Rig, role: Role) -> None:
        ns = rig.a if role.side == "a" else rig.b
        log_path = rig.log_path(f"{role.label}")
        with open(log_path, "wb") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proc = ns.popen(role.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env)
        rig.note_pid(proc.pid)
        self._started.append((ns, proc, role.label, log_path))
        self._logs[role.label] = log_path

    def _exited(self) -> str | None:
        for _, proc, label, log_path in self._started:
            code = proc.poll()
            if code is not None:
                last = last_line(log_path)
                return f"{label} exited with status {code}" + (f": {last}" if last else "")
        return None

    def _probe(self, rig: Rig) -> bool:
        if self.ready == "ping":
            return reachable(rig.a, self.target, wait_s=1)
        try:
            iperf.parse_tcp(rig.a.run(iperf.probe_argv(self.target), check=False, timeout=10).stdout)
        except (iperf.IperfError, subprocess.TimeoutExpired):
            return False
        return True

    def _wait_up(self, rig: Rig, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            exited = self._exited()
            if exited:
                raise TunnelDown(exited)
            if self._probe(rig):
                return
            if time.monotonic() >= deadline:
                exited = self._exited()
                if exited:
                    raise TunnelDown(exited)
                hint = "; ".join(
                    f"{label}: {line}" for label, path in self.logs().items() if (line := last_line(path))
                )
                raise TunnelDown(
                    f"no traffic through the tunnel within {timeout:g} s" + (f" ({hint})" if hint else "")
                )
            time.sleep(0.2)


@dataclass
class GostTunnel(ProcessTunnel):
    """gost on both sides; argv lists are gost's own flags, e.g. ["-L", "tun://..."]."""

    server_args: list[str] = field(default_factory=list)
    client_args: list[str] = field(default_factory=list)
    command: list[str] | None = None  # None: this checkout (python -m gostx)
    behind_tungo: bool = False

    def prepare(self, rig: Rig) -> None:
        if self.behind_tungo:
            rig.b.run(["ip", "addr", "replace", f"{BEHIND_TUNGO}/32", "dev", "lo"])

    def build_roles(self, rig: Rig) -> list[Role]:
        cmd = self.command or gostx_command()
        server = [*cmd, *[arg.format(server=rig.b_ip) for arg in self.server_args]]
        client = [*cmd, *[arg.format(server=rig.b_ip) for arg in self.client_args]]
        roles = [Role("b", "gost server", server)] if self.server_args else []  # none: A dials B's services
        return [*roles, Role("a", "gost client", client)]

    def shell_lines(self, rig: Rig) -> list[tuple[str, str]]:
        """(side, `gost ...` as a user would type it) for each process: what the demo shows."""
        return [
            (role.side, shlex.join(["gost", *role.argv[len(self.command or gostx_command()) :]]))
            for role in self.build_roles(rig)
        ]


@dataclass
class OpenVpnTunnel(ProcessTunnel):
    """OpenVPN peer-to-peer, UDP, AES-256-GCM, TLS mode, on the same veth (see bench/openvpn.py)."""

    dev: str = "gxovpn0"

    def build_roles(self, rig: Rig) -> list[Role]:
        pki_dir = os.path.join(rig.workdir, "pki")
        if not os.path.isdir(pki_dir):
            os.makedirs(pki_dir)
            openvpn.make_pki(pki_dir)
        pki = openvpn.Pki(
            ca=os.path.join(pki_dir, "ca.crt"),
            server_cert=os.path.join(pki_dir, "server.crt"),
            server_key=os.path.join(pki_dir, "server.key"),
            client_cert=os.path.join(pki_dir, "client.crt"),
            client_key=os.path.join(pki_dir, "client.key"),
        )
        return [
            Role("b", "openvpn server", openvpn.server_argv(pki, self.dev, SERVER_TUN_IP, CLIENT_TUN_IP)),
            Role(
                "a",
                "openvpn client",
                openvpn.client_argv(pki, self.dev, CLIENT_TUN_IP, SERVER_TUN_IP, rig.b_ip),
            ),
        ]

    def prepare(self, rig: Rig) -> None:
        if not any(os.access(os.path.join(d, "openvpn"), os.X_OK) for d in _path_dirs()):
            raise TunnelDown("openvpn is not installed (apt-get install openvpn)")


def _path_dirs() -> list[str]:
    return [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/sbin"]


def tail_lines(path: str, count: int, limit: int = 160) -> list[str]:
    """The last count non-empty lines of a log file, each shortened to one readable line."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return [one_line(line, limit) for line in lines[-count:]]


def last_line(path: str, limit: int = 160) -> str:
    """The last non-empty line of a log file, shortened to one readable line."""
    lines = tail_lines(path, 1, limit)
    return lines[0] if lines else ""


def one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tun_url(
    scheme: str,
    method: str | None,
    own_ip: str,
    *,
    listen: str = f":{TUNNEL_PORT}",
    remote: str | None = None,
    name: str | None = "gxtun0",
    extra: Sequence[str] = (),
) -> str:
    """A gost tun:// or tap:// URL as in the seed: [method:password@]listen[/remote]?net=..[&name=..]"""
    auth = f"{method}:{PASSWORD}@" if method else ""
    path = f"/{remote}" if remote else ""
    query = "&".join([f"net={own_ip}/{TUN_PREFIX}", *([f"name={name}"] if name else []), *extra])
    return f"{scheme}://{auth}{listen}{path}?{query}"


def gost_tun(
    method: str | None,
    *,
    scheme: str = "tun",
    extra: Sequence[str] = (),
    client_listen: str = f":{TUNNEL_PORT}",
    command: list[str] | None = None,
    named: bool = True,
) -> GostTunnel:
    """Server in B, client in A dialing B's veth address, exactly as the seed's TUN/TAP examples.
    named=False leaves the device name to the kernel (tun0), as the seed's commands do."""
    name = None if not named else "gxtap0" if scheme == "tap" else "gxtun0"
    server = tun_url(scheme, method, SERVER_TUN_IP, name=name, extra=extra)
    client = tun_url(
        scheme,
        method,
        CLIENT_TUN_IP,
        listen=client_listen,
        remote=f"{{server}}:{TUNNEL_PORT}",
        name=name,
        extra=extra,
    )
    return GostTunnel(server_args=["-L", server], client_args=["-L", client], command=command)


def gost_tun_over_socks5() -> GostTunnel:
    """The seed's "Proxy chain" example: UDP of the tunnel carried by gost's SOCKS5 on B."""
    server = tun_url("tun", None, SERVER_TUN_IP)
    client = tun_url("tun", None, CLIENT_TUN_IP, listen=":0", remote=f":{TUNNEL_PORT}")
    return GostTunnel(
        server_args=["-L", server, "-L", f"socks5://:{SOCKS_PORT}"],
        client_args=["-L", client, "-F", f"socks5://{{server}}:{SOCKS_PORT}"],
    )


BYPASS_TABLE = "100"


@dataclass
class TungoDirectTunnel(GostTunnel):
    """tungo in A with no chain: flows to BEHIND_TUNGO enter the TUN and are dialed directly, bound to
    A's veth (`interface`). The route to B that those dials take is in a table only sockets bound to the
    veth look up (`ip rule oif`), so nothing else reaches BEHIND_TUNGO before tungo is up."""

    def prepare(self, rig: Rig) -> None:
        super().prepare(rig)
        a_if = rig.veth_a
        rig.a.run(["ip", "route", "replace", "10.201.0.0/24", "via", rig.b_ip, "dev", a_if, "table", BYPASS_TABLE])
        rig.a.run(["ip", "rule", "add", "oif", a_if, "lookup", BYPASS_TABLE])
        self.client_args = [arg.replace("{veth_a}", a_if) for arg in self.client_args]


def gost_tungo_direct() -> GostTunnel:
    """The seed's tungo without -F: TUN -> userspace stack -> direct dials (service `interface`)."""
    listen = (f"tungo://:0?name=gxtungo&net={CLIENT_TUN_IP}/{TUN_PREFIX}&route={BEHIND_TUNGO}/32"
              "&interface={veth_a}")
    return TungoDirectTunnel(target=BEHIND_TUNGO, ready="tcp", client_args=["-L", listen], behind_tungo=True)


def gost_socks5_connect() -> GostTunnel:
    """TCP through gost's SOCKS5 CONNECT: A forwards 127.0.0.1:5201 through `-F socks5://B:1080` to B's
    iperf3 (`gost -L tcp://127.0.0.1:5201/B:5201 -F socks5://B:1080`; B runs `gost -L socks5://:1080`)."""
    port = iperf.DEFAULT_PORT
    return GostTunnel(
        target="127.0.0.1",
        ready="tcp",
        server_args=["-L", f"socks5://:{SOCKS_PORT}"],
        client_args=["-L", f"tcp://127.0.0.1:{port}/{{server}}:{port}", "-F", f"socks5://{{server}}:{SOCKS_PORT}"],
    )


def gost_tungo() -> GostTunnel:
    """tungo in A (TUN -> userspace stack -> -F socks5://B); B's iperf3 sits behind it on BEHIND_TUNGO."""
    listen = f"tungo://:0?name=gxtungo&net={CLIENT_TUN_IP}/{TUN_PREFIX}&route={BEHIND_TUNGO}/32"
    return GostTunnel(
        target=BEHIND_TUNGO,
        ready="tcp",  # a userspace stack may answer ICMP itself: prove a TCP transfer instead
        server_args=["-L", f"socks5://:{SOCKS_PORT}"],
        client_args=["-L", listen, "-F", f"socks5://{{server}}:{SOCKS_PORT}"],
        behind_tungo=True,
    )
