/* Fake TCP transport on raw sockets: the client and server endpoints, the flow table, and the tunnel
 * transport's batched receive and send (see gx/faketcp.h for the contract and the wire rules; segment
 * parsing and building are in faketcp_segment.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "gx/batch.h"
#include "gx/faketcp.h"

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
};

static void count(struct gx_faketcp *f, size_t idx, uint64_t n) {
    if (n)
        atomic_fetch_add_explicit(&f->stats.v[idx], n, memory_order_relaxed);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool is_v4_mapped(const uint8_t ip[16]) {
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, prefix, 12) == 0;
}

/* A socket address -> flow key; false for other families. A v4-mapped IPv6 address is IPv4. */
static bool key_of(const struct sockaddr_storage *a, socklen_t len, struct fkey *k) {
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
static socklen_t sockaddr_of(const struct fkey *k, struct sockaddr_storage *out) {
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

static bool key_eq(const struct fkey *a, const struct fkey *b) {
    return a->port == b->port && a->v6 == b->v6 && memcmp(a->ip, b->ip, 16) == 0;
}

static uint32_t key_hash(const struct fkey *k) {
    uint64_t a, b;
    memcpy(&a, k->ip, 8);
    memcpy(&b, k->ip + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)k->port << 1 | k->v6)) * 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}

/* ---------------------------------------------------------------------------------------------- */
/* the server's flow table: open addressing, backward-shift deletion. The down thread writes under
 * the write lock; the up thread reads under the read lock (seq/ack are atomics). */

static struct flow *table_find(struct gx_faketcp *f, const struct fkey *k) {
    for (uint32_t i = key_hash(k) & f->mask;; i = (i + 1) & f->mask) {
        struct flow *p = &f->slots[i];
        if (!p->used)
            return NULL;
        if (key_eq(&p->key, k))
            return p;
    }
}

static void flow_init(struct flow *p, const struct fkey *k, uint64_t now) {
    memset(p, 0, sizeof(*p));
    p->used = true;
    p->key = *k;
    p->seen_ms = p->born_ms = now;
}

/* Caller holds the write lock. NULL when the table is full. */
static struct flow *table_add(struct gx_faketcp *f, const struct fkey *k, uint64_t now) {
    if (f->count >= f->limit)
        return NULL;
    uint32_t i = key_hash(k) & f->mask;
    while (f->slots[i].used)
        i = (i + 1) & f->mask;
    flow_init(&f->slots[i], k, now);
    f->count++;
    atomic_store_explicit(&f->stats.v[STAT(flows)], f->count, memory_order_relaxed);
    return &f->slots[i];
}

static void flow_move(struct flow *to, struct flow *from) {
    to->used = true;
    to->key = from->key;
    atomic_store_explicit(&to->seq, atomic_load_explicit(&from->seq, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&to->ack, atomic_load_explicit(&from->ack, memory_order_relaxed), memory_order_relaxed);
    to->ack_known = from->ack_known;
    memcpy(to->local, from->local, 16);
    to->scope = from->scope;
    atomic_store_explicit(&to->local_known, atomic_load_explicit(&from->local_known, memory_order_relaxed),
                          memory_order_relaxed);
    to->conn = from->conn;
    to->seen_ms = from->seen_ms;
    to->born_ms = from->born_ms;
    from->used = false;
}

/* Caller holds the write lock; the flow's connection is already dealt with. */
static void table_delete(struct gx_faketcp *f, struct flow *p) {
    uint32_t i = (uint32_t)(p - f->slots);
    f->slots[i].used = false;
    f->count--;
    atomic_store_explicit(&f->stats.v[STAT(flows)], f->count, memory_order_relaxed);
    for (uint32_t j = (i + 1) & f->mask; f->slots[j].used; j = (j + 1) & f->mask) {
        uint32_t home = key_hash(&f->slots[j].key) & f->mask;
        bool in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            flow_move(&f->slots[i], &f->slots[j]);
            i = j;
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* sockets */

static void set_buffers(int fd) {
    int v = RAW_BUFFER_BYTES;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* Set the TTL / hop limit of a kernel TCP socket: 1 mutes it, -1 restores the default. An IPv4 flow
 * may sit on an IPv6 (dual-stack) socket: IP_TTL applies to it there too. */
static int set_ttl(int fd, int family, bool v6_flow, int ttl) {
    if (!v6_flow)
        return setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) < 0 ? -errno : 0;
    (void)family;
    return setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) < 0 ? -errno : 0;
}

/* Mute a kernel TCP connection: TTL / hop limit 1 (the nftables rule drops what it still sends), and a
 * socket filter that keeps segments with PSH (our data, which the raw sockets take) away from it, so
 * it does not answer each of them with an ACK. Handshake, ACK, FIN and RST segments still reach it.
 * (The filter sees the segment from its TCP header on.) */
static int mute(int fd, int family, bool v6_flow) {
    int rc = set_ttl(fd, family, v6_flow, 1);
    if (rc < 0)
        return rc;
    struct sock_filter prog[] = {
        {BPF_LD | BPF_B | BPF_ABS, 0, 0, 13},          /* TCP flags */
        {BPF_JMP | BPF_JSET | BPF_K, 1, 0, GX_TCP_PSH},
        {BPF_RET | BPF_K, 0, 0, SNAP_ALL},
        {BPF_RET | BPF_K, 0, 0, 0},
    };
    struct sock_fprog fp = {.len = sizeof(prog) / sizeof(prog[0]), .filter = prog};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) < 0 ? -errno : 0;
}

static void drain(int fd) {
    uint8_t buf[64];
    for (int i = 0; i < 100000; i++)
        if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC) < 0)
            break;
}

