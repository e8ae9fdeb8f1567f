# Every C declaration gostx._engine uses, each declared once. Cython reads this file before
# gostx/_engine.pyx, so its names are visible in the .pyx and in every gostx/_<area>.pxi it includes.
#
# NEW DECLARATIONS GO HERE: a new C function, struct or constant of csrc/ gets its `cdef extern` entry
# in this file, in the block of its header (or a new block for a new header), never in a .pxi. The .pxi
# files hold only the Python-visible bindings; they do not re-declare or alias C names. Add the
# Python-visible signatures to gostx/_engine.pyi too (tests/unit/test_engine_stub.py checks them).
# Address families are AF_INET / AF_INET6 from <sys/socket.h> below, never the numbers.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.errno cimport EAGAIN, EALREADY, EBADMSG, EMSGSIZE, ESHUTDOWN, errno
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset, strerror

# ---- the C library: sockets ------------------------------------------------------------------------

cdef extern from "<sys/socket.h>" nogil:
    enum:
        AF_INET
        AF_INET6
    ctypedef unsigned short sa_family_t
    ctypedef unsigned int socklen_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        unsigned short sin_port
        in_addr sin_addr
    struct in6_addr:
        pass
    struct sockaddr_in6:
        sa_family_t sin6_family
        unsigned short sin6_port
        in6_addr sin6_addr
    unsigned short htons(unsigned short)
    unsigned short ntohs(unsigned short)

cdef extern from "<arpa/inet.h>" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)

cdef extern from "openssl/crypto.h" nogil:
    void OPENSSL_cleanse(void *ptr, size_t len)

# ---- packet batches (csrc/base/batch.c) -----------------------------------------------------------------

cdef extern from "gx/base.h" nogil:
    enum:
        GX_BATCH_MAX
        GX_HEADROOM
        GX_TAILROOM
        GX_SLOT_SIZE
    struct gx_pkt:
        uint8_t *data
        uint32_t len
        uint32_t flags
    struct gx_batch:
        uint32_t n
        uint32_t cap
        uint32_t slot_size
        uint32_t headroom
        uint8_t *mem
        gx_pkt pkt[GX_BATCH_MAX]
    int gx_batch_init(gx_batch *b, uint32_t cap, uint32_t slot_size, uint32_t headroom)
    void gx_batch_free(gx_batch *b)
    void gx_batch_reset(gx_batch *b)
    uint8_t *gx_batch_slot(const gx_batch *b, uint32_t i)
    uint32_t gx_batch_room(const gx_batch *b)

# ---- TUN/TAP devices (csrc/tun/tun_linux.c, csrc/tun/tun_offload.c) ----------------------------------------

cdef extern from "gx/tun.h" nogil:
    enum:
        GX_TUN_TAP
        GX_TUN_MULTI_QUEUE
        GX_TUN_VNET_HDR
        GX_TUN_GSO
        GX_TUN_MAX_QUEUES
        GX_TUN_F_CSUM
        GX_TUN_F_TSO4
        GX_TUN_F_TSO6
        GX_TUN_F_USO4
        GX_TUN_F_USO6
        GX_TUN_F_GSO_ANY
        GX_TUN_VNET_NONE
        GX_TUN_VNET_CSUM
        GX_TUN_VNET_GSO
        GX_TUN_VNET_GSO_ETH
    struct gx_tun_info:
        char name[16]
        unsigned offloads
        int vnet_hdr
    int gx_tun_open(const char *name, unsigned flags, int nqueues, int *fds, gx_tun_info *info)
    int gx_tun_read_batch(int fd, int vnet_hdr, gx_batch *b)
    int gx_tun_write_batch(int fd, int vnet_hdr, const gx_batch *b)

# ---- Shadowsocks AEAD (csrc/crypto/aead.c, csrc/crypto/replay.c, csrc/gcm*.c, csrc/hkdf*.c) ------------------------

