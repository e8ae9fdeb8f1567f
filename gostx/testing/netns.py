"""Network namespaces joined by veth, and processes inside them, for tests, bench and demo.

One place makes namespaces (tests/, bench/ and the demo all use it). Everything created is recorded
and removed by `close()`, even after a failure: processes are killed by PID, namespaces deleted
(which removes their veth ends and any TUN devices inside them).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

_counter = itertools.count()


def unique_suffix() -> str:
    """Short and unique per process and call: interface names must fit in 15 bytes."""
    return f"{os.getpid() % 100000:05d}{next(_counter) % 1000:03d}"


def netns_unavailable_reason() -> str | None:
    """None when namespaces, veth and TUN can be made here; else why not (for pytest.skip)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth and TUN devices need CAP_SYS_ADMIN/CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return None


def _run(cmd: Sequence[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True, timeout=timeout)


@dataclass
class Namespace:
    name: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(
        self, cmd: Sequence[str], check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return _run(self.argv(cmd), check=check, timeout=timeout)

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a process in this namespace; it is killed by PID when the namespace is closed."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.argv(cmd), start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def ip(self, *args: str) -> str:
        return self.run(["ip", *args]).stdout

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int | None:
        """Stop one process started here (SIGTERM, then SIGKILL) and forget it; returns its exit code."""
        code = stop_process(proc, timeout=timeout)
        if proc in self.procs:
            self.procs.remove(proc)
        return code

    def kill_all(self) -> None:
        for proc in self.procs:
            stop_process(proc)
        self.procs.clear()


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 5.0
) -> int | None:
    """Signal a process (and its session), wait, escalate to SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        for s in (sig, signal.SIGKILL):
            try:
                os.killpg(proc.pid, s)
            except ProcessLookupError:
                break
            except PermissionError:
                proc.send_signal(s)
            try:
                proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    return proc.returncode


class Lab:
    """A set of namespaces and veth links; a context manager that always cleans up."""

    def __init__(self, prefix: str = "gx") -> None:
        self.prefix = prefix
        self.suffix = unique_suffix()
        self.namespaces: list[Namespace] = []
        self._links = 0

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespace(self, tag: str) -> Namespace:
        name = f"{self.prefix}{tag}{self.suffix}"
        _run(["ip", "netns", "add", name])
        ns = Namespace(name)
        self.namespaces.append(ns)
        ns.run(["ip", "link", "set", "lo", "up"])
        return ns

    def link(self, a: Namespace, a_addr: str, b: Namespace, b_addr: str, mtu: int = 1500) -> tuple[str, str]:
        """Join a and b by a veth pair with the given CIDR addresses; returns the two device names."""
        n, self._links = self._links, self._links + 1
        a_if, b_if = f"va{self.suffix}{n}", f"vb{self.suffix}{n}"
        _run(["ip", "link", "add", a_if, "netns", a.name, "type", "veth",
              "peer", "name", b_if, "netns", b.name])  # fmt: skip
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            ns.run(["ip", "link", "set", ifname, "mtu", str(mtu)])
            family = "-6" if ":" in addr else "-4"
            ns.run(["ip", family, "addr", "add", addr, "dev", ifname, *(["nodad"] if ":" in addr else [])])
            ns.run(["ip", "link", "set", ifname, "up"])
        return a_if, b_if

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            ns.kill_all()
        for ns in reversed(self.namespaces):
            _run(["ip", "netns", "del", ns.name], check=False)
        self.namespaces.clear()


@dataclass
class Pair:
    """Two namespaces, `a` and `b`, joined by veth: a has a_ip, b has b_ip (a /24 each)."""

    lab: Lab
    a: Namespace
    b: Namespace
    a_if: str
    b_if: str
    a_ip: str
    b_ip: str


def make_pair(lab: Lab, subnet: str = "10.200.1", mtu: int = 1500) -> Pair:
    a = lab.namespace("a")
    b = lab.namespace("b")
    a_if, b_if = lab.link(a, f"{subnet}.1/24", b, f"{subnet}.2/24", mtu=mtu)
    return Pair(lab, a, b, a_if, b_if, f"{subnet}.1", f"{subnet}.2")


def existing_namespaces() -> set[str]:
    """Names of the network namespaces that exist now (`ip netns list`)."""
    out = _run(["ip", "netns", "list"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(")") + 2 :].split()[:1] != ["Z"]


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll predicate() until it is true or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
