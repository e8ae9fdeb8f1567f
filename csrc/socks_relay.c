/* The server side of GOST's SOCKS5 0xF3 (gx/socks_udp.h): stream frames <-> UDP datagrams.
 *
 * Two threads, each a loop over one direction, no Python and no GIL:
 *   up   (stream -> udp): parse frames into a batch, resolve names, sendmmsg to each frame's address
 *   down (udp -> stream): recvmmsg a batch, writev it as frames carrying each datagram's source
 * The stream side is the same code as the tunnel's stream transport; the UDP side the same as its
 * default UDP transport.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gx/batch.h"
#include "gx/socks_udp.h"

#define RELAY_BATCH 32

struct gx_socks_relay {
    int stream_fd, udp_fd, udp_family;
    uint32_t max_datagram;
    struct gx_transport stream, udp;
    int stop_fd, event_fd;
    pthread_t up, down;
    bool running;
    _Atomic int status;
    _Atomic uint64_t stats[6];
    /* the last name resolved (up thread only) */
    char cached_name[256];
    uint8_t cached_family;
    struct sockaddr_storage cached_addr;
    socklen_t cached_len;
};

enum { ST_UP_PKTS, ST_UP_BYTES, ST_DOWN_PKTS, ST_DOWN_BYTES, ST_DROP_UP, ST_DROP_DOWN };

static void add(struct gx_socks_relay *r, int i, uint64_t n) {
    if (n)
        atomic_fetch_add_explicit(&r->stats[i], n, memory_order_relaxed);
}

/* The relay ended by itself: remember why (the first reason wins) and wake the control plane. */
static void finish(struct gx_socks_relay *r, int err) {
    int zero = 0;
    atomic_compare_exchange_strong(&r->status, &zero, err == ECONNRESET ? 0 : err);
    uint64_t one = 1;
    ssize_t w = write(r->event_fd, &one, sizeof(one));
    (void)w;
    w = write(r->stop_fd, &one, sizeof(one)); /* and stop the other direction */
    (void)w;
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

/* Resolve a frame's name (blocking getaddrinfo, in the up thread), remembering the last answer. */
static bool resolve(struct gx_socks_relay *r, const struct gx_socks_frame *f, struct sockaddr_storage *out,
                    socklen_t *len) {
    char name[256];
    memcpy(name, f->host, f->host_len);
    name[f->host_len] = 0;
    if (r->cached_len == 0 || strcmp(name, r->cached_name) != 0) {
        struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_family = r->udp_family == AF_INET ? AF_INET : AF_UNSPEC};
        struct addrinfo *res = NULL;
        if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL)
            return false;
        memcpy(&r->cached_addr, res->ai_addr, res->ai_addrlen);
        r->cached_len = res->ai_addrlen;
        freeaddrinfo(res);
        memcpy(r->cached_name, name, f->host_len + 1);
    }
    memcpy(out, &r->cached_addr, r->cached_len);
    *len = r->cached_len;
    if (out->ss_family == AF_INET)
        ((struct sockaddr_in *)out)->sin_port = htons(f->port);
    else
        ((struct sockaddr_in6 *)out)->sin6_port = htons(f->port);
    return true;
}

/* The stream side of the relay reads frames itself (names must be resolved, not dropped). */
struct up_reader {
    uint8_t *buf;
    size_t head, tail;
};

static int up_fill(struct gx_socks_relay *r, struct up_reader *u) {
    const size_t cap = 256u * 1024u;
    if (u->head == u->tail)
        u->head = u->tail = 0;
    if (u->tail == cap && u->head > 0) {
        memmove(u->buf, u->buf + u->head, u->tail - u->head);
        u->tail -= u->head;
        u->head = 0;
    }
    if (u->tail == cap)
        return -EPROTO;
    ssize_t n = read(r->stream_fd, u->buf + u->tail, cap - u->tail);
    if (n > 0) {
        u->tail += (size_t)n;
        return (int)n;
    }
    if (n == 0)
        return u->tail > u->head ? -EPROTO : -ECONNRESET;
    if (errno == EAGAIN || errno == EINTR)
        return 0;
    return -errno;
}

