"""CPU time and peak memory of running processes, read from /proc (Linux).

CPU%: the user+system time a set of process trees used between two snapshots, over the wall time
between them; 100 means one core busy. Peak RSS: VmHWM (the resident-set high-water mark) from
/proc/<pid>/status. A process tree is a PID and all its live descendants.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[int, int]:
    """From a /proc/<pid>/stat line return (ppid, utime + stime in clock ticks)."""
    # comm (field 2) is in parentheses and may itself hold spaces or ')': split after the last one.
    close = text.rfind(")")
    if close < 0:
        raise ValueError("not a /proc/<pid>/stat line")
    fields = text[close + 2 :].split()
    # fields[0] is state (field 3); ppid is field 4, utime field 14, stime field 15.
    return int(fields[1]), int(fields[11]) + int(fields[12])


def parse_status_kib(text: str, key: str) -> int | None:
    """The value in kB of a `Key:   1234 kB` line of /proc/<pid>/status, or None."""
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            parts = rest.split()
            return int(parts[0]) if parts else None
    return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def _all_parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        text = _read(f"/proc/{entry}/stat")
        if text is None:
            continue
        try:
            parents[int(entry)] = parse_stat(text)[0]
        except (ValueError, IndexError):
            continue
    return parents


def process_tree(roots: Iterable[int]) -> set[int]:
    """The given PIDs and all their live descendants."""
    parents = _all_parents()
    tree = {pid for pid in roots if pid in parents}
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in tree and pid not in tree}
        tree |= children
        grew = bool(children)
    return tree


def cpu_ticks(pid: int) -> int | None:
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    try:
        return parse_stat(text)[1]
    except (ValueError, IndexError):
        return None


def peak_rss_kib(pid: int) -> int | None:
    text = _read(f"/proc/{pid}/status")
    return parse_status_kib(text, "VmHWM") if text is not None else None


@dataclass(frozen=True)
class Usage:
    cpu_percent: float  # summed over every process in the trees; 100 = one core
    peak_rss_kib: int  # the largest VmHWM among them
    pids: tuple[int, ...]


class CpuSampler:
    """Snapshot the trees under `roots`, run the workload, then `stop()` for the usage in between.

    Processes that exit between the snapshots take their CPU time with them; that is fine for
    long-lived daemons such as tunnel ends, which is what this is for.
    """

    def __init__(self, roots: Iterable[int]) -> None:
        self.roots = tuple(roots)
        self._start_ticks: dict[int, int] = {}
        self._start_time = 0.0

    def start(self) -> CpuSampler:
        self._start_ticks = {}
        for pid in process_tree(self.roots):
            ticks = cpu_ticks(pid)
            if ticks is not None:
                self._start_ticks[pid] = ticks
        self._start_time = time.monotonic()
        return self

    def stop(self) -> Usage:
        elapsed = time.monotonic() - self._start_time
        pids = process_tree(self.roots)
        used = 0
        peak = 0
        for pid in pids:
            ticks = cpu_ticks(pid)
            if ticks is not None:
                used += ticks - self._start_ticks.get(pid, 0)
            peak = max(peak, peak_rss_kib(pid) or 0)
        cpu = 100.0 * used / CLOCK_TICKS / elapsed if elapsed > 0 else 0.0
        return Usage(cpu_percent=cpu, peak_rss_kib=peak, pids=tuple(sorted(pids)))