cdef extern from "gx/crypto.h" nogil:
    enum:
        GX_CIPHER_NONE
        GX_AEAD_TAG_LEN
        GX_AEAD_MAX_SALT
        GX_AEAD_MAX_KEY
        GX_AEAD_REPLAY_DEFAULT
    struct gx_aead_drops:
        uint64_t short_pkt
        uint64_t auth
        uint64_t replay
    struct gx_aead:
        pass
    int gx_aead_lookup(const char *name)
    const char *gx_aead_supported()
    const char *gx_aead_name(int cipher)
    int gx_aead_key_len(int cipher)
    int gx_aead_derive_key(int cipher, const uint8_t *password, size_t pwlen, uint8_t *key_out)
    int gx_aead_new_ex(gx_aead **out, int cipher, const uint8_t *key, size_t replay_capacity)
    void gx_aead_free(gx_aead *a)
    int gx_aead_cipher(const gx_aead *a)
    size_t gx_aead_salt_len(const gx_aead *a)
    size_t gx_aead_overhead(const gx_aead *a)
    void gx_aead_drops_total(gx_aead *a, gx_aead_drops *out)
    int gx_aead_seal_batch(gx_aead *a, gx_batch *b)
    int gx_aead_open_batch(gx_aead *a, gx_batch *b, gx_aead_drops *drops)
    int gx_aead_seal_one(gx_aead *a, const uint8_t *salt, const uint8_t *inp, size_t len, uint8_t *out)
    int gx_aead_open_one(gx_aead *a, const uint8_t *inp, size_t len, uint8_t *out)

cdef extern from "gx/crypto.h" nogil:
    int gx_gcm_impl()
    int gx_crypto_simd()

cdef extern from "gx/crypto.h" nogil:
    int gx_hkdf_impl()

# ---- the tun/tap tunnel engine (csrc/tunnel/tunnel.c) -----------------------------------------------------

cdef extern from "gx/tunnel.h" nogil:
    int GX_TUNNEL_TUN, GX_TUNNEL_TAP, GX_TUNNEL_SERVER, GX_TUNNEL_CLIENT, GX_TUNNEL_MAX_IPS
    struct gx_tunnel_cfg:
        int mode
        int role
        int dev_fd
        int dev_vnet_hdr
        int net_fd
        sockaddr_storage remote
        socklen_t remote_len
        gx_aead *aead
        uint32_t mtu
        uint32_t batch
        int keepalive
        uint32_t ttl_ms
        uint8_t passphrase[16]
        uint8_t ips[16][16]
        int n_ips
        int p2p
        uint32_t peer_timeout_ms
        uint32_t max_peers
        uint8_t prefix[16]
        uint8_t mac[6]
        uint32_t peer_routes
    struct gx_tunnel_stats:
        pass
    struct gx_tunnel_event:
        uint32_t type
        uint32_t value
        uint8_t key[16]
        uint32_t keylen
        sockaddr_storage addr
        socklen_t addrlen
    struct gx_tunnel:
        pass
    struct gx_transport:
        void *state
        int fd
        void (*close)(void *state)
    int gx_tunnel_new(gx_tunnel **out, const gx_tunnel_cfg *cfg)
    int gx_tunnel_add_route(gx_tunnel *t, const uint8_t *net, int prefix, const uint8_t *gw)
    int gx_tunnel_add_pin(gx_tunnel *t, const uint8_t *key, const uint8_t *outer)
    int gx_tunnel_start(gx_tunnel *t)
    int gx_tunnel_stop(gx_tunnel *t)
    void gx_tunnel_free(gx_tunnel *t)
    void gx_tunnel_get_stats(gx_tunnel *t, gx_tunnel_stats *out)
    int gx_tunnel_event_fd(const gx_tunnel *t)
    int gx_tunnel_poll_events(gx_tunnel *t, gx_tunnel_event *ev, int max)
    int gx_tunnel_set_transport(gx_tunnel *t, const gx_transport *tr)
    struct gx_tunnel_peer:
        uint8_t key[16]
        uint32_t keylen
        sockaddr_storage addr
        socklen_t addrlen
        uint64_t learned_ms
        uint64_t seen_ms
        uint64_t rx_bytes
        uint64_t rx_pkts
        uint64_t tx_bytes
        uint64_t tx_pkts
    int gx_tunnel_peers(gx_tunnel *t, gx_tunnel_peer *out, int max)

