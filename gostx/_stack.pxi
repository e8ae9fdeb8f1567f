# The tungo netstack binding (csrc/stack/, lwIP). Python creates it over a TUN fd, starts it, drains its
# new-flow events and answers each with connect(id, fd) or drop(id); every packet and every relayed byte
# stays in the C thread, which never takes the GIL.

# Field order of struct gx_stack_stats (all uint64_t).
STACK_STAT_NAMES = (
    "tun_rx_pkts", "tun_rx_bytes", "tun_tx_pkts", "tun_tx_bytes", "tun_tx_drops", "tun_rx_errors",
    "tcp_flows", "tcp_active", "tcp_refused", "tcp_up_bytes", "tcp_down_bytes", "tcp_resets", "tcp_client_resets",
    "udp_sessions", "udp_active", "udp_expired", "udp_up_pkts", "udp_down_pkts", "udp_drops",
    "event_overflows", "flow_limit_hits", "tcp_closing", "tcp_time_wait", "tcp_tw_recycled",
    "lwip_mem_used", "lwip_mem_max", "lwip_mem_errors",
)
STACK_SNIFF_MAX = GX_STACK_SNIFF_MAX
STACK_MTU_MIN = GX_STACK_MTU_MIN
STACK_MTU_MAX = GX_STACK_MTU_MAX


import socket as _stack_socket


cdef object _flow_ip(uint32_t family, const uint8_t *raw):
    # inet_ntop: the C library's spelling, the one getsockname() gives too (tungo's loop guard compares
    # them); ipaddress would cost far more per flow
    if family == 6:  # the IP version (gx_stack_event.family), not an address family
        return _stack_socket.inet_ntop(_stack_socket.AF_INET6, raw[:16])
    return _stack_socket.inet_ntop(_stack_socket.AF_INET, raw[:4])


cdef class Stack:
    """The tungo netstack over one TUN fd (owned by the caller). One per process (lwIP is global).

    events() gives new flows as (network, id, (src_ip, src_port), (dst_ip, dst_port), first_bytes) with
    network "tcp" or "udp"; answer each exactly once with connect(id, fd) (the stack takes the fd) or
    drop(id)."""

    cdef gx_stack *s

    def __cinit__(self, *, int tun_fd, bint vnet_hdr=False, int mtu=1420, double udp_timeout=30.0, int sniff_bytes=0,
                  double sniff_timeout=0.0, int max_flows=0):
        cdef gx_stack_cfg cfg
        memset(&cfg, 0, sizeof(cfg))
        cdef long mtu_min = GX_STACK_MTU_MIN, mtu_max = GX_STACK_MTU_MAX, sniff_max = GX_STACK_SNIFF_MAX
        if not mtu_min <= mtu <= mtu_max:
            raise ValueError(f"mtu must be {GX_STACK_MTU_MIN}..{GX_STACK_MTU_MAX}, not {mtu}")
        if not 0 <= sniff_bytes <= sniff_max:
            raise ValueError(f"sniff_bytes must be 0..{GX_STACK_SNIFF_MAX}")
        if udp_timeout < 0.001 or sniff_timeout < 0 or max_flows < 0:
            raise ValueError("timeouts and max_flows must be positive")
        cfg.tun_fd = tun_fd
        cfg.vnet_hdr = vnet_hdr
        cfg.mtu = mtu
        cfg.udp_timeout_ms = <uint32_t>min(udp_timeout * 1000, 4e9)
        cfg.sniff_bytes = sniff_bytes
        cfg.sniff_timeout_ms = <uint32_t>min(sniff_timeout * 1000, 4e9)
        cfg.max_flows = max_flows
        _check(gx_stack_new(&self.s, &cfg))

    def __dealloc__(self):
        if self.s != NULL:
            with nogil:
                gx_stack_free(self.s)
            self.s = NULL

    def start(self) -> None:
        _check(gx_stack_start(self.s))

    def stop(self) -> None:
        """Stop the data-plane thread: every flow is reset and its fd closed. Idempotent."""
        if self.s != NULL:
            with nogil:
                gx_stack_stop(self.s)

    def close(self) -> None:
        """Stop and free now (the process may then make another Stack)."""
        if self.s != NULL:
            with nogil:
                gx_stack_free(self.s)
            self.s = NULL

    @property
    def event_fd(self) -> int:
        return gx_stack_event_fd(self.s)

    def events(self) -> list:
        cdef gx_stack_event ev[64]
        cdef int n, i
        out = []
        if self.s == NULL:
            return out
        while True:
            n = _check(gx_stack_poll_events(self.s, ev, 64))
            for i in range(n):
                data = ev[i].data[:ev[i].len] if ev[i].data != NULL and ev[i].len > 0 else b""
                out.append(("tcp" if ev[i].type == GX_STACK_EV_TCP else "udp", ev[i].id,
                            (_flow_ip(ev[i].family, ev[i].src), ev[i].sport),
                            (_flow_ip(ev[i].family, ev[i].dst), ev[i].dport), data))
                gx_stack_event_release(&ev[i])
            if n < 64:
                return out

    def connect(self, uint64_t flow_id, int fd) -> None:
        """Splice the flow to fd; the stack owns fd from now on (on OSError the caller still does)."""
        if self.s == NULL:
            raise OSError(ESHUTDOWN, "stack closed")
        _check(gx_stack_connect(self.s, flow_id, fd))

    def drop(self, uint64_t flow_id) -> None:
        if self.s != NULL:
            gx_stack_drop(self.s, flow_id)

    def stats(self) -> dict:
        cdef uint64_t raw[32]
        if self.s == NULL:
            return {name: 0 for name in STACK_STAT_NAMES}
        gx_stack_get_stats(self.s, <gx_stack_stats *>raw)
        return {name: raw[i] for i, name in enumerate(STACK_STAT_NAMES)}
