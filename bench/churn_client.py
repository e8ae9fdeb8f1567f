"""The near end of the churn test: N short flows always in flight, for a fixed time, single-threaded on epoll.

    python3 bench/churn_client.py HOST PORT [--inflight N] [--seconds S] [--mode tcp|udp|mix]
                                  [--timeout T] [--size B]

A TCP flow is what a browser's short request is: connect, write SIZE bytes, read the echo, write
again, close. A UDP flow is a DNS-like session: a new socket (a new source port), one SIZE-byte
datagram, the echo, close. `mix` keeps half of the flows in flight TCP and half UDP. Whenever a flow
ends, the next one starts; after S seconds no flow starts and the ones in flight finish.

A flow fails when it gets no answer (connect, or echo) within T seconds, or an error (refused, reset,
wrong bytes). Prints one JSON object: per kind, flows ok and failed (by reason), the rate of flows
that completed (per second of the run), and the connect time (TCP: connect() to writable) and the
exchange time (UDP: send to echo) percentiles, in milliseconds. Standalone (no gostx import).
"""

from __future__ import annotations

import argparse
import collections
import errno
import json
import os
import resource
import select
import socket
import sys
import time
from dataclasses import dataclass, field

CONNECTING, ECHO = 1, 2
EV_OUT = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP
EV_IN = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    times: list[float] = field(default_factory=list)   # ms: TCP connect, UDP exchange
    echo_times: list[float] = field(default_factory=list)   # ms, TCP: the first write to its echo
    first_failure_s: float | None = None

    def fail(self, reason: str, at: float) -> None:
        self.failed += 1
        self.reasons[reason] += 1
        if self.first_failure_s is None:
            self.first_failure_s = at

    def report(self, elapsed: float) -> dict[str, object]:
        times, echoes = sorted(self.times), sorted(self.echo_times)

        def pct(values: list[float], p: float) -> float | None:
            if not values:
                return None
            return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3)

        return {"ok": self.ok, "failed": self.failed, "reasons": dict(self.reasons),
                "rate": round(self.ok / elapsed, 1) if elapsed > 0 else 0.0,
                "p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "max_ms": round(times[-1], 3) if times else None,
                "echo_p50_ms": pct(echoes, 50), "echo_p99_ms": pct(echoes, 99),
                "first_failure_s": None if self.first_failure_s is None else round(self.first_failure_s, 2)}


class Flow:
    __slots__ = ("deadline", "done", "got", "kind", "sock", "state", "t0", "t_sent")

    def __init__(self, kind: str, sock: socket.socket, t0: float, deadline: float) -> None:
        self.kind = kind
        self.sock = sock
        self.t0 = t0
        self.deadline = deadline
        self.state = CONNECTING
        self.got = 0
        self.done = False
        self.t_sent = t0


