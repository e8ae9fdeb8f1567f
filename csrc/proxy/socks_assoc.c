/* SOCKS5 UDP ASSOCIATE on the relay engine (gx/proxy.h): two UDP sockets, batches both ways,
 * no Python per datagram, no queue: a datagram a socket cannot take is dropped and counted. */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gx/proxy.h"

#define BATCH 32
#define ROUNDS 8
#define SLOT (65536u + GX_SOCKS_UDP_HDR_MAX)
#define FRAME_MAX (65535u + GX_SOCKS_UDP_HDR_MAX)
#define UP_CAP (2u * FRAME_MAX)
#define DOWN_CAP (2u * FRAME_MAX)

enum { SLOT_RELAY = 0, SLOT_UP = 1 };
enum {
    ST_UP_PKTS, ST_UP_BYTES, ST_DOWN_PKTS, ST_DOWN_BYTES, ST_DROP_FOREIGN, ST_DROP_MALFORMED, ST_DROP_RESOLVE,
    ST_DROP_SIZE, ST_DROP_SEND, ST_GSO_SENDS, ST_GSO_FALLBACKS, ST_N
};
_Static_assert(sizeof(struct gx_socks_assoc_stats) == ST_N * sizeof(uint64_t), "stats layout");
_Static_assert(ST_GSO_FALLBACKS == ST_GSO_SENDS + 1, "gx_udp_sendmmsg counts into two adjacent slots");

struct gx_socks_assoc {
    struct gx_relay_conn conn; /* first: the engine hands it back */
    int relay_fd, up_fd, up_family;
    uint32_t max_datagram;
    bool done, resolving;
    bool gso_up_off, gso_relay_off; /* that socket sends without UDP GSO (gx_udp_sendmmsg) */
    uint8_t client_ip[16];     /* the control connection's IP (IPv4 as v4-mapped) */
    struct sockaddr_storage client;  /* where replies go: the latest source from client_ip */
    socklen_t client_len;
    uint8_t *held;             /* the one datagram waiting for its name */
    uint32_t held_len;
    bool stream;               /* the upstream is a 0xF3 stream (a SOCKS5 hop of a chain) */
    uint8_t *up, *down;        /* stream: frames not yet written / bytes not yet parsed */
    uint32_t up_head, up_tail, down_len;
    _Atomic uint64_t stats[ST_N];
};

struct scratch {
    struct mmsghdr msg[BATCH];
    struct iovec iov[BATCH * 3];     /* [0, BATCH): receive; then what is sent (up to 2 per datagram) */
    struct sockaddr_storage addr[BATCH];
    struct sockaddr_storage dst[BATCH];
    uint8_t hdr[BATCH][GX_SOCKS_UDP_HDR_MAX];
    uint8_t buf[]; /* BATCH x SLOT */
};
static _Thread_local void *tls_scratch;

static struct scratch *scratch(void) {
    return gx_relay_scratch(&tls_scratch, sizeof(struct scratch) + (size_t)BATCH * SLOT);
}

/* ---------------------------------------------------------------------------------------------- */
/* The wire format. */

int gx_socks_assoc_parse(const uint8_t *buf, size_t len, struct gx_socks_frame *f) {
    if (len < 4 || buf[0] != 0 || buf[1] != 0)
        return -EPROTO;
    if (buf[2] != 0)
        return -EMSGSIZE;
    int a = gx_socks_addr_parse(buf + 3, len - 3, f);
    if (a <= 0)
        return -EPROTO; /* a datagram is whole: an incomplete address is a malformed one */
    f->hdr_len = 3 + (uint32_t)a;
    f->len = (uint32_t)(len - f->hdr_len);
    return 0;
}

int gx_socks_assoc_header(uint8_t out[GX_SOCKS_UDP_HDR_MAX], const struct sockaddr_storage *addr) {
    int h = gx_socks_udp_header(out, addr, 1); /* the frame header, its LEN field becomes RSV */
    if (h < 0)
        return h;
    out[0] = out[1] = out[2] = 0;
    return h;
}

/* ---------------------------------------------------------------------------------------------- */

