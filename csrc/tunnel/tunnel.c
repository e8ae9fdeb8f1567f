/* The tun/tap tunnel engine (see gx/tunnel.h for the contract). Two threads, no GIL, no Python. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "gx/base.h"
#include "gx/tun.h"
#include "gx/tunnel.h"

#define CONTROL_MAGIC "GOST"
#define CONTROL_HDR 20                 /* "GOST" + 16 */
#define EVENT_RING 256
#define SEND_MAX (GX_BATCH_MAX * 2)
#define SWEEP_MS 1000u
#define LEARN_REFRESH_MS 1000u         /* refresh an unchanged entry's time at most this often */
#define BCAST_MAX 64                   /* TAP broadcast fan-out per frame */

static const uint8_t bcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* ---------------------------------------------------------------------------------------------- */
/* time, addresses */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void v4_mapped(uint8_t out[16], const uint8_t v4[4]) {
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

/* Same transport address (family, IP, port)? */
static bool sockaddr_equal(const struct sockaddr_storage *a, socklen_t alen,
                           const struct sockaddr_storage *b, socklen_t blen) {
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return alen >= sizeof(*x) && blen >= sizeof(*y) && x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return alen >= sizeof(*x) && blen >= sizeof(*y) && x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return false;
}

/* The 16-byte form of a socket address's IP (v4 mapped). */
static void sockaddr_ip16(const struct sockaddr_storage *a, uint8_t out[16]) {
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a;
        v4_mapped(out, (const uint8_t *)&x->sin_addr.s_addr);
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a;
        memcpy(out, &x->sin6_addr, 16);
    } else {
        memset(out, 0, 16);
    }
}

int gx_tunnel_ip_addrs(const uint8_t *pkt, uint32_t len, uint8_t src[16], uint8_t dst[16]) {
    if (len < 1)
        return -EINVAL;
    uint8_t version = pkt[0] >> 4;
    if (version == 4) {
        uint32_t ihl = (uint32_t)(pkt[0] & 0x0f) * 4u;
        if (len < 20 || ihl < 20 || ihl > len)
            return -EINVAL;
        v4_mapped(src, pkt + 12);
        v4_mapped(dst, pkt + 16);
        return 0;
    }
    if (version == 6) {
        if (len < 40)
            return -EINVAL;
        memcpy(src, pkt + 8, 16);
        memcpy(dst, pkt + 24, 16);
        return 0;
    }
    return -EINVAL;
}

int gx_tunnel_eth_addrs(const uint8_t *frame, uint32_t len, uint8_t src[6], uint8_t dst[6]) {
    if (len < 14)
        return -EINVAL;
    memcpy(dst, frame, 6);
    memcpy(src, frame + 6, 6);
    return 0;
}

int gx_tunnel_control_build(uint8_t *out, uint32_t cap, const uint8_t passphrase[16],
                            const uint8_t (*ips)[16], int n_ips) {
    if (n_ips < 1 || n_ips > GX_TUNNEL_MAX_IPS)
        return -EINVAL;
    uint32_t len = CONTROL_HDR + 16u * (uint32_t)n_ips;
    if (cap < len)
        return -EMSGSIZE;
    memcpy(out, CONTROL_MAGIC, 4);
    memcpy(out + 4, passphrase, 16);
    for (int i = 0; i < n_ips; i++)
        memcpy(out + CONTROL_HDR + 16 * i, ips[i], 16);
    return (int)len;
}

/* 1: a client handshake (n > 20); 2: a server reply (exactly 20); 0: not a control message. */
int gx_tunnel_is_control(const uint8_t *pkt, uint32_t len) {
    if (len < CONTROL_HDR || memcmp(pkt, CONTROL_MAGIC, 4) != 0)
        return 0;
    return len == CONTROL_HDR ? 2 : 1;
}

/* ---------------------------------------------------------------------------------------------- */
/* The peer table: key (16-byte IP, or MAC padded with zeros) -> UDP peer. Open addressing, linear
 * probing, backward-shift deletion. Readers (both threads) take the read lock once per batch; only the
 * down thread writes. */

struct peer {
    bool used;
    uint8_t key[16];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    _Atomic uint64_t seen_ms;
    uint64_t learned_ms;            /* when the entry was made (a new entry restarts its counters) */
    /* inner bytes/packets from and to this entry, added once per run of packets of one batch (relaxed
     * atomics, under the read lock; moved with the entry under the write lock) */
    _Atomic uint64_t rx_bytes, rx_pkts, tx_bytes, tx_pkts;
};

struct peer_table {
    struct peer *slots;
    uint32_t mask;
    uint32_t count;
    uint32_t limit;
    pthread_rwlock_t lock;
};

static uint32_t key_hash(const uint8_t key[16]) {
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}

static int table_init(struct peer_table *t, uint32_t limit) {
    uint32_t cap = 16;
    while (cap < limit * 2u)
        cap <<= 1;
    t->slots = calloc(cap, sizeof(*t->slots));
    if (t->slots == NULL)
        return -ENOMEM;
    t->mask = cap - 1;
    t->count = 0;
    t->limit = limit;
    return -pthread_rwlock_init(&t->lock, NULL);
}

static void table_free(struct peer_table *t) {
    if (t->slots != NULL) {
        pthread_rwlock_destroy(&t->lock);
        free(t->slots);
        t->slots = NULL;
    }
}

/* Caller holds a lock. */
static struct peer *table_find(struct peer_table *t, const uint8_t key[16]) {
    for (uint32_t i = key_hash(key) & t->mask;; i = (i + 1) & t->mask) {
        struct peer *p = &t->slots[i];
        if (!p->used)
            return NULL;
        if (memcmp(p->key, key, 16) == 0)
            return p;
    }
}

