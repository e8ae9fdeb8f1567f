# The tun/tap tunnel engine binding (csrc/tunnel/tunnel.c). Python builds it once, starts it, reads counters
# and drains events; every packet stays in C threads that never take the GIL.

cdef str _ip16_text(const uint8_t *ip):
    """A 16-byte address (IPv4 mapped or IPv6) as text, without the ipaddress module (per scrape x peers)."""
    cdef char buf[64]
    cdef int i
    cdef bint mapped = ip[10] == 0xff and ip[11] == 0xff
    for i in range(10):
        if ip[i] != 0:
            mapped = False
    if mapped:
        inet_ntop(AF_INET, ip + 12, buf, sizeof(buf))
    else:
        inet_ntop(AF_INET6, ip, buf, sizeof(buf))
    return buf.decode("ascii")


cdef object _sockaddr_text(const sockaddr_storage *a, socklen_t alen):
    cdef const sockaddr_in *v4
    cdef const sockaddr_in6 *v6
    if alen == 0:
        return None
    if a.ss_family == AF_INET:
        v4 = <const sockaddr_in *>a
        return (_ip4_text(<const uint8_t *>&v4.sin_addr), ntohs(v4.sin_port))
    if a.ss_family == AF_INET6:
        v6 = <const sockaddr_in6 *>a
        return (_ip16_text(<const uint8_t *>&v6.sin6_addr), ntohs(v6.sin6_port))
    return None


cdef str _ip4_text(const uint8_t *ip):
    cdef char buf[32]
    inet_ntop(AF_INET, ip, buf, sizeof(buf))
    return buf.decode("ascii")


# Field order of struct gx_tunnel_stats (all uint64_t), for reading it as an array.
TUNNEL_STAT_NAMES = (
    "dev_rx_pkts", "dev_rx_bytes", "dev_tx_pkts", "dev_tx_bytes",
    "net_rx_pkts", "net_rx_bytes", "net_tx_pkts", "net_tx_bytes",
    "relayed_pkts", "control_rx", "control_tx",
    "drop_short", "drop_auth", "drop_replay", "drop_malformed", "drop_no_route",
    "drop_dev_full", "drop_send", "drop_control", "dev_tx_supers", "peers", "dev_rx_supers",
    "learn_refused", "learn_capped",
)

TUNNEL_EVENT_NAMES = {
    1: "peer_learned", 2: "peer_moved", 3: "peer_expired", 4: "keepalive_reply",
    5: "keepalive_timeout", 6: "control_rejected", 7: "table_full", 8: "net_error", 9: "dev_error",
    10: "net_closed", 11: "auth_failed", 12: "malformed", 13: "routes_capped", 14: "pin_refused",
}


cdef object _sockaddr_to_tuple(const sockaddr_storage *a, socklen_t alen):
    cdef const sockaddr_in *v4
    cdef const sockaddr_in6 *v6
    if alen == 0:
        return None
    if a.ss_family == AF_INET:
        v4 = <const sockaddr_in *>a
        return (str(_ipaddress.IPv4Address((<const uint8_t *>&v4.sin_addr)[:4])), ntohs(v4.sin_port))
    if a.ss_family == AF_INET6:
        v6 = <const sockaddr_in6 *>a
        ip = _ipaddress.IPv6Address((<const uint8_t *>&v6.sin6_addr)[:16])
        return (str(ip.ipv4_mapped or ip), ntohs(v6.sin6_port))
    return None


import ipaddress as _ipaddress