/* The IP of addr as 16 bytes (IPv4 as v4-mapped). */
static bool ip16(const struct sockaddr_storage *addr, uint8_t out[16]) {
    if (addr->ss_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return true;
    }
    if (addr->ss_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* addr in the upstream socket's family (AF_INET6 sockets take v4-mapped addresses). */
static bool to_family(int family, struct sockaddr_storage *addr, socklen_t *len) {
    if (addr->ss_family == family)
        return true;
    if (addr->ss_family == AF_INET && family == AF_INET6) {
        struct sockaddr_in v4 = *(struct sockaddr_in *)addr;
        struct sockaddr_in6 *v6 = (void *)addr;
        memset(v6, 0, sizeof(*v6));
        v6->sin6_family = AF_INET6;
        v6->sin6_port = v4.sin_port;
        v6->sin6_addr.s6_addr[10] = v6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&v6->sin6_addr.s6_addr[12], &v4.sin_addr, 4);
        *len = sizeof(*v6);
        return true;
    }
    if (addr->ss_family == AF_INET6 && family == AF_INET) {
        struct sockaddr_in6 v6 = *(struct sockaddr_in6 *)addr;
        static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(&v6.sin6_addr, prefix, 12) != 0)
            return false;
        struct sockaddr_in *v4 = (void *)addr;
        memset(v4, 0, sizeof(*v4));
        v4->sin_family = AF_INET;
        v4->sin_port = v6.sin6_port;
        memcpy(&v4->sin_addr, &v6.sin6_addr.s6_addr[12], 4);
        *len = sizeof(*v4);
        return true;
    }
    return false;
}

/* The destination of a parsed datagram. 1: *dst set; 0: dropped (counted); -1: its name is pending. */
static int destination(struct gx_socks_assoc *a, const struct gx_socks_frame *f, struct sockaddr_storage *dst,
                       socklen_t *len) {
    if (f->atyp == GX_SOCKS_ATYP_DOMAIN) {
        int res = gx_resolve_lookup(f->host, f->host_len, a->up_family == AF_INET, dst, len);
        if (res == GX_RESOLVE_PENDING)
            return -1;
        if (res != GX_RESOLVE_OK) {
            gx_relay_count(a->stats, ST_DROP_RESOLVE, 1);
            return 0;
        }
        if (dst->ss_family == AF_INET)
            ((struct sockaddr_in *)dst)->sin_port = htons(f->port);
        else
            ((struct sockaddr_in6 *)dst)->sin6_port = htons(f->port);
    } else if (gx_socks_frame_sockaddr(f, dst, len) != 0) {
        gx_relay_count(a->stats, ST_DROP_MALFORMED, 1);
        return 0;
    }
    if (!to_family(a->up_family, dst, len)) {
        gx_relay_count(a->stats, ST_DROP_SEND, 1);
        return 0;
    }
    return 1;
}

/* Send msg[0..n) from the upstream socket; a refused datagram is dropped and the rest go on. */
static void send_batch(struct gx_socks_assoc *a, int fd, struct mmsghdr *msg, int n, int pkts_stat) {
    int done = 0;
    while (done < n) {
        int sent = gx_udp_sendmmsg(fd, msg + done, n - done, fd == a->up_fd ? &a->gso_up_off : &a->gso_relay_off,
                                   &a->stats[ST_GSO_SENDS]);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                gx_relay_count(a->stats, ST_DROP_SEND, (uint64_t)(n - done));
                return;
            }
            gx_relay_count(a->stats, ST_DROP_SEND, 1); /* EMSGSIZE, ENETUNREACH, EPERM, ...: that one only */
            done++;
            continue;
        }
        uint64_t bytes = 0;
        for (int i = 0; i < sent; i++) {
            struct msghdr *h = &msg[done + i].msg_hdr;
            bytes += h->msg_iov[h->msg_iovlen - 1].iov_len; /* the payload: the last iov */
        }
        gx_relay_count(a->stats, pkts_stat, (uint64_t)sent);
        gx_relay_count(a->stats, pkts_stat + 1, bytes);
        done += sent;
    }
}

/* The held datagram, once its name is known. */
static void retry_held(struct gx_socks_assoc *a, struct scratch *s) {
    struct gx_socks_frame f;
    if (gx_socks_assoc_parse(a->held, a->held_len, &f) != 0) { /* cannot happen: parsed before */
        a->resolving = false;
        return;
    }
    socklen_t len = 0;
    int d = destination(a, &f, &s->dst[0], &len);
    if (d < 0)
        return; /* still waiting */
    a->resolving = false;
    if (d == 0)
        return;
    s->iov[0] = (struct iovec){.iov_base = a->held + f.hdr_len, .iov_len = f.len};
    s->msg[0].msg_hdr = (struct msghdr){.msg_name = &s->dst[0], .msg_namelen = len, .msg_iov = &s->iov[0],
                                        .msg_iovlen = 1};
    send_batch(a, a->up_fd, s->msg, 1, ST_UP_PKTS);
}