class Churn:
    def __init__(self, host: str, port: int, inflight: int, seconds: float, mode: str, timeout: float,
                 size: int) -> None:
        self.addr = (host, port)
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.inflight = inflight
        self.seconds = seconds
        self.mode = mode
        self.timeout = timeout
        self.payload = bytes((i * 7 + 1) & 0xff for i in range(size))
        self.ep = select.epoll()
        self.flows: dict[int, Flow] = {}
        self.order: collections.deque[Flow] = collections.deque()   # start order = deadline order
        self.tally = {"tcp": Tally(), "udp": Tally()}
        self.active = {"tcp": 0, "udp": 0}
        self.start = 0.0

    def quota(self, kind: str) -> int:
        if self.mode == "mix":
            return (self.inflight + (kind == "tcp")) // 2
        return self.inflight if self.mode == kind else 0

    # ---- flows ----
    def open(self, kind: str, now: float) -> None:
        sock = socket.socket(self.family, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
        sock.setblocking(False)
        flow = Flow(kind, sock, now, now + self.timeout)
        self.active[kind] += 1
        try:
            sock.connect(self.addr)
        except BlockingIOError:
            pass
        except OSError as exc:
            self.end(flow, now, errno.errorcode.get(exc.errno or 0, str(exc)))
            return
        fd = sock.fileno()
        self.flows[fd] = flow
        self.order.append(flow)
        if kind == "tcp":
            self.ep.register(fd, EV_OUT)
            return
        flow.state = ECHO
        try:
            sock.send(self.payload)
        except OSError as exc:
            self.end(flow, now, errno.errorcode.get(exc.errno or 0, str(exc)))
            return
        self.ep.register(fd, EV_IN)

    def end(self, flow: Flow, now: float, failure: str | None) -> None:
        if flow.done:
            return
        flow.done = True
        self.active[flow.kind] -= 1
        tally = self.tally[flow.kind]
        if failure is None:
            tally.ok += 1
        else:
            tally.fail(failure, flow.t0 - self.start)
        fd = flow.sock.fileno()
        if self.flows.pop(fd, None) is not None:
            self.ep.unregister(fd)
        flow.sock.close()

    def event(self, flow: Flow, events: int, now: float) -> None:
        sock = flow.sock
        if flow.state == CONNECTING:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.end(flow, now, errno.errorcode.get(code, str(code)))
                return
            self.tally["tcp"].times.append((now - flow.t0) * 1000)
            flow.state = ECHO
            flow.t_sent = now
            try:
                sock.send(self.payload)
            except OSError as exc:
                self.end(flow, now, errno.errorcode.get(exc.errno or 0, str(exc)))
                return
            self.ep.modify(sock.fileno(), EV_IN)
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.end(flow, now, errno.errorcode.get(exc.errno or 0, str(exc)))
            return
        if flow.kind == "udp":
            if data != self.payload:
                self.end(flow, now, "wrong-bytes")
                return
            self.tally["udp"].times.append((now - flow.t0) * 1000)
            self.end(flow, now, None)
            return
        if not data:
            self.end(flow, now, "eof")
            return
        if data != self.payload[flow.got:flow.got + len(data)]:
            self.end(flow, now, "wrong-bytes")
            return
        flow.got += len(data)
        if flow.got < len(self.payload):
            return
        self.tally["tcp"].echo_times.append((now - flow.t_sent) * 1000)
        try:
            sock.send(self.payload)   # the second write, then close
        except OSError as exc:
            self.end(flow, now, errno.errorcode.get(exc.errno or 0, str(exc)))
            return
        self.end(flow, now, None)

    def expire(self, now: float) -> None:
        order = self.order
        while order and (order[0].done or order[0].deadline <= now):
            flow = order.popleft()
            if not flow.done:
                why = "timeout-connect" if flow.kind == "tcp" and flow.state == CONNECTING else "timeout-echo"
                self.end(flow, now, why)

    def run(self) -> dict[str, object]:
        self.start = now = time.monotonic()
        stop_at = self.start + self.seconds
        while True:
            if now < stop_at:
                for kind in ("tcp", "udp"):
                    while self.active[kind] < self.quota(kind):
                        self.open(kind, now)
            elif not self.flows:
                break
            for fd, events in self.ep.poll(0.05, 1024):
                flow = self.flows.get(fd)
                if flow is not None:
                    self.event(flow, events, time.monotonic())
            now = time.monotonic()
            self.expire(now)
        elapsed = min(now, stop_at + self.timeout) - self.start
        out: dict[str, object] = {"mode": self.mode, "inflight": self.inflight, "seconds": self.seconds,
                                  "elapsed": round(elapsed, 2)}
        ok = failed = 0
        for kind in ("tcp", "udp"):
            if self.quota(kind) > 0:
                out[kind] = self.tally[kind].report(self.seconds)
                ok += self.tally[kind].ok
                failed += self.tally[kind].failed
        out["ok"], out["failed"], out["rate"] = ok, failed, round(ok / self.seconds, 1)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--inflight", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--mode", choices=("tcp", "udp", "mix"), default="tcp")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    raise_fd_limit()
    result = Churn(args.host, args.port, args.inflight, args.seconds, args.mode, args.timeout, args.size).run()
    result["pid"] = os.getpid()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
