"""Direct dials without a Task: the common tungo case (no chain, no sniffing) as event-loop callbacks.

A flow whose upstream is a direct dial to its original destination (an IP literal) needs no coroutine:
the socket is created and connect() issued at once, and the connected fd goes to the stack when it is
writable. Per flow that is one small object instead of a Task with seven coroutine frames and an
asyncio.timeout (about 5 KB each; a burst of 1000 new flows had them all in flight at once).

The dials in flight share one epoll set (registered once with the loop as a reader) and one timer: a
wake-up completes every dial that finished since the last one, with one epoll_wait, and a dial costs an
EPOLL_CTL_ADD (one-shot; closing the fd removes it) and a deadline appended to a queue, instead of an
asyncio writer (add_writer/remove_writer: two epoll_ctl and the selector's bookkeeping) and a
call_later timer (a heap entry, cancelled on success). All the dials have the same dialTimeout, so the
queue is in deadline order; one TimerHandle waits for its head. Measured under churn (bench/README.md,
"Connection churn"): these were about a third of the Python thread's time per flow.

Behaviour is the Router's for a direct route (gostx.chain.router): 1 + retries attempts, each limited to
dialTimeout and trying every `interface` in turn; the debug line per failed attempt and the one warning
when all fail read the same; the loop guard (OwnSockets) records each dial before it is issued.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import select
import socket

from gostx import _engine
from gostx.addr import join_host_port
from gostx.chain.router import reason
from gostx.handler.tungo.ports import SourcePorts
from gostx.handler.tungo.upstream import OwnSockets, start_connect
from gostx.log import FieldLogger
from gostx.net.direct import DialOptions

Address = tuple[str, int]
_FAILED = select.EPOLLERR | select.EPOLLHUP


class DirectDials:
    """The in-flight direct dials of one handler."""

    def __init__(self, stack: _engine.Stack, opts: DialOptions, retries: int, timeout: float, own: OwnSockets,
                 log: FieldLogger, ports: SourcePorts | None = None) -> None:
        self.stack = stack
        self.ports = ports
        self.opts = opts
        self.attempts = 1 + max(retries, 0)
        self.timeout = timeout
        self.own = own
        self.log = log
        self.failures = 0  # flows given up because every dial attempt failed (metrics, kill -USR1)
        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, DirectDial] = {}
        self.connecting: dict[int, DirectDial] = {}   # fd -> the TCP dial waiting for it to be writable
        self.deadlines: collections.deque[tuple[float, int, int]] = collections.deque()  # (when, flow, serial)
        self.serial = 0
        self.timer: asyncio.TimerHandle | None = None
        self.ep = select.epoll()
        self.loop.add_reader(self.ep.fileno(), self._ready)

    def start(self, network: str, flow_id: int, src: Address, dst: Address) -> None:
        dial = DirectDial(self, network, flow_id, src, dst)
        self.pending[flow_id] = dial
        dial.attempt()

    def __len__(self) -> int:
        return len(self.pending)

    def close(self) -> None:
        """Abandon every dial in flight: its socket is closed and its flow dropped."""
        for dial in list(self.pending.values()):
            dial.fail(None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.deadlines.clear()
        if not self.ep.closed:
            self.loop.remove_reader(self.ep.fileno())
            self.ep.close()

    # ---- shared by the dials in flight ------------------------------------------------------------------
    def watch(self, dial: DirectDial, fd: int) -> None:
        """Call dial._writable() once fd is writable (connected or failed)."""
        self.ep.register(fd, select.EPOLLOUT | select.EPOLLONESHOT)
        self.connecting[fd] = dial

    def unwatch(self, fd: int) -> None:
        """Before fd is closed (closing removes it from the epoll set)."""
        self.connecting.pop(fd, None)

    def _ready(self) -> None:
        for fd, events in self.ep.poll(0):
            dial = self.connecting.pop(fd, None)
            if dial is not None:
                dial._writable(events)

    def arm(self, flow_id: int) -> int:
        """Start the dialTimeout of an attempt; its serial tells the timeout which attempt it ends."""
        self.serial += 1
        when = self.loop.time() + self.timeout
        deadlines, pending = self.deadlines, self.pending
        # deadlines of attempts already over (connected, failed) leave from the old end as they reach it,
        # so the queue holds about the dials in flight, not dialTimeout's worth of every dial
        while deadlines and ((dial := pending.get(deadlines[0][1])) is None or dial.serial != deadlines[0][2]):
            deadlines.popleft()
        deadlines.append((when, flow_id, self.serial))
        if self.timer is None:
            self.timer = self.loop.call_at(when, self._expire)
        return self.serial

    def _expire(self) -> None:
        self.timer = None
        now, deadlines, pending = self.loop.time() + 0.001, self.deadlines, self.pending
        while deadlines and deadlines[0][0] <= now:
            _when, flow_id, serial = deadlines.popleft()
            dial = pending.get(flow_id)
            if dial is not None and dial.serial == serial:
                dial._timed_out()
        if deadlines:
            self.timer = self.loop.call_at(deadlines[0][0], self._expire)


class DirectDial:
    __slots__ = (
        "candidates",
        "dials",
        "dst",
        "error",
        "family",
        "flow_id",
        "left",
        "network",
        "serial",
        "sock",
        "src",
    )

    def __init__(self, dials: DirectDials, network: str, flow_id: int, src: Address, dst: Address) -> None:
        self.dials = dials
        self.network = network
        self.flow_id = flow_id
        self.src = src
        self.dst = dst
        self.family = socket.AF_INET6 if ":" in dst[0] else socket.AF_INET
        self.left = dials.attempts
        self.candidates: list[str] = []
        self.sock: socket.socket | None = None
        self.serial = 0                          # the attempt whose dialTimeout runs; 0: none
        self.error: BaseException | None = None

    # ---- attempts (each: every interface in turn, within one dialTimeout) ----------------------------
    def attempt(self) -> None:
        if self.left == 0:
            self.fail(self.error)
            return
        self.left -= 1
        self.candidates = list(reversed(self.dials.opts.interfaces or [""]))
        self.serial = self.dials.arm(self.flow_id)
        self._next_candidate()

    def _next_candidate(self) -> None:
        dials = self.dials
        while self.candidates:
            interface = self.candidates.pop()
            try:
                sock = start_connect(self.network, self.family, self.dst, dials.opts, interface, dials.ports)
            except OSError as exc:
                self.error = exc
                continue
            dials.own.add(sock)  # before any answer can come back through the device
            self.sock = sock
            if self.network == "udp":
                self._connected()
                return
            dials.watch(self, sock.fileno())
            return
        self._attempt_failed()

    def _writable(self, events: int) -> None:
        sock = self.sock
        assert sock is not None
        # writable without an error or hang-up: connected (a TCP socket still in SYN_SENT is never
        # writable), no SO_ERROR to read
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if events & _FAILED else 0
        if code == 0:
            self._connected()
            return
        self.sock = None
        sock.close()
        self.error = OSError(code, os.strerror(code))
        self._next_candidate()

    def _timed_out(self) -> None:
        self.serial = 0
        self._drop_sock()
        self.candidates = []
        self.error = TimeoutError()
        self._attempt_failed()

    def _attempt_failed(self) -> None:
        self.serial = 0
        dials = self.dials
        tried = dials.attempts - self.left
        target = join_host_port(*self.dst)
        dials.log.debug(f"dial {self.network} {target} via direct (attempt {tried}): "
                        f"{reason(self.error or OSError('no address'))}")
        self.attempt()

    # ---- outcomes -------------------------------------------------------------------------------------
    def _connected(self) -> None:
        self.serial = 0
        dials, sock = self.dials, self.sock
        assert sock is not None
        self.sock = None
        dials.pending.pop(self.flow_id, None)
        fd = sock.detach()
        try:
            dials.stack.connect(self.flow_id, fd)
        except OSError:  # the stack is stopping
            os.close(fd)
            dials.stack.drop(self.flow_id)
            return
        if dials.log.isEnabledFor(logging.DEBUG):
            target, src = join_host_port(*self.dst), join_host_port(*self.src)
            dials.log.debug(f"{self.network} {src} -> {target}",
                            extra={"network": self.network, "src": src, "dst": target})

    def fail(self, error: BaseException | None) -> None:
        """Give the flow up: the client's flow is reset / dropped; with an error, one warning says why."""
        self.serial = 0
        self._drop_sock()
        dials = self.dials
        dials.pending.pop(self.flow_id, None)
        dials.stack.drop(self.flow_id)
        if error is None:
            return
        dials.failures += 1
        target, src = join_host_port(*self.dst), join_host_port(*self.src)
        last = f"dial {self.network} {target} via direct: {reason(error)}"
        dials.log.warning(f"{self.network} {src} -> {target}: {last}",
                          extra={"network": self.network, "src": src, "dst": target})

    def _drop_sock(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            if self.network == "tcp":
                self.dials.unwatch(sock.fileno())
            sock.close()
