# The SOCKS5 0xF3 relay binding (csrc/proxy/socks_relay.c): the socks5 handler's UDP-over-TCP relay mode runs on
# the shared relay engine's threads (csrc/proxy/relay_engine.c); Python starts it, awaits its event fd and reads
# its counters.

def relay_engine_stats() -> dict:
    """The shared relay engine: threads running, relays attached now, relays ever attached."""
    cdef gx_relay_engine_stats st
    gx_relay_engine_get_stats(&st)
    return {"threads": st.threads, "relays": st.relays, "attached": st.attached}


cdef class SocksUdpRelay:
    """Frames on a stream fd <-> datagrams on a UDP socket fd (both non-blocking, owned by the caller,
    kept open until this object is stopped)."""

    cdef gx_socks_relay *r

    def __cinit__(self, int stream_fd, int udp_fd, int max_datagram=0):
        if max_datagram < 0 or max_datagram > 65535:
            raise ValueError(f"max_datagram {max_datagram} out of range 0..65535")
        _check(gx_socks_relay_new(&self.r, stream_fd, udp_fd, <uint32_t>max_datagram))

    def __dealloc__(self):
        if self.r != NULL:
            with nogil:
                gx_socks_relay_free(self.r)
            self.r = NULL

    def start(self) -> None:
        _check(gx_socks_relay_start(self.r))

    def cancel(self) -> None:
        """Ask the engine to let go of the relay (never blocks); event_fd becomes readable once it has."""
        if self.r != NULL:
            gx_socks_relay_cancel(self.r)

    def stop(self) -> None:
        """Cancel and wait until the engine let go (blocks briefly; idempotent)."""
        if self.r != NULL:
            with nogil:
                gx_socks_relay_stop(self.r)

    @property
    def event_fd(self) -> int:
        """Readable once the engine let go: the relay ended by itself (stream EOF, reset or a malformed
        frame) or was cancelled. Then no C thread touches it or its fds any more."""
        return gx_socks_relay_event_fd(self.r)

    @property
    def status(self) -> int:
        """0 while running or after a clean EOF, else the errno that ended it (EPROTO: bad frame)."""
        return gx_socks_relay_status(self.r)

    def stats(self) -> dict:
        cdef gx_socks_relay_stats st
        gx_socks_relay_get_stats(self.r, &st)
        return {"up_pkts": st.up_pkts, "up_bytes": st.up_bytes, "down_pkts": st.down_pkts,
                "down_bytes": st.down_bytes, "drop_up": st.drop_up, "drop_down": st.drop_down,
                "gso_sends": st.gso_sends, "gso_fallbacks": st.gso_fallbacks}