/* A raw IPPROTO_TCP socket for family with a filter for dport (and sport when non-zero). Bound to
 * bind_ip (16-byte form, NULL = any), connected to peer when given. Packets queued before the filter
 * was attached are drained. */
static int raw_open(int family, uint16_t sport, uint16_t dport, const struct sockaddr_storage *bind_addr,
                    const struct sockaddr_storage *peer) {
    int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -errno;
    struct sock_filter prog[GX_FAKETCP_BPF_MAX];
    int n = gx_faketcp_bpf(prog, GX_FAKETCP_BPF_MAX, family == AF_INET, sport, dport);
    struct sock_fprog fp = {.len = (unsigned short)n, .filter = prog};
    int rc = 0;
    if (n < 0)
        rc = n;
    else if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) < 0)
        rc = -errno;
    if (rc == 0 && family == AF_INET6) {
        int off = 16; /* the TCP checksum: the kernel computes it on send and checks it on receive */
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof(off)) < 0)
            rc = -errno;
    }
    socklen_t alen = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (rc == 0 && bind_addr != NULL && bind(fd, (const struct sockaddr *)bind_addr, alen) < 0)
        rc = -errno;
    if (rc == 0 && peer != NULL && connect(fd, (const struct sockaddr *)peer, alen) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    set_buffers(fd);
    drain(fd);
    return fd;
}

static int ep_add(struct gx_faketcp *f, struct src *s, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = s};
    return epoll_ctl(f->ep, EPOLL_CTL_ADD, s->fd, &ev) < 0 ? -errno : 0;
}

static int common_init(struct gx_faketcp *f, uint32_t tick_ms) {
    f->ep = epoll_create1(EPOLL_CLOEXEC);
    if (f->ep < 0)
        return -errno;
    f->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (f->timer < 0)
        return -errno;
    struct itimerspec its = {
        .it_interval = {tick_ms / 1000u, (long)(tick_ms % 1000u) * 1000000L},
        .it_value = {tick_ms / 1000u, (long)(tick_ms % 1000u) * 1000000L},
    };
    if (timerfd_settime(f->timer, 0, &its, NULL) < 0)
        return -errno;
    f->s_timer = (struct src){.kind = SRC_TIMER, .fd = f->timer};
    int rc = ep_add(f, &f->s_timer, EPOLLIN);
    if (rc == 0 && f->raw4 >= 0) {
        f->s_raw4 = (struct src){.kind = SRC_RAW4, .fd = f->raw4};
        rc = ep_add(f, &f->s_raw4, EPOLLIN);
    }
    if (rc == 0 && f->raw6 >= 0) {
        f->s_raw6 = (struct src){.kind = SRC_RAW6, .fd = f->raw6};
        rc = ep_add(f, &f->s_raw6, EPOLLIN);
    }
    if (rc == 0) {
        f->s_tcp = (struct src){.kind = f->role == ROLE_SERVER ? SRC_LISTEN : SRC_CONN, .fd = f->tcp, .v6 = f->v6};
        rc = ep_add(f, &f->s_tcp, f->role == ROLE_SERVER ? EPOLLIN : EPOLLIN | EPOLLRDHUP);
    }
    return rc;
}

static struct gx_faketcp *faketcp_alloc(int role) {
    struct gx_faketcp *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->rx = calloc(1, sizeof(*f->rx));
    if (f->rx == NULL) {
        free(f);
        return NULL;
    }
    f->role = role;
    f->tcp = f->raw4 = f->raw6 = f->ep = f->timer = -1;
    return f;
}

/* Normalise a socket address: a v4-mapped IPv6 address becomes IPv4. Returns its length or 0. */
static socklen_t normalise(const struct sockaddr *in, socklen_t len, struct sockaddr_storage *out) {
    memset(out, 0, sizeof(*out));
    if (in == NULL)
        return 0;
    if (in->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        memcpy(out, in, sizeof(struct sockaddr_in));
        return sizeof(struct sockaddr_in);
    }
    if (in->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const void *)in;
        if (is_v4_mapped(s6->sin6_addr.s6_addr)) {
            struct sockaddr_in *s4 = (void *)out;
            s4->sin_family = AF_INET;
            s4->sin_port = s6->sin6_port;
            memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
            return sizeof(*s4);
        }
        memcpy(out, in, sizeof(*s6));
        return sizeof(*s6);
    }
    return 0;
}

static void set_port(struct sockaddr_storage *a, uint16_t port) {
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)a)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

static uint16_t get_port(const struct sockaddr_storage *a) {
    return ntohs(a->ss_family == AF_INET ? ((const struct sockaddr_in *)a)->sin_port
                                         : ((const struct sockaddr_in6 *)a)->sin6_port);
}

/* ---------------------------------------------------------------------------------------------- */
/* client */