/* Caller holds the write lock: nobody else touches either entry. */
static void peer_move_counters(struct peer *to, struct peer *from) {
    to->learned_ms = from->learned_ms;
    atomic_store_explicit(&to->rx_bytes, atomic_load_explicit(&from->rx_bytes, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&to->rx_pkts, atomic_load_explicit(&from->rx_pkts, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&to->tx_bytes, atomic_load_explicit(&from->tx_bytes, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&to->tx_pkts, atomic_load_explicit(&from->tx_pkts, memory_order_relaxed), memory_order_relaxed);
}

static void peer_reset_counters(struct peer *p, uint64_t now) {
    p->learned_ms = now;
    atomic_store_explicit(&p->rx_bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&p->rx_pkts, 0, memory_order_relaxed);
    atomic_store_explicit(&p->tx_bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&p->tx_pkts, 0, memory_order_relaxed);
}

/* Per-peer accounting of one batch: consecutive packets of one peer are summed and added at once (a
 * batch usually goes to or comes from one peer), so the data path pays one atomic add per run, not per
 * packet. The caller holds the read lock from the first add to the flush. */
struct peer_acct {
    struct peer *p;
    uint64_t bytes, pkts;
};

static void acct_flush(struct peer_acct *a, bool tx) {
    if (a->p != NULL && a->pkts) {
        atomic_fetch_add_explicit(tx ? &a->p->tx_bytes : &a->p->rx_bytes, a->bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(tx ? &a->p->tx_pkts : &a->p->rx_pkts, a->pkts, memory_order_relaxed);
    }
    a->p = NULL;
    a->bytes = a->pkts = 0;
}

static void acct_add(struct peer_acct *a, struct peer *p, uint64_t bytes, bool tx) {
    if (a->p != p)
        acct_flush(a, tx);
    a->p = p;
    a->bytes += bytes;
    a->pkts++;
}

/* Caller holds the write lock. */
static void table_delete_at(struct peer_table *t, uint32_t i) {
    t->slots[i].used = false;
    t->count--;
    for (uint32_t j = (i + 1) & t->mask; t->slots[j].used; j = (j + 1) & t->mask) {
        uint32_t home = key_hash(t->slots[j].key) & t->mask;
        /* move slot j back to the hole at i if its home is not in (i, j] (cyclically) */
        bool in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            uint64_t seen = atomic_load_explicit(&t->slots[j].seen_ms, memory_order_relaxed);
            t->slots[i].used = true;
            memcpy(t->slots[i].key, t->slots[j].key, 16);
            t->slots[i].addr = t->slots[j].addr;
            t->slots[i].addrlen = t->slots[j].addrlen;
            atomic_store_explicit(&t->slots[i].seen_ms, seen, memory_order_relaxed);
            peer_move_counters(&t->slots[i], &t->slots[j]);
            t->slots[j].used = false;
            i = j;
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Owners: peer address -> how many table entries it owns (the per-peer cap). Down thread only. Never
 * more owners than entries, so a table as large as the peer table always has room. */

struct owner {
    bool used;
    uint16_t family, port;
    uint8_t ip[16];
    uint32_t routes;
};

struct owner_table {
    struct owner *slots;
    uint32_t mask;
};

struct okey {
    uint16_t family, port;
    uint8_t ip[16];
};

static void okey_of(const struct sockaddr_storage *a, struct okey *k) {
    memset(k, 0, sizeof(*k));
    k->family = a->ss_family;
    sockaddr_ip16(a, k->ip);
    if (a->ss_family == AF_INET)
        k->port = ((const struct sockaddr_in *)(const void *)a)->sin_port;
    else if (a->ss_family == AF_INET6)
        k->port = ((const struct sockaddr_in6 *)(const void *)a)->sin6_port;
}

static uint32_t okey_hash(const struct owner *o) {
    return key_hash(o->ip) ^ (uint32_t)(((uint64_t)o->port << 16 | o->family) * 0x9e3779b1u);
}

static bool owner_is(const struct owner *o, const struct okey *k) {
    return o->family == k->family && o->port == k->port && memcmp(o->ip, k->ip, 16) == 0;
}

static struct owner *owner_find(struct owner_table *t, const struct okey *k) {
    struct owner probe = {.family = k->family, .port = k->port};
    memcpy(probe.ip, k->ip, 16);
    for (uint32_t i = okey_hash(&probe) & t->mask;; i = (i + 1) & t->mask) {
        struct owner *o = &t->slots[i];
        if (!o->used || owner_is(o, k))
            return o; /* the owner, or the free slot where it would go */
    }
}

static uint32_t owner_routes(struct owner_table *t, const struct sockaddr_storage *a) {
    struct okey k;
    okey_of(a, &k);
    const struct owner *o = owner_find(t, &k);
    return o->used ? o->routes : 0;
}

static void owner_add(struct owner_table *t, const struct sockaddr_storage *a) {
    struct okey k;
    okey_of(a, &k);
    struct owner *o = owner_find(t, &k);
    if (!o->used) {
        o->used = true;
        o->family = k.family;
        o->port = k.port;
        memcpy(o->ip, k.ip, 16);
        o->routes = 0;
    }
    o->routes++;
}

static void owner_release(struct owner_table *t, const struct sockaddr_storage *a) {
    struct okey k;
    okey_of(a, &k);
    struct owner *o = owner_find(t, &k);
    if (!o->used || --o->routes > 0)
        return;
    uint32_t i = (uint32_t)(o - t->slots);
    t->slots[i].used = false; /* backward-shift deletion, as table_delete_at */
    for (uint32_t j = (i + 1) & t->mask; t->slots[j].used; j = (j + 1) & t->mask) {
        uint32_t home = okey_hash(&t->slots[j]) & t->mask;
        bool in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            t->slots[i] = t->slots[j];
            t->slots[j].used = false;
            i = j;
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Failing peers: counted per outer address and reason by the down thread, reported as rate-limited
 * events (gx/tunnel.h). Down thread only: no lock. */

enum { BAD_AUTH, BAD_MALFORMED, BAD_CONTROL, BAD_CAPPED, BAD_PINNED, BAD_REASONS };
static const uint32_t bad_event[BAD_REASONS] = {GX_TEV_AUTH_FAILED, GX_TEV_MALFORMED, GX_TEV_CONTROL_REJECTED,
                                                GX_TEV_ROUTES_CAPPED, GX_TEV_PIN_REFUSED};
#define BAD_FLUSH_MS 1000u

struct bad_peer {
    bool used;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint64_t pending[BAD_REASONS];          /* since the last report */
    uint64_t reported_ms[BAD_REASONS];      /* 0 = never */
    uint8_t key[BAD_REASONS][16];           /* the last offending inner key, if any */
    bool has_key[BAD_REASONS];
};

struct bad_table {
    struct bad_peer slot[GX_TUNNEL_BAD_PEERS + 1]; /* the last one: peers without a slot of their own */
    uint32_t last;                                 /* the slot found last (failures come in runs) */
    uint64_t next_flush;                           /* 0 = nothing pending */
};

/* ---------------------------------------------------------------------------------------------- */

struct route {
    uint8_t net[16];
    int prefix;
    uint8_t gw[16];
};

struct counters {
    _Atomic uint64_t v[sizeof(struct gx_tunnel_stats) / sizeof(uint64_t)];
};
#define STAT(field) (offsetof(struct gx_tunnel_stats, field) / sizeof(uint64_t))

struct gx_tunnel {
    struct gx_tunnel_cfg cfg;
    struct gx_transport tr;
    struct peer_table peers;
    struct owner_table owners;      /* down thread only */
    struct bad_table bad;           /* down thread only */
    struct route routes[GX_TUNNEL_MAX_ROUTES];
    int n_routes;
    struct pin {
        uint8_t key[16];
        uint8_t outer[16];
    } pins[GX_TUNNEL_MAX_PINS];
    int n_pins;
    uint64_t full_reported_ms;      /* down thread only: the last table-full event (at most 1 a second) */
    struct counters stats;
    int stop_fd;
    int event_fd;
    pthread_t up, down;
    bool running;
    uint32_t slot_size;
    /* event ring */
    pthread_mutex_t ev_lock;
    struct gx_tunnel_event ev[EVENT_RING];
    uint32_t ev_head, ev_count;
};

static void count(struct gx_tunnel *t, size_t idx, uint64_t n) {
    if (n)
        atomic_fetch_add_explicit(&t->stats.v[idx], n, memory_order_relaxed);
}

static void emit(struct gx_tunnel *t, uint32_t type, uint32_t value, const uint8_t *key, uint32_t keylen,
                 const struct sockaddr_storage *addr, socklen_t addrlen) {
    pthread_mutex_lock(&t->ev_lock);
    if (t->ev_count == EVENT_RING) { /* full: drop the oldest */
        t->ev_head = (t->ev_head + 1) % EVENT_RING;
        t->ev_count--;
    }
    struct gx_tunnel_event *e = &t->ev[(t->ev_head + t->ev_count) % EVENT_RING];
    memset(e, 0, sizeof(*e));
    e->type = type;
    e->value = value;
    if (key != NULL && keylen <= 16) {
        memcpy(e->key, key, keylen);
        e->keylen = keylen;
    }
    if (addr != NULL && addrlen <= sizeof(e->addr)) {
        memcpy(&e->addr, addr, addrlen);
        e->addrlen = addrlen;
    }
    t->ev_count++;
    pthread_mutex_unlock(&t->ev_lock);
    uint64_t one = 1;
    ssize_t w = write(t->event_fd, &one, sizeof(one));
    (void)w;
}

int gx_tunnel_poll_events(struct gx_tunnel *t, struct gx_tunnel_event *ev, int max) {
    uint64_t v;
    ssize_t r = read(t->event_fd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&t->ev_lock);
    int n = 0;
    while (n < max && t->ev_count > 0) {
        ev[n++] = t->ev[t->ev_head];
        t->ev_head = (t->ev_head + 1) % EVENT_RING;
        t->ev_count--;
    }
    bool more = t->ev_count > 0;
    pthread_mutex_unlock(&t->ev_lock);
    if (more) {
        uint64_t one = 1;
        ssize_t w = write(t->event_fd, &one, sizeof(one));
        (void)w;
    }
    return n;
}

int gx_tunnel_event_fd(const struct gx_tunnel *t) { return t->event_fd; }

void gx_tunnel_get_stats(struct gx_tunnel *t, struct gx_tunnel_stats *out) {
    uint64_t *o = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        o[i] = atomic_load_explicit(&t->stats.v[i], memory_order_relaxed);
    pthread_rwlock_rdlock(&t->peers.lock);
    out->peers = t->peers.count;
    pthread_rwlock_unlock(&t->peers.lock);
}

static uint32_t keylen_of(const struct gx_tunnel *t) { return t->cfg.mode == GX_TUNNEL_TAP ? 6 : 16; }

int gx_tunnel_peers(struct gx_tunnel *t, struct gx_tunnel_peer *out, int max) {
    if (max < 0)
        return -EINVAL;
    int n = 0;
    uint32_t keylen = keylen_of(t);
    pthread_rwlock_rdlock(&t->peers.lock);
    for (uint32_t i = 0; i <= t->peers.mask && n < max; i++) {
        const struct peer *p = &t->peers.slots[i];
        if (!p->used)
            continue;
        struct gx_tunnel_peer *o = &out[n++];
        memset(o, 0, sizeof(*o));
        memcpy(o->key, p->key, 16);
        o->keylen = keylen;
        if (p->addrlen <= sizeof(o->addr)) {
            memcpy(&o->addr, &p->addr, p->addrlen);
            o->addrlen = p->addrlen;
        }
        o->learned_ms = p->learned_ms;
        o->seen_ms = atomic_load_explicit(&p->seen_ms, memory_order_relaxed);
        o->rx_bytes = atomic_load_explicit(&p->rx_bytes, memory_order_relaxed);
        o->rx_pkts = atomic_load_explicit(&p->rx_pkts, memory_order_relaxed);
        o->tx_bytes = atomic_load_explicit(&p->tx_bytes, memory_order_relaxed);
        o->tx_pkts = atomic_load_explicit(&p->tx_pkts, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&t->peers.lock);
    return n;
}

/* ---------------------------------------------------------------------------------------------- */
/* Failing peers (down thread). */

/* One failing peer? As sockaddr_equal; addresses of other families (a stream transport's) are one peer. */
static bool same_peer(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b,
                      socklen_t blen) {
    if (a->ss_family == b->ss_family && a->ss_family != AF_INET && a->ss_family != AF_INET6)
        return true;
    return sockaddr_equal(a, alen, b, blen);
}

/* Count n failures of one kind from addr; key (16 bytes, may be NULL) is the inner key involved. */
static void bad_record(struct gx_tunnel *t, int reason, const struct sockaddr_storage *addr, socklen_t addrlen,
                       const uint8_t *key, uint64_t n, uint64_t now) {
    struct bad_table *bt = &t->bad;
    struct bad_peer *b = &bt->slot[bt->last];
    if (!(b->used && same_peer(&b->addr, b->addrlen, addr, addrlen))) {
        b = NULL;
        int free_at = -1;
        for (int i = 0; i < GX_TUNNEL_BAD_PEERS; i++) {
            struct bad_peer *c = &bt->slot[i];
            if (c->used && same_peer(&c->addr, c->addrlen, addr, addrlen)) {
                b = c;
                break;
            }
            if (free_at < 0 && !c->used)
                free_at = i;
            if (free_at < 0) { /* reusable: nothing pending and every rate limit of it over */
                bool idle = true;
                for (int r = 0; r < BAD_REASONS && idle; r++)
                    idle = c->pending[r] == 0 && (c->reported_ms[r] == 0 || now - c->reported_ms[r] >= GX_TUNNEL_BAD_REPORT_MS);
                if (idle)
                    free_at = i;
            }
        }
        if (b == NULL && free_at >= 0) {
            b = &bt->slot[free_at];
            memset(b, 0, sizeof(*b));
            b->used = true;
            if (addrlen <= sizeof(b->addr)) {
                memcpy(&b->addr, addr, addrlen);
                b->addrlen = addrlen;
            }
        }
        if (b == NULL) {
            b = &bt->slot[GX_TUNNEL_BAD_PEERS]; /* no room: reported together, without an address */
            b->used = true;
            b->addrlen = 0;
        } else {
            bt->last = (uint32_t)(b - bt->slot);
        }
    }
    b->pending[reason] += n;
    if (key != NULL) {
        memcpy(b->key[reason], key, 16);
        b->has_key[reason] = true;
    }
    if (bt->next_flush == 0)
        bt->next_flush = now + BAD_FLUSH_MS;
}

/* Report what is pending and due; keep the rest for a later flush. */
static void bad_flush(struct gx_tunnel *t, uint64_t now) {
    struct bad_table *bt = &t->bad;
    bool more = false;
    for (int i = 0; i <= GX_TUNNEL_BAD_PEERS; i++) {
        struct bad_peer *b = &bt->slot[i];
        if (!b->used)
            continue;
        for (int r = 0; r < BAD_REASONS; r++) {
            if (b->pending[r] == 0)
                continue;
            if (b->reported_ms[r] != 0 && now - b->reported_ms[r] < GX_TUNNEL_BAD_REPORT_MS) {
                more = true;
                continue;
            }
            uint32_t value = b->pending[r] > UINT32_MAX ? UINT32_MAX : (uint32_t)b->pending[r];
            uint32_t keylen = b->has_key[r] ? keylen_of(t) : 0;
            emit(t, bad_event[r], value, keylen ? b->key[r] : NULL, keylen, b->addrlen ? &b->addr : NULL,
                 b->addrlen);
            b->pending[r] = 0;
            b->has_key[r] = false;
            b->reported_ms[r] = now;
        }
    }
    bt->next_flush = more ? now + BAD_FLUSH_MS : 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Learning and lookup (server). */

static bool prefix_match(const uint8_t a[16], const uint8_t net[16], int prefix) {
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    return (a[full] & m) == (net[full] & m);
}

static bool is_v4_mapped(const uint8_t ip[16]) {
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, prefix, 12) == 0;
}

/* The host part of ip under a v4 net of this prefix (16-byte form) is all zeros or all ones. */
static bool v4_net_or_bcast(const uint8_t ip[16], int prefix) {
    if (prefix < 96 || prefix > 126)
        return false;
    uint32_t a = (uint32_t)ip[12] << 24 | (uint32_t)ip[13] << 16 | (uint32_t)ip[14] << 8 | ip[15];
    uint32_t host = (1u << (128 - prefix)) - 1u;
    return (a & host) == 0 || (a & host) == host;
}

int gx_tunnel_learnable(const struct gx_tunnel *t, const uint8_t key[16]) {
    if (t->cfg.mode == GX_TUNNEL_TAP) {
        static const uint8_t zero[6] = {0};
        if ((key[0] & 1) != 0 || memcmp(key, zero, 6) == 0 || memcmp(key, t->cfg.mac, 6) == 0)
            return -EADDRNOTAVAIL; /* multicast/broadcast, unset, the server's own */
        return 1;
    }
    if (is_v4_mapped(key)) {
        if (key[12] == 0 || key[12] == 127 || key[12] >= 224)
            return -EADDRNOTAVAIL; /* 0/8, loopback, multicast, reserved and broadcast */
    } else {
        static const uint8_t zero[15] = {0};
        if (key[0] == 0xff || (memcmp(key, zero, 15) == 0 && key[15] <= 1))
            return -EADDRNOTAVAIL; /* multicast, ::, ::1 */
    }
    for (int i = 0; i < t->cfg.n_ips; i++)
        if (memcmp(t->cfg.ips[i], key, 16) == 0)
            return -EADDRNOTAVAIL;
    for (int i = 0; i < t->cfg.n_ips; i++) {
        int prefix = t->cfg.prefix[i];
        if (prefix_match(key, t->cfg.ips[i], prefix))
            return is_v4_mapped(key) && v4_net_or_bcast(key, prefix) ? -EADDRNOTAVAIL : 1;
    }
    if (t->cfg.n_ips == 0)
        return 1; /* no nets given: any unicast address */
    for (int i = 0; i < t->n_routes; i++)
        if (prefix_match(key, t->routes[i].net, t->routes[i].prefix))
            return 0;
    return -EADDRNOTAVAIL;
}

/* A pinned key may be learned only from one of its outer IPs (a key may be pinned to several). */
static bool pin_allows(const struct gx_tunnel *t, const uint8_t key[16], const struct sockaddr_storage *addr) {
    if (t->n_pins == 0)
        return true;
    uint8_t outer[16];
    sockaddr_ip16(addr, outer);
    bool pinned = false;
    for (int i = 0; i < t->n_pins; i++) {
        if (memcmp(t->pins[i].key, key, 16) == 0) {
            if (memcmp(t->pins[i].outer, outer, 16) == 0)
                return true;
            pinned = true;
        }
    }
    return !pinned;
}

/* Down thread only. Record key -> addr when the rules allow (gx/tunnel.h); emits an event when new or
 * moved. Returns the entry (learned or already known), NULL when not learned. Only the down thread
 * changes the table, so it may keep the pointer until its next sweep (inserting moves no entry). */
static struct peer *learn(struct gx_tunnel *t, const uint8_t *key_in, const struct sockaddr_storage *addr,
                 socklen_t addrlen, uint64_t now) {
    uint8_t key[16] = {0};
    memcpy(key, key_in, keylen_of(t));
    uint8_t src[16];
    memcpy(src, key, 16);
    if (t->cfg.p2p)
        memset(key, 0, 16);
    pthread_rwlock_rdlock(&t->peers.lock);
    struct peer *p = table_find(&t->peers, key);
    bool same = p != NULL && sockaddr_equal(&p->addr, p->addrlen, addr, addrlen);
    if (same && now - atomic_load_explicit(&p->seen_ms, memory_order_relaxed) >= LEARN_REFRESH_MS)
        atomic_store_explicit(&p->seen_ms, now, memory_order_relaxed);
    pthread_rwlock_unlock(&t->peers.lock);
    if (same)
        return p;
    int ok = gx_tunnel_learnable(t, src);
    if (ok <= 0) {
        if (ok < 0)
            count(t, STAT(learn_refused), 1);
        return NULL;
    }
    if (!pin_allows(t, src, addr)) {
        count(t, STAT(learn_refused), 1);
        bad_record(t, BAD_PINNED, addr, addrlen, src, 1, now);
        return NULL;
    }
    if (!t->cfg.p2p && owner_routes(&t->owners, addr) >= t->cfg.peer_routes) {
        count(t, STAT(learn_capped), 1);
        bad_record(t, BAD_CAPPED, addr, addrlen, src, 1, now);
        return NULL;
    }

    uint32_t type = 0;
    struct sockaddr_storage old;
    bool moved = false;
    pthread_rwlock_wrlock(&t->peers.lock);
    p = table_find(&t->peers, key);
    if (p != NULL) {
        type = GX_TEV_PEER_MOVED;
        old = p->addr;
        moved = true;
    } else if (t->peers.count < t->peers.limit) {
        uint32_t i = key_hash(key) & t->peers.mask;
        while (t->peers.slots[i].used)
            i = (i + 1) & t->peers.mask;
        p = &t->peers.slots[i];
        p->used = true;
        memcpy(p->key, key, 16);
        t->peers.count++;
        peer_reset_counters(p, now);
        type = GX_TEV_PEER_LEARNED;
    }
    if (p != NULL) {
        memcpy(&p->addr, addr, addrlen);
        p->addrlen = addrlen;
        atomic_store_explicit(&p->seen_ms, now, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&t->peers.lock);
    if (moved)
        owner_release(&t->owners, &old);
    if (p != NULL)
        owner_add(&t->owners, addr);
    if (type) {
        emit(t, type, 0, key, keylen_of(t), addr, addrlen);
    } else if (t->full_reported_ms == 0 || now - t->full_reported_ms >= 1000) {
        t->full_reported_ms = now; /* a full table is reported once a second, not once a datagram */
        emit(t, GX_TEV_TABLE_FULL, t->peers.limit, key, keylen_of(t), addr, addrlen);
    }
    return p;
}

/* Caller holds the read lock. The peer for an inner destination, as gost's findRouteFor: an exact
 * entry, else the first configured route containing dst whose gateway has a learned peer. */
static struct peer *route_lookup(struct gx_tunnel *t, const uint8_t dst[16]) {
    uint8_t key[16] = {0};
    memcpy(key, dst, keylen_of(t));
    if (t->cfg.p2p)
        memset(key, 0, 16);
    struct peer *p = table_find(&t->peers, key);
    if (p != NULL || t->cfg.p2p || t->cfg.mode == GX_TUNNEL_TAP)
        return p;
    for (int i = 0; i < t->n_routes; i++) {
        if (prefix_match(dst, t->routes[i].net, t->routes[i].prefix)) {
            p = table_find(&t->peers, t->routes[i].gw);
            if (p != NULL)
                return p;
        }
    }
    return NULL;
}

/* Down thread: drop entries idle longer than the timeout. */
static void sweep(struct gx_tunnel *t, uint64_t now) {
    uint32_t timeout = t->cfg.peer_timeout_ms;
    pthread_rwlock_wrlock(&t->peers.lock);
    for (uint32_t i = 0; i <= t->peers.mask; i++) {
        struct peer *p = &t->peers.slots[i];
        while (p->used && now - atomic_load_explicit(&p->seen_ms, memory_order_relaxed) > timeout) {
            struct gx_tunnel_event_data {
                uint8_t key[16];
                struct sockaddr_storage addr;
                socklen_t len;
            } gone;
            memcpy(gone.key, p->key, 16);
            gone.addr = p->addr;
            gone.len = p->addrlen;
            table_delete_at(&t->peers, i); /* may shift another entry into slot i: re-check it */
            pthread_rwlock_unlock(&t->peers.lock);
            owner_release(&t->owners, &gone.addr);
            emit(t, GX_TEV_PEER_EXPIRED, 0, gone.key, keylen_of(t), &gone.addr, gone.len);
            pthread_rwlock_wrlock(&t->peers.lock);
        }
    }
    pthread_rwlock_unlock(&t->peers.lock);
}

/* ---------------------------------------------------------------------------------------------- */
/* Sending: a queue of datagrams handed to the transport in one call. */

struct sender {
    struct gx_tunnel_dgram d[SEND_MAX];
    struct sockaddr_storage addr[SEND_MAX];
    int n;
};

static void sender_flush(struct gx_tunnel *t, struct sender *s) {
    if (s->n == 0)
        return;
    uint64_t bytes = 0, dropped = 0;
    t->tr.send(t->tr.state, s->d, s->n, t->stop_fd, &bytes, &dropped);
    count(t, STAT(net_tx_pkts), (uint64_t)s->n - dropped);
    count(t, STAT(net_tx_bytes), bytes);
    count(t, STAT(drop_send), dropped);
    s->n = 0;
}

static void sender_add(struct gx_tunnel *t, struct sender *s, const uint8_t *data, uint32_t len,
                       const struct sockaddr_storage *addr, socklen_t addrlen) {
    if (s->n == SEND_MAX)
        sender_flush(t, s);
    int i = s->n++;
    memcpy(&s->addr[i], addr, addrlen);
    s->d[i].data = data;
    s->d[i].len = len;
    s->d[i].addr = &s->addr[i];
    s->d[i].addrlen = addrlen;
}

/* One datagram right away (control messages); sealed when the tunnel has a cipher. */
static void send_control(struct gx_tunnel *t, const uint8_t *msg, uint32_t len,
                         const struct sockaddr_storage *addr, socklen_t addrlen) {
    uint8_t buf[CONTROL_HDR + 16 * GX_TUNNEL_MAX_IPS + GX_AEAD_MAX_SALT + GX_AEAD_TAG_LEN];
    const uint8_t *out = msg;
    int n = (int)len;
    if (t->cfg.aead != NULL) {
        n = gx_aead_seal_one(t->cfg.aead, NULL, msg, len, buf);
        if (n < 0)
            return;
        out = buf;
    }
    struct gx_tunnel_dgram d = {.data = out, .len = (uint32_t)n, .addr = addr, .addrlen = addrlen};
    uint64_t bytes = 0, dropped = 0;
    t->tr.send(t->tr.state, &d, 1, t->stop_fd, &bytes, &dropped);
    count(t, STAT(control_tx), 1 - dropped);
    count(t, STAT(net_tx_pkts), 1 - dropped);
    count(t, STAT(net_tx_bytes), bytes);
    count(t, STAT(drop_send), dropped);
}

/* ---------------------------------------------------------------------------------------------- */
/* Up: device -> net. */

static void *up_main(void *arg) {
    struct gx_tunnel *t = arg;
    struct gx_batch *b = malloc(sizeof(*b));
    struct sender *s = malloc(sizeof(*s));
    if (b == NULL || s == NULL || gx_batch_init(b, t->cfg.batch, t->slot_size, GX_HEADROOM) < 0) {
        free(b);
        free(s);
        emit(t, GX_TEV_DEV_ERROR, ENOMEM, NULL, 0, NULL, 0);
        return NULL;
    }
    s->n = 0;
    bool tap = t->cfg.mode == GX_TUNNEL_TAP, server = t->cfg.role == GX_TUNNEL_SERVER;
    struct pollfd pfd[2] = {{.fd = t->cfg.dev_fd, .events = POLLIN}, {.fd = t->stop_fd, .events = POLLIN}};
    /* which peer each packet goes to: an index into addr[], or -1 = broadcast (TAP) */
    static _Thread_local struct sockaddr_storage addr[GX_BATCH_MAX];
    static _Thread_local socklen_t addrlen[GX_BATCH_MAX];
    static _Thread_local bool bcast[GX_BATCH_MAX];
    struct sockaddr_storage fan[BCAST_MAX];
    socklen_t fanlen[BCAST_MAX];

    for (;;) {
        int r = poll(pfd, 2, -1);
        if (r < 0 && errno != EINTR)
            break;
        if (pfd[1].revents)
            break;
        if (!(pfd[0].revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        if (pfd[0].revents & (POLLERR | POLLHUP)) {
            emit(t, GX_TEV_DEV_ERROR, EIO, NULL, 0, NULL, 0);
            break;
        }
        for (int round = 0; round < 8; round++) {
            gx_batch_reset(b);
            int n = gx_tun_read_batch(t->cfg.dev_fd, t->cfg.dev_vnet_hdr, b);
            if (n == -EAGAIN || n == -EINTR || n == 0)
                break;
            if (n < 0) {
                emit(t, GX_TEV_DEV_ERROR, (uint32_t)-n, NULL, 0, NULL, 0);
                goto out;
            }
            uint64_t bytes = 0, malformed = 0, noroute = 0;
            int nfan = -1; /* broadcast targets, collected once per batch */
            if (server)
                pthread_rwlock_rdlock(&t->peers.lock);
            uint64_t supers = 0;
            struct peer_acct acct = {0};
            for (uint32_t i = 0; i < b->n; i++) {
                struct gx_pkt *p = &b->pkt[i];
                bytes += p->len;
                supers += (p->flags & GX_PKT_GSO_HEAD) != 0;
                uint8_t src[16], dst[16] = {0};
                int ok = tap ? gx_tunnel_eth_addrs(p->data, p->len, src, dst)
                             : gx_tunnel_ip_addrs(p->data, p->len, src, dst);
                bcast[i] = false;
                if (ok < 0) {
                    malformed++;
                    p->len = 0;
                    continue;
                }
                if (!server) {
                    continue;
                }
                if (tap && memcmp(dst, bcast_mac, 6) == 0) {
                    bcast[i] = true;
                    if (nfan < 0) {
                        nfan = 0;
                        for (uint32_t k = 0; k <= t->peers.mask && nfan < BCAST_MAX; k++) {
                            if (t->peers.slots[k].used) {
                                fan[nfan] = t->peers.slots[k].addr;
                                fanlen[nfan++] = t->peers.slots[k].addrlen;
                            }
                        }
                    }
                    continue;
                }
                struct peer *peer = route_lookup(t, dst);
                if (peer == NULL) {
                    noroute++;
                    p->len = 0;
                    continue;
                }
                acct_add(&acct, peer, p->len, true);
                addr[i] = peer->addr;
                addrlen[i] = peer->addrlen;
            }
            if (server) {
                acct_flush(&acct, true);
                pthread_rwlock_unlock(&t->peers.lock);
            }
            count(t, STAT(dev_rx_pkts), b->n);
            count(t, STAT(dev_rx_supers), supers);
            count(t, STAT(dev_rx_bytes), bytes);
            count(t, STAT(drop_malformed), malformed);
            count(t, STAT(drop_no_route), noroute);

            if (t->cfg.aead != NULL)
                gx_aead_seal_batch(t->cfg.aead, b);
            for (uint32_t i = 0; i < b->n; i++) {
                struct gx_pkt *p = &b->pkt[i];
                if (p->len == 0)
                    continue;
                if (!server)
                    sender_add(t, s, p->data, p->len, &t->cfg.remote, t->cfg.remote_len);
                else if (bcast[i])
                    for (int k = 0; k < nfan; k++)
                        sender_add(t, s, p->data, p->len, &fan[k], fanlen[k]);
                else
                    sender_add(t, s, p->data, p->len, &addr[i], addrlen[i]);
            }
            sender_flush(t, s);
            if (b->n < b->cap)
                break;
        }
    }
out:
    gx_batch_free(b);
    free(b);
    free(s);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Down: net -> device. */

struct down_state {
    struct gx_batch in;         /* datagrams received, opened in place */
    struct gx_batch relay;      /* server: packets for other clients */
    struct sockaddr_storage relay_to[GX_BATCH_MAX];
    socklen_t relay_len[GX_BATCH_MAX];
    struct sender s;
    uint64_t next_keepalive, last_reply, next_sweep;
    const uint8_t *sealed[GX_BATCH_MAX]; /* each datagram's data before opening (NULL: empty) */
};

static bool own_ip(const struct gx_tunnel *t, const uint8_t ip[16]) {
    for (int i = 0; i < t->cfg.n_ips; i++)
        if (memcmp(t->cfg.ips[i], ip, 16) == 0)
            return true;
    return false;
}

static void send_handshake(struct gx_tunnel *t) {
    uint8_t msg[CONTROL_HDR + 16 * GX_TUNNEL_MAX_IPS];
    int n = gx_tunnel_control_build(msg, sizeof(msg), t->cfg.passphrase,
                                    (const uint8_t(*)[16])t->cfg.ips, t->cfg.n_ips);
    if (n > 0)
        send_control(t, msg, (uint32_t)n, &t->cfg.remote, t->cfg.remote_len);
}

/* A control message arrived from addr. Server: validate, reply, learn. Client: a keepalive reply. */
static void on_control(struct gx_tunnel *t, struct down_state *d, int kind, const uint8_t *pkt, uint32_t len,
                       const struct sockaddr_storage *addr, socklen_t addrlen, uint64_t now) {
    count(t, STAT(control_rx), 1);
    if (t->cfg.role == GX_TUNNEL_CLIENT) {
        if (kind == 2) {
            d->last_reply = now;
            emit(t, GX_TEV_KEEPALIVE_REPLY, 0, pkt + 4, 16, addr, addrlen);
        }
        return;
    }
    if (kind != 1 || (len - CONTROL_HDR) % 16 != 0 || t->cfg.mode == GX_TUNNEL_TAP) {
        count(t, STAT(drop_control), 1);
        bad_record(t, BAD_CONTROL, addr, addrlen, NULL, 1, now);
        return;
    }
    uint32_t n = (len - CONTROL_HDR) / 16;
    for (uint32_t i = 0; i < n; i++) {
        if (own_ip(t, pkt + CONTROL_HDR + 16 * i)) { /* as gost v3: the whole message is ignored */
            count(t, STAT(drop_control), 1);
            count(t, STAT(learn_refused), 1);
            bad_record(t, BAD_CONTROL, addr, addrlen, pkt + CONTROL_HDR + 16 * i, 1, now);
            return;
        }
    }
    uint8_t reply[CONTROL_HDR];
    memcpy(reply, CONTROL_MAGIC, 4);
    sockaddr_ip16(addr, reply + 4);
    send_control(t, reply, sizeof(reply), addr, addrlen);
    for (uint32_t i = 0; i < n; i++)
        learn(t, pkt + CONTROL_HDR + 16 * i, addr, addrlen, now);
}

static void down_timers(struct gx_tunnel *t, struct down_state *d, uint64_t now) {
    if (t->cfg.role == GX_TUNNEL_CLIENT && t->cfg.keepalive) {
        if (now >= d->next_keepalive) {
            send_handshake(t);
            d->next_keepalive = now + t->cfg.ttl_ms;
        }
        if (now - d->last_reply > 3u * (uint64_t)t->cfg.ttl_ms) {
            emit(t, GX_TEV_KEEPALIVE_TIMEOUT, t->cfg.ttl_ms, NULL, 0, &t->cfg.remote, t->cfg.remote_len);
            d->last_reply = now; /* one event per 3 x ttl of silence */
            send_handshake(t);
        }
    }
    if (t->cfg.role == GX_TUNNEL_SERVER && now >= d->next_sweep) {
        sweep(t, now);
        d->next_sweep = now + SWEEP_MS;
    }
    if (t->bad.next_flush != 0 && now >= t->bad.next_flush)
        bad_flush(t, now);
}

static int down_timeout_ms(const struct gx_tunnel *t, const struct down_state *d, uint64_t now) {
    uint64_t next = d->next_sweep;
    if (t->cfg.role == GX_TUNNEL_CLIENT)
        next = t->cfg.keepalive ? d->next_keepalive : now + 60000u;
    if (t->bad.next_flush != 0 && t->bad.next_flush < next)
        next = t->bad.next_flush;
    return next <= now ? 0 : (int)(next - now);
}

/* Relay a packet from one client to another (server): copy into the relay batch. */
static void relay_add(struct down_state *d, const struct gx_pkt *p, const struct sockaddr_storage *to,
                      socklen_t tolen) {
    if (d->relay.n == d->relay.cap)
        return;
    uint32_t i = d->relay.n++;
    memcpy(d->relay.pkt[i].data, p->data, p->len);
    d->relay.pkt[i].len = p->len;
    d->relay_to[i] = *to;
    d->relay_len[i] = tolen;
}

static void down_process(struct gx_tunnel *t, struct down_state *d, uint64_t now) {
    struct gx_batch *b = &d->in;
    bool tap = t->cfg.mode == GX_TUNNEL_TAP, server = t->cfg.role == GX_TUNNEL_SERVER;
    uint64_t malformed = 0;
    /* the down thread is the table's only writer: its entry pointers hold until its next sweep */
    struct peer_acct rx = {0}, relay_tx = {0};
    for (uint32_t i = 0; i < b->n; i++) {
        struct gx_pkt *p = &b->pkt[i];
        if (p->len == 0)
            continue;
        int kind = gx_tunnel_is_control(p->data, p->len);
        if (kind) {
            on_control(t, d, kind, p->data, p->len, &b->addr[i], b->addrlen[i], now);
            p->len = 0;
            continue;
        }
        uint8_t src[16], dst[16];
        int ok = tap ? gx_tunnel_eth_addrs(p->data, p->len, src, dst) : gx_tunnel_ip_addrs(p->data, p->len, src, dst);
        if (ok < 0) {
            malformed++;
            bad_record(t, BAD_MALFORMED, &b->addr[i], b->addrlen[i], NULL, 1, now);
            p->len = 0;
            continue;
        }
        if (!server)
            continue;
        struct peer *from = learn(t, src, &b->addr[i], b->addrlen[i], now);
        if (from != NULL)
            acct_add(&rx, from, p->len, false);
        if (t->cfg.p2p)
            continue; /* v3 p2p: everything from the net goes to the device */
        if (tap && memcmp(dst, bcast_mac, 6) == 0) {
            pthread_rwlock_rdlock(&t->peers.lock);
            for (uint32_t k = 0; k <= t->peers.mask; k++) {
                const struct peer *q = &t->peers.slots[k];
                if (q->used && !sockaddr_equal(&q->addr, q->addrlen, &b->addr[i], b->addrlen[i]))
                    relay_add(d, p, &q->addr, q->addrlen);
            }
            pthread_rwlock_unlock(&t->peers.lock);
            continue; /* and to the device */
        }
        pthread_rwlock_rdlock(&t->peers.lock);
        struct peer *q = route_lookup(t, dst);
        if (q != NULL && !sockaddr_equal(&q->addr, q->addrlen, &b->addr[i], b->addrlen[i])) {
            acct_add(&relay_tx, q, p->len, true);
            relay_add(d, p, &q->addr, q->addrlen);
            p->len = 0;
        }
        pthread_rwlock_unlock(&t->peers.lock);
    }
    acct_flush(&rx, false);
    acct_flush(&relay_tx, true);
    count(t, STAT(drop_malformed), malformed);

    uint64_t want = 0, bytes = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        if (b->pkt[i].len) {
            want++;
            bytes += b->pkt[i].len;
        }
    }
    if (want) {
        uint64_t supers = 0;
        int gso = t->cfg.dev_vnet_hdr == GX_TUN_VNET_GSO || t->cfg.dev_vnet_hdr == GX_TUN_VNET_GSO_ETH;
        int w = gso ? gx_tun_write_batch_gro(t->cfg.dev_fd, b, t->cfg.dev_vnet_hdr == GX_TUN_VNET_GSO_ETH, &supers)
                    : gx_tun_write_batch(t->cfg.dev_fd, t->cfg.dev_vnet_hdr, b);
        count(t, STAT(dev_tx_supers), supers);
        if (w < 0) {
            emit(t, GX_TEV_DEV_ERROR, (uint32_t)-w, NULL, 0, NULL, 0);
            count(t, STAT(drop_dev_full), want);
        } else {
            count(t, STAT(dev_tx_pkts), (uint64_t)w);
            count(t, STAT(dev_tx_bytes), bytes);
            count(t, STAT(drop_dev_full), want - (uint64_t)w);
        }
    }
    if (d->relay.n) {
        count(t, STAT(relayed_pkts), d->relay.n);
        if (t->cfg.aead != NULL)
            gx_aead_seal_batch(t->cfg.aead, &d->relay);
        for (uint32_t i = 0; i < d->relay.n; i++)
            if (d->relay.pkt[i].len)
                sender_add(t, &d->s, d->relay.pkt[i].data, d->relay.pkt[i].len, &d->relay_to[i], d->relay_len[i]);
        sender_flush(t, &d->s);
        gx_batch_reset(&d->relay);
    }
}

static bool stopping(const struct gx_tunnel *t) {
    struct pollfd p = {.fd = t->stop_fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* When a read from the net side drained the socket but brought several packets, traffic is dense:
 * the down thread naps briefly before reading again instead of going back to poll, where every
 * packet that arrives would wake it on its own. The packets of the nap come in one batch: fewer
 * wake-ups (each is a context switch, an IPI in a VM), and bigger GRO super-packets written to the
 * device. A lone packet (ping, a keepalive) never waits (what it bought: bench/README.md, "Figures
 * behind design choices"). The nap is LINGER_US plus the thread's timer slack (the kernel's default). */
#define LINGER_US 30
#define LINGER_MIN_PKTS 4u

static void linger(void) {
    struct timespec ts = {0, LINGER_US * 1000L};
    nanosleep(&ts, NULL);
}

static void *down_main(void *arg) {
    struct gx_tunnel *t = arg;
    struct down_state *d = calloc(1, sizeof(*d));
    if (d == NULL || gx_batch_init(&d->in, t->cfg.batch, t->slot_size, GX_HEADROOM) < 0 ||
        gx_batch_init(&d->relay, t->cfg.batch, t->slot_size, GX_HEADROOM) < 0) {
        if (d != NULL) {
            gx_batch_free(&d->in);
            free(d);
        }
        emit(t, GX_TEV_NET_ERROR, ENOMEM, NULL, 0, NULL, 0);
        return NULL;
    }
    struct gx_batch *b = &d->in;
    uint64_t now = now_ms();
    d->next_keepalive = now;
    d->last_reply = now;
    d->next_sweep = now + SWEEP_MS;
    struct pollfd pfd[2] = {{.fd = t->tr.fd, .events = POLLIN}, {.fd = t->stop_fd, .events = POLLIN}};

    for (;;) {
        now = now_ms();
        down_timers(t, d, now);
        int r = poll(pfd, 2, down_timeout_ms(t, d, now));
        if (r < 0 && errno != EINTR)
            break;
        if (pfd[1].revents)
            break;
        if (r <= 0 || !(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        /* keep reading while batches come back full: a transport may hold data it already took
         * off the socket (UDP GRO), which poll would not report */
        for (uint32_t round = 1;; round++) {
            if (round % 8 == 0) {
                if (stopping(t))
                    goto out;
                down_timers(t, d, now_ms());
            }
            gx_batch_reset(b);
            uint64_t bytes = 0;
            int n = t->tr.recv(t->tr.state, b, &bytes);
            if (n == -EAGAIN || n == -EINTR || n == 0)
                break;
            if (n < 0) {
                emit(t, GX_TEV_NET_CLOSED, (uint32_t)-n, NULL, 0, NULL, 0);
                goto out;
            }
            uint64_t dropped = 0;
            for (int i = 0; i < n; i++)
                dropped += b->pkt[i].len == 0;
            count(t, STAT(net_rx_pkts), (uint64_t)n);
            count(t, STAT(net_rx_bytes), bytes);
            /* empty datagrams, and ones the transport could not take whole (truncated) */
            count(t, STAT(drop_short), dropped);
            now = now_ms();
            if (t->cfg.aead != NULL) {
                for (uint32_t i = 0; i < b->n; i++)
                    d->sealed[i] = b->pkt[i].len ? b->pkt[i].data : NULL;
                struct gx_aead_drops drops = {0};
                gx_aead_open_batch(t->cfg.aead, b, &drops);
                count(t, STAT(drop_short), drops.short_pkt);
                count(t, STAT(drop_auth), drops.auth);
                count(t, STAT(drop_replay), drops.replay);
                if (drops.short_pkt + drops.auth + drops.replay) {
                    /* a failed open leaves len 0 and data where it was (an opened empty one moves) */
                    for (uint32_t i = 0; i < b->n; i++)
                        if (d->sealed[i] != NULL && b->pkt[i].len == 0 && b->pkt[i].data == d->sealed[i])
                            bad_record(t, BAD_AUTH, &b->addr[i], b->addrlen[i], NULL, 1, now);
                }
            }
            down_process(t, d, now);
            if ((uint32_t)n < b->cap && (uint32_t)n >= LINGER_MIN_PKTS) {
                linger();             /* dense traffic: let the next batch gather */
                continue;
            }
            if ((uint32_t)n < b->cap)
                break;
        }
    }
out:
    gx_batch_free(&d->in);
    gx_batch_free(&d->relay);
    free(d);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */

int gx_tunnel_new(struct gx_tunnel **out, const struct gx_tunnel_cfg *cfg) {
    if (cfg->dev_fd < 0 || cfg->n_ips < 0 || cfg->n_ips > GX_TUNNEL_MAX_IPS ||
        cfg->batch > GX_BATCH_MAX || cfg->mtu > 65535 ||
        (cfg->role == GX_TUNNEL_CLIENT && cfg->remote_len == 0) ||
        (cfg->role == GX_TUNNEL_CLIENT && cfg->keepalive && cfg->n_ips == 0))
        return -EINVAL;
    struct gx_tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->cfg = *cfg;
    if (t->cfg.batch == 0)
        t->cfg.batch = 64;
    if (t->cfg.mtu == 0)
        t->cfg.mtu = 1350;
    if (t->cfg.ttl_ms == 0)
        t->cfg.ttl_ms = 10000;
    if (t->cfg.peer_timeout_ms == 0)
        t->cfg.peer_timeout_ms = 300000;
    if (t->cfg.max_peers == 0)
        t->cfg.max_peers = 4096;
    if (t->cfg.peer_routes == 0)
        t->cfg.peer_routes = GX_TUNNEL_PEER_ROUTES_DEFAULT;
    /* room for the largest frame the device gives (TAP adds 14 + 4), sealed, and at least the 2048
     * bytes gost v2 reads, so a v2 peer's datagrams always fit */
    uint32_t payload = t->cfg.mtu + 18 + GX_AEAD_MAX_SALT + GX_AEAD_TAG_LEN;
    if (payload < 2048)
        payload = 2048;
    t->slot_size = (GX_HEADROOM + payload + GX_TAILROOM + 63u) & ~63u;
    t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    t->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = 0;
    if (t->stop_fd < 0 || t->event_fd < 0)
        rc = -errno;
    if (rc == 0 && cfg->net_fd >= 0)
        rc = gx_transport_udp(&t->tr, cfg->net_fd);
    if (rc == 0)
        rc = table_init(&t->peers, t->cfg.max_peers);
    if (rc == 0) {
        t->owners.mask = t->peers.mask;
        t->owners.slots = calloc((size_t)t->owners.mask + 1, sizeof(*t->owners.slots));
        if (t->owners.slots == NULL)
            rc = -ENOMEM;
    }
    if (rc == 0)
        rc = -pthread_mutex_init(&t->ev_lock, NULL);
    if (rc < 0) {
        if (t->stop_fd >= 0)
            close(t->stop_fd);
        if (t->event_fd >= 0)
            close(t->event_fd);
        table_free(&t->peers);
        free(t->owners.slots);
        if (t->tr.close != NULL)
            t->tr.close(t->tr.state);
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int gx_tunnel_add_route(struct gx_tunnel *t, const uint8_t net[16], int prefix, const uint8_t gw[16]) {
    if (t->running || prefix < 0 || prefix > 128)
        return -EINVAL;
    if (t->n_routes == GX_TUNNEL_MAX_ROUTES)
        return -ENOSPC;
    struct route *r = &t->routes[t->n_routes++];
    memcpy(r->net, net, 16);
    r->prefix = prefix;
    memcpy(r->gw, gw, 16);
    return 0;
}

int gx_tunnel_add_pin(struct gx_tunnel *t, const uint8_t key[16], const uint8_t outer[16]) {
    if (t->running)
        return -EINVAL;
    if (t->n_pins == GX_TUNNEL_MAX_PINS)
        return -ENOSPC;
    struct pin *p = &t->pins[t->n_pins++];
    memset(p->key, 0, 16);
    memcpy(p->key, key, keylen_of(t));
    memcpy(p->outer, outer, 16);
    return 0;
}

int gx_tunnel_set_transport(struct gx_tunnel *t, const struct gx_transport *tr) {
    if (t->running || tr->recv == NULL || tr->send == NULL)
        return -EINVAL;
    if (t->tr.close != NULL)
        t->tr.close(t->tr.state);
    t->tr = *tr;
    return 0;
}

int gx_tunnel_start(struct gx_tunnel *t) {
    if (t->running)
        return -EALREADY;
    if (t->tr.recv == NULL)
        return -ENOTCONN;
    int rc = pthread_create(&t->down, NULL, down_main, t);
    if (rc != 0)
        return -rc;
    rc = pthread_create(&t->up, NULL, up_main, t);
    if (rc != 0) {
        uint64_t one = 1;
        ssize_t w = write(t->stop_fd, &one, sizeof(one));
        (void)w;
        pthread_join(t->down, NULL);
        return -rc;
    }
    t->running = true;
    return 0;
}

int gx_tunnel_stop(struct gx_tunnel *t) {
    if (!t->running)
        return 0;
    uint64_t one = 1;
    ssize_t w = write(t->stop_fd, &one, sizeof(one));
    (void)w;
    pthread_join(t->up, NULL);
    pthread_join(t->down, NULL);
    t->running = false;
    return 0;
}

void gx_tunnel_free(struct gx_tunnel *t) {
    if (t == NULL)
        return;
    gx_tunnel_stop(t);
    close(t->stop_fd);
    close(t->event_fd);
    if (t->tr.close != NULL)
        t->tr.close(t->tr.state);
    table_free(&t->peers);
    free(t->owners.slots);
    pthread_mutex_destroy(&t->ev_lock);
    free(t);
}

