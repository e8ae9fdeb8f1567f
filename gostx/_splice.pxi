# The TCP splice relay (csrc/proxy/splice_relay.c): two plain sockets relayed both ways with splice(2) on the
# shared relay engine's threads; Python starts it, awaits its event fd and reads the byte counts.

cdef class TcpSpliceRelay:
    """fd_a <-> fd_b (connected non-blocking stream sockets, owned by the caller and kept open until this
    object is stopped or its event_fd is readable), relayed with splice(2) in C."""

    cdef gx_splice_relay *r

    def __cinit__(self, int fd_a, int fd_b, size_t pipe_size=0):
        _check(gx_splice_relay_new(&self.r, fd_a, fd_b, pipe_size))

    def __dealloc__(self):
        if self.r != NULL:
            with nogil:
                gx_splice_relay_free(self.r)
            self.r = NULL

    def start(self) -> None:
        _check(gx_splice_relay_start(self.r))

    def cancel(self) -> None:
        """Ask the engine to let go of the relay (never blocks); event_fd becomes readable once it has."""
        gx_splice_relay_cancel(self.r)

    def stop(self) -> None:
        """Cancel and wait until the engine let go (blocks briefly; idempotent)."""
        with nogil:
            gx_splice_relay_stop(self.r)

    @property
    def event_fd(self) -> int:
        """Readable once the engine let go: both EOFs passed on, an error, or a cancel."""
        return gx_splice_relay_event_fd(self.r)

    @property
    def status(self) -> int:
        """0 while running, after both EOFs or a cancel; else the errno that ended it."""
        return gx_splice_relay_status(self.r)

    @property
    def finished(self) -> bool:
        """Both directions passed their EOF on (the relay ended by itself, cleanly)."""
        return gx_splice_relay_finished(self.r) != 0

    @property
    def bytes(self) -> tuple:
        """(bytes a -> b, bytes b -> a) so far."""
        cdef gx_splice_relay_stats st
        gx_splice_relay_get_stats(self.r, &st)
        return (st.bytes_ab, st.bytes_ba)

    def stats(self) -> dict:
        """The counters by name, as every C relay gives them (gostx/net/crelay.py)."""
        a_to_b, b_to_a = self.bytes
        return {"bytes_a_to_b": a_to_b, "bytes_b_to_a": b_to_a}
