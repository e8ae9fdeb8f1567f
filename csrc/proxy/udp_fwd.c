/* UDP port forwarding on the relay engine (gx/proxy.h).
 *
 * One relay per forwarder, four engine fds: the listening socket, an inner epoll set of the sessions'
 * upstream fds, a periodic timerfd (idle checks) and a command eventfd (Python's route / close answers).
 * Everything about sessions runs in the forwarder's engine thread; the report queue (OPEN / CLOSE
 * entries for Python), the command queue and the free slot list are shared with Python's thread under
 * one mutex, touched once per session start or end, never per datagram.
 *
 * Session slots are reused only after Python has read the slot's CLOSE entry, so each live or
 * unreported slot owes at most two report entries: a report queue of 2 x max_sessions never overflows.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "gx/proxy.h"

#define BATCH 32
#define ROUNDS 8                 /* batches per callback before other relays get their turn */
#define REFUSED_HOLD_MS 1000u
#define SLOT_SIZE 65536u
#define FRAME_MAX (2u + GX_UDP_FWD_HDR_MAX + 65535u)
#define UP_CAP (2u * FRAME_MAX)    /* frames a stream hop has not taken yet: past it datagrams are dropped */
#define DOWN_CAP (2u * FRAME_MAX)  /* > the largest frame: a frame always fits once the buffer is compacted */

enum { SLOT_LISTEN = 0, SLOT_INNER = 1, SLOT_TIMER = 2, SLOT_CMD = 3 };
enum { S_FREE, S_PENDING, S_DIRECT, S_REFUSED, S_CLOSED };
enum { OP_ROUTE, OP_CLOSE };
enum {
    ST_UP_PKTS, ST_UP_BYTES, ST_DOWN_PKTS, ST_DOWN_BYTES, ST_OPEN, ST_TOTAL, ST_DROP_SESSIONS,
    ST_DROP_REFUSED, ST_DROP_QUEUE, ST_DROP_SIZE, ST_DROP_SEND, ST_DROP_MALFORMED, ST_GSO_SENDS, ST_GSO_FALLBACKS, ST_N
};

struct qdgram {
    struct qdgram *next;
    uint32_t len;
    uint8_t data[];
};

struct sess {
    uint64_t id;
    _Atomic int state;             /* engine thread; S_FREE also set by Python's thread (under the lock) */
    int fd;
    int reason;
    struct sockaddr_storage client;
    socklen_t client_len;
    uint32_t hash;
    struct sess *hnext;
    uint64_t last_ms;
    struct qdgram *qhead, *qtail;
    uint32_t qlen;
    uint64_t up_pkts, up_bytes, down_pkts, down_bytes;
    uint32_t hdr_len;              /* > 0: an ASSOCIATE hop / a 0xF3 stream: hdr goes before every datagram */
    uint8_t hdr[GX_UDP_FWD_HDR_MAX];
    bool stream;                   /* GX_UDP_FWD_F3 / _RELAY: frames on a stream fd */
    bool relay_frames;             /* GX_UDP_FWD_RELAY: LEN(2) + data frames, no address */
    uint32_t armed;                /* the stream fd's interest in the inner epoll set */
    bool gso_off;                  /* the upstream socket sends without UDP GSO (gx_udp_sendmmsg) */
    uint8_t *up, *down;            /* stream: frames not yet written / bytes not yet parsed */
    uint32_t up_head, up_tail, down_len;
};

struct report { uint32_t kind, idx; uint64_t id; };
struct command {
    uint64_t id;
    int fd, op, mode;
    uint32_t hdr_len;
    uint8_t hdr[GX_UDP_FWD_HDR_MAX];
};

struct gx_udp_fwd {
    struct gx_relay_conn conn; /* first: the engine hands it back */
    struct gx_udp_fwd_config cfg;
    int listen_fd, inner_ep, timer_fd, cmd_fd, event_fd;
    bool done, stopped;
    bool gso_down_off;             /* the listening socket sends without UDP GSO */
    struct sess **slot;            /* cfg.max_sessions slots, allocated on first use */
    uint32_t *gen;
    struct sess **htab;
    uint32_t hmask, live, high;    /* engine thread: hash mask, live sessions, slots ever used */
    pthread_mutex_t lock;          /* the three queues below */
    uint32_t *free_idx, nfree;
    struct report *rq;
    uint32_t rq_cap, rq_head, rq_n;
    struct command *cq;
    uint32_t cq_cap, cq_head, cq_n;
    _Atomic uint64_t stats[ST_N];
};

