/* GOST's SOCKS5 UDP-over-TCP frames (gx/proxy.h): the wire format and the tunnel transport. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gx/base.h"
#include "gx/proxy.h"

#define READ_BUF (256u * 1024u)        /* holds several full frames: the largest is 65535 + 262 */
#define SEND_CHUNK 256                 /* datagrams per writev (2 iovecs each, IOV_MAX is 1024) */

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int gx_socks_addr_parse(const uint8_t *p, size_t avail, struct gx_socks_frame *f) {
    if (avail < 1)
        return 0;
    size_t n;
    f->atyp = p[0];
    switch (p[0]) {
    case GX_SOCKS_ATYP_IPV4:
        n = 1 + 4 + 2;
        f->host = p + 1;
        f->host_len = 4;
        break;
    case GX_SOCKS_ATYP_IPV6:
        n = 1 + 16 + 2;
        f->host = p + 1;
        f->host_len = 16;
        break;
    case GX_SOCKS_ATYP_DOMAIN:
        if (avail < 2)
            return 0;
        if (p[1] == 0)
            return -EPROTO;
        n = 2 + (size_t)p[1] + 2;
        f->host = p + 2;
        f->host_len = p[1];
        break;
    default:
        return -EPROTO;
    }
    if (avail < n)
        return 0;
    f->port = (uint16_t)(((uint16_t)p[n - 2] << 8) | p[n - 1]);
    return (int)n;
}

int gx_socks_udp_parse(const uint8_t *buf, size_t avail, struct gx_socks_frame *f) {
    if (avail < 4)
        return 0;
    uint32_t len = ((uint32_t)buf[0] << 8) | buf[1];
    if (len == 0)
        return -EPROTO;
    int a = gx_socks_addr_parse(buf + 3, avail - 3, f);
    if (a <= 0)
        return a;
    f->hdr_len = 3 + (uint32_t)a;
    f->len = len;
    return (int)(f->hdr_len + len);
}

int gx_socks_udp_header(uint8_t out[GX_SOCKS_UDP_HDR_MAX], const struct sockaddr_storage *addr, uint32_t len) {
    if (len == 0 || len > 65535)
        return -EINVAL;
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    out[2] = GX_SOCKS_UDP_FRAG;
    const uint8_t *ip;
    uint16_t port_be;
    int n;
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)addr;
        ip = (const uint8_t *)&a->sin_addr;
        port_be = a->sin_port;
        n = 4;
    } else if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)addr;
        ip = (const uint8_t *)&a->sin6_addr;
        port_be = a->sin6_port;
        n = 16;
        if (memcmp(ip, v4_prefix, 12) == 0) {
            ip += 12;
            n = 4;
        }
    } else {
        return -EAFNOSUPPORT;
    }
    out[3] = n == 4 ? GX_SOCKS_ATYP_IPV4 : GX_SOCKS_ATYP_IPV6;
    memcpy(out + 4, ip, (size_t)n);
    memcpy(out + 4 + n, &port_be, 2);
    return 4 + n + 2;
}

int gx_socks_frame_sockaddr(const struct gx_socks_frame *f, struct sockaddr_storage *out, socklen_t *len) {
    memset(out, 0, sizeof(*out));
    if (f->atyp == GX_SOCKS_ATYP_IPV4) {
        struct sockaddr_in *a = (void *)out;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, f->host, 4);
        a->sin_port = htons(f->port);
        *len = sizeof(*a);
        return 0;
    }
    if (f->atyp == GX_SOCKS_ATYP_IPV6) {
        struct sockaddr_in6 *a = (void *)out;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, f->host, 16);
        a->sin6_port = htons(f->port);
        *len = sizeof(*a);
        return 0;
    }
    return -EAFNOSUPPORT;
}

/* ---------------------------------------------------------------------------------------------- */
/* The transport. recv runs in the tunnel's down thread only; send in both threads, under a mutex so
 * frames of the two never interleave on the stream. */

struct stream_state {
    int fd;
    uint8_t *buf;
    size_t head, tail;               /* unread bytes are buf[head..tail) */
    int ended;                       /* 0, or the -errno recv returns from now on */
    pthread_mutex_t send_lock;
    uint8_t hdr[SEND_CHUNK][GX_SOCKS_UDP_HDR_MAX];
    struct iovec iov[2 * SEND_CHUNK];
};

/* Read what the stream has. >0 bytes, 0 nothing now, or -errno / -ECONNRESET (EOF) / -EPROTO (EOF in a
 * frame) when finished. */