/* ---- the upstream is a stream of 0xF3 frames: a client datagram is a frame once its RSV becomes LEN ---- */

static void stream_flush(struct gx_socks_assoc *a) {
    if (a->done)
        return;
    int rc = gx_relay_outq_flush(a->up_fd, a->up, &a->up_head, &a->up_tail);
    if (rc < 0) {
        a->done = true;
        gx_relay_end(&a->conn, rc == -EPIPE || rc == -ECONNRESET ? 0 : -rc);
    }
}

static void stream_queue(struct gx_socks_assoc *a, const uint8_t *dgram, const struct gx_socks_frame *f) {
    uint32_t size = f->hdr_len + f->len;
    if (f->len == 0) {
        gx_relay_count(a->stats, ST_DROP_SIZE, 1); /* LEN 0 is not a valid frame */
        return;
    }
    if (!gx_relay_outq_room(a->up, UP_CAP, &a->up_head, &a->up_tail, size)) {
        gx_relay_count(a->stats, ST_DROP_SEND, 1); /* the hop is behind: drop, as UDP does */
        return;
    }
    uint8_t *p = a->up + a->up_tail;
    memcpy(p, dgram, size);
    p[0] = (uint8_t)(f->len >> 8);
    p[1] = (uint8_t)f->len;
    a->up_tail += size;
    gx_relay_count(a->stats, ST_UP_PKTS, 1);
    gx_relay_count(a->stats, ST_UP_BYTES, f->len);
}

static void stream_down(struct gx_socks_assoc *a) {
    for (int round = 0; round < ROUNDS && !a->done; round++) {
        ssize_t got = read(a->up_fd, a->down + a->down_len, DOWN_CAP - a->down_len);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            a->done = true;
            gx_relay_end(&a->conn, errno == ECONNRESET ? 0 : errno);
            return;
        }
        if (got == 0) { /* the hop closed: the association is over */
            a->done = true;
            gx_relay_end(&a->conn, a->down_len ? EPROTO : 0);
            return;
        }
        a->down_len += (uint32_t)got;
        uint32_t pos = 0;
        for (;;) {
            struct gx_socks_frame f;
            int size = gx_socks_udp_parse(a->down + pos, a->down_len - pos, &f);
            if (size < 0) {
                a->done = true;
                gx_relay_end(&a->conn, EPROTO);
                return;
            }
            if (size == 0 || (uint32_t)size > a->down_len - pos)
                break;
            if (a->client_len == 0 || f.len > a->max_datagram) {
                gx_relay_count(a->stats, f.len > a->max_datagram ? ST_DROP_SIZE : ST_DROP_SEND, 1);
            } else {
                a->down[pos] = a->down[pos + 1] = 0; /* LEN -> RSV: the frame is the reply datagram */
                a->down[pos + 2] = 0;                /* FRAG 0 (gost v3 writes 0xFF) */
                ssize_t w = sendto(a->relay_fd, a->down + pos, (size_t)size, MSG_DONTWAIT,
                                   (struct sockaddr *)&a->client, a->client_len);
                if (w < 0) {
                    gx_relay_count(a->stats, ST_DROP_SEND, 1);
                } else {
                    gx_relay_count(a->stats, ST_DOWN_PKTS, 1);
                    gx_relay_count(a->stats, ST_DOWN_BYTES, f.len);
                }
            }
            pos += (uint32_t)size;
        }
        memmove(a->down, a->down + pos, a->down_len - pos);
        a->down_len -= pos;
    }
}

