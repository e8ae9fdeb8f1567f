# Fake TCP transport binding (csrc/faketcp/faketcp_linux.c): the FakeTcp class. Python dials or listens
# (the connect is non-blocking: the caller awaits conn_fd writable, then finish_dial), attaches it to
# a Tunnel, and closes it; every segment is built and parsed in C by the tunnel's threads.

# Field order of struct gx_faketcp_stats (all uint64_t).
FAKETCP_STAT_NAMES = (
    "rx_segments", "rx_datagrams", "rx_orphan", "rx_bad", "rx_resets", "tx_segments", "tx_no_flow",
    "tx_resets", "tx_acks", "accepted", "flows_closed", "flows",
)


cdef socklen_t _fill_sockaddr(sockaddr_storage *out, str host, int port) except 0:
    """(IP literal, port) -> sockaddr_in / sockaddr_in6 in out; returns its length."""
    cdef sockaddr_in *s4
    cdef sockaddr_in6 *s6
    cdef bytes packed
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    ip = _ipaddress.ip_address(host)
    packed = ip.packed
    memset(out, 0, sizeof(sockaddr_storage))
    if ip.version == 4:
        s4 = <sockaddr_in *>out
        s4.sin_family = AF_INET
        s4.sin_port = htons(port)
        memcpy(&s4.sin_addr, <const char *>packed, 4)
        return sizeof(sockaddr_in)
    s6 = <sockaddr_in6 *>out
    s6.sin6_family = AF_INET6
    s6.sin6_port = htons(port)
    memcpy(&s6.sin6_addr, <const char *>packed, 16)
    return sizeof(sockaddr_in6)


cdef class FakeTcp:
    """A fake-TCP endpoint: a client flow (dial) or a server (listen). Attach it to a Tunnel before
    the tunnel starts; close() stops that tunnel first, then closes the sockets."""

    cdef gx_faketcp *f
    cdef object _tunnel
    cdef readonly bint server

    def __cinit__(self):
        self.f = NULL
        self._tunnel = None

    @staticmethod
    def dial(str host, int port, double idle_timeout=0.0):
        """Start connecting to host:port (an IP literal). Wait until conn_fd is writable, then call
        finish_dial(). idle_timeout > 0: the flow ends after that many seconds without a segment."""
        cdef sockaddr_storage addr
        cdef socklen_t alen = _fill_sockaddr(&addr, host, port)
        cdef FakeTcp obj = FakeTcp.__new__(FakeTcp)
        cdef uint32_t idle_ms = <uint32_t>(idle_timeout * 1000) if idle_timeout > 0 else 0
        _check(gx_faketcp_dial(&obj.f, <const sockaddr *>&addr, alen, idle_ms))
        obj.server = False
        return obj

    def finish_dial(self) -> None:
        """The connect's result (OSError on failure), then mute the kernel connection."""
        self._need()
        _check(gx_faketcp_dial_finish(self.f))

    @staticmethod
    def listen(str host, int port, bint dual_stack=True, double flow_timeout=300.0, int max_flows=4096):
        """Listen on host:port (an IP literal; "::" with dual_stack also takes IPv4 clients)."""
        cdef sockaddr_storage addr
        cdef socklen_t alen = _fill_sockaddr(&addr, host, port)
        cdef FakeTcp obj = FakeTcp.__new__(FakeTcp)
        if max_flows < 1 or max_flows > (1 << 20):
            raise ValueError(f"max_flows must be 1..{1 << 20}")
        _check(gx_faketcp_listen(&obj.f, <const sockaddr *>&addr, alen, dual_stack,
                                 <uint32_t>(flow_timeout * 1000) if flow_timeout > 0 else 0,
                                 <uint32_t>max_flows))
        obj.server = True
        return obj

    cdef _need(self):
        if self.f == NULL:
            raise ValueError("fake TCP endpoint is closed")

    @property
    def conn_fd(self) -> int:
        """The kernel TCP socket: the connecting one (client) or the listener (server)."""
        self._need()
        return gx_faketcp_conn_fd(self.f)

    @property
    def local_address(self):
        """(ip, port) of the kernel TCP socket."""
        cdef sockaddr_storage a
        cdef socklen_t alen = 0
        self._need()
        _check(gx_faketcp_local(self.f, &a, &alen))
        return _sockaddr_to_tuple(&a, alen)

    def stats(self) -> dict:
        cdef uint64_t raw[16]
        self._need()
        gx_faketcp_get_stats(self.f, <gx_faketcp_stats *>raw)
        return {name: raw[i] for i, name in enumerate(FAKETCP_STAT_NAMES)}

    def attach(self, Tunnel tunnel) -> None:
        """Make this the tunnel's transport (before tunnel.start())."""
        cdef gx_transport tr
        self._need()
        if self._tunnel is not None:
            raise ValueError("fake TCP endpoint is already attached to a tunnel")
        _check(gx_faketcp_transport(self.f, &tr))
        _check(gx_tunnel_set_transport(tunnel.t, &tr))
        self._tunnel = tunnel

    cdef void _stop_tunnel(self) noexcept:
        cdef gx_tunnel *t
        if self._tunnel is not None:
            t = (<Tunnel>self._tunnel).t
            if t != NULL:
                with nogil:
                    gx_tunnel_stop(t)

    def close(self) -> None:
        """Stop the attached tunnel's threads, then close every socket. Idempotent."""
        self._stop_tunnel()
        if self.f != NULL:
            with nogil:
                gx_faketcp_close(self.f)
            self.f = NULL

    def __dealloc__(self):
        if self.f != NULL:
            self._stop_tunnel()
            with nogil:
                gx_faketcp_close(self.f)
            self.f = NULL
