"""Run real `gost` processes inside namespaces: start, wait until ready, read their JSON logs, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gostx.testing.netns import Namespace, stop_process, wait_until

GOST = [sys.executable, "-m", "gostx"]


@dataclass
class GostProcess:
    ns: Namespace
    args: list[str]
    log_path: str
    proc: subprocess.Popen[bytes]
    _log: Any = field(default=None, repr=False)

    def log_lines(self) -> list[str]:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_lines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def find(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [r for r in self.log_records() if predicate(r)]

    def stats(self, timeout: float = 5.0) -> dict[str, int]:
        """Ask the tunnel for its counters (SIGUSR1) and return the newest `stats` record."""
        before = len(self.find(lambda r: "stats" in r))
        os.kill(self.proc.pid, signal.SIGUSR1) if self.proc.poll() is None else None
        wait_until(lambda: len(self.find(lambda r: "stats" in r)) > before, timeout)
        records = self.find(lambda r: "stats" in r)
        if not records:
            raise AssertionError(f"no stats record in the log of {self.args}:\n" + "\n".join(self.log_lines()[-20:]))
        return dict(records[-1]["stats"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        code = stop_process(self.proc, sig=sig, timeout=timeout)
        if self.proc in self.ns.procs:
            self.ns.procs.remove(self.proc)
        return code


def start_gost(ns: Namespace, args: Sequence[str], ready: Callable[[GostProcess], bool] | None = None,
               timeout: float = 15.0, debug: bool = True, log_dir: str | None = None) -> GostProcess:
    """Start `gost ARGS` in ns with its log in a file; wait for ready(proc) (default: the first log line)."""
    fd, log_path = tempfile.mkstemp(prefix="gost-", suffix=".log", dir=log_dir)
    log = os.fdopen(fd, "wb")
    argv = [*GOST, *(["-D"] if debug else []), *args]
    proc = ns.popen(argv, stdout=log, stderr=subprocess.STDOUT)
    gp = GostProcess(ns, list(args), log_path, proc, log)
    check = ready or (lambda g: bool(g.log_lines()))
    if not wait_until(lambda: check(gp) or proc.poll() is not None, timeout):
        tail = "\n".join(gp.log_lines()[-20:])
        gp.stop()
        raise AssertionError(f"gost {' '.join(args)} did not get ready in {timeout}s:\n{tail}")
    if proc.poll() is not None:
        tail = "\n".join(gp.log_lines()[-20:])
        raise AssertionError(f"gost {' '.join(args)} exited with {proc.returncode}:\n{tail}")
    return gp


def device_up(name: str) -> Callable[[GostProcess], bool]:
    """Ready when the log says the device is up."""
    return lambda g: any(r.get("device") == name and "is up" in str(r.get("msg", "")) for r in g.log_records())


def tunnel_ready(g: GostProcess) -> bool:
    return any("tunnel" in str(r.get("msg", "")) and " on udp " in str(r.get("msg", "")) for r in g.log_records())


def ping(ns: Namespace, ip: str, count: int = 3, timeout: float = 2.0, interval: float = 0.2) -> bool:
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(timeout), ip]
    return ns.run(argv, check=False, timeout=count * (timeout + interval) + 10).returncode == 0


def wait_ping(ns: Namespace, ip: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(ns, ip, count=1, timeout=1.0):
            return True
    return False