cdef class Tunnel:
    """A running tun/tap tunnel: the device fd and the UDP socket fd stay owned by the caller."""

    cdef gx_tunnel *t
    cdef object _aead     # keeps the Aead object (and its C context) alive while the tunnel runs
    cdef bint _started

    def __cinit__(self, *, bint tap, bint server, int dev_fd, int net_fd, object remote=None,
                  int family=AF_INET, object aead=None, int mtu=1350, int batch=64, int vnet_hdr=0,
                  bint keepalive=False, double ttl=10.0, bytes passphrase=b"", list ips=None,
                  bint p2p=False, double peer_timeout=300.0, int max_peers=4096, int peer_routes=0,
                  object mac=None):
        cdef gx_tunnel_cfg cfg
        cdef sockaddr_in *r4
        cdef sockaddr_in6 *r6
        cdef bytes packed
        memset(&cfg, 0, sizeof(cfg))
        cfg.mode = GX_TUNNEL_TAP if tap else GX_TUNNEL_TUN
        cfg.role = GX_TUNNEL_SERVER if server else GX_TUNNEL_CLIENT
        cfg.dev_fd = dev_fd
        cfg.dev_vnet_hdr = vnet_hdr
        cfg.net_fd = net_fd
        cfg.mtu = mtu
        cfg.batch = batch
        cfg.keepalive = keepalive
        cfg.ttl_ms = <uint32_t>(ttl * 1000)
        cfg.p2p = p2p
        cfg.peer_timeout_ms = <uint32_t>(peer_timeout * 1000)
        cfg.max_peers = max_peers
        if len(passphrase) > 16:
            passphrase = passphrase[:16]
        memcpy(cfg.passphrase, <const char *>passphrase, len(passphrase))
        if peer_routes < 0:
            raise ValueError("peer_routes must be >= 0")
        cfg.peer_routes = peer_routes
        if mac is not None:
            if len(mac) != 6:
                raise ValueError("mac must be 6 bytes")
            memcpy(cfg.mac, <const char *>mac, 6)
        for ip in (ips or [])[:GX_TUNNEL_MAX_IPS]:
            # "a.b.c.d" (any address) or "a.b.c.d/n": the server learns only sources inside that net
            iface = _ipaddress.ip_interface(ip)
            packed = iface.ip.packed
            prefix = iface.network.prefixlen if "/" in str(ip) else 0
            if len(packed) == 4:
                packed = b"\x00" * 10 + b"\xff\xff" + packed
                if "/" in str(ip):
                    prefix += 96
            memcpy(cfg.ips[cfg.n_ips], <const char *>packed, 16)
            cfg.prefix[cfg.n_ips] = prefix
            cfg.n_ips += 1
        if remote is not None:
            host, port = remote
            packed = _ipaddress.ip_address(host).packed
            if family == AF_INET6:
                if len(packed) == 4:
                    packed = b"\x00" * 10 + b"\xff\xff" + packed
                r6 = <sockaddr_in6 *>&cfg.remote
                r6.sin6_family = AF_INET6
                r6.sin6_port = htons(port)
                memcpy(&r6.sin6_addr, <const char *>packed, 16)
                cfg.remote_len = sizeof(sockaddr_in6)
            else:
                if len(packed) != 4:
                    raise ValueError(f"remote {host} is not an IPv4 address")
                r4 = <sockaddr_in *>&cfg.remote
                r4.sin_family = AF_INET
                r4.sin_port = htons(port)
                memcpy(&r4.sin_addr, <const char *>packed, 4)
                cfg.remote_len = sizeof(sockaddr_in)
        if aead is not None:
            cfg.aead = (<Aead>aead).ptr
        self._aead = aead
        _check(gx_tunnel_new(&self.t, &cfg))

    def __dealloc__(self):
        if self.t != NULL:
            with nogil:
                gx_tunnel_free(self.t)
            self.t = NULL

    def add_route(self, network: str, gateway: str) -> None:
        """Server: packets to `network` go to the peer that owns `gateway`. Before start()."""
        net = _ipaddress.ip_network(network, strict=False)
        gw = _ipaddress.ip_address(gateway)
        cdef bytes n = net.network_address.packed
        cdef bytes g = gw.packed
        cdef int prefix = net.prefixlen
        if len(n) == 4:
            n = b"\x00" * 10 + b"\xff\xff" + n
            prefix += 96
        if len(g) == 4:
            g = b"\x00" * 10 + b"\xff\xff" + g
        _check(gx_tunnel_add_route(self.t, <const uint8_t *><const char *>n, prefix, <const uint8_t *><const char *>g))

    def add_pin(self, key: str, outer: str) -> None:
        """Server: learn `key` (an inner IP, or a MAC "aa:bb:cc:dd:ee:ff" for tap) only from peers whose
        outer IP is `outer` (any port). Before start()."""
        cdef bytes k, o
        if key.count(":") == 5 and "." not in key and len(key) == 17:
            k = bytes.fromhex(key.replace(":", "")) + b"\x00" * 10
        else:
            k = _ipaddress.ip_address(key).packed
            if len(k) == 4:
                k = b"\x00" * 10 + b"\xff\xff" + k
        o = _ipaddress.ip_address(outer).packed
        if len(o) == 4:
            o = b"\x00" * 10 + b"\xff\xff" + o
        _check(gx_tunnel_add_pin(self.t, <const uint8_t *><const char *>k, <const uint8_t *><const char *>o))

    def set_socks_stream(self, int fd) -> None:
        """Carry the datagrams as GOST SOCKS5 UDP-over-TCP frames (0xF3) on a connected stream fd (the
        handshake done; fd non-blocking, owned by the caller) instead of UDP. Each frame's address is the
        datagram's peer: for a client, the `remote` given at construction. Before start(). When the
        stream ends the tunnel emits "net_closed" and its down thread stops."""
        cdef gx_transport tr
        _check(gx_transport_socks_udp(&tr, fd))
        cdef int rc = gx_tunnel_set_transport(self.t, &tr)
        if rc < 0:
            tr.close(tr.state)
            _check(rc)

    def use_faketcp(self, ftcp) -> None:
        """Carry the tunnel over fake TCP (a FakeTcp, see _faketcp.pxi) instead of UDP. Before start()."""
        ftcp.attach(self)

    def start(self) -> None:
        _check(gx_tunnel_start(self.t))
        self._started = True

    def stop(self) -> None:
        if self.t != NULL:
            with nogil:
                gx_tunnel_stop(self.t)

    @property
    def event_fd(self) -> int:
        return gx_tunnel_event_fd(self.t)

    def stats(self) -> dict:
        cdef uint64_t raw[32]
        gx_tunnel_get_stats(self.t, <gx_tunnel_stats *>raw)
        return {name: raw[i] for i, name in enumerate(TUNNEL_STAT_NAMES)}

    def peers(self, int limit=4096) -> list:
        """The learned entries and their traffic, copied in one C call (the table's read lock is held only
        for the copy): [(key, (host, port) | None, learned_ms, rx_bytes, rx_pkts, tx_bytes, tx_pkts)];
        key is an IP or a MAC string; rx = from the peer, tx = to it (inner bytes)."""
        cdef int n, i
        if limit <= 0:
            return []
        cdef gx_tunnel_peer *buf = <gx_tunnel_peer *>malloc(<size_t>limit * sizeof(gx_tunnel_peer))
        if buf == NULL:
            raise MemoryError()
        try:
            with nogil:
                n = gx_tunnel_peers(self.t, buf, limit)
            _check(n)
            out = []
            for i in range(n):
                if buf[i].keylen == 6:
                    key = bytes(buf[i].key[:6]).hex(":")
                else:
                    key = _ip16_text(buf[i].key)
                out.append((key, _sockaddr_text(&buf[i].addr, buf[i].addrlen), buf[i].learned_ms,
                            buf[i].rx_bytes, buf[i].rx_pkts, buf[i].tx_bytes, buf[i].tx_pkts))
            return out
        finally:
            free(buf)

    def events(self) -> list:
        """Drain queued events: (name, value, key, (host, port) | None); key is an IP or a MAC string."""
        cdef gx_tunnel_event ev[64]
        cdef int n, i
        out = []
        while True:
            n = gx_tunnel_poll_events(self.t, ev, 64)
            for i in range(n):
                if ev[i].keylen == 16:
                    ip = _ipaddress.IPv6Address(bytes(ev[i].key[:16]))
                    key = str(ip.ipv4_mapped or ip)
                elif ev[i].keylen == 6:
                    key = ":".join(f"{b:02x}" for b in bytes(ev[i].key[:6]))
                else:
                    key = None
                out.append((TUNNEL_EVENT_NAMES.get(ev[i].type, str(ev[i].type)), ev[i].value, key,
                            _sockaddr_to_tuple(&ev[i].addr, ev[i].addrlen)))
            if n < 64:
                return out