int gx_faketcp_dial(struct gx_faketcp **out, const struct sockaddr *remote, socklen_t remote_len,
                    uint32_t idle_timeout_ms) {
    struct sockaddr_storage peer;
    socklen_t plen = normalise(remote, remote_len, &peer);
    if (plen == 0 || get_port(&peer) == 0)
        return -EINVAL;
    int family = peer.ss_family;
    struct gx_faketcp *f = faketcp_alloc(ROLE_CLIENT);
    if (f == NULL)
        return -ENOMEM;
    f->v6 = family == AF_INET6;
    f->remote = peer;
    f->remote_len = plen;
    f->idle_ms = idle_timeout_ms;
    int rc = 0;

    /* the source address the kernel will use towards the server: the raw socket is bound to it */
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    int probe = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        rc = -errno;
    else if (connect(probe, (struct sockaddr *)&peer, plen) < 0 ||
             getsockname(probe, (struct sockaddr *)&local, &llen) < 0)
        rc = -errno;
    if (probe >= 0)
        close(probe);

    if (rc == 0) {
        set_port(&local, 0);
        f->tcp = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (f->tcp < 0)
            rc = -errno;
    }
    if (rc == 0 && bind(f->tcp, (struct sockaddr *)&local, plen) < 0)
        rc = -errno;
    llen = sizeof(local);
    if (rc == 0 && getsockname(f->tcp, (struct sockaddr *)&local, &llen) < 0)
        rc = -errno;
    if (rc == 0) {
        f->port = get_port(&local);
        struct fkey lk;
        key_of(&local, llen, &lk);
        memcpy(f->cflow.local, lk.ip, 16);
        atomic_store(&f->cflow.local_known, true);
        struct sockaddr_storage raw_local = local, raw_peer = peer;
        set_port(&raw_local, 0);
        set_port(&raw_peer, 0);
        int fd = raw_open(family, get_port(&peer), f->port, &raw_local, &raw_peer);
        if (fd < 0)
            rc = fd;
        else if (family == AF_INET)
            f->raw4 = fd;
        else
            f->raw6 = fd;
    }
    if (rc == 0) {
        key_of(&peer, plen, &f->cflow.key);
        f->cflow.used = true;
        if (connect(f->tcp, (struct sockaddr *)&peer, plen) < 0 && errno != EINPROGRESS)
            rc = -errno;
    }
    if (rc < 0) {
        gx_faketcp_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

static int client_segment(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, uint64_t now);

/* Read what the raw socket holds without delivering datagrams (the handshake). */
static void client_absorb(struct gx_faketcp *f) {
    int fd = f->v6 ? f->raw6 : f->raw4;
    uint8_t buf[2048];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0)
            break;
        struct gx_faketcp_seg seg;
        if (gx_faketcp_parse(buf, (uint32_t)n, !f->v6, &seg) == 0)
            client_segment(f, &seg, now_ms());
    }
}