static int stream_fill(struct stream_state *s) {
    if (s->head > 0 && s->head == s->tail)
        s->head = s->tail = 0;
    if (s->tail == READ_BUF && s->head > 0) {
        memmove(s->buf, s->buf + s->head, s->tail - s->head);
        s->tail -= s->head;
        s->head = 0;
    }
    if (s->tail == READ_BUF) /* cannot happen: one frame is at most 65797 bytes */
        return -EPROTO;
    ssize_t r = read(s->fd, s->buf + s->tail, READ_BUF - s->tail);
    if (r > 0) {
        s->tail += (size_t)r;
        return (int)r;
    }
    if (r == 0)
        return s->tail > s->head ? -EPROTO : -ECONNRESET;
    if (errno == EAGAIN || errno == EINTR)
        return 0;
    return -errno;
}

static int stream_recv(void *state, struct gx_batch *b, uint64_t *bytes) {
    struct stream_state *s = state;
    if (s->ended)
        return s->ended;
    uint32_t room = gx_batch_room(b);
    uint32_t n = 0;
    bool filled = false;
    while (n < b->cap) {
        struct gx_socks_frame f;
        int size = gx_socks_udp_parse(s->buf + s->head, s->tail - s->head, &f);
        if (size < 0) {
            s->ended = size;
            break;
        }
        if (size == 0 || (size_t)size > s->tail - s->head) {
            if (filled && n > 0)
                break; /* return what we have; the rest comes with the next poll */
            int r = stream_fill(s);
            filled = true;
            if (r < 0) {
                s->ended = r;
                break;
            }
            if (r == 0)
                break;
            continue;
        }
        struct gx_pkt *p = &b->pkt[n];
        *bytes += (uint64_t)size;
        if (f.len <= room && gx_socks_frame_sockaddr(&f, &b->addr[n], &b->addrlen[n]) == 0) {
            memcpy(p->data, s->buf + s->head + f.hdr_len, f.len);
            p->len = f.len;
        } else {
            p->len = 0; /* a name, or larger than a slot: dropped, counted by the tunnel */
            b->addrlen[n] = 0;
        }
        n++;
        s->head += (size_t)size;
    }
    b->n = n;
    if (n > 0)
        return (int)n;
    return s->ended ? s->ended : -EAGAIN;
}

/* Write iov[0..cnt) completely. 0, or -errno (stopped: -EINTR). */
static int writev_all(int fd, struct iovec *iov, int cnt, int stop_fd) {
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!gx_transport_wait_writable(fd, stop_fd))
                    return -EINTR;
                continue;
            }
            return -errno;
        }
        if (w == 0)
            return -EIO;  /* never for a non-empty write to a stream; would loop without progress */
        size_t left = (size_t)w;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

static int stream_send(void *state, const struct gx_tunnel_dgram *d, int n, int stop_fd, uint64_t *bytes,
                       uint64_t *dropped) {
    struct stream_state *s = state;
    int sent = 0;
    pthread_mutex_lock(&s->send_lock);
    for (int i = 0; i < n;) {
        int cnt = 0, frames = 0;
        uint64_t wire = 0;
        for (; i < n && frames < SEND_CHUNK; i++) {
            int h = gx_socks_udp_header(s->hdr[frames], d[i].addr, d[i].len);
            if (h < 0) {
                (*dropped)++; /* empty, oversized or not an IP address */
                continue;
            }
            s->iov[cnt].iov_base = s->hdr[frames];
            s->iov[cnt++].iov_len = (size_t)h;
            s->iov[cnt].iov_base = (void *)d[i].data;
            s->iov[cnt++].iov_len = d[i].len;
            wire += (uint64_t)h + d[i].len;
            frames++;
        }
        if (cnt == 0)
            continue;
        if (writev_all(s->fd, s->iov, cnt, stop_fd) < 0) {
            *dropped += (uint64_t)frames + (uint64_t)(n - i);
            break;
        }
        *bytes += wire;
        sent += frames;
    }
    pthread_mutex_unlock(&s->send_lock);
    return sent;
}

static void stream_close(void *state) {
    struct stream_state *s = state;
    pthread_mutex_destroy(&s->send_lock);
    free(s->buf);
    free(s);
}

int gx_transport_socks_udp(struct gx_transport *out, int fd) {
    if (fd < 0)
        return -EBADF;
    struct stream_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->buf = malloc(READ_BUF);
    if (s->buf == NULL) {
        free(s);
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&s->send_lock, NULL);
    if (rc != 0) {
        free(s->buf);
        free(s);
        return -rc;
    }
    s->fd = fd;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* not a TCP socket in tests */
    out->state = s;
    out->fd = fd;
    out->recv = stream_recv;
    out->send = stream_send;
    out->close = stream_close;
    return 0;
}