# ---- GOST SOCKS5 UDP-over-TCP (csrc/proxy/socks_udp.c, csrc/proxy/socks_relay.c, csrc/proxy/relay_engine.c) ----------

cdef extern from "gx/proxy.h" nogil:
    struct gx_socks_relay:
        pass
    struct gx_socks_relay_stats:
        uint64_t up_pkts, up_bytes, down_pkts, down_bytes, drop_up, drop_down, gso_sends, gso_fallbacks
    int gx_transport_socks_udp(gx_transport *out, int fd)
    int gx_socks_relay_new(gx_socks_relay **out, int stream_fd, int udp_fd, uint32_t max_datagram)
    int gx_socks_relay_start(gx_socks_relay *r)
    int gx_socks_relay_event_fd(const gx_socks_relay *r)
    int gx_socks_relay_status(gx_socks_relay *r)
    void gx_socks_relay_get_stats(gx_socks_relay *r, gx_socks_relay_stats *out)
    void gx_socks_relay_cancel(gx_socks_relay *r)
    int gx_socks_relay_stop(gx_socks_relay *r)
    void gx_socks_relay_free(gx_socks_relay *r)

cdef extern from "gx/proxy.h" nogil:
    struct gx_relay_engine_stats:
        uint64_t threads, relays, attached
    void gx_relay_engine_get_stats(gx_relay_engine_stats *out)

# ---- the tungo netstack (csrc/stack/, lwIP) --------------------------------------------------------

cdef extern from "gx/stack.h" nogil:
    unsigned GX_STACK_EV_TCP, GX_STACK_EV_UDP, GX_STACK_SNIFF_MAX, GX_STACK_MTU_MIN, GX_STACK_MTU_MAX
    struct gx_stack_cfg:
        int tun_fd
        int vnet_hdr
        uint32_t mtu
        uint32_t udp_timeout_ms
        uint32_t sniff_bytes
        uint32_t sniff_timeout_ms
        uint32_t max_flows
    struct gx_stack_event:
        uint32_t type
        uint32_t family        # the IP version: 4 or 6
        uint64_t id
        uint8_t src[16]
        uint8_t dst[16]
        uint16_t sport
        uint16_t dport
        uint32_t len
        uint8_t *data
    struct gx_stack_stats:
        pass
    struct gx_stack:
        pass
    int gx_stack_new(gx_stack **out, const gx_stack_cfg *cfg)
    int gx_stack_start(gx_stack *s)
    int gx_stack_stop(gx_stack *s)
    void gx_stack_free(gx_stack *s)
    int gx_stack_event_fd(const gx_stack *s)
    int gx_stack_poll_events(gx_stack *s, gx_stack_event *ev, int max)
    void gx_stack_event_release(gx_stack_event *ev)
    int gx_stack_connect(gx_stack *s, uint64_t id, int fd)
    int gx_stack_drop(gx_stack *s, uint64_t id)
    void gx_stack_get_stats(gx_stack *s, gx_stack_stats *out)

# ---- fake TCP (csrc/faketcp/faketcp_linux.c, csrc/faketcp/faketcp_flow.c) ------------------------------------------

cdef extern from "gx/faketcp.h" nogil:
    struct gx_faketcp:
        pass
    struct gx_faketcp_stats:
        pass
    int gx_faketcp_dial(gx_faketcp **out, const sockaddr *remote, socklen_t remote_len, uint32_t idle_timeout_ms)
    int gx_faketcp_dial_finish(gx_faketcp *f)
    int gx_faketcp_listen(gx_faketcp **out, const sockaddr *local, socklen_t local_len, int dual_stack,
                          uint32_t flow_timeout_ms, uint32_t max_flows)
    int gx_faketcp_conn_fd(const gx_faketcp *f)
    int gx_faketcp_local(const gx_faketcp *f, sockaddr_storage *out, socklen_t *len)
    int gx_faketcp_transport(gx_faketcp *f, gx_transport *out)
    void gx_faketcp_get_stats(gx_faketcp *f, gx_faketcp_stats *out)
    void gx_faketcp_close(gx_faketcp *f)