static void from_client(struct gx_socks_assoc *a, struct scratch *s) {
    for (int round = 0; round < ROUNDS && !a->resolving; round++) {
        for (int i = 0; i < BATCH; i++) {
            s->iov[i] = (struct iovec){.iov_base = s->buf + (size_t)i * SLOT,
                                       .iov_len = a->max_datagram + GX_SOCKS_UDP_HDR_MAX};
            s->msg[i].msg_hdr = (struct msghdr){.msg_name = &s->addr[i], .msg_namelen = sizeof(s->addr[i]),
                                                .msg_iov = &s->iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(a->relay_fd, s->msg, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        /* the sendable ones become msg[0..k) (k <= i: each reuses an earlier or its own entry) */
        int k = 0;
        for (int i = 0; i < n; i++) {
            uint8_t ip[16];
            uint8_t *data = s->iov[i].iov_base;
            uint32_t got = s->msg[i].msg_len;
            if (!ip16(&s->addr[i], ip) || memcmp(ip, a->client_ip, 16) != 0) {
                gx_relay_count(a->stats, ST_DROP_FOREIGN, 1);
                continue;
            }
            memcpy(&a->client, &s->addr[i], sizeof(a->client));
            a->client_len = s->msg[i].msg_hdr.msg_namelen;
            struct gx_socks_frame f;
            if (s->msg[i].msg_hdr.msg_flags & MSG_TRUNC) {
                gx_relay_count(a->stats, ST_DROP_SIZE, 1);
                continue;
            }
            if (gx_socks_assoc_parse(data, got, &f) != 0) {
                gx_relay_count(a->stats, ST_DROP_MALFORMED, 1);
                continue;
            }
            if (f.len > a->max_datagram) {
                gx_relay_count(a->stats, ST_DROP_SIZE, 1);
                continue;
            }
            if (a->stream) { /* names and addresses alike go on in the frame: the hop resolves */
                stream_queue(a, data, &f);
                continue;
            }
            socklen_t len = 0;
            int d = destination(a, &f, &s->dst[k], &len);
            if (d < 0) {
                if (a->resolving) {
                    gx_relay_count(a->stats, ST_DROP_RESOLVE, 1); /* one datagram waits for a name at a time */
                } else {
                    memcpy(a->held, data, got);
                    a->held_len = got;
                    a->resolving = true;
                }
                continue;
            }
            if (d == 0)
                continue;
            s->iov[BATCH + k] = (struct iovec){.iov_base = data + f.hdr_len, .iov_len = f.len};
            s->msg[k].msg_hdr = (struct msghdr){.msg_name = &s->dst[k], .msg_namelen = len,
                                                .msg_iov = &s->iov[BATCH + k], .msg_iovlen = 1};
            k++;
        }
        if (k > 0)
            send_batch(a, a->up_fd, s->msg, k, ST_UP_PKTS);
        if (a->stream)
            stream_flush(a);
        if (n < BATCH || (a->stream && UP_CAP - (a->up_tail - a->up_head) < FRAME_MAX))
            return;
    }
}

static void from_upstream(struct gx_socks_assoc *a, struct scratch *s) {
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < BATCH; i++) {
            s->iov[i] = (struct iovec){.iov_base = s->buf + (size_t)i * SLOT, .iov_len = a->max_datagram};
            s->msg[i].msg_hdr = (struct msghdr){.msg_name = &s->addr[i], .msg_namelen = sizeof(s->addr[i]),
                                                .msg_iov = &s->iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(a->up_fd, s->msg, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return; /* EAGAIN, or an ICMP error the socket just reported: the association goes on */
        struct iovec payload[BATCH];
        for (int i = 0; i < n; i++)
            payload[i] = (struct iovec){.iov_base = s->iov[i].iov_base, .iov_len = s->msg[i].msg_len};
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (s->msg[i].msg_hdr.msg_flags & MSG_TRUNC) {
                gx_relay_count(a->stats, ST_DROP_SIZE, 1);
                continue;
            }
            int h = a->client_len ? gx_socks_assoc_header(s->hdr[k], &s->addr[i]) : -1;
            if (h < 0) {
                gx_relay_count(a->stats, ST_DROP_SEND, 1); /* no client address yet */
                continue;
            }
            s->iov[BATCH + 2 * k] = (struct iovec){.iov_base = s->hdr[k], .iov_len = (size_t)h};
            s->iov[BATCH + 2 * k + 1] = payload[i];
            s->msg[k].msg_hdr = (struct msghdr){.msg_name = &a->client, .msg_namelen = a->client_len,
                                                .msg_iov = &s->iov[BATCH + 2 * k], .msg_iovlen = 2};
            k++;
        }
        if (k > 0)
            send_batch(a, a->relay_fd, s->msg, k, ST_DOWN_PKTS);
        if (n < BATCH)
            return;
    }
}

static void update_wants(struct gx_socks_assoc *a) {
    if (a->done)
        return;
    if (a->stream) {
        bool pending = a->up_tail > a->up_head;
        gx_relay_want(&a->conn, SLOT_RELAY, EPOLLIN);
        gx_relay_want(&a->conn, SLOT_UP, EPOLLIN | (pending ? EPOLLOUT : 0));
        return;
    }
    gx_relay_want(&a->conn, SLOT_RELAY, a->resolving ? 0 : EPOLLIN);
    gx_relay_want(&a->conn, SLOT_UP, EPOLLIN);
    if (a->resolving)
        gx_relay_want_kick(&a->conn);
}

static int assoc_start(struct gx_relay_conn *c) {
    struct gx_socks_assoc *a = (struct gx_socks_assoc *)c;
    int rc = gx_relay_watch_fd(c, SLOT_RELAY, a->relay_fd);
    if (rc == 0)
        rc = gx_relay_watch_fd(c, SLOT_UP, a->up_fd);
    if (rc == 0)
        update_wants(a);
    return rc;
}

static void assoc_ready(struct gx_relay_conn *c, int slot, uint32_t events) {
    struct gx_socks_assoc *a = (struct gx_socks_assoc *)c;
    struct scratch *s = scratch();
    if (s == NULL) {
        a->done = true;
        gx_relay_end(c, ENOMEM);
        return;
    }
    if (slot == GX_RELAY_KICK) {
        retry_held(a, s);
        if (!a->resolving)
            from_client(a, s);
    } else if (slot == SLOT_RELAY) {
        from_client(a, s);
    } else if (a->stream) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            stream_flush(a);
        if (!a->done && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            stream_down(a);
    } else {
        from_upstream(a, s);
    }
    update_wants(a);
}

static const struct gx_relay_ops assoc_ops = {.start = assoc_start, .ready = assoc_ready, .stop = NULL};

int gx_socks_assoc_new(struct gx_socks_assoc **out, int relay_fd, int up_fd, const struct sockaddr_storage *client,
                       uint32_t max_datagram) {
    if (relay_fd < 0 || up_fd < 0 || client == NULL || max_datagram > 65535)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int type = 0;
    socklen_t tl = sizeof(type);
    if (getsockname(up_fd, (struct sockaddr *)&ss, &sl) < 0 ||
        getsockopt(up_fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
        return -errno;
    bool stream = type == SOCK_STREAM;
    if (!stream && ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
        return -EAFNOSUPPORT;
    struct gx_socks_assoc *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    if (!ip16(client, a->client_ip)) {
        free(a);
        return -EAFNOSUPPORT;
    }
    int rc = gx_relay_conn_init(&a->conn, &assoc_ops);
    a->held = malloc(SLOT);
    if (stream) {
        a->up = malloc(UP_CAP);
        a->down = malloc(DOWN_CAP);
    }
    if (rc == 0 && (a->held == NULL || (stream && (a->up == NULL || a->down == NULL))))
        rc = -ENOMEM;
    if (rc < 0) {
        gx_socks_assoc_free(a); /* never attached: frees what was allocated */
        return rc;
    }
    a->stream = stream;
    a->relay_fd = relay_fd;
    a->up_fd = up_fd;
    a->up_family = ss.ss_family;
    a->max_datagram = max_datagram ? max_datagram : 65535;
    *out = a;
    return 0;
}

int gx_socks_assoc_start(struct gx_socks_assoc *a) { return gx_relay_attach(&a->conn); }

int gx_socks_assoc_event_fd(const struct gx_socks_assoc *a) { return a->conn.done_fd; }

int gx_socks_assoc_status(struct gx_socks_assoc *a) { return atomic_load(&a->conn.status); }

void gx_socks_assoc_get_stats(struct gx_socks_assoc *a, struct gx_socks_assoc_stats *out) {
    gx_relay_stats_copy((uint64_t *)out, a->stats, ST_N);
}

void gx_socks_assoc_cancel(struct gx_socks_assoc *a) { gx_relay_cancel(&a->conn); }

int gx_socks_assoc_stop(struct gx_socks_assoc *a) {
    gx_relay_stop(&a->conn);
    return 0;
}

void gx_socks_assoc_free(struct gx_socks_assoc *a) {
    if (a == NULL)
        return;
    gx_socks_assoc_stop(a);
    gx_relay_conn_release(&a->conn);
    free(a->held);
    free(a->up);
    free(a->down);
    free(a);
}