int gx_faketcp_dial_finish(struct gx_faketcp *f) {
    if (f == NULL || f->role != ROLE_CLIENT || f->connected)
        return -EINVAL;
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(f->tcp, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -errno;
    if (err != 0)
        return -err;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    if (getpeername(f->tcp, (struct sockaddr *)&peer, &plen) < 0)
        return errno == ENOTCONN ? -EINPROGRESS : -errno;
    int rc = mute(f->tcp, f->v6 ? AF_INET6 : AF_INET, f->v6);
    if (rc < 0)
        return rc;
    client_absorb(f);
    if (f->dead)
        return -f->dead;
    uint32_t tick = TICK_MS;
    if (f->idle_ms > 0 && f->idle_ms / 4 < tick)
        tick = f->idle_ms / 4 ? f->idle_ms / 4 : 1;
    rc = common_init(f, tick);
    if (rc < 0)
        return rc;
    f->last_rx_ms = now_ms();
    f->connected = true;
    return 0;
}

/* Returns 1 when the segment carries a datagram, 0 when not, -1 when the flow ended. */
static int client_segment(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, uint64_t now) {
    struct flow *p = &f->cflow;
    count(f, STAT(rx_segments), 1);
    f->last_rx_ms = now;
    if (seg->flags & (GX_TCP_RST | GX_TCP_FIN)) {
        count(f, STAT(rx_resets), 1);
        f->dead = ECONNRESET;
        return -1;
    }
    if (seg->flags & GX_TCP_ACK)
        atomic_store_explicit(&p->seq, seg->ack, memory_order_relaxed);
    if (seg->flags & GX_TCP_SYN) {
        atomic_store_explicit(&p->ack, seg->seq + 1, memory_order_relaxed);
        p->ack_known = true;
    } else if (!p->ack_known) {
        atomic_store_explicit(&p->ack, seg->seq, memory_order_relaxed);
        p->ack_known = true;
    }
    if (!(seg->flags & GX_TCP_PSH))
        return 0;
    if (atomic_load_explicit(&p->ack, memory_order_relaxed) == seg->seq)
        atomic_store_explicit(&p->ack, seg->seq + seg->payload_len, memory_order_relaxed);
    return 1;
}

/* ---------------------------------------------------------------------------------------------- */
/* server */

int gx_faketcp_listen(struct gx_faketcp **out, const struct sockaddr *local, socklen_t local_len,
                      int dual_stack, uint32_t flow_timeout_ms, uint32_t max_flows) {
    struct sockaddr_storage addr;
    socklen_t alen = 0;
    memset(&addr, 0, sizeof(addr));
    if (local != NULL && local->sa_family == AF_INET && local_len >= sizeof(struct sockaddr_in))
        memcpy(&addr, local, alen = sizeof(struct sockaddr_in));
    else if (local != NULL && local->sa_family == AF_INET6 && local_len >= sizeof(struct sockaddr_in6))
        memcpy(&addr, local, alen = sizeof(struct sockaddr_in6));
    if (alen == 0 || max_flows > (1u << 20))
        return -EINVAL;
    int family = addr.ss_family;
    struct gx_faketcp *f = faketcp_alloc(ROLE_SERVER);
    if (f == NULL)
        return -ENOMEM;
    f->flow_timeout_ms = flow_timeout_ms ? flow_timeout_ms : DEFAULT_FLOW_TIMEOUT_MS;
    f->limit = max_flows ? max_flows : DEFAULT_MAX_FLOWS;
    uint32_t cap = 16;
    while (cap < f->limit * 2u)
        cap <<= 1;
    int rc = 0;
    f->slots = calloc(cap, sizeof(*f->slots));
    if (f->slots == NULL)
        rc = -ENOMEM;
    f->mask = cap - 1;
    if (rc == 0) {
        rc = -pthread_rwlock_init(&f->lock, NULL);
        f->lock_ready = rc == 0;
    }

    bool any = false;
    if (family == AF_INET)
        any = ((struct sockaddr_in *)&addr)->sin_addr.s_addr == htonl(INADDR_ANY);
    else
        any = memcmp(&((struct sockaddr_in6 *)&addr)->sin6_addr, &in6addr_any, 16) == 0;
    bool dual = family == AF_INET6 && any && dual_stack;

    if (rc == 0) {
        f->tcp = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (f->tcp < 0)
            rc = -errno;
    }
    int one = 1, v6only = !dual;
    if (rc == 0 && setsockopt(f->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        rc = -errno;
    if (rc == 0 && family == AF_INET6 && setsockopt(f->tcp, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
        rc = -errno;
    if (rc == 0 && bind(f->tcp, (struct sockaddr *)&addr, alen) < 0)
        rc = -errno;
    if (rc == 0 && listen(f->tcp, 1024) < 0)
        rc = -errno;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (rc == 0 && getsockname(f->tcp, (struct sockaddr *)&bound, &blen) < 0)
        rc = -errno;
    if (rc == 0) {
        f->port = get_port(&bound);
        struct sockaddr_storage raw_bind = addr;
        set_port(&raw_bind, 0);
        if (family == AF_INET || dual) {
            int fd = raw_open(AF_INET, 0, f->port, family == AF_INET && !any ? &raw_bind : NULL, NULL);
            if (fd < 0)
                rc = fd;
            f->raw4 = fd;
        }
        if (rc == 0 && family == AF_INET6) {
            int fd = raw_open(AF_INET6, 0, f->port, any ? NULL : &raw_bind, NULL);
            if (fd < 0)
                rc = fd;
            f->raw6 = fd;
        }
    }
    if (rc == 0)
        rc = common_init(f, TICK_MS);
    if (rc < 0) {
        gx_faketcp_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* Close a kernel connection; graceful: with its normal TTL, after discarding what it holds, so a
 * FIN (not an RST) goes out. */
static void conn_close(struct gx_faketcp *f, struct src *c, bool graceful) {
    if (c == NULL)
        return;
    epoll_ctl(f->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (graceful) {
        (void)set_ttl(c->fd, 0, c->v6, -1);
        while (recv(c->fd, NULL, DISCARD_BYTES, MSG_DONTWAIT | MSG_TRUNC) > 0) {
        }
    }
    close(c->fd);
    if (c != &f->s_tcp)
        free(c);
}

/* Server, down thread: end a flow. */
static void flow_end(struct gx_faketcp *f, struct flow *p, bool graceful) {
    struct src *c = p->conn;
    if (c == NULL)
        f->orphans--;
    pthread_rwlock_wrlock(&f->lock);
    table_delete(f, p);
    pthread_rwlock_unlock(&f->lock);
    conn_close(f, c, graceful);
    count(f, STAT(flows_closed), 1);
}

/* Caller holds the write lock: make room for an accepted connection by forgetting the oldest
 * handshake that was never accepted (spoofed SYNs must not lock real clients out). */
static void evict_orphan(struct gx_faketcp *f) {
    struct flow *oldest = NULL;
    for (uint32_t i = 0; i <= f->mask; i++) {
        struct flow *p = &f->slots[i];
        if (p->used && p->conn == NULL && (oldest == NULL || p->born_ms < oldest->born_ms))
            oldest = p;
    }
    if (oldest != NULL) {
        table_delete(f, oldest);
        f->orphans--;
        count(f, STAT(flows_closed), 1);
    }
}

static void server_accept(struct gx_faketcp *f, uint64_t now) {
    for (int i = 0; i < ACCEPT_MAX; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        int fd = accept4(f->tcp, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct fkey k;
        struct sockaddr_storage me;
        socklen_t melen = sizeof(me);
        struct fkey mine;
        if (!key_of(&sa, salen, &k) || getsockname(fd, (struct sockaddr *)&me, &melen) < 0 ||
            !key_of(&me, melen, &mine) || mute(fd, sa.ss_family, k.v6) < 0) {
            close(fd);
            continue;
        }
        struct src *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        *c = (struct src){.kind = SRC_CONN, .fd = fd, .v6 = k.v6, .key = k};
        if (ep_add(f, c, EPOLLIN | EPOLLRDHUP) < 0) {
            close(fd);
            free(c);
            continue;
        }
        struct src *old = NULL;
        pthread_rwlock_wrlock(&f->lock);
        struct flow *p = table_find(f, &k);
        if (p == NULL && f->count >= f->limit)
            evict_orphan(f);
        if (p == NULL)
            p = table_add(f, &k, now);
        else if (p->conn == NULL)
            f->orphans--;
        if (p != NULL) {
            old = p->conn;
            p->conn = c;
            p->seen_ms = now;
            memcpy(p->local, mine.ip, 16);
            p->scope = me.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&me)->sin6_scope_id : 0;
            atomic_store_explicit(&p->local_known, true, memory_order_release);
        }
        pthread_rwlock_unlock(&f->lock);
        if (p == NULL) { /* table full */
            conn_close(f, c, true);
            continue;
        }
        conn_close(f, old, false);
        count(f, STAT(accepted), 1);
    }
}

/* Server: answer a data segment of a flow we do not know (e.g. from a client of the server process
 * before this one) with an RST, as the kernel would if it saw the segment: <SEQ=SEG.ACK><CTL=RST>.
 * The kernel may not: an old, orphaned connection of that 4-tuple can still hold the segment. */
static void server_reset(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, const struct fkey *k,
                         uint64_t now) {
    if (now - f->reset_window_ms >= 1000u) {
        f->reset_window_ms = now;
        f->resets_in_window = 0;
    }
    if (f->resets_in_window >= RESET_PER_S)
        return;
    f->resets_in_window++;
    int fd = k->v6 ? f->raw6 : f->raw4;
    if (fd < 0)
        return;
    uint8_t hdr[GX_FAKETCP_HDR];
    gx_faketcp_build(hdr, f->port, seg->sport, seg->ack, 0, GX_TCP_RST, 0, k->v6 ? NULL : seg->dst + 12,
                     k->v6 ? NULL : seg->src + 12, 0, NULL, 0);
    struct fkey to = *k;
    to.port = 0;
    struct sockaddr_storage sa;
    socklen_t salen = sockaddr_of(&to, &sa);
    union {
        char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
    struct msghdr m = {.msg_name = &sa, .msg_namelen = salen, .msg_iov = &iov, .msg_iovlen = 1};
    if (!k->v6) { /* from the address the segment was sent to */
        struct in_pktinfo pi = {0};
        memcpy(&pi.ipi_spec_dst, seg->dst + 12, 4);
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(pi));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    }
    if (sendmsg(fd, &m, MSG_DONTWAIT) == (ssize_t)sizeof(hdr))
        count(f, STAT(tx_resets), 1);
}

/* Returns 1 when the segment carries a datagram for the tunnel, 0 when not. */
static int server_segment(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, const struct fkey *k,
                          uint64_t now) {
    count(f, STAT(rx_segments), 1);
    pthread_rwlock_rdlock(&f->lock);
    struct flow *p = table_find(f, k);
    pthread_rwlock_unlock(&f->lock); /* only this thread changes the table */
    if (seg->flags & (GX_TCP_RST | GX_TCP_FIN)) {
        if (p != NULL) {
            count(f, STAT(rx_resets), 1);
            flow_end(f, p, (seg->flags & GX_TCP_RST) == 0);
        }
        return 0;
    }
    if (p == NULL) {
        if ((seg->flags & (GX_TCP_SYN | GX_TCP_ACK)) != GX_TCP_SYN) {
            if (seg->flags & GX_TCP_PSH) { /* data of a flow we do not know */
                count(f, STAT(rx_orphan), 1);
                if (seg->flags & GX_TCP_ACK)
                    server_reset(f, seg, k, now);
            }
            return 0;
        }
        if (f->orphans >= f->limit / 2 + 1)
            return 0; /* too many handshakes in flight: this one is served without its SYN */
        pthread_rwlock_wrlock(&f->lock);
        p = table_add(f, k, now);
        pthread_rwlock_unlock(&f->lock);
        if (p == NULL)
            return 0;
        f->orphans++;
    }
    p->seen_ms = now;
    if (seg->flags & GX_TCP_ACK)
        atomic_store_explicit(&p->seq, seg->ack, memory_order_relaxed);
    if (seg->flags & GX_TCP_SYN) {
        atomic_store_explicit(&p->ack, seg->seq + 1, memory_order_relaxed);
        p->ack_known = true;
    } else if (!p->ack_known) {
        atomic_store_explicit(&p->ack, seg->seq, memory_order_relaxed);
        p->ack_known = true;
    }
    if (!(seg->flags & GX_TCP_PSH))
        return 0;
    if (atomic_load_explicit(&p->ack, memory_order_relaxed) == seg->seq)
        atomic_store_explicit(&p->ack, seg->seq + seg->payload_len, memory_order_relaxed);
    if (p->conn == NULL) {
        count(f, STAT(rx_orphan), 1);
        return 0;
    }
    return 1;
}

/* Server, down thread: forget handshakes never accepted, end idle flows. */
static void server_sweep(struct gx_faketcp *f, uint64_t now) {
    for (uint32_t i = 0; i <= f->mask; i++) {
        struct flow *p = &f->slots[i];
        while (p->used && ((p->conn == NULL && now - p->born_ms > ORPHAN_TTL_MS) ||
                           (p->conn != NULL && now - p->seen_ms > f->flow_timeout_ms)))
            flow_end(f, p, true); /* another flow may shift into slot i: look again */
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* the transport: receive */

/* Discard what a muted connection received; false when it ended (EOF or error). */
static bool conn_discard(int fd) {
    for (;;) {
        ssize_t n = recv(fd, NULL, DISCARD_BYTES, MSG_DONTWAIT | MSG_TRUNC);
        if (n > 0)
            continue;
        if (n == 0)
            return false;
        return errno == EAGAIN || errno == EINTR;
    }
}

static void conn_event(struct gx_faketcp *f, struct src *c, uint32_t events) {
    bool alive = !(events & (EPOLLERR | EPOLLHUP)) && conn_discard(c->fd);
    if (events & EPOLLRDHUP)
        alive = false;
    if (alive)
        return;
    if (f->role == ROLE_CLIENT) {
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        f->dead = err ? err : ECONNRESET;
        return;
    }
    pthread_rwlock_rdlock(&f->lock);
    struct flow *p = table_find(f, &c->key);
    pthread_rwlock_unlock(&f->lock);
    if (p != NULL && p->conn == c) {
        flow_end(f, p, !(events & (EPOLLERR | EPOLLHUP)));
    } else { /* not attached (replaced): just close it */
        conn_close(f, c, false);
    }
}

/* recvmmsg on one raw socket into slots [at, cap); datagrams are compacted to the front. Returns how
 * many slots now hold datagrams, or -1 when the client's flow ended. */
static int raw_recv(struct gx_faketcp *f, int fd, bool v6, struct gx_batch *b, uint32_t at, uint64_t *bytes,
                    uint64_t now) {
    struct rx_scratch *rx = f->rx;
    uint32_t want = b->cap - at;
    uint32_t hdr_room = v6 ? GX_FAKETCP_HDR : 20 + GX_FAKETCP_HDR; /* usual headers, in the headroom */
    if (b->headroom < hdr_room)
        hdr_room = b->headroom;
    for (uint32_t j = 0; j < want; j++) {
        uint8_t *slot = gx_batch_slot(b, at + j);
        uint8_t *base = slot + b->headroom - hdr_room;
        rx->iov[j].iov_base = base;
        rx->iov[j].iov_len = b->slot_size - (uint32_t)(base - slot) - GX_TAILROOM;
        memset(&rx->msg[j].msg_hdr, 0, sizeof(rx->msg[j].msg_hdr));
        rx->msg[j].msg_hdr.msg_iov = &rx->iov[j];
        rx->msg[j].msg_hdr.msg_iovlen = 1;
        rx->msg[j].msg_hdr.msg_name = &rx->from[j];
        rx->msg[j].msg_hdr.msg_namelen = sizeof(rx->from[j]);
    }
    int n = recvmmsg(fd, rx->msg, want, MSG_DONTWAIT, NULL);
    if (n <= 0)
        return 0;
    uint32_t w = at;
    uint64_t bad = 0;
    for (int j = 0; j < n; j++) {
        const uint8_t *pkt = rx->iov[j].iov_base;
        uint32_t len = rx->msg[j].msg_len;
        struct gx_faketcp_seg seg;
        /* Only segments with a payload have their checksum checked: those come from a raw socket
         * (ours or tcpraw's) with a complete one; the kernel's own segments (handshake, FIN, RST)
         * may arrive over a virtual link with a partial checksum (CHECKSUM_PARTIAL on veth, lo). */
        if ((rx->msg[j].msg_hdr.msg_flags & MSG_TRUNC) || gx_faketcp_parse(pkt, len, !v6, &seg) < 0 ||
            (!v6 && seg.payload_len > 0 && !gx_faketcp_csum_ok(pkt, &seg))) {
            bad++;
            continue;
        }
        int deliver;
        struct fkey k;
        if (f->role == ROLE_CLIENT) {
            deliver = client_segment(f, &seg, now);
            if (deliver < 0) {
                count(f, STAT(rx_bad), bad);
                return -1;
            }
            k = f->cflow.key;
        } else {
            if (!key_of(&rx->from[j], rx->msg[j].msg_hdr.msg_namelen, &k))
                continue;
            k.port = seg.sport;
            k.v6 = v6;
            if (!v6)
                memcpy(k.ip, seg.src, 16);
            deliver = server_segment(f, &seg, &k, now);
        }
        if (deliver <= 0)
            continue;
        uint32_t i = at + (uint32_t)j;
        uint8_t *payload = (uint8_t *)pkt + seg.hdr_len;
        if (w != i) { /* same offset in the earlier free slot */
            uint8_t *to = gx_batch_slot(b, w) + (payload - gx_batch_slot(b, i));
            memcpy(to, payload, seg.payload_len);
            payload = to;
        }
        b->pkt[w].data = payload;
        b->pkt[w].len = seg.payload_len;
        b->addrlen[w] = sockaddr_of(&k, &b->addr[w]);
        *bytes += seg.payload_len;
        w++;
    }
    count(f, STAT(rx_bad), bad);
    count(f, STAT(rx_datagrams), w - at);
    return (int)(w - at);
}

static int ftcp_recv(void *state, struct gx_batch *b, uint64_t *bytes) {
    struct gx_faketcp *f = state;
    if (f->role == ROLE_CLIENT && !f->connected)
        return -ENOTCONN;
    if (f->dead)
        return -f->dead;
    struct epoll_event ev[EPOLL_MAX];
    int n = epoll_wait(f->ep, ev, EPOLL_MAX, 0);
    if (n < 0)
        return errno == EINTR ? -EAGAIN : -errno;
    uint64_t now = now_ms();
    bool raw4 = false, raw6 = false, tick = false, listen = false;
    /* connections first (each event frees at most its own src), then the listener (a flow gets its
     * connection before its data; a replaced connection is closed here, after its events), timers,
     * and the raw sockets last */
    for (int i = 0; i < n; i++) {
        struct src *s = ev[i].data.ptr;
        if (s->kind == SRC_RAW4)
            raw4 = true;
        else if (s->kind == SRC_RAW6)
            raw6 = true;
        else if (s->kind == SRC_TIMER)
            tick = true;
        else if (s->kind == SRC_LISTEN)
            listen = true;
        else if (s->kind == SRC_CONN)
            conn_event(f, s, ev[i].events);
    }
    if (listen)
        server_accept(f, now);
    if (f->dead)
        return -f->dead;
    if (tick) {
        uint64_t expirations;
        ssize_t r = read(f->timer, &expirations, sizeof(expirations));
        (void)r;
        if (f->role == ROLE_SERVER)
            server_sweep(f, now);
        else if (f->idle_ms > 0 && now - f->last_rx_ms > f->idle_ms)
            f->dead = ETIMEDOUT;
        if (f->dead)
            return -f->dead;
    }
    gx_batch_reset(b);
    uint32_t got = 0;
    for (int pass = 0; pass < 2; pass++) {
        bool ready = pass == 0 ? raw4 : raw6;
        int fd = pass == 0 ? f->raw4 : f->raw6;
        if (!ready || fd < 0 || got >= b->cap)
            continue;
        int r = raw_recv(f, fd, pass == 1, b, got, bytes, now);
        if (r < 0)
            return -f->dead;
        got += (uint32_t)r;
    }
    b->n = got;
    return (int)got;
}

/* ---------------------------------------------------------------------------------------------- */
/* the transport: send. Scratch per thread: the up thread sends data, the down thread control
 * messages and relayed packets. */

struct tx_scratch {
    struct mmsghdr msg[GX_BATCH_MAX];
    struct iovec iov[GX_BATCH_MAX][2];
    uint8_t hdr[GX_BATCH_MAX][GX_FAKETCP_HDR];
    struct sockaddr_storage to[GX_BATCH_MAX];
    union {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    } ctl[GX_BATCH_MAX];
    int fd[GX_BATCH_MAX];
    uint32_t rng;
};

static _Thread_local struct tx_scratch tx;

static uint16_t window_value(void) {
    /* tcpraw: a random 16-bit window with the top bit set */
    if (tx.rng == 0)
        tx.rng = (uint32_t)now_ms() * 2654435761u | 1u;
    tx.rng ^= tx.rng << 13;
    tx.rng ^= tx.rng >> 17;
    tx.rng ^= tx.rng << 5;
    return (uint16_t)(tx.rng | 0x8000u);
}

static int wait_writable(int fd, int stop_fd) {
    struct pollfd p[2] = {{.fd = fd, .events = POLLOUT}, {.fd = stop_fd, .events = POLLIN}};
    for (;;) {
        int r = poll(p, 2, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        if (p[1].revents)
            return 0;
        if (r > 0)
            return 1;
    }
}

/* Prepare message m for datagram d on flow p. Server messages carry the destination and the source
 * address (IP_PKTINFO / IPV6_PKTINFO). */
static void tx_prepare(struct gx_faketcp *f, int m, const struct gx_tunnel_dgram *d, struct flow *p) {
    bool v6 = p->key.v6;
    uint32_t seq = atomic_fetch_add_explicit(&p->seq, d->len, memory_order_relaxed);
    uint32_t ack = atomic_load_explicit(&p->ack, memory_order_relaxed);
    gx_faketcp_build(tx.hdr[m], f->port, p->key.port, seq, ack, GX_TCP_PSH | GX_TCP_ACK, window_value(),
                     v6 ? NULL : p->local + 12, v6 ? NULL : p->key.ip + 12, 0, d->data, d->len);
    tx.iov[m][0] = (struct iovec){.iov_base = tx.hdr[m], .iov_len = GX_FAKETCP_HDR};
    tx.iov[m][1] = (struct iovec){.iov_base = (void *)d->data, .iov_len = d->len};
    struct msghdr *h = &tx.msg[m].msg_hdr;
    memset(h, 0, sizeof(*h));
    h->msg_iov = tx.iov[m];
    h->msg_iovlen = 2;
    tx.fd[m] = v6 ? f->raw6 : f->raw4;
    if (f->role == ROLE_CLIENT)
        return; /* the raw socket is connected and bound */
    struct fkey to = p->key;
    to.port = 0;
    h->msg_name = &tx.to[m];
    h->msg_namelen = sockaddr_of(&to, &tx.to[m]);
    memset(&tx.ctl[m], 0, sizeof(tx.ctl[m]));
    h->msg_control = tx.ctl[m].buf;
    struct cmsghdr *c = (struct cmsghdr *)tx.ctl[m].buf;
    if (!v6) {
        struct in_pktinfo pi = {0};
        memcpy(&pi.ipi_spec_dst, p->local + 12, 4);
        h->msg_controllen = CMSG_SPACE(sizeof(pi));
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    } else {
        struct in6_pktinfo pi = {0};
        memcpy(&pi.ipi6_addr, p->local, 16);
        pi.ipi6_ifindex = p->scope;
        h->msg_controllen = CMSG_SPACE(sizeof(pi));
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    }
}

/* sendmmsg the prepared messages [0, m) in runs of one fd. Returns how many were refused. */
static uint64_t tx_flush(int m, int stop_fd, uint64_t *bytes, bool *stopped) {
    uint64_t refused = 0;
    int i = 0;
    while (i < m) {
        int fd = tx.fd[i], run = 1;
        while (i + run < m && tx.fd[i + run] == fd)
            run++;
        int done = 0;
        while (done < run) {
            if (*stopped) {
                refused += (uint64_t)(run - done);
                break;
            }
            int r = sendmmsg(fd, tx.msg + i + done, (unsigned)(run - done), 0);
            if (r > 0) {
                for (int k = i + done; k < i + done + r; k++)
                    *bytes += tx.iov[k][1].iov_len;
                done += r;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
                if (!wait_writable(fd, stop_fd))
                    *stopped = true;
                continue;
            }
            refused++; /* this segment was refused (unreachable, too big): skip it */
            done++;
        }
        i += run;
    }
    return refused;
}

static int ftcp_send(void *state, const struct gx_tunnel_dgram *d, int n, int stop_fd, uint64_t *bytes,
                     uint64_t *dropped) {
    struct gx_faketcp *f = state;
    bool stopped = false;
    int handed = 0;
    if (f->role == ROLE_CLIENT && (!f->connected || f->dead)) {
        *dropped += (uint64_t)n;
        count(f, STAT(tx_no_flow), (uint64_t)n);
        return 0;
    }
    for (int at = 0; at < n;) {
        int chunk = n - at > GX_BATCH_MAX ? GX_BATCH_MAX : n - at;
        int m = 0;
        uint64_t no_flow = 0;
        if (f->role == ROLE_CLIENT) {
            for (int i = 0; i < chunk; i++)
                tx_prepare(f, m++, &d[at + i], &f->cflow);
        } else {
            pthread_rwlock_rdlock(&f->lock);
            struct flow *last = NULL;
            struct fkey last_key;
            for (int i = 0; i < chunk; i++) {
                const struct gx_tunnel_dgram *g = &d[at + i];
                struct fkey k;
                if (!key_of(g->addr, g->addrlen, &k)) {
                    no_flow++;
                    continue;
                }
                struct flow *p = (last != NULL && key_eq(&k, &last_key)) ? last : table_find(f, &k);
                if (p == NULL || p->conn == NULL ||
                    !atomic_load_explicit(&p->local_known, memory_order_acquire) ||
                    (p->key.v6 ? f->raw6 : f->raw4) < 0) {
                    no_flow++;
                    continue;
                }
                last = p;
                last_key = k;
                tx_prepare(f, m++, g, p);
            }
            pthread_rwlock_unlock(&f->lock);
        }
        uint64_t refused = tx_flush(m, stop_fd, bytes, &stopped);
        count(f, STAT(tx_segments), (uint64_t)m - refused);
        count(f, STAT(tx_no_flow), no_flow);
        *dropped += refused + no_flow;
        handed += m - (int)refused;
        at += chunk;
        if (stopped) {
            *dropped += (uint64_t)(n - at);
            break;
        }
    }
    return handed;
}

/* ---------------------------------------------------------------------------------------------- */

int gx_faketcp_transport(struct gx_faketcp *f, struct gx_transport *out) {
    if (f == NULL || out == NULL || f->ep < 0)
        return -EINVAL;
    out->state = f;
    out->fd = f->ep;
    out->recv = ftcp_recv;
    out->send = ftcp_send;
    out->close = NULL;
    return 0;
}

int gx_faketcp_conn_fd(const struct gx_faketcp *f) { return f->tcp; }

int gx_faketcp_local(const struct gx_faketcp *f, struct sockaddr_storage *out, socklen_t *len) {
    *len = sizeof(*out);
    return getsockname(f->tcp, (struct sockaddr *)out, len) < 0 ? -errno : 0;
}

void gx_faketcp_get_stats(struct gx_faketcp *f, struct gx_faketcp_stats *out) {
    uint64_t *o = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        o[i] = atomic_load_explicit(&f->stats.v[i], memory_order_relaxed);
    if (f->role == ROLE_CLIENT)
        out->flows = f->connected && !f->dead;
}

void gx_faketcp_close(struct gx_faketcp *f) {
    if (f == NULL)
        return;
    if (f->slots != NULL) {
        for (uint32_t i = 0; i <= f->mask; i++)
            if (f->slots[i].used && f->slots[i].conn != NULL)
                conn_close(f, f->slots[i].conn, true);
        free(f->slots);
    }
    if (f->lock_ready)
        pthread_rwlock_destroy(&f->lock);
    if (f->tcp >= 0) {
        if (f->role == ROLE_CLIENT && f->connected)
            conn_close(f, &f->s_tcp, true); /* normal TTL: our FIN reaches a server that is still there */
        else
            close(f->tcp);
    }
    if (f->raw4 >= 0)
        close(f->raw4);
    if (f->raw6 >= 0)
        close(f->raw6);
    if (f->timer >= 0)
        close(f->timer);
    if (f->ep >= 0)
        close(f->ep);
    free(f->rx);
    free(f);
}
