"""Run whole `gost` processes of this checkout for tests (on the host or inside a Namespace).

`gost_command(*args)` is the argv; `run_gost(...)` runs one to completion; `start_gost(...)` starts
one in the background (its stderr goes to a file, so a chatty process never blocks on a pipe) and
`GostProcess.stop()` sends SIGTERM and returns the exit code.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gostx.testing.netns import Namespace, stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]


def gost_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gostx", *args]


def gost_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("GOST_LOGGER_LEVEL", None)
    env.update(extra or {})
    return env


def run_gost(*args: str, stdin: str | None = None, timeout: float = 30, ns: Namespace | None = None,
             env: dict[str, str] | None = None,
             prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*(prefix or []), *gost_command(*args)]
    if ns is not None:
        argv = ns.argv(argv)
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT, env=gost_env(env))


@dataclass
class GostProcess:
    proc: subprocess.Popen[bytes]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        """Signal the gost process itself (not its session) and wait for its exit code."""
        if self.proc.poll() is None:
            target = self.gost_pid()
            try:
                os.kill(target, sig)
                self.proc.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        return stop_process(self.proc)

    def __enter__(self) -> GostProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the process if it still runs and remove its stderr file."""
        stop_process(self.proc, sig=signal.SIGKILL, timeout=5)
        self.stderr_path.unlink(missing_ok=True)

    def gost_pid(self) -> int:
        """`ip netns exec` execs the command, so the child pid is gost's own pid."""
        return self.proc.pid


def start_gost(*args: str, ns: Namespace | None = None, env: dict[str, str] | None = None,
               prefix: list[str] | None = None) -> GostProcess:
    fd, path = tempfile.mkstemp(prefix="gostx-e2e-", suffix=".stderr")
    argv = [*(prefix or []), *gost_command(*args)]
    kwargs: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": fd, "cwd": REPO_ROOT,
                              "env": gost_env(env)}
    try:
        if ns is not None:
            proc = ns.popen(argv, **kwargs)
        else:
            proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    finally:
        os.close(fd)
    return GostProcess(proc, Path(path))


def wait_tcp_port(host: str, port: int, timeout: float = 15, ns: Namespace | None = None) -> bool:
    """True once host:port accepts a TCP connection (checked from inside `ns` when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ns is None:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return True
            except OSError:
                pass
        else:
            probe = f"import socket; socket.create_connection(('{host}', {port}), timeout=0.5).close()"
            if ns.run([sys.executable, "-c", probe], check=False).returncode == 0:
                return True
        time.sleep(0.1)
    return False


def wait_for_text(proc: GostProcess, text: str, timeout: float = 15) -> bool:
    """True once `text` shows up in the process's stderr."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.stderr():
            return True
        if proc.proc.poll() is not None:
            return text in proc.stderr()
        time.sleep(0.05)
    return False
