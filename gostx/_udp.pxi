# UDP relays in C (csrc/proxy/udp_fwd.c): `-L udp://` port forwarding on the shared relay engine. Python is
# told when a session starts (it answers with the session's upstream fd, or refuses) and when it ends;
# no Python per datagram. Needs the sockaddr declarations of _tunnel.pxi (included before this file).

UDP_FWD_STAT_NAMES = ("up_pkts", "up_bytes", "down_pkts", "down_bytes", "sessions_open", "sessions_total",
                      "drop_sessions", "drop_refused", "drop_queue", "drop_size", "drop_send", "drop_malformed",
                      "gso_sends", "gso_fallbacks")
UDP_FWD_OPEN = 1
UDP_FWD_CLOSE = 2
UDP_FWD_DGRAM = 0  # a connected datagram socket, no header
UDP_FWD_ASSOC = 1  # UDP to a SOCKS5 ASSOCIATE relay: its header on every datagram
UDP_FWD_F3 = 2     # a stream after a SOCKS5 0xF3 handshake: LEN + header + data frames
UDP_FWD_RELAY = 3  # a relay-protocol UDP stream after its handshake: LEN + data frames


cdef class UdpForwarder:
    """One listening UDP socket forwarded per client session, in C. The forwarder owns listen_fd (and
    every fd given to route()) from the moment it is made."""

    cdef gx_udp_fwd *f

    def __cinit__(self, int listen_fd, int max_sessions, int queue, double ttl, int max_datagram=0):
        cdef gx_udp_fwd_config cfg
        if max_sessions < 1 or queue < 1 or max_datagram < 0 or max_datagram > 65535 or ttl <= 0:
            raise ValueError("UdpForwarder: max_sessions, queue and ttl must be positive, max_datagram 0..65535")
        cfg.max_sessions = <uint32_t>min(max_sessions, 1 << 20)
        cfg.queue = <uint32_t>min(queue, 4096)
        cfg.max_datagram = <uint32_t>max_datagram
        cfg.ttl_ms = <uint32_t>max(10, min(ttl * 1000.0, 4e9))
        self.f = NULL
        _check(gx_udp_fwd_new(&self.f, listen_fd, &cfg))

    def __dealloc__(self):
        if self.f != NULL:
            with nogil:
                gx_udp_fwd_free(self.f)
            self.f = NULL

    def start(self) -> None:
        _check(gx_udp_fwd_start(self.f))

    @property
    def event_fd(self) -> int:
        """Readable when session events wait (and once the engine let go of the forwarder)."""
        return gx_udp_fwd_event_fd(self.f)

    def next_event(self):
        """(kind, id, (host, port), reason, (up_pkts, up_bytes, down_pkts, down_bytes)) or None."""
        cdef gx_udp_fwd_event ev
        if self.f == NULL or gx_udp_fwd_next_event(self.f, &ev) == 0:
            return None
        return (ev.kind, ev.id, _sockaddr_to_tuple(&ev.client, ev.client_len), ev.reason,
                (ev.up_pkts, ev.up_bytes, ev.down_pkts, ev.down_bytes))

    def route(self, uint64_t session_id, int fd, int mode=0, bytes header=b"") -> None:
        """The session's upstream fd (owned by the forwarder from now on, even on error), or -1:
        refused. mode UDP_FWD_DGRAM: a connected datagram socket; UDP_FWD_ASSOC: UDP to a SOCKS5
        ASSOCIATE relay, header (RSV FRAG ATYP ADDR PORT) on every datagram up and taken off every reply;
        UDP_FWD_F3: a stream of 0xF3 frames, header (FRAG ATYP ADDR PORT) after each frame's length."""
        _check(gx_udp_fwd_route(self.f, session_id, fd, mode, <const uint8_t *>header, <uint32_t>len(header)))

    def close_session(self, uint64_t session_id) -> None:
        _check(gx_udp_fwd_close(self.f, session_id))

    @property
    def status(self) -> int:
        return gx_udp_fwd_status(self.f)

    def stats(self) -> dict:
        cdef uint64_t raw[14]
        gx_udp_fwd_get_stats(self.f, <gx_udp_fwd_stats *>raw)
        return {name: raw[i] for i, name in enumerate(UDP_FWD_STAT_NAMES)}

    def stop(self) -> None:
        """Let go of every session (their fds closed); idempotent."""
        if self.f != NULL:
            with nogil:
                gx_udp_fwd_stop(self.f)


# SOCKS5 UDP ASSOCIATE (csrc/proxy/socks_assoc.c): the association's datagrams both ways in C.

SOCKS_ASSOC_STAT_NAMES = ("up_pkts", "up_bytes", "down_pkts", "down_bytes", "drop_foreign", "drop_malformed",
                          "drop_resolve", "drop_size", "drop_send", "gso_sends", "gso_fallbacks")