_Static_assert(sizeof(struct gx_udp_fwd_stats) == ST_N * sizeof(uint64_t), "stats layout");
_Static_assert(ST_GSO_FALLBACKS == ST_GSO_SENDS + 1, "gx_udp_sendmmsg counts into two adjacent slots");

struct scratch {
    struct mmsghdr msg[BATCH];
    struct iovec iov[BATCH];
    struct iovec pair[BATCH][2];  /* header + payload to an ASSOCIATE hop */
    struct sockaddr_storage addr[BATCH];
    uint8_t buf[]; /* BATCH x SLOT_SIZE */
};
static _Thread_local void *tls_scratch;

static struct scratch *scratch(void) {
    return gx_relay_scratch(&tls_scratch, sizeof(struct scratch) + (size_t)BATCH * SLOT_SIZE);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void signal_python(struct gx_udp_fwd *f) {
    uint64_t one = 1;
    ssize_t w = write(f->event_fd, &one, sizeof(one));
    (void)w;
}

static uint32_t addr_hash(const struct sockaddr_storage *a) {
    const uint8_t *p = (const uint8_t *)a;
    size_t n = a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Compare the parts of two socket addresses that name a peer (family, address, port). */
static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0 &&
           x->sin6_scope_id == y->sin6_scope_id;
}

/* Zero what recvmmsg may leave stale beyond the address, so hashing sees only the address. */
static void normalize(struct sockaddr_storage *a) {
    if (a->ss_family == AF_INET) {
        struct sockaddr_in *v4 = (void *)a;
        memset(v4->sin_zero, 0, sizeof(v4->sin_zero));
    } else if (a->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)a)->sin6_flowinfo = 0;
    }
}

static struct sess *find_addr(struct gx_udp_fwd *f, const struct sockaddr_storage *a, uint32_t h) {
    for (struct sess *s = f->htab[h & f->hmask]; s; s = s->hnext)
        if (s->hash == h && same_addr(&s->client, a))
            return s;
    return NULL;
}

static struct sess *find_id(struct gx_udp_fwd *f, uint64_t id) {
    uint32_t idx = (uint32_t)id;
    if (idx >= f->cfg.max_sessions || f->slot[idx] == NULL || f->slot[idx]->id != id)
        return NULL;
    return f->slot[idx];
}

static void unhash(struct gx_udp_fwd *f, struct sess *s) {
    for (struct sess **p = &f->htab[s->hash & f->hmask]; *p; p = &(*p)->hnext) {
        if (*p == s) {
            *p = s->hnext;
            break;
        }
    }
    s->hnext = NULL;
}

static void drop_queue(struct sess *s) {
    while (s->qhead) {
        struct qdgram *q = s->qhead;
        s->qhead = q->next;
        free(q);
    }
    s->qtail = NULL;
    s->qlen = 0;
}

/* Under the lock: one report entry (never full, see the top of the file). */
static void report_locked(struct gx_udp_fwd *f, uint32_t kind, const struct sess *s) {
    uint32_t at = (f->rq_head + f->rq_n) % f->rq_cap;
    f->rq[at] = (struct report){.kind = kind, .idx = (uint32_t)s->id, .id = s->id};
    f->rq_n++;
}

static void end_session(struct gx_udp_fwd *f, struct sess *s, int reason) {
    if (s->state == S_FREE || s->state == S_CLOSED)
        return;
    unhash(f, s);
    if (s->fd >= 0) {
        epoll_ctl(f->inner_ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    drop_queue(s);
    free(s->up);
    free(s->down);
    s->up = s->down = NULL;
    s->reason = reason;
    f->live--;
    atomic_fetch_sub_explicit(&f->stats[ST_OPEN], 1, memory_order_relaxed);
    pthread_mutex_lock(&f->lock);
    s->state = S_CLOSED;
    report_locked(f, GX_UDP_FWD_CLOSE, s);
    pthread_mutex_unlock(&f->lock);
    signal_python(f);
}

static struct sess *admit(struct gx_udp_fwd *f, const struct sockaddr_storage *a, socklen_t len, uint32_t h,
                          uint64_t now) {
    pthread_mutex_lock(&f->lock);
    if (f->nfree == 0) {
        pthread_mutex_unlock(&f->lock);
        return NULL;
    }
    uint32_t idx = f->free_idx[--f->nfree];
    struct sess *s = f->slot[idx];
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            f->nfree++;
            pthread_mutex_unlock(&f->lock);
            return NULL;
        }
        f->slot[idx] = s;
    }
    f->gen[idx]++;
    memset(s, 0, sizeof(*s));
    s->id = ((uint64_t)f->gen[idx] << 32) | idx;
    s->fd = -1;
    s->state = S_PENDING;
    memcpy(&s->client, a, sizeof(*a));
    s->client_len = len;
    s->hash = h;
    s->last_ms = now;
    report_locked(f, GX_UDP_FWD_OPEN, s);
    pthread_mutex_unlock(&f->lock);
    s->hnext = f->htab[h & f->hmask];
    f->htab[h & f->hmask] = s;
    if (idx + 1 > f->high)
        f->high = idx + 1;
    f->live++;
    gx_relay_count(f->stats, ST_OPEN, 1);
    gx_relay_count(f->stats, ST_TOTAL, 1);
    signal_python(f);
    return s;
}

