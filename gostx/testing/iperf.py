"""iperf3 for tests and the bench: build the command lines, run them, parse their JSON (`-J`) output.

The parsers take iperf3's own JSON and return small dataclasses; a run that iperf3 reports as failed
(an "error" key, no end summary) raises IperfError with iperf3's one-line message.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from typing import Any

from gostx.testing.netns import Namespace

DEFAULT_PORT = 5201
UDP_PAYLOAD = 1400


class IperfError(RuntimeError):
    """iperf3 failed, or printed something that is not a complete result."""


@dataclass(frozen=True)
class TcpResult:
    gbps: float  # receiver-side goodput, Gbit/s
    retransmits: int
    seconds: float
    streams: int
    congestion: str = ""  # the sender's TCP congestion control, as iperf3 reports it ("" if it does not)


@dataclass(frozen=True)
class UdpResult:
    gbps: float  # receiver-side goodput, Gbit/s
    sent_packets: int
    lost_packets: int
    seconds: float

    @property
    def received_pps(self) -> float:
        return (self.sent_packets - self.lost_packets) / self.seconds if self.seconds > 0 else 0.0

    @property
    def loss_percent(self) -> float:
        return 100.0 * self.lost_packets / self.sent_packets if self.sent_packets else 100.0


def server_argv(port: int = DEFAULT_PORT) -> list[str]:
    return ["iperf3", "-s", "-p", str(port)]


def client_argv(
    host: str,
    seconds: float,
    *,
    streams: int = 1,
    udp: bool = False,
    port: int = DEFAULT_PORT,
    connect_timeout_ms: int = 3000,
    reverse: bool = False,
    congestion: str = "",
) -> list[str]:
    """iperf3 client with JSON output; UDP means 1400-byte datagrams at an unlimited rate; reverse (-R):
    the server sends; congestion: TCP congestion control of both ends (-C; iperf3 passes it on to
    the server), "" for the namespace's default."""
    argv = ["iperf3", "-c", host, "-p", str(port), "-J", "-t", _seconds_arg(seconds)]
    argv += ["--connect-timeout", str(connect_timeout_ms)]
    if streams > 1:
        argv += ["-P", str(streams)]
    if reverse:
        argv += ["-R"]
    if udp:
        argv += ["-u", "-b", "0", "-l", str(UDP_PAYLOAD)]
    elif congestion:
        argv += ["-C", congestion]
    return argv


def probe_argv(host: str, port: int = DEFAULT_PORT, connect_timeout_ms: int = 1000) -> list[str]:
    """A tiny end-to-end transfer (1 KiB): proves a TCP path works without ICMP."""
    return [
        "iperf3",
        "-c",
        host,
        "-p",
        str(port),
        "-J",
        "-n",
        "1K",
        "--connect-timeout",
        str(connect_timeout_ms),
    ]


def _seconds_arg(seconds: float) -> str:
    """iperf3 (3.12) reads -t as a whole number, and 0 means forever: round a fraction up."""
    if seconds <= 0:
        raise ValueError(f"iperf3 duration must be positive, got {seconds}")
    return str(math.ceil(seconds))


def _load(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        first = text.strip().splitlines()[0][:120] if text.strip() else "no output"
        raise IperfError(f"iperf3 printed no JSON ({first})") from exc
    if not isinstance(doc, dict):
        raise IperfError("iperf3 JSON is not an object")
    if doc.get("error"):
        raise IperfError(f"iperf3: {doc['error']}")
    end = doc.get("end")
    if not isinstance(end, dict) or not end:
        raise IperfError("iperf3 JSON has no end summary")
    return end


def _section(end: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        sec = end.get(name)
        if isinstance(sec, dict):
            return sec
    raise IperfError(f"iperf3 JSON has none of {', '.join(names)}")


def parse_tcp(text: str) -> TcpResult:
    end = _load(text)
    received = _section(end, "sum_received")
    sent = _section(end, "sum_sent")
    streams = end.get("streams")
    return TcpResult(
        gbps=float(received["bits_per_second"]) / 1e9,
        retransmits=int(sent.get("retransmits", 0)),
        seconds=float(received.get("seconds", sent.get("seconds", 0.0))),
        streams=len(streams) if isinstance(streams, list) else 1,
        congestion=str(end.get("sender_tcp_congestion", "")),
    )


def parse_udp(text: str) -> UdpResult:
    end = _load(text)
    # iperf3 >= 3.11 has sum_received (the server's view, sent to the client); older ones only sum.
    summary = _section(end, "sum_received", "sum")
    return UdpResult(
        gbps=float(summary["bits_per_second"]) / 1e9,
        sent_packets=int(summary["packets"]),
        lost_packets=max(0, int(summary["lost_packets"])),
        seconds=float(summary["seconds"]),
    )


def run_client(ns: Namespace, argv: list[str], seconds: float) -> str:
    """Run an iperf3 client in ns and return its JSON text; IperfError if it hangs or fails outright."""
    try:
        proc = ns.run(argv, check=False, timeout=seconds + 20)
    except subprocess.TimeoutExpired as exc:
        raise IperfError(f"iperf3 did not finish within {seconds + 20:g} s") from exc
    if not proc.stdout.strip():
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise IperfError(f"iperf3: {reason[:160]}")
    return proc.stdout


def run_tcp(
    ns: Namespace,
    host: str,
    seconds: float,
    streams: int = 1,
    port: int = DEFAULT_PORT,
    reverse: bool = False,
    congestion: str = "",
) -> TcpResult:
    argv = client_argv(host, seconds, streams=streams, port=port, reverse=reverse, congestion=congestion)
    return parse_tcp(run_client(ns, argv, seconds))


def run_udp(ns: Namespace, host: str, seconds: float, port: int = DEFAULT_PORT) -> UdpResult:
    return parse_udp(run_client(ns, client_argv(host, seconds, udp=True, port=port), seconds))