# ---- WebSocket framing (csrc/proxy/ws.c) -----------------------------------------------------------------

cdef extern from "gx/proxy.h" nogil:
    struct gx_ws_frame:
        uint32_t header_len
        uint64_t payload_len
        uint8_t opcode, fin, rsv, masked
        uint8_t key[4]
    void gx_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *key, size_t offset)
    int gx_ws_header(uint8_t *out, uint8_t opcode, int fin, uint64_t payload_len, const uint8_t *key)
    int gx_ws_parse_header(const uint8_t *buf, size_t avail, gx_ws_frame *f)
    long gx_ws_encode(uint8_t *out, size_t cap, uint8_t opcode, int fin, const uint8_t *payload, size_t len,
                      const uint8_t *key)

    enum:
        GX_WS_ROLE_CLIENT
        GX_WS_ROLE_SERVER
        GX_WS_EV_NONE
        GX_WS_EV_PING
        GX_WS_EV_CLOSE
        GX_WS_EV_ERROR
    struct gx_ws_event:
        int type
        size_t out_len
        uint16_t code
        const uint8_t *payload
        size_t payload_len
        const char *error
    struct gx_ws_reader_stats:
        uint64_t frames, data_frames, data_bytes, pings, pongs
    struct gx_ws_reader:
        gx_ws_reader_stats stats
    void gx_ws_reader_init(gx_ws_reader *r, int role, uint64_t max_frame)
    long gx_ws_read(gx_ws_reader *r, const uint8_t *inp, size_t in_len, uint8_t *out, size_t out_cap,
                    gx_ws_event *ev)

# ---- the TCP splice relay (csrc/proxy/splice_relay.c) ----

cdef extern from "gx/proxy.h" nogil:
    struct gx_splice_relay:
        pass
    struct gx_splice_relay_stats:
        uint64_t bytes_ab, bytes_ba
    int gx_splice_relay_new(gx_splice_relay **out, int fd_a, int fd_b, size_t pipe_size)
    int gx_splice_relay_start(gx_splice_relay *r)
    int gx_splice_relay_event_fd(const gx_splice_relay *r)
    int gx_splice_relay_status(gx_splice_relay *r)
    int gx_splice_relay_finished(gx_splice_relay *r)
    void gx_splice_relay_get_stats(gx_splice_relay *r, gx_splice_relay_stats *out)
    void gx_splice_relay_cancel(gx_splice_relay *r)
    int gx_splice_relay_stop(gx_splice_relay *r)
    void gx_splice_relay_free(gx_splice_relay *r)

# ---- the data plane's name resolver (csrc/proxy/resolve.c) ----

cdef extern from "gx/proxy.h" nogil:
    struct gx_resolve_stats:
        uint64_t lookups
        uint64_t misses
        uint64_t resolved
        uint64_t failed
        uint64_t queue_full
    void gx_resolve_get_stats(gx_resolve_stats *out)

# ---- TLS and WebSocket transports in C (csrc/proxy/xstream.c) ----

cdef extern from "gx/proxy.h" nogil:
    struct gx_tls_ctx:
        pass
    struct gx_xs:
        pass
    struct gx_tls_cfg:
        int server
        const char *cert_file
        const char *key_file
        const char *ca_file
        int verify
        int default_paths
        const char *alpn
    struct gx_xs_cfg:
        gx_tls_ctx *tls
        const char *server_name
        const char *verify_name
        int head
        const uint8_t *raw
        size_t raw_len
    struct gx_xs_stats:
        uint64_t app_in, app_out, net_in, net_out, frames_in, frames_out, pings, pings_coalesced
        uint64_t ws_errors, tls_failures, joined
    int gx_tls_ctx_new(gx_tls_ctx **out, const gx_tls_cfg *cfg, char *err, size_t errlen)
    void gx_tls_ctx_free(gx_tls_ctx *ctx)
    int gx_xs_new(gx_xs **out, int net_fd, int app_fd, const gx_xs_cfg *cfg)
    int gx_xs_start(gx_xs *x)
    int gx_xs_event_fd(const gx_xs *x)
    uint32_t gx_xs_stage(const gx_xs *x)
    void gx_xs_reason(gx_xs *x, char *out, size_t len)
    int gx_xs_ws_start(gx_xs *x, const uint8_t *raw, size_t raw_len, int mode)
    int gx_xs_join(gx_xs *x, int app_end, int peer_fd)
    void gx_xs_cancel(gx_xs *x)
    int gx_xs_stop(gx_xs *x)
    int gx_xs_status(gx_xs *x)
    void gx_xs_get_stats(gx_xs *x, gx_xs_stats *out)
    void gx_xs_free(gx_xs *x)

