/* The server side of GOST's SOCKS5 0xF3 (gx/proxy.h): stream frames <-> UDP datagrams, as one
 * handler on the shared relay engine (gx/proxy.h): no thread of its own, non-blocking fds, bounded
 * buffers with backpressure.
 *
 *   up   (stream -> udp): read the stream into `up` (UP_CAP bytes), send every complete frame to its
 *        address (gx_udp_sendmmsg: runs of one size to one address as one UDP GSO send). When the UDP socket cannot send (EAGAIN) the frames stay in `up` and the stream is not
 *        read again until the socket is writable.
 *   down (udp -> stream): recvmmsg a batch, send it as frames with one sendmsg; what the stream did not
 *        take waits in `down` (DOWN_CAP bytes; whole datagrams past the cap are dropped and counted, a
 *        frame already begun is always kept whole) and the UDP socket is not read again until `down`
 *        is empty.
 *
 * Names are never resolved here: a frame to a name looks it up in the shared cache (gx/proxy.h). On a
 * miss the relay stops reading its stream with the frame at the head of `up` (as gost, which resolves
 * inline per connection, stalls that connection) until the resolver thread has the answer and kicks the
 * engine; an unresolvable name drops the datagram (counted in drop_up).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gx/proxy.h"

#define RELAY_BATCH 32
#define UP_CAP (128u * 1024u)   /* > the largest frame: 2 + 1 + 1 + 1 + 255 + 2 + 65535 */
#define DOWN_CAP (128u * 1024u)
#define ROUNDS 8                /* batches per callback before the other relays get their turn */

enum { SLOT_STREAM = 0, SLOT_UDP = 1 };
enum { ST_UP_PKTS, ST_UP_BYTES, ST_DOWN_PKTS, ST_DOWN_BYTES, ST_DROP_UP, ST_DROP_DOWN, ST_GSO_SENDS, ST_GSO_FALLBACKS, ST_N };
_Static_assert(sizeof(struct gx_socks_relay_stats) == ST_N * sizeof(uint64_t), "stats layout");
_Static_assert(ST_GSO_FALLBACKS == ST_GSO_SENDS + 1, "gx_udp_sendmmsg counts into two adjacent slots");

struct gx_socks_relay {
    struct gx_relay_conn conn; /* first: the engine hands it back */
    int stream_fd, udp_fd, udp_family;
    uint32_t max_datagram;
    bool done;
    bool up_eof, udp_blocked, resolving;
    bool gso_off;              /* udp_fd sends without UDP GSO (gx_udp_sendmmsg) */
    uint8_t *up, *down;
    size_t up_head, up_tail, down_head, down_tail;
    _Atomic uint64_t stats[ST_N];
};

/* Per engine thread: the batch arrays (never freed: engine threads live as long as the process). */
struct scratch {
    struct mmsghdr msg[RELAY_BATCH];
    struct iovec iov[RELAY_BATCH * 2];
    struct sockaddr_storage addr[RELAY_BATCH];
    uint8_t hdr[RELAY_BATCH][GX_SOCKS_UDP_HDR_MAX];
    size_t end[RELAY_BATCH];
    uint8_t slots[]; /* RELAY_BATCH x 65536 */
};
static _Thread_local void *tls_scratch;

static struct scratch *scratch(void) {
    return gx_relay_scratch(&tls_scratch, sizeof(struct scratch) + (size_t)RELAY_BATCH * 65536u);
}

static void end(struct gx_socks_relay *r, int err) {
    r->done = true;
    gx_relay_end(&r->conn, err == ECONNRESET ? 0 : err);
}