static void *up_main(void *arg) {
    struct gx_socks_relay *r = arg;
    struct up_reader u = {.buf = malloc(256u * 1024u)};
    struct gx_tunnel_dgram *d = calloc(RELAY_BATCH, sizeof(*d));
    struct sockaddr_storage *addr = calloc(RELAY_BATCH, sizeof(*addr));
    if (u.buf == NULL || d == NULL || addr == NULL) {
        finish(r, ENOMEM);
        goto out;
    }
    struct pollfd pfd[2] = {{.fd = r->stream_fd, .events = POLLIN}, {.fd = r->stop_fd, .events = POLLIN}};
    for (;;) {
        int pr = poll(pfd, 2, -1);
        if (pr < 0 && errno != EINTR)
            break;
        if (pfd[1].revents)
            break;
        if (pr <= 0)
            continue;
        int got = up_fill(r, &u);
        if (got < 0) {
            finish(r, -got);
            break;
        }
        /* send every complete frame, RELAY_BATCH at a time */
        for (;;) {
            int n = 0;
            uint64_t dropped = 0, bytes = 0;
            int err = 0;
            while (n < RELAY_BATCH) {
                struct gx_socks_frame f;
                int size = gx_socks_udp_parse(u.buf + u.head, u.tail - u.head, &f);
                if (size < 0) {
                    err = EPROTO;
                    break;
                }
                if (size == 0 || (size_t)size > u.tail - u.head)
                    break;
                socklen_t len = 0;
                bool ok = f.len <= r->max_datagram;
                if (ok && f.atyp == GX_SOCKS_ATYP_DOMAIN)
                    ok = resolve(r, &f, &addr[n], &len);
                else if (ok)
                    ok = gx_socks_frame_sockaddr(&f, &addr[n], &len) == 0;
                if (ok)
                    ok = to_family(r, &addr[n], &len);
                if (ok) {
                    d[n].data = u.buf + u.head + f.hdr_len;
                    d[n].len = f.len;
                    d[n].addr = &addr[n];
                    d[n].addrlen = len;
                    n++;
                } else {
                    dropped++;
                }
                u.head += (size_t)size;
            }
            if (n > 0) {
                uint64_t refused = 0;
                int sent = r->udp.send(r->udp.state, d, n, r->stop_fd, &bytes, &refused);
                add(r, ST_UP_PKTS, (uint64_t)sent - refused);
                add(r, ST_UP_BYTES, bytes);
                dropped += refused;
            }
            add(r, ST_DROP_UP, dropped);
            if (err) {
                finish(r, err);
                goto out;
            }
            if (n < RELAY_BATCH)
                break;
        }
    }
out:
    free(u.buf);
    free(d);
    free(addr);
    return NULL;
}