static void enqueue(struct gx_udp_fwd *f, struct sess *s, const uint8_t *data, uint32_t len) {
    if (s->qlen >= f->cfg.queue) {
        gx_relay_count(f->stats, ST_DROP_QUEUE, 1);
        return;
    }
    struct qdgram *q = malloc(sizeof(*q) + len);
    if (q == NULL) {
        gx_relay_count(f->stats, ST_DROP_QUEUE, 1);
        return;
    }
    q->next = NULL;
    q->len = len;
    memcpy(q->data, data, len);
    if (s->qtail)
        s->qtail->next = q;
    else
        s->qhead = q;
    s->qtail = q;
    s->qlen++;
}

/* Is this send error the end of the session (as gost v2: an upstream error ends it)? */
static bool fatal_send(int err) {
    return err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ENOBUFS && err != EMSGSIZE;
}

/* Send msg[0..n) on the session's connected upstream. */
static void send_up(struct gx_udp_fwd *f, struct sess *s, struct scratch *sc, int first, int n) {
    int done = 0;
    while (done < n) {
        int sent = gx_udp_sendmmsg(s->fd, sc->msg + first + done, n - done, &s->gso_off, &f->stats[ST_GSO_SENDS]);
        if (sent < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            gx_relay_count(f->stats, ST_DROP_SEND, (uint64_t)(n - done));
            if (fatal_send(err))
                end_session(f, s, err);
            return;
        }
        uint64_t bytes = 0;
        for (int i = 0; i < sent; i++) {
            struct msghdr *h = &sc->msg[first + done + i].msg_hdr;
            bytes += h->msg_iov[h->msg_iovlen - 1].iov_len; /* the payload: the last iov */
        }
        s->up_pkts += (uint64_t)sent;
        s->up_bytes += bytes;
        gx_relay_count(f->stats, ST_UP_PKTS, (uint64_t)sent);
        gx_relay_count(f->stats, ST_UP_BYTES, bytes);
        done += sent;
    }
}

/* ---- a session whose hop is a stream of GOST 0xF3 frames (gx/proxy.h) ---- */

static void stream_interest(struct gx_udp_fwd *f, struct sess *s) {
    if (s->state != S_DIRECT)
        return;
    uint32_t want = EPOLLIN | (s->up_tail > s->up_head ? EPOLLOUT : 0);
    if (want == s->armed)
        return;
    struct epoll_event ev = {.events = want, .data.u64 = s->id};
    if (epoll_ctl(f->inner_ep, EPOLL_CTL_MOD, s->fd, &ev) < 0) {
        end_session(f, s, errno);
        return;
    }
    s->armed = want;
}

/* The k datagrams prepared in sc (msg/iov) to the session's client; what the socket refuses is dropped. */
static void send_down(struct gx_udp_fwd *f, struct sess *s, struct scratch *sc, int k) {
    int done = 0;
    while (done < k) {
        int sent = gx_udp_sendmmsg(f->listen_fd, sc->msg + done, k - done, &f->gso_down_off, &f->stats[ST_GSO_SENDS]);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            gx_relay_count(f->stats, ST_DROP_SEND, (uint64_t)(k - done));
            break;
        }
        uint64_t bytes = 0;
        for (int i = 0; i < sent; i++)
            bytes += sc->iov[done + i].iov_len;
        s->down_pkts += (uint64_t)sent;
        s->down_bytes += bytes;
        gx_relay_count(f->stats, ST_DOWN_PKTS, (uint64_t)sent);
        gx_relay_count(f->stats, ST_DOWN_BYTES, bytes);
        done += sent;
    }
}

/* Write what the stream takes of the pending frames. */
static void stream_flush(struct gx_udp_fwd *f, struct sess *s) {
    if (s->state == S_DIRECT) {
        int rc = gx_relay_outq_flush(s->fd, s->up, &s->up_head, &s->up_tail);
        if (rc < 0)
            end_session(f, s, -rc);
    }
    stream_interest(f, s);
}

