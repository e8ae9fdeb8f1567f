"""Direct dials without a Task: the common tungo case (no chain, no sniffing) as event-loop callbacks.

A flow whose upstream is a direct dial to its original destination (an IP literal) needs no coroutine:
the socket is created and connect() issued at once, the loop calls back when it is writable (or the
timer fires), and the connected fd goes to the stack. Per flow that is one small object, a selector
registration and a timer, instead of a Task with seven coroutine frames and an asyncio.timeout (about
5 KB each; a burst of 1000 new flows had them all in flight at once).

Behaviour is the Router's for a direct route (gostx.chain.router): 1 + retries attempts, each limited to
dialTimeout and trying every `interface` in turn; the debug line per failed attempt and the one warning
when all fail read the same; the loop guard (OwnSockets) records each dial before it is issued.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from gostx import _engine
from gostx.addr import join_host_port
from gostx.chain.router import reason
from gostx.handler.tungo.ports import SourcePorts
from gostx.handler.tungo.upstream import OwnSockets, start_connect
from gostx.log import FieldLogger
from gostx.net.direct import DialOptions

Address = tuple[str, int]


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
        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, DirectDial] = {}

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
        "sock",
        "src",
        "timer",
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
        self.timer: asyncio.TimerHandle | None = None
        self.error: BaseException | None = None

    # ---- attempts (each: every interface in turn, within one dialTimeout) ----------------------------
    def attempt(self) -> None:
        if self.left == 0:
            self.fail(self.error)
            return
        self.left -= 1
        self.candidates = list(reversed(self.dials.opts.interfaces or [""]))
        self.timer = self.dials.loop.call_later(self.dials.timeout, self._timed_out)
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
            dials.loop.add_writer(sock.fileno(), self._writable)
            return
        self._attempt_failed()

    def _writable(self) -> None:
        sock = self.sock
        assert sock is not None
        self.dials.loop.remove_writer(sock.fileno())
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            self._connected()
            return
        self.sock = None
        sock.close()
        self.error = OSError(code, os.strerror(code))
        self._next_candidate()

    def _timed_out(self) -> None:
        self.timer = None
        self._drop_sock()
        self.candidates = []
        self.error = TimeoutError()
        self._attempt_failed()

    def _attempt_failed(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        dials = self.dials
        tried = dials.attempts - self.left
        target = join_host_port(*self.dst)
        dials.log.debug(f"dial {self.network} {target} via direct (attempt {tried}): "
                        f"{reason(self.error or OSError('no address'))}")
        self.attempt()

    # ---- outcomes -------------------------------------------------------------------------------------
    def _connected(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
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
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._drop_sock()
        dials = self.dials
        dials.pending.pop(self.flow_id, None)
        dials.stack.drop(self.flow_id)
        if error is None:
            return
        target, src = join_host_port(*self.dst), join_host_port(*self.src)
        last = f"dial {self.network} {target} via direct: {reason(error)}"
        dials.log.warning(f"{self.network} {src} -> {target}: {last}",
                          extra={"network": self.network, "src": src, "dst": target})

    def _drop_sock(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            if self.network == "tcp":
                self.dials.loop.remove_writer(sock.fileno())
            sock.close()
