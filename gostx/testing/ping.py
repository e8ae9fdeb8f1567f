"""ping for tests and the bench: the command line, and a parser for its output (iputils and BusyBox)."""

from __future__ import annotations

import re
import statistics
import subprocess
from dataclasses import dataclass

from gostx.testing.netns import Namespace

_REPLY = re.compile(r"icmp_seq=(\d+)\b.*?\btime[=<]([\d.]+) ms")
_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_SUMMARY = re.compile(r"(?:rtt|round-trip) min/avg/max(?:/mdev)? = ([\d.]+)/([\d.]+)/([\d.]+)")


class PingError(RuntimeError):
    """ping printed nothing that can be read as a result."""


@dataclass(frozen=True)
class PingResult:
    transmitted: int
    received: int
    rtts_us: tuple[float, ...]  # per reply, in icmp_seq order, microseconds

    @property
    def loss_percent(self) -> float:
        return 100.0 * (self.transmitted - self.received) / self.transmitted if self.transmitted else 100.0

    @property
    def median_us(self) -> float:
        if not self.rtts_us:
            raise PingError("no ping replies")
        return statistics.median(self.rtts_us)


def ping_argv(host: str, count: int = 20, interval: float = 0.05, wait_s: int = 1) -> list[str]:
    """Intervals below 0.2 s need root, which every netns user here has."""
    return ["ping", "-n", "-c", str(count), "-i", f"{interval:g}", "-W", str(wait_s), host]


def parse_ping(text: str, skip_first: int = 0) -> PingResult:
    """Parse ping's output; skip_first drops the first replies by icmp_seq (ARP, route learning)."""
    counts = _COUNTS.search(text)
    if counts is None:
        raise PingError("ping printed no statistics line")
    replies = sorted((int(seq), float(ms)) for seq, ms in _REPLY.findall(text))
    first_seq = min((seq for seq, _ in replies), default=1)
    rtts = tuple(ms * 1000.0 for seq, ms in replies if seq >= first_seq + skip_first)
    if not rtts and not replies:
        summary = _SUMMARY.search(text)  # quiet mode (-q): only the summary is known
        if summary is not None:
            rtts = (float(summary.group(2)) * 1000.0,)
    return PingResult(transmitted=int(counts.group(1)), received=int(counts.group(2)), rtts_us=rtts)


def run_ping(
    ns: Namespace, host: str, count: int = 20, interval: float = 0.05, skip_first: int = 0
) -> PingResult:
    argv = ping_argv(host, count=count, interval=interval)
    try:
        proc = ns.run(argv, check=False, timeout=count * interval + 10)
    except subprocess.TimeoutExpired as exc:
        raise PingError(f"ping {host} did not finish") from exc
    if _COUNTS.search(proc.stdout) is None:
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise PingError(f"ping {host}: {reason[:160]}")
    return parse_ping(proc.stdout, skip_first=skip_first)


def reachable(ns: Namespace, host: str, wait_s: int = 1) -> bool:
    """One echo request from ns to host; True when it is answered."""
    try:
        proc = ns.run(["ping", "-n", "-c", "1", "-W", str(wait_s), host], check=False, timeout=wait_s + 5)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0
