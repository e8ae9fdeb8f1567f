"""The rig: two network namespaces joined by veth, an iperf3 server in B, and everything torn down after.

Namespace A is the client side (iperf3 -c, ping, the tunnel's client end); B is the server side
(iperf3 -s, the tunnel's server end). Namespaces come from gostx.testing.netns, the same code the
netns tests use.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping

from gostx.testing import iperf
from gostx.testing.netns import Lab, Namespace, Pair, make_pair, netns_unavailable_reason

REQUIRED_TOOLS = ("ip", "iperf3", "ping")

TCP_CC_ENV = "BENCH_TCP_CC"
DEFAULT_TCP_CC = "cubic"  # Linux's default: what a fresh Debian runs
CC_FILE = "/proc/sys/net/ipv4/tcp_congestion_control"
AVAILABLE_CC_FILE = "/proc/sys/net/ipv4/tcp_available_congestion_control"


def tcp_cc_choice(environ: Mapping[str, str] | None = None) -> str | None:
    """The congestion control the rig's iperf3 runs use: $BENCH_TCP_CC, else cubic; None ("host")
    keeps whatever the namespaces inherited from the host."""
    value = (os.environ if environ is None else environ).get(TCP_CC_ENV, "").strip() or DEFAULT_TCP_CC
    return None if value == "host" else value


class RigError(RuntimeError):
    """The rig itself cannot be built or used here; str() is a one-line reason."""


def check_host() -> None:
    """Raise RigError when this machine cannot run the rig (not root, a tool missing, no TUN)."""
    reason = netns_unavailable_reason()
    if reason:
        raise RigError(reason)
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise RigError(
            f"missing command(s): {', '.join(missing)} (apt-get install iproute2 iperf3 iputils-ping)"
        )


class Rig:
    """`with Rig() as rig:` gives namespaces rig.a and rig.b and a running iperf3 -s in B."""

    def __init__(self, prefix: str = "gxbn", subnet: str = "10.200.1") -> None:
        self.prefix = prefix
        self.subnet = subnet
        self.tcp_cc = ""  # what every iperf3 run uses (both ends), known once the rig is up
        self.lab: Lab | None = None
        self.pair: Pair | None = None
        self.workdir = ""
        self.namespace_names: list[str] = []  # every namespace made, kept after close (for checks)
        self.pids: list[int] = []  # every process started, kept after close (for checks)
        self._iperf_server = None
        self._logs = itertools.count()

    def __enter__(self) -> Rig:
        check_host()
        self.workdir = tempfile.mkdtemp(prefix="gostx-bench-")
        self.lab = Lab(self.prefix)
        try:
            self.pair = make_pair(self.lab, subnet=self.subnet)
            self.namespace_names = [ns.name for ns in self.lab.namespaces]
            self.tcp_cc = self._choose_tcp_cc(tcp_cc_choice())
            self.ensure_iperf_server()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _choose_tcp_cc(self, wanted: str | None) -> str:
        """The congestion control every iperf3 run uses (set per socket with iperf3 -C, which the
        client passes on to the server for -R). Namespaces inherit the host's default, and a
        namespace may only switch to the host's "allowed" ones: BBR on some VMs, which halves the
        bare veth figure next to cubic. Pinning it keeps ratios independent of how the host is tuned."""
        if wanted is None:
            return self.a.run(["cat", CC_FILE], check=False).stdout.strip()
        available = self.a.run(["cat", AVAILABLE_CC_FILE], check=False).stdout.split()
        if wanted not in available:
            raise RigError(
                f"TCP congestion control {wanted!r} (${TCP_CC_ENV}) is not available here; "
                f"this kernel has: {' '.join(available) or 'none listed'}"
            )
        return wanted

    def close(self) -> None:
        if self.lab is not None:
            self.lab.close()
            self.lab = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def a(self) -> Namespace:
        return self._pair().a

    @property
    def b(self) -> Namespace:
        return self._pair().b

    @property
    def veth_a(self) -> str:
        """A's end of the veth (for options that name an interface, e.g. tungo's `interface`)."""
        return self._pair().a_if

    @property
    def a_ip(self) -> str:
        return self._pair().a_ip

    @property
    def b_ip(self) -> str:
        return self._pair().b_ip

    def _pair(self) -> Pair:
        if self.pair is None:
            raise RigError("the rig is not running (use it inside `with Rig() as rig:`)")
        return self.pair

    def note_pid(self, pid: int) -> None:
        self.pids.append(pid)

    def log_path(self, label: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label)
        return os.path.join(self.workdir, f"{next(self._logs):03d}-{safe}.log")

    def ensure_iperf_server(self, timeout: float = 5.0) -> None:
        """Start iperf3 -s in B, or restart it if it died; wait until it accepts a test."""
        proc = self._iperf_server
        if proc is not None and proc.poll() is None:
            return
        if proc is not None:
            self.b.stop(proc)
        log = self.log_path("iperf3-server")
        with open(log, "wb") as out:
            proc = self.b.popen(iperf.server_argv(), stdout=out, stderr=out)
        self._iperf_server = proc
        self.note_pid(proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RigError(f"iperf3 -s exited with status {proc.returncode} in {self.b.name}")
            if self._listening(iperf.DEFAULT_PORT):
                return
            time.sleep(0.05)
        raise RigError(f"iperf3 -s did not listen on port {iperf.DEFAULT_PORT} within {timeout:g} s")

    def _listening(self, port: int) -> bool:
        out = self.b.run(["ss", "-Htln", f"sport = :{port}"], check=False).stdout
        return bool(out.strip())
