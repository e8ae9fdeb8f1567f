/* Fake TCP internals shared by faketcp_linux.c (endpoints), faketcp_flow.c (flows) and faketcp_io.c
 * (the tunnel transport). Not part of the API: gx/faketcp.h is. */
#ifndef GX_FAKETCP_INTERNAL_H
#define GX_FAKETCP_INTERNAL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "gx/base.h"
#include "gx/faketcp.h"

#define GX_HIDDEN __attribute__((visibility("hidden")))

#define ROLE_CLIENT 1
#define ROLE_SERVER 0
#define RAW_BUFFER_BYTES (8 << 20)
#define ORPHAN_TTL_MS 10000u        /* a handshake never accepted is forgotten after this long */
#define DEFAULT_FLOW_TIMEOUT_MS 300000u
#define DEFAULT_MAX_FLOWS 4096u
#define TICK_MS 1000u
#define EPOLL_MAX 64
#define ACCEPT_MAX 64
#define DISCARD_BYTES (1 << 20)
#define SNAP_ALL 0x40000u            /* BPF "accept": the whole segment */
#define RESET_PER_S 50u              /* RSTs the server sends for segments of unknown flows */
#define DUP_ACK_PER_S 200u           /* ACKs the server sends for segments it already had */

/* ---------------------------------------------------------------------------------------------- */
/* state */

struct fkey {
    uint8_t ip[16];                 /* v4 mapped for IPv4 */
    uint16_t port;                  /* host order */
    uint8_t v6;
};

enum src_kind { SRC_RAW4 = 1, SRC_RAW6, SRC_LISTEN, SRC_CONN, SRC_TIMER };

/* What an epoll event points at. */
struct src {
    int kind;
    int fd;
    bool v6;                        /* SRC_CONN: an IPv6 flow (else IPv4, possibly on a v6 socket) */
    struct fkey key;                /* SRC_CONN: the flow it belongs to */
};

struct flow {
    bool used;
    struct fkey key;
    _Atomic uint32_t seq, ack;      /* ours, host order */
    _Atomic bool sent;              /* server: data went out on this flow (the peer may rewind its seq) */
    bool ack_known;                 /* down thread only */
    _Atomic bool local_known;       /* local[] is valid (written once, before this is set) */
    uint8_t local[16];              /* our address in this flow (v4 mapped for IPv4) */
    uint32_t scope;                 /* IPv6 scope (interface) of local */
    struct src *conn;               /* the muted kernel connection; NULL = orphan (server) */
    uint64_t seen_ms, born_ms;
};

struct counters {
    _Atomic uint64_t v[sizeof(struct gx_faketcp_stats) / sizeof(uint64_t)];
};
#define STAT(field) (offsetof(struct gx_faketcp_stats, field) / sizeof(uint64_t))

struct rx_scratch {
    struct mmsghdr msg[GX_BATCH_MAX];
    struct iovec iov[GX_BATCH_MAX];
    struct sockaddr_storage from[GX_BATCH_MAX];
};

struct gx_faketcp {
    int role;
    int tcp;                        /* client: the connection; server: the listener */
    int raw4, raw6, ep, timer;
    uint16_t port;                  /* our TCP port (host order) */
    struct src s_tcp, s_raw4, s_raw6, s_timer;
    struct counters stats;
    struct rx_scratch *rx;          /* down thread only */
    /* client */
    bool v6;                        /* the client's flow family */
    bool connected;
    struct sockaddr_storage remote; /* the server (port in place) */
    socklen_t remote_len;
    struct flow cflow;
    uint32_t idle_ms;
    uint64_t last_rx_ms;
    _Atomic int dead;               /* errno once the flow ended (set by the down thread) */
    /* server */
    struct flow *slots;
    uint32_t mask, count, limit;
    pthread_rwlock_t lock;
    bool lock_ready;
    uint32_t flow_timeout_ms;
    uint32_t orphans;               /* flows from a SYN, not accepted yet (at most half the table) */
    uint64_t reset_window_ms;       /* RSTs sent for unknown flows: at most RESET_PER_S a second */
    uint32_t resets_in_window;
    uint64_t ack_window_ms;         /* ACKs for duplicate segments: at most DUP_ACK_PER_S a second */
    uint32_t acks_in_window;
};

static inline void count(struct gx_faketcp *f, size_t idx, uint64_t n) {
    if (n)
        atomic_fetch_add_explicit(&f->stats.v[idx], n, memory_order_relaxed);
}

static inline uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline bool is_v4_mapped(const uint8_t ip[16]) {
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, prefix, 12) == 0;
}

/* A socket address -> flow key; false for other families. A v4-mapped IPv6 address is IPv4. */
static inline bool key_of(const struct sockaddr_storage *a, socklen_t len, struct fkey *k) {
    memset(k, 0, sizeof(*k));
    if (a->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s = (const void *)a;
        k->ip[10] = k->ip[11] = 0xff;
        memcpy(k->ip + 12, &s->sin_addr, 4);
        k->port = ntohs(s->sin_port);
        return true;
    }
    if (a->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s = (const void *)a;
        memcpy(k->ip, &s->sin6_addr, 16);
        k->port = ntohs(s->sin6_port);
        k->v6 = !is_v4_mapped(k->ip);
        return true;
    }
    return false;
}

/* The socket address the tunnel sees for a peer: sockaddr_in for IPv4, sockaddr_in6 for IPv6. */
static inline socklen_t sockaddr_of(const struct fkey *k, struct sockaddr_storage *out) {
    memset(out, 0, sizeof(*out));
    if (!k->v6) {
        struct sockaddr_in *s = (void *)out;
        s->sin_family = AF_INET;
        s->sin_port = htons(k->port);
        memcpy(&s->sin_addr, k->ip + 12, 4);
        return sizeof(*s);
    }
    struct sockaddr_in6 *s = (void *)out;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(k->port);
    memcpy(&s->sin6_addr, k->ip, 16);
    return sizeof(*s);
}

static inline bool key_eq(const struct fkey *a, const struct fkey *b) {
    return a->port == b->port && a->v6 == b->v6 && memcmp(a->ip, b->ip, 16) == 0;
}

static inline uint32_t key_hash(const struct fkey *k) {
    uint64_t a, b;
    memcpy(&a, k->ip, 8);
    memcpy(&b, k->ip + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)k->port << 1 | k->v6)) * 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}

/* faketcp_flow.c */
GX_HIDDEN struct flow *ftcp_table_find(struct gx_faketcp *f, const struct fkey *k);
GX_HIDDEN int ftcp_client_segment(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, uint64_t now);
GX_HIDDEN int ftcp_server_segment(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, const struct fkey *k,
                                  uint64_t now);
GX_HIDDEN void ftcp_server_accept(struct gx_faketcp *f, uint64_t now);
GX_HIDDEN void ftcp_server_sweep(struct gx_faketcp *f, uint64_t now);
GX_HIDDEN void ftcp_conn_event(struct gx_faketcp *f, struct src *c, uint32_t events);
GX_HIDDEN void ftcp_conn_close(struct gx_faketcp *f, struct src *c, bool graceful);
/* faketcp_linux.c */
GX_HIDDEN int ftcp_set_ttl(int fd, int family, bool v6_flow, int ttl);
GX_HIDDEN int ftcp_mute(int fd, int family, bool v6_flow);
GX_HIDDEN int ftcp_ep_add(struct gx_faketcp *f, struct src *s, uint32_t events);

#endif