static void *down_main(void *arg) {
    struct gx_socks_relay *r = arg;
    struct gx_batch b;
    struct gx_tunnel_dgram *d = calloc(RELAY_BATCH, sizeof(*d));
    uint32_t slot = (GX_HEADROOM + r->max_datagram + GX_TAILROOM + 63u) & ~63u;
    if (d == NULL || gx_batch_init(&b, RELAY_BATCH, slot, GX_HEADROOM) < 0) {
        free(d);
        finish(r, ENOMEM);
        return NULL;
    }
    struct pollfd pfd[2] = {{.fd = r->udp_fd, .events = POLLIN}, {.fd = r->stop_fd, .events = POLLIN}};
    for (;;) {
        int pr = poll(pfd, 2, -1);
        if (pr < 0 && errno != EINTR)
            break;
        if (pfd[1].revents)
            break;
        if (pr <= 0)
            continue;
        /* keep reading while batches come back full: the UDP transport may hold datagrams it already
         * took off the socket (UDP GRO), which poll would not report */
        for (uint32_t round = 1;; round++) {
            if (round % 64 == 0 && poll(&pfd[1], 1, 0) > 0)
                goto out;
            gx_batch_reset(&b);
            uint64_t bytes = 0;
            int n = r->udp.recv(r->udp.state, &b, &bytes);
            if (n <= 0)
                break; /* -EAGAIN; other socket errors are not fatal for a datagram socket */
            int m = 0;
            uint64_t dropped = 0;
            for (int i = 0; i < n; i++) {
                if (b.pkt[i].len == 0 || b.pkt[i].len > r->max_datagram) {
                    dropped++; /* larger than max_datagram (the slot is rounded up to 64 bytes), truncated, or empty */
                    continue;
                }
                d[m].data = b.pkt[i].data;
                d[m].len = b.pkt[i].len;
                d[m].addr = &b.addr[i];
                d[m].addrlen = b.addrlen[i];
                m++;
            }
            uint64_t wire = 0, refused = 0;
            int sent = m ? r->stream.send(r->stream.state, d, m, r->stop_fd, &wire, &refused) : 0;
            add(r, ST_DOWN_PKTS, (uint64_t)sent);
            add(r, ST_DOWN_BYTES, wire);
            add(r, ST_DROP_DOWN, dropped + refused);
            if (sent < m) { /* the stream refused a write: it is broken (or we are stopping) */
                struct pollfd sp = {.fd = r->stop_fd, .events = POLLIN};
                if (poll(&sp, 1, 0) <= 0)
                    finish(r, EPIPE);
                goto out;
            }
            if (n < RELAY_BATCH)
                break;
        }
    }
out:
    gx_batch_free(&b);
    free(d);
    return NULL;
}

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
    r->stream_fd = stream_fd;
    r->udp_fd = udp_fd;
    r->udp_family = ss.ss_family;
    r->max_datagram = max_datagram ? max_datagram : 65535;
    r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = (r->stop_fd < 0 || r->event_fd < 0) ? -errno : 0;
    if (rc == 0)
        rc = gx_transport_udp(&r->udp, udp_fd);
    if (rc == 0)
        rc = gx_transport_socks_udp(&r->stream, stream_fd);
    if (rc < 0) {
        if (r->udp.close)
            r->udp.close(r->udp.state);
        if (r->stop_fd >= 0)
            close(r->stop_fd);
        if (r->event_fd >= 0)
            close(r->event_fd);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int gx_socks_relay_start(struct gx_socks_relay *r) {
    if (r->running)
        return -EALREADY;
    int rc = pthread_create(&r->up, NULL, up_main, r);
    if (rc != 0)
        return -rc;
    rc = pthread_create(&r->down, NULL, down_main, r);
    if (rc != 0) {
        uint64_t one = 1;
        ssize_t w = write(r->stop_fd, &one, sizeof(one));
        (void)w;
        pthread_join(r->up, NULL);
        return -rc;
    }
    r->running = true;
    return 0;
}

int gx_socks_relay_event_fd(const struct gx_socks_relay *r) { return r->event_fd; }

int gx_socks_relay_status(struct gx_socks_relay *r) { return atomic_load(&r->status); }

void gx_socks_relay_get_stats(struct gx_socks_relay *r, struct gx_socks_relay_stats *out) {
    uint64_t *o = (uint64_t *)out;
    for (int i = 0; i < 6; i++)
        o[i] = atomic_load_explicit(&r->stats[i], memory_order_relaxed);
}

int gx_socks_relay_stop(struct gx_socks_relay *r) {
    if (!r->running)
        return 0;
    uint64_t one = 1;
    ssize_t w = write(r->stop_fd, &one, sizeof(one));
    (void)w;
    pthread_join(r->up, NULL);
    pthread_join(r->down, NULL);
    r->running = false;
    return 0;
}

void gx_socks_relay_free(struct gx_socks_relay *r) {
    if (r == NULL)
        return;
    gx_socks_relay_stop(r);
    r->udp.close(r->udp.state);
    r->stream.close(r->stream.state);
    close(r->stop_fd);
    close(r->event_fd);
    free(r);
}