/* Convert addr to the UDP socket's family (AF_INET6 sockets take v4-mapped addresses). */
static bool to_family(struct gx_socks_relay *r, struct sockaddr_storage *addr, socklen_t *len) {
    if (addr->ss_family == r->udp_family)
        return true;
    if (addr->ss_family == AF_INET && r->udp_family == AF_INET6) {
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
    if (addr->ss_family == AF_INET6 && r->udp_family == AF_INET) {
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

/* The frame's destination. 1: *a is set; 0: drop the frame; -1: its name is being resolved. */
static int destination(struct gx_socks_relay *r, const struct gx_socks_frame *f, struct sockaddr_storage *a,
                       socklen_t *len) {
    if (f->len > r->max_datagram)
        return 0;
    if (f->atyp == GX_SOCKS_ATYP_DOMAIN) {
        int res = gx_resolve_lookup(f->host, f->host_len, r->udp_family == AF_INET, a, len);
        if (res == GX_RESOLVE_PENDING)
            return -1;
        if (res != GX_RESOLVE_OK)
            return 0;
        if (a->ss_family == AF_INET)
            ((struct sockaddr_in *)a)->sin_port = htons(f->port);
        else
            ((struct sockaddr_in6 *)a)->sin6_port = htons(f->port);
    } else if (gx_socks_frame_sockaddr(f, a, len) != 0) {
        return 0;
    }
    return to_family(r, a, len) ? 1 : 0;
}

/* Send the complete frames in `up`. 0: none left; -EAGAIN: the UDP socket is full; -EINPROGRESS: the
 * head frame waits for its name; -EPROTO: a malformed frame. */
static int send_up(struct gx_socks_relay *r, struct scratch *s) {
    for (;;) {
        int n = 0, stall = 0;
        bool more = false;
        size_t pos = r->up_head;
        while (n < RELAY_BATCH) {
            struct gx_socks_frame f;
            size_t avail = r->up_tail - pos;
            int size = gx_socks_udp_parse(r->up + pos, avail, &f);
            if (size < 0) {
                stall = -EPROTO;
                break;
            }
            if (size == 0 || (size_t)size > avail)
                break;
            socklen_t len = 0;
            int dst = destination(r, &f, &s->addr[n], &len);
            if (dst < 0) {
                stall = -EINPROGRESS;
                break;
            }
            if (dst == 0) {
                if (n > 0) { /* send the batch first: the head only moves over sent or dropped frames */
                    more = true;
                    break;
                }
                gx_relay_count(r->stats, ST_DROP_UP, 1);
                pos += (size_t)size;
                r->up_head = pos;
                continue;
            }
            s->iov[n] = (struct iovec){.iov_base = r->up + pos + f.hdr_len, .iov_len = f.len};
            s->msg[n].msg_hdr = (struct msghdr){.msg_name = &s->addr[n], .msg_namelen = len,
                                                .msg_iov = &s->iov[n], .msg_iovlen = 1};
            pos += (size_t)size;
            s->end[n] = pos;
            n++;
        }
        if (n == RELAY_BATCH)
            more = true;
        if (n > 0) {
            int sent = gx_udp_sendmmsg(r->udp_fd, s->msg, n, &r->gso_off, &r->stats[ST_GSO_SENDS]);
            if (sent < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return -EAGAIN;
                if (errno == EINTR)
                    continue;
                /* the first datagram was refused (EMSGSIZE, EPERM, ENETUNREACH, ...): drop it */
                gx_relay_count(r->stats, ST_DROP_UP, 1);
                r->up_head = s->end[0];
                continue;
            }
            uint64_t bytes = 0;
            for (int i = 0; i < sent; i++)
                bytes += s->iov[i].iov_len;
            gx_relay_count(r->stats, ST_UP_PKTS, (uint64_t)sent);
            gx_relay_count(r->stats, ST_UP_BYTES, bytes);
            if (sent > 0)
                r->up_head = s->end[sent - 1];
            if (sent < n)
                continue; /* the next call says why (EAGAIN or an error) */
        }
        if (stall)
            return stall;
        if (!more)
            return 0;
    }
}

static void pump_up(struct gx_socks_relay *r) {
    struct scratch *s = scratch();
    if (s == NULL) {
        end(r, ENOMEM);
        return;
    }
    for (int round = 0; round < ROUNDS && !r->done; round++) {
        int rc = send_up(r, s);
        r->udp_blocked = rc == -EAGAIN;
        r->resolving = rc == -EINPROGRESS;
        if (rc == -EPROTO) {
            end(r, EPROTO);
            return;
        }
        if (rc < 0)
            return;
        if (r->up_eof) {
            end(r, r->up_tail > r->up_head ? EPROTO : 0);
            return;
        }
        if (r->up_head == r->up_tail) {
            r->up_head = r->up_tail = 0;
        } else if (r->up_head > 0 && UP_CAP - r->up_tail < 65536u + GX_SOCKS_UDP_HDR_MAX) {
            memmove(r->up, r->up + r->up_head, r->up_tail - r->up_head);
            r->up_tail -= r->up_head;
            r->up_head = 0;
        }
        if (r->up_tail == UP_CAP) { /* cannot happen: a frame is smaller than the buffer */
            end(r, EPROTO);
            return;
        }
        ssize_t got = read(r->stream_fd, r->up + r->up_tail, UP_CAP - r->up_tail);
        if (got > 0) {
            r->up_tail += (size_t)got;
        } else if (got == 0) {
            r->up_eof = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (errno != EINTR) {
            end(r, errno);
            return;
        }
    }
}

/* Keep what the stream did not take of the batch in s->iov[0..k): `skip` bytes of it were written.
 * Returns the frames dropped (past the cap). */
static uint64_t keep_rest(struct gx_socks_relay *r, struct scratch *s, int k, size_t skip) {
    uint64_t dropped = 0;
    r->down_head = r->down_tail = 0;
    for (int i = 0; i + 1 < k; i += 2) { /* iov pairs: header, payload */
        size_t flen = s->iov[i].iov_len + s->iov[i + 1].iov_len;
        if (skip >= flen) {
            skip -= flen;
            continue;
        }
        size_t rest = flen - skip;
        if (skip == 0 && r->down_tail + rest > DOWN_CAP) { /* a whole frame past the cap: drop it */
            dropped++;
            continue;
        }
        /* a begun frame is always kept (DOWN_CAP holds the largest frame) */
        for (int j = 0; j < 2; j++) {
            size_t part = s->iov[i + j].iov_len;
            if (skip >= part) {
                skip -= part;
                continue;
            }
            memcpy(r->down + r->down_tail, (uint8_t *)s->iov[i + j].iov_base + skip, part - skip);
            r->down_tail += part - skip;
            skip = 0;
        }
    }
    return dropped;
}

static void pump_down(struct gx_socks_relay *r) {
    struct scratch *s = scratch();
    if (s == NULL) {
        end(r, ENOMEM);
        return;
    }
    for (int round = 0; round < ROUNDS && !r->done; round++) {
        if (r->down_tail > r->down_head) {
            ssize_t w = send(r->stream_fd, r->down + r->down_head, r->down_tail - r->down_head,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                if (errno != EINTR)
                    end(r, EPIPE);
                continue;
            }
            r->down_head += (size_t)w;
            if (r->down_head < r->down_tail)
                return; /* the stream is full */
            r->down_head = r->down_tail = 0;
        }
        for (int i = 0; i < RELAY_BATCH; i++) {
            s->iov[i] = (struct iovec){.iov_base = s->slots + (size_t)i * 65536u, .iov_len = r->max_datagram};
            s->msg[i].msg_hdr = (struct msghdr){.msg_name = &s->addr[i], .msg_namelen = sizeof(s->addr[i]),
                                                .msg_iov = &s->iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(r->udp_fd, s->msg, RELAY_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            continue; /* EINTR, or a socket error it just reported and cleared (ICMP) */
        }
        /* the payloads aside, then s->iov[0..k) becomes header + payload pairs */
        int k = 0;
        uint64_t bytes = 0, pkts = 0, dropped = 0;
        struct iovec payload[RELAY_BATCH];
        for (int i = 0; i < n; i++)
            payload[i] = (struct iovec){.iov_base = s->iov[i].iov_base, .iov_len = s->msg[i].msg_len};
        for (int i = 0; i < n; i++) {
            uint32_t len = (uint32_t)payload[i].iov_len;
            int h = -1;
            if (len > 0 && !(s->msg[i].msg_hdr.msg_flags & MSG_TRUNC) && len <= r->max_datagram)
                h = gx_socks_udp_header(s->hdr[i], &s->addr[i], len);
            if (h < 0) {
                dropped++; /* empty, larger than max_datagram, or an address family frames cannot carry */
                continue;
            }
            s->iov[k] = (struct iovec){.iov_base = s->hdr[i], .iov_len = (size_t)h};
            s->iov[k + 1] = payload[i];
            k += 2;
            pkts++;
            bytes += len;
        }
        gx_relay_count(r->stats, ST_DROP_DOWN, dropped);
        if (k == 0)
            continue;
        struct msghdr mh = {.msg_iov = s->iov, .msg_iovlen = (size_t)k};
        ssize_t w = sendmsg(r->stream_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                end(r, EPIPE);
                return;
            }
            w = 0;
        }
        size_t total = 0;
        for (int i = 0; i < k; i++)
            total += s->iov[i].iov_len;
        if ((size_t)w < total) {
            uint64_t lost = keep_rest(r, s, k, (size_t)w);
            gx_relay_count(r->stats, ST_DROP_DOWN, lost);
            gx_relay_count(r->stats, ST_DOWN_PKTS, pkts - lost);
            gx_relay_count(r->stats, ST_DOWN_BYTES, bytes);
            return; /* wait for the stream */
        }
        gx_relay_count(r->stats, ST_DOWN_PKTS, pkts);
        gx_relay_count(r->stats, ST_DOWN_BYTES, bytes);
        if (n < RELAY_BATCH)
            return;
    }
}

static void update_wants(struct gx_socks_relay *r) {
    bool pending = r->down_tail > r->down_head;
    bool reading = !r->udp_blocked && !r->resolving;
    gx_relay_want(&r->conn, SLOT_STREAM, (reading ? EPOLLIN : 0) | (pending ? EPOLLOUT : 0));
    gx_relay_want(&r->conn, SLOT_UDP, (pending ? 0 : EPOLLIN) | (r->udp_blocked ? EPOLLOUT : 0));
    if (r->resolving)
        gx_relay_want_kick(&r->conn);
}

static int relay_start(struct gx_relay_conn *c) {
    struct gx_socks_relay *r = (struct gx_socks_relay *)c;
    int rc = gx_relay_watch_fd(c, SLOT_STREAM, r->stream_fd);
    if (rc == 0)
        rc = gx_relay_watch_fd(c, SLOT_UDP, r->udp_fd);
    if (rc == 0)
        update_wants(r);
    return rc;
}

static void relay_ready(struct gx_relay_conn *c, int slot, uint32_t events) {
    struct gx_socks_relay *r = (struct gx_socks_relay *)c;
    const uint32_t in = EPOLLIN | EPOLLERR | EPOLLHUP, out = EPOLLOUT | EPOLLERR | EPOLLHUP;
    if (slot == GX_RELAY_KICK) {
        pump_up(r);
    } else if (slot == SLOT_STREAM) {
        if ((events & out) && r->down_tail > r->down_head)
            pump_down(r);
        if ((events & in) && !r->udp_blocked && !r->resolving && !r->done)
            pump_up(r);
    } else {
        if ((events & out) && r->udp_blocked)
            pump_up(r);
        if ((events & in) && r->down_tail == r->down_head && !r->done)
            pump_down(r);
    }
    if (!r->done)
        update_wants(r);
}

static const struct gx_relay_ops socks_relay_ops = {.start = relay_start, .ready = relay_ready, .stop = NULL};

int gx_socks_relay_new(struct gx_socks_relay **out, int stream_fd, int udp_fd, uint32_t max_datagram) {
    if (stream_fd < 0 || udp_fd < 0 || max_datagram > 65535)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(udp_fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
        return -EAFNOSUPPORT;
    struct gx_socks_relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    int rc = gx_relay_conn_init(&r->conn, &socks_relay_ops);
    r->up = malloc(UP_CAP);
    r->down = malloc(DOWN_CAP);
    if (rc == 0 && (r->up == NULL || r->down == NULL))
        rc = -ENOMEM;
    if (rc < 0) {
        gx_socks_relay_free(r); /* never attached: frees what was allocated */
        return rc;
    }
    r->stream_fd = stream_fd;
    r->udp_fd = udp_fd;
    r->udp_family = ss.ss_family;
    r->max_datagram = max_datagram ? max_datagram : 65535;
    *out = r;
    return 0;
}

int gx_socks_relay_start(struct gx_socks_relay *r) { return gx_relay_attach(&r->conn); }

int gx_socks_relay_event_fd(const struct gx_socks_relay *r) { return r->conn.done_fd; }

int gx_socks_relay_status(struct gx_socks_relay *r) { return atomic_load(&r->conn.status); }

void gx_socks_relay_get_stats(struct gx_socks_relay *r, struct gx_socks_relay_stats *out) {
    gx_relay_stats_copy((uint64_t *)out, r->stats, ST_N);
}

void gx_socks_relay_cancel(struct gx_socks_relay *r) { gx_relay_cancel(&r->conn); }

int gx_socks_relay_stop(struct gx_socks_relay *r) {
    gx_relay_stop(&r->conn);
    return 0;
}

void gx_socks_relay_free(struct gx_socks_relay *r) {
    if (r == NULL)
        return;
    gx_socks_relay_stop(r);
    gx_relay_conn_release(&r->conn);
    free(r->up);
    free(r->down);
    free(r);
}