cdef class SocksAssociateRelay:
    """One UDP ASSOCIATE: relay_fd (the client's side) <-> up_fd (an unconnected UDP socket), both
    non-blocking, owned by the caller and kept open until this object is stopped. Only datagrams from
    client_ip are relayed."""

    cdef gx_socks_assoc *a

    def __cinit__(self, int relay_fd, int up_fd, str client_ip, int max_datagram=0):
        cdef sockaddr_storage client
        if max_datagram < 0 or max_datagram > 65535:
            raise ValueError(f"max_datagram {max_datagram} out of range 0..65535")
        self.a = NULL
        _fill_sockaddr(&client, client_ip, 0)
        _check(gx_socks_assoc_new(&self.a, relay_fd, up_fd, &client, <uint32_t>max_datagram))

    def __dealloc__(self):
        if self.a != NULL:
            with nogil:
                gx_socks_assoc_free(self.a)
            self.a = NULL

    def start(self) -> None:
        _check(gx_socks_assoc_start(self.a))

    def cancel(self) -> None:
        if self.a != NULL:
            gx_socks_assoc_cancel(self.a)

    def stop(self) -> None:
        if self.a != NULL:
            with nogil:
                gx_socks_assoc_stop(self.a)

    @property
    def event_fd(self) -> int:
        """Readable once the engine let go (cancelled, or ENOMEM)."""
        return gx_socks_assoc_event_fd(self.a)

    @property
    def status(self) -> int:
        return gx_socks_assoc_status(self.a)

    def stats(self) -> dict:
        cdef uint64_t raw[11]
        gx_socks_assoc_get_stats(self.a, <gx_socks_assoc_stats *>raw)
        return {name: raw[i] for i, name in enumerate(SOCKS_ASSOC_STAT_NAMES)}


# Datagrams <-> 0xF3 frames on a stream (csrc/proxy/dgram_frames.c): tungo's UDP sessions through a SOCKS5 hop.

DGRAM_FRAMES_STAT_NAMES = ("up_pkts", "up_bytes", "down_pkts", "down_bytes", "drop_up", "drop_down")
FRAMES_F3 = 0     # GOST 0xF3 frames (a header with the destination)
FRAMES_RELAY = 1  # relay-protocol LEN(2) + data frames


cdef class DgramFrames:
    """dgram_fd (one message per datagram: SEQPACKET or connected UDP) <-> stream_fd: FRAMES_F3 (0xF3
    frames, `header` = FRAG ATYP ADDR PORT on the way up) or FRAMES_RELAY (LEN + data, no header). Both
    fds owned by the caller, kept open until this object is stopped."""

    cdef gx_dgram_frames *r

    def __cinit__(self, int dgram_fd, int stream_fd, int mode, bytes header=b""):
        self.r = NULL
        _check(gx_dgram_frames_new(&self.r, dgram_fd, stream_fd, mode, <const uint8_t *>header,
                                   <uint32_t>len(header)))

    def __dealloc__(self):
        self.stop()

    def start(self) -> None:
        _check(gx_dgram_frames_start(self.r))

    def cancel(self) -> None:
        if self.r != NULL:
            gx_dgram_frames_cancel(self.r)

    def stop(self) -> None:
        """Cancel, wait until the engine let go, free (idempotent)."""
        if self.r != NULL:
            with nogil:
                gx_dgram_frames_free(self.r)
            self.r = NULL

    @property
    def event_fd(self) -> int:
        """Readable once the engine let go: either side ended, a malformed frame, or a cancel."""
        return gx_dgram_frames_event_fd(self.r)

    @property
    def status(self) -> int:
        return gx_dgram_frames_status(self.r)

    def stats(self) -> dict:
        cdef uint64_t raw[6]
        if self.r == NULL:
            return {}
        gx_dgram_frames_get_stats(self.r, <gx_dgram_frames_stats *>raw)
        return {name: raw[i] for i, name in enumerate(DGRAM_FRAMES_STAT_NAMES)}


# the stats() above copy each C stats struct into a uint64_t array of len(names): a struct that grew
# without its names (or the array) would be read short or written past the array; refuse to load instead
for _stats_name, _stats_size, _stats_names in (
        ("gx_udp_fwd_stats", sizeof(gx_udp_fwd_stats), UDP_FWD_STAT_NAMES),
        ("gx_socks_assoc_stats", sizeof(gx_socks_assoc_stats), SOCKS_ASSOC_STAT_NAMES),
        ("gx_dgram_frames_stats", sizeof(gx_dgram_frames_stats), DGRAM_FRAMES_STAT_NAMES)):
    if _stats_size != 8 * len(_stats_names):
        raise ImportError(f"gostx._engine: {_stats_name} has {_stats_size // 8} counters, the binding names "
                          f"{len(_stats_names)}")