# ---- udp:// forwarding in C (csrc/proxy/udp_fwd.c) ----

cdef extern from "gx/proxy.h" nogil:
    struct gx_udp_fwd:
        pass
    struct gx_udp_fwd_config:
        uint32_t max_sessions, queue, max_datagram, ttl_ms
    struct gx_udp_fwd_stats:
        pass
    struct gx_udp_fwd_event:
        uint32_t kind
        int reason
        uint64_t id
        sockaddr_storage client
        socklen_t client_len
        uint64_t up_pkts, up_bytes, down_pkts, down_bytes
    int GX_UDP_FWD_OPEN, GX_UDP_FWD_CLOSE
    int gx_udp_fwd_new(gx_udp_fwd **out, int listen_fd, const gx_udp_fwd_config *cfg)
    int gx_udp_fwd_start(gx_udp_fwd *f)
    int gx_udp_fwd_event_fd(const gx_udp_fwd *f)
    int gx_udp_fwd_next_event(gx_udp_fwd *f, gx_udp_fwd_event *ev)
    int gx_udp_fwd_route(gx_udp_fwd *f, uint64_t id, int fd, int mode, const uint8_t *hdr, uint32_t hdr_len)
    int gx_udp_fwd_close(gx_udp_fwd *f, uint64_t id)
    void gx_udp_fwd_get_stats(gx_udp_fwd *f, gx_udp_fwd_stats *out)
    int gx_udp_fwd_status(gx_udp_fwd *f)
    int gx_udp_fwd_stop(gx_udp_fwd *f)
    void gx_udp_fwd_free(gx_udp_fwd *f)

# ---- SOCKS5 UDP ASSOCIATE in C (csrc/proxy/socks_assoc.c) ----

cdef extern from "gx/proxy.h" nogil:
    struct gx_socks_assoc:
        pass
    struct gx_socks_assoc_stats:
        pass
    int gx_socks_assoc_new(gx_socks_assoc **out, int relay_fd, int up_fd, const sockaddr_storage *client,
                           uint32_t max_datagram)
    int gx_socks_assoc_start(gx_socks_assoc *a)
    int gx_socks_assoc_event_fd(const gx_socks_assoc *a)
    int gx_socks_assoc_status(gx_socks_assoc *a)
    void gx_socks_assoc_get_stats(gx_socks_assoc *a, gx_socks_assoc_stats *out)
    void gx_socks_assoc_cancel(gx_socks_assoc *a)
    int gx_socks_assoc_stop(gx_socks_assoc *a)
    void gx_socks_assoc_free(gx_socks_assoc *a)

# ---- datagrams framed onto a stream: 0xF3 or relay frames (csrc/proxy/dgram_frames.c) ----

cdef extern from "gx/proxy.h" nogil:
    struct gx_dgram_frames:
        pass
    struct gx_dgram_frames_stats:
        pass
    int gx_dgram_frames_new(gx_dgram_frames **out, int dgram_fd, int stream_fd, int mode, const uint8_t *hdr,
                            uint32_t hdr_len)
    int gx_dgram_frames_start(gx_dgram_frames *r)
    int gx_dgram_frames_event_fd(const gx_dgram_frames *r)
    int gx_dgram_frames_status(gx_dgram_frames *r)
    void gx_dgram_frames_get_stats(gx_dgram_frames *r, gx_dgram_frames_stats *out)
    void gx_dgram_frames_cancel(gx_dgram_frames *r)
    void gx_dgram_frames_free(gx_dgram_frames *r)
