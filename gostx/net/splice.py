"""Relay two connected TCP sockets both ways with splice(2): the bytes never enter Python.

Each direction owns a pipe (enlarged to 1 MiB where allowed). When the source is readable, one
splice moves up to the pipe's size from the socket into the pipe and a second moves it on to the
destination socket; Python only runs once per readiness event, not per byte or per segment.

Flow control: a direction reads only while its pipe is empty; when the destination cannot take
everything, reading stops and the destination's writability resumes the flush. An EOF is passed on
as shutdown(SHUT_WR) once the pipe is drained (half-close). The relay ends when both directions
have seen EOF, or at the first error (reset, broken pipe), which closes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket

PIPE_SIZE = 1 << 20
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


class _Direction:
    def __init__(self, relay: SpliceRelay, src: socket.socket, dst: socket.socket) -> None:
        self.relay = relay
        self.loop = relay.loop
        self.src, self.dst = src, dst
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.chunk = 1 << 16  # the default pipe size
        with contextlib.suppress(OSError):
            self.chunk = fcntl.fcntl(self.wfd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.pending = 0
        self.bytes = 0
        self.eof = False
        self.finished = False
        self.reading = False
        self.writing = False

    # -- event registration ----------------------------------------------------------------
    def want_read(self) -> None:
        if not self.reading:
            self.reading = True
            self.loop.add_reader(self.src_fd, self.on_readable)

    def stop_read(self) -> None:
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.src_fd)

    def want_write(self) -> None:
        if not self.writing:
            self.writing = True
            self.loop.add_writer(self.dst_fd, self.flush)

    def stop_write(self) -> None:
        if self.writing:
            self.writing = False
            self.loop.remove_writer(self.dst_fd)

    # -- data movement ---------------------------------------------------------------------
    def on_readable(self) -> None:
        try:
            n = os.splice(self.src_fd, self.wfd, self.chunk, flags=_FLAGS)
        except BlockingIOError:
            return
        except OSError as exc:
            self.relay.fail(exc)
            return
        if n == 0:
            self.eof = True
            self.stop_read()
            self.finish()
            return
        self.pending += n
        self.bytes += n
        self.flush()

    def flush(self) -> None:
        while self.pending:
            try:
                m = os.splice(self.rfd, self.dst_fd, self.pending, flags=_FLAGS)
            except BlockingIOError:
                self.stop_read()
                self.want_write()
                return
            except OSError as exc:
                self.relay.fail(exc)
                return
            self.pending -= m
        self.stop_write()
        if self.eof:
            self.finish()
        else:
            self.want_read()

    def finish(self) -> None:
        if self.pending or self.finished:
            return
        self.finished = True
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)
        self.relay.direction_finished()

    def close(self) -> None:
        self.stop_read()
        self.stop_write()
        for fd in (self.rfd, self.wfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.rfd = self.wfd = -1


class SpliceRelay:
    """`await SpliceRelay(a, b).run()` relays a <-> b until both ends are done; it owns both sockets."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        self.a, self.b = a, b
        self.error: OSError | None = None
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.forward: _Direction | None = None
        self.backward: _Direction | None = None

    @property
    def bytes_a_to_b(self) -> int:
        return self.forward.bytes if self.forward else 0

    @property
    def bytes_b_to_a(self) -> int:
        return self.backward.bytes if self.backward else 0

    async def run(self) -> None:
        try:
            self.forward = _Direction(self, self.a, self.b)
            self.backward = _Direction(self, self.b, self.a)
            self.forward.want_read()
            self.backward.want_read()
            await self.done
        finally:
            self.close()

    def direction_finished(self) -> None:
        if self.forward and self.backward and self.forward.finished and self.backward.finished:
            self._set_done()

    def fail(self, exc: OSError) -> None:
        self.error = self.error or exc
        self.close()
        self._set_done()

    def _set_done(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        for direction in (self.forward, self.backward):
            if direction is not None:
                direction.close()
        for sock in (self.a, self.b):
            sock.close()