/* One datagram as a frame behind the pending ones (flushed by the caller). */
static void stream_queue(struct gx_udp_fwd *f, struct sess *s, const uint8_t *data, uint32_t len) {
    uint32_t need = 2 + s->hdr_len + len;
    if (len == 0 && !s->relay_frames) {
        gx_relay_count(f->stats, ST_DROP_SIZE, 1); /* an empty frame is not valid in 0xF3 */
        return;
    }
    if (!gx_relay_outq_room(s->up, UP_CAP, &s->up_head, &s->up_tail, need)) {
        gx_relay_count(f->stats, ST_DROP_SEND, 1); /* the stream is behind: drop, as UDP does */
        return;
    }
    uint8_t *p = s->up + s->up_tail;
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
    memcpy(p + 2, s->hdr, s->hdr_len);
    memcpy(p + 2 + s->hdr_len, data, len);
    s->up_tail += need;
    s->up_pkts++;
    s->up_bytes += len;
    gx_relay_count(f->stats, ST_UP_PKTS, 1);
    gx_relay_count(f->stats, ST_UP_BYTES, len);
}

/* Frames from the stream, their payloads to the client. */
static void stream_down(struct gx_udp_fwd *f, struct sess *s, struct scratch *sc) {
    for (int round = 0; round < ROUNDS && s->state == S_DIRECT; round++) {
        ssize_t got = read(s->fd, s->down + s->down_len, DOWN_CAP - s->down_len);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            end_session(f, s, errno);
            return;
        }
        if (got == 0) {
            end_session(f, s, s->down_len ? EPROTO : 0);
            return;
        }
        s->down_len += (uint32_t)got;
        s->last_ms = now_ms();
        uint32_t pos = 0;
        bool bad = false;
        while (!bad) {
            int k = 0;
            while (k < BATCH) {
                struct gx_socks_frame fr;
                int size;
                if (s->relay_frames) {
                    size = gx_relay_udp_frame(s->down + pos, s->down_len - pos, &fr.len);
                    fr.hdr_len = 2;
                } else {
                    size = gx_socks_udp_parse(s->down + pos, s->down_len - pos, &fr);
                }
                if (size < 0) {
                    bad = true;
                    break;
                }
                if (size == 0 || (uint32_t)size > s->down_len - pos)
                    break;
                if (fr.len <= f->cfg.max_datagram) {
                    sc->iov[k] = (struct iovec){.iov_base = s->down + pos + fr.hdr_len, .iov_len = fr.len};
                    sc->msg[k].msg_hdr = (struct msghdr){.msg_name = &s->client, .msg_namelen = s->client_len,
                                                         .msg_iov = &sc->iov[k], .msg_iovlen = 1};
                    k++;
                } else {
                    gx_relay_count(f->stats, ST_DROP_SIZE, 1);
                }
                pos += (uint32_t)size;
            }
            send_down(f, s, sc, k);
            if (k < BATCH)
                break;
        }
        if (bad) {
            end_session(f, s, EPROTO);
            return;
        }
        memmove(s->down, s->down + pos, s->down_len - pos);
        s->down_len -= pos;
    }
}

static void from_clients(struct gx_udp_fwd *f) {
    struct scratch *sc = scratch();
    if (sc == NULL) {
        f->done = true;
        gx_relay_end(&f->conn, ENOMEM);
        return;
    }
    uint32_t cap = f->cfg.max_datagram;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < BATCH; i++) {
            sc->iov[i] = (struct iovec){.iov_base = sc->buf + (size_t)i * SLOT_SIZE, .iov_len = cap};
            sc->msg[i].msg_hdr = (struct msghdr){.msg_name = &sc->addr[i], .msg_namelen = sizeof(sc->addr[i]),
                                                 .msg_iov = &sc->iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(f->listen_fd, sc->msg, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return; /* EAGAIN, or an error the socket just reported and cleared */
        uint64_t now = now_ms();
        /* runs of datagrams for the same routed session go out in one sendmmsg */
        struct sess *dirty[BATCH]; /* stream sessions with new frames, flushed after the batch */
        int ndirty = 0;
        struct sess *run = NULL;
        int run_first = 0, run_n = 0;
        for (int i = 0; i < n; i++) {
            struct mmsghdr *m = &sc->msg[i];
            if (m->msg_hdr.msg_flags & MSG_TRUNC) {
                gx_relay_count(f->stats, ST_DROP_SIZE, 1);
                continue;
            }
            normalize(&sc->addr[i]);
            uint32_t h = addr_hash(&sc->addr[i]);
            struct sess *s = run != NULL && run->state == S_DIRECT && !run->stream && run->hash == h &&
                                     same_addr(&run->client, &sc->addr[i])
                                 ? run : find_addr(f, &sc->addr[i], h);
            if (s == NULL) {
                s = admit(f, &sc->addr[i], m->msg_hdr.msg_namelen, h, now);
                if (s == NULL) {
                    gx_relay_count(f->stats, ST_DROP_SESSIONS, 1);
                    continue;
                }
            }
            if (s->state == S_REFUSED) { /* not refreshed: asked again a second after the refusal */
                gx_relay_count(f->stats, ST_DROP_REFUSED, 1);
                continue;
            }
            s->last_ms = now;
            if (s->state == S_PENDING) {
                enqueue(f, s, sc->iov[i].iov_base, m->msg_len);
                continue;
            }
            if (s->state != S_DIRECT) {
                gx_relay_count(f->stats, ST_DROP_REFUSED, 1);
                continue;
            }
            if (s->stream) {
                stream_queue(f, s, sc->iov[i].iov_base, m->msg_len);
                if (ndirty == 0 || dirty[ndirty - 1] != s)
                    dirty[ndirty++] = s;
                continue;
            }
            /* a connected upstream: no address; the datagram's length in its iov */
            sc->iov[i].iov_len = m->msg_len;
            m->msg_hdr.msg_name = NULL;
            m->msg_hdr.msg_namelen = 0;
            if (s->hdr_len) {
                sc->pair[i][0] = (struct iovec){.iov_base = s->hdr, .iov_len = s->hdr_len};
                sc->pair[i][1] = sc->iov[i];
                m->msg_hdr.msg_iov = sc->pair[i];
                m->msg_hdr.msg_iovlen = 2;
            }
            if (s != run || run_first + run_n != i) {
                if (run != NULL && run_n > 0 && run->state == S_DIRECT)
                    send_up(f, run, sc, run_first, run_n);
                run = s;
                run_first = i;
                run_n = 0;
            }
            run_n++;
        }
        if (run != NULL && run_n > 0 && run->state == S_DIRECT)
            send_up(f, run, sc, run_first, run_n);
        for (int d = 0; d < ndirty; d++)
            stream_flush(f, dirty[d]);
        if (n < BATCH)
            return;
    }
}

/* Replies of one session back to its client, out of the listening socket. */
static void from_upstream(struct gx_udp_fwd *f, struct sess *s, struct scratch *sc) {
    uint32_t cap = f->cfg.max_datagram + (s->hdr_len ? GX_UDP_FWD_HDR_MAX : 0);
    if (cap > SLOT_SIZE)
        cap = SLOT_SIZE;
    for (int round = 0; round < ROUNDS && s->state == S_DIRECT; round++) {
        for (int i = 0; i < BATCH; i++) {
            sc->iov[i] = (struct iovec){.iov_base = sc->buf + (size_t)i * SLOT_SIZE, .iov_len = cap};
            sc->msg[i].msg_hdr = (struct msghdr){.msg_iov = &sc->iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(s->fd, sc->msg, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
                return;
            end_session(f, s, err); /* ECONNREFUSED: the target's port is closed (ICMP), as gost v2 */
            return;
        }
        if (n == 0)
            return;
        s->last_ms = now_ms();
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (sc->msg[i].msg_hdr.msg_flags & MSG_TRUNC) {
                gx_relay_count(f->stats, ST_DROP_SIZE, 1);
                continue;
            }
            uint8_t *data = sc->iov[i].iov_base;
            uint32_t len = sc->msg[i].msg_len;
            if (s->hdr_len) {
                struct gx_socks_frame fr;
                if (gx_socks_assoc_parse(data, len, &fr) != 0) {
                    gx_relay_count(f->stats, ST_DROP_MALFORMED, 1);
                    continue;
                }
                data += fr.hdr_len;
                len = fr.len;
            }
            sc->iov[k] = (struct iovec){.iov_base = data, .iov_len = len};
            sc->msg[k].msg_hdr = (struct msghdr){.msg_name = &s->client, .msg_namelen = s->client_len,
                                                 .msg_iov = &sc->iov[k], .msg_iovlen = 1};
            k++;
        }
        send_down(f, s, sc, k);
        if (n < BATCH)
            return;
    }
}

static void inner_ready(struct gx_udp_fwd *f) {
    struct scratch *sc = scratch();
    if (sc == NULL) {
        f->done = true;
        gx_relay_end(&f->conn, ENOMEM);
        return;
    }
    struct epoll_event ev[64];
    int n = epoll_wait(f->inner_ep, ev, 64, 0);
    for (int i = 0; i < n; i++) {
        struct sess *s = find_id(f, ev[i].data.u64);
        if (s == NULL || s->state != S_DIRECT)
            continue;
        if (!s->stream) {
            from_upstream(f, s, sc);
            continue;
        }
        if (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            stream_flush(f, s);
        if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            stream_down(f, s, sc);
    }
}

static void route(struct gx_udp_fwd *f, const struct command *c) {
    struct sess *s = find_id(f, c->id);
    if (c->op == OP_CLOSE) {
        if (s != NULL)
            end_session(f, s, 0);
        return;
    }
    if (s == NULL || s->state != S_PENDING) {
        if (c->fd >= 0)
            close(c->fd);
        return;
    }
    if (c->fd < 0) {
        s->state = S_REFUSED;
        gx_relay_count(f->stats, ST_DROP_REFUSED, s->qlen);
        drop_queue(s);
        return;
    }
    s->fd = c->fd;
    s->hdr_len = c->hdr_len;
    memcpy(s->hdr, c->hdr, c->hdr_len);
    if (c->mode == GX_UDP_FWD_F3 || c->mode == GX_UDP_FWD_RELAY) {
        s->stream = true;
        s->relay_frames = c->mode == GX_UDP_FWD_RELAY;
        s->up = malloc(UP_CAP);
        s->down = malloc(DOWN_CAP);
        if (s->up == NULL || s->down == NULL) {
            end_session(f, s, ENOMEM);
            return;
        }
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = s->id};
    if (epoll_ctl(f->inner_ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        end_session(f, s, errno);
        return;
    }
    s->armed = EPOLLIN;
    s->state = S_DIRECT;
    if (s->stream) {
        for (struct qdgram *q = s->qhead; q; q = q->next)
            stream_queue(f, s, q->data, q->len);
        drop_queue(s);
        stream_flush(f, s);
        return;
    }
    while (s->qhead && s->state == S_DIRECT) {
        struct qdgram *q = s->qhead;
        s->qhead = q->next;
        s->qlen--;
        struct iovec iov[2] = {{.iov_base = s->hdr, .iov_len = s->hdr_len}, {.iov_base = q->data, .iov_len = q->len}};
        struct msghdr mh = {.msg_iov = s->hdr_len ? iov : iov + 1, .msg_iovlen = s->hdr_len ? 2 : 1};
        ssize_t w = sendmsg(s->fd, &mh, MSG_DONTWAIT);
        if (w < 0) {
            int err = errno;
            gx_relay_count(f->stats, ST_DROP_SEND, 1);
            if (fatal_send(err))
                end_session(f, s, err);
        } else {
            s->up_pkts++;
            s->up_bytes += q->len;
            gx_relay_count(f->stats, ST_UP_PKTS, 1);
            gx_relay_count(f->stats, ST_UP_BYTES, q->len);
        }
        free(q);
    }
    if (s->qhead == NULL)
        s->qtail = NULL;
}

static void run_commands(struct gx_udp_fwd *f) {
    uint64_t drained;
    ssize_t r = read(f->cmd_fd, &drained, sizeof(drained));
    (void)r;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        if (f->cq_n == 0) {
            pthread_mutex_unlock(&f->lock);
            return;
        }
        struct command c = f->cq[f->cq_head];
        f->cq_head = (f->cq_head + 1) % f->cq_cap;
        f->cq_n--;
        pthread_mutex_unlock(&f->lock);
        route(f, &c);
    }
}

static void check_idle(struct gx_udp_fwd *f) {
    uint64_t ticks;
    ssize_t r = read(f->timer_fd, &ticks, sizeof(ticks));
    (void)r;
    uint64_t now = now_ms();
    for (uint32_t i = 0; i < f->high; i++) {
        struct sess *s = f->slot[i];
        if (s == NULL || s->state == S_FREE || s->state == S_CLOSED)
            continue;
        uint64_t limit = s->state == S_REFUSED ? REFUSED_HOLD_MS : f->cfg.ttl_ms;
        if (now - s->last_ms >= limit)
            end_session(f, s, s->state == S_REFUSED ? 0 : ETIMEDOUT);
    }
}

static int fwd_start(struct gx_relay_conn *c) {
    struct gx_udp_fwd *f = (struct gx_udp_fwd *)c;
    int rc = gx_relay_watch_fd(c, SLOT_LISTEN, f->listen_fd);
    if (rc == 0)
        rc = gx_relay_watch_fd(c, SLOT_INNER, f->inner_ep);
    if (rc == 0)
        rc = gx_relay_watch_fd(c, SLOT_TIMER, f->timer_fd);
    if (rc == 0)
        rc = gx_relay_watch_fd(c, SLOT_CMD, f->cmd_fd);
    if (rc < 0)
        return rc;
    for (int i = 0; i < 4; i++)
        gx_relay_want(c, i, EPOLLIN);
    return 0;
}

static void fwd_ready(struct gx_relay_conn *c, int slot, uint32_t events) {
    struct gx_udp_fwd *f = (struct gx_udp_fwd *)c;
    (void)events;
    if (f->done)
        return;
    switch (slot) {
    case SLOT_LISTEN:
        from_clients(f);
        break;
    case SLOT_INNER:
        inner_ready(f);
        break;
    case SLOT_TIMER:
        check_idle(f);
        break;
    case SLOT_CMD:
        run_commands(f);
        break;
    default:
        break;
    }
}

/* Engine thread, once: close every session's fd (no reports: the owner is going away). */
static void fwd_stop(struct gx_relay_conn *c) {
    struct gx_udp_fwd *f = (struct gx_udp_fwd *)c;
    for (uint32_t i = 0; i < f->high; i++) {
        struct sess *s = f->slot[i];
        if (s == NULL)
            continue;
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        drop_queue(s);
    }
    atomic_store_explicit(&f->stats[ST_OPEN], 0, memory_order_relaxed);
    pthread_mutex_lock(&f->lock);
    f->stopped = true;
    pthread_mutex_unlock(&f->lock);
    signal_python(f);
}

static const struct gx_relay_ops fwd_ops = {.start = fwd_start, .ready = fwd_ready, .stop = fwd_stop};

static void destroy(struct gx_udp_fwd *f) {
    if (f->slot) {
        for (uint32_t i = 0; i < f->cfg.max_sessions; i++)
            free(f->slot[i]);
    }
    free(f->slot);
    free(f->gen);
    free(f->htab);
    free(f->free_idx);
    free(f->rq);
    free(f->cq);
    int fds[] = {f->inner_ep, f->timer_fd, f->cmd_fd, f->event_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    gx_relay_conn_release(&f->conn);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

int gx_udp_fwd_new(struct gx_udp_fwd **out, int listen_fd, const struct gx_udp_fwd_config *cfg) {
    if (listen_fd < 0 || cfg == NULL || cfg->max_sessions < 1 || cfg->max_sessions > (1u << 20) ||
        cfg->queue < 1 || cfg->queue > 4096 || cfg->max_datagram > 65535 || cfg->ttl_ms < 10)
        return -EINVAL;
    struct gx_udp_fwd *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    int rc = gx_relay_conn_init(&f->conn, &fwd_ops);
    f->cfg = *cfg;
    if (f->cfg.max_datagram == 0)
        f->cfg.max_datagram = 65535;
    f->listen_fd = -1;
    f->inner_ep = epoll_create1(EPOLL_CLOEXEC);
    f->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    f->cmd_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&f->lock, NULL);
    uint32_t n = cfg->max_sessions, hsize = 16;
    while (hsize < 2 * n)
        hsize <<= 1;
    f->hmask = hsize - 1;
    f->slot = calloc(n, sizeof(*f->slot));
    f->gen = calloc(n, sizeof(*f->gen));
    f->htab = calloc(hsize, sizeof(*f->htab));
    f->free_idx = malloc((size_t)n * sizeof(*f->free_idx));
    f->rq_cap = 2 * n + 2;
    f->rq = malloc((size_t)f->rq_cap * sizeof(*f->rq));
    f->cq_cap = 2 * n + 64 < 4096 ? 2 * n + 64 : 4096; /* full: -EAGAIN, the session ends idle */
    f->cq = malloc((size_t)f->cq_cap * sizeof(*f->cq));
    if (rc == 0 && (f->inner_ep < 0 || f->timer_fd < 0 || f->cmd_fd < 0 || f->event_fd < 0))
        rc = -errno;
    if (rc == 0 && (!f->slot || !f->gen || !f->htab || !f->free_idx || !f->rq || !f->cq))
        rc = -ENOMEM;
    if (rc == 0) {
        uint32_t tick = cfg->ttl_ms / 4;
        tick = tick < 50 ? 50 : tick > 1000 ? 1000 : tick;
        struct itimerspec its = {.it_interval = {tick / 1000, (long)(tick % 1000) * 1000000L},
                                 .it_value = {tick / 1000, (long)(tick % 1000) * 1000000L}};
        if (timerfd_settime(f->timer_fd, 0, &its, NULL) < 0)
            rc = -errno;
    }
    if (rc < 0) {
        destroy(f);
        return rc;
    }
    for (uint32_t i = 0; i < n; i++)
        f->free_idx[i] = n - 1 - i; /* slot 0 first */
    f->nfree = n;
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl >= 0)
        fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
    f->listen_fd = listen_fd;
    *out = f;
    return 0;
}

int gx_udp_fwd_start(struct gx_udp_fwd *f) { return gx_relay_attach(&f->conn); }

int gx_udp_fwd_event_fd(const struct gx_udp_fwd *f) { return f->event_fd; }

int gx_udp_fwd_next_event(struct gx_udp_fwd *f, struct gx_udp_fwd_event *ev) {
    uint64_t drained;
    ssize_t r = read(f->event_fd, &drained, sizeof(drained));
    (void)r;
    pthread_mutex_lock(&f->lock);
    if (f->rq_n == 0) {
        pthread_mutex_unlock(&f->lock);
        return 0;
    }
    struct report rep = f->rq[f->rq_head];
    f->rq_head = (f->rq_head + 1) % f->rq_cap;
    f->rq_n--;
    struct sess *s = f->slot[rep.idx];
    memset(ev, 0, sizeof(*ev));
    ev->kind = rep.kind;
    ev->id = rep.id;
    memcpy(&ev->client, &s->client, sizeof(s->client));
    ev->client_len = s->client_len;
    if (rep.kind == GX_UDP_FWD_CLOSE) {
        ev->reason = s->reason;
        ev->up_pkts = s->up_pkts;
        ev->up_bytes = s->up_bytes;
        ev->down_pkts = s->down_pkts;
        ev->down_bytes = s->down_bytes;
        s->state = S_FREE; /* the slot may be reused from now on */
        f->free_idx[f->nfree++] = rep.idx;
    }
    if (f->rq_n > 0)
        signal_python(f); /* more to read: stay readable */
    pthread_mutex_unlock(&f->lock);
    return 1;
}

static int command(struct gx_udp_fwd *f, uint64_t id, int fd, int op, const uint8_t *hdr, uint32_t hdr_len,
                   int mode) {
    pthread_mutex_lock(&f->lock);
    if (f->stopped || f->cq_n == f->cq_cap) {
        int err = f->stopped ? -ESHUTDOWN : -EAGAIN;
        pthread_mutex_unlock(&f->lock);
        return err;
    }
    struct command *c = &f->cq[(f->cq_head + f->cq_n) % f->cq_cap];
    *c = (struct command){.id = id, .fd = fd, .op = op, .mode = mode, .hdr_len = hdr_len};
    if (hdr_len)
        memcpy(c->hdr, hdr, hdr_len);
    f->cq_n++;
    pthread_mutex_unlock(&f->lock);
    uint64_t one = 1;
    ssize_t w = write(f->cmd_fd, &one, sizeof(one));
    (void)w;
    return 0;
}

int gx_udp_fwd_route(struct gx_udp_fwd *f, uint64_t id, int fd, int mode, const uint8_t *hdr, uint32_t hdr_len) {
    bool bad_mode = mode != GX_UDP_FWD_DGRAM && mode != GX_UDP_FWD_ASSOC && mode != GX_UDP_FWD_F3 &&
                    mode != GX_UDP_FWD_RELAY;
    bool headerless = mode == GX_UDP_FWD_DGRAM || mode == GX_UDP_FWD_RELAY;
    if (bad_mode || hdr_len > GX_UDP_FWD_HDR_MAX || (hdr_len && hdr == NULL) || headerless != (hdr_len == 0)) {
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            int err = errno;
            close(fd);
            return -err;
        }
    }
    int rc = command(f, id, fd, OP_ROUTE, hdr, hdr_len, mode);
    if (rc < 0 && fd >= 0)
        close(fd);
    return rc;
}

int gx_udp_fwd_close(struct gx_udp_fwd *f, uint64_t id) { return command(f, id, -1, OP_CLOSE, NULL, 0, 0); }

void gx_udp_fwd_get_stats(struct gx_udp_fwd *f, struct gx_udp_fwd_stats *out) {
    gx_relay_stats_copy((uint64_t *)out, f->stats, ST_N);
}

int gx_udp_fwd_status(struct gx_udp_fwd *f) { return atomic_load(&f->conn.status); }

int gx_udp_fwd_stop(struct gx_udp_fwd *f) {
    if (f->conn.thread == NULL) {
        pthread_mutex_lock(&f->lock);
        f->stopped = true;
        pthread_mutex_unlock(&f->lock);
        return 0;
    }
    gx_relay_stop(&f->conn);
    return 0;
}

void gx_udp_fwd_free(struct gx_udp_fwd *f) {
    if (f == NULL)
        return;
    gx_udp_fwd_stop(f);
    /* commands that never ran: their fds are ours */
    for (uint32_t i = 0; i < f->cq_n; i++) {
        struct command *c = &f->cq[(f->cq_head + i) % f->cq_cap];
        if (c->fd >= 0)
            close(c->fd);
    }
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    destroy(f);
}
