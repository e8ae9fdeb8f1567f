/* The tunnel's default transport: one bound UDP socket, batched with recvmmsg/sendmmsg. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gx/tunnel.h"

/* Only the down thread receives, so the receive scratch lives here; send is called from both threads
 * (data from the up thread, control messages and relays from the down thread) and keeps its scratch on
 * the caller's stack. */
#define GRO_BUFS 8
#define GRO_BUF_SIZE 65536

struct udp_state {
    int fd;
    atomic_int gso;            /* UDP_SEGMENT works on this socket's path (cleared on EIO) */
    int gro;                   /* UDP_GRO is on: reads may return several coalesced datagrams */
    struct mmsghdr rmsg[GX_BATCH_MAX];
    struct iovec riov[GX_BATCH_MAX];
    /* GRO receive: large buffers, and what of them is not yet in a batch */
    uint8_t *gbuf[GRO_BUFS];
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } gctl[GRO_BUFS];
    struct {
        uint32_t off, len, seg;    /* bytes consumed, total, segment size */
        struct sockaddr_storage addr;
        socklen_t addrlen;
    } pend[GRO_BUFS];
    int npend, ipend;          /* buffers received by the last read, and the one being split */
};

#define SEND_CHUNK 64
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#define GSO_MAX_SEGS 64           /* the kernel's UDP_MAX_SEGMENTS is at least 64 */
#define GSO_MAX_BYTES 60000       /* well under 64 KiB minus the IPv6 and UDP headers */

/* For transports' send: wait until fd is writable (1), or until stop_fd (when >= 0) is readable (0). */
int gx_transport_wait_writable(int fd, int stop_fd) {
    struct pollfd p[2] = {{.fd = fd, .events = POLLOUT}, {.fd = stop_fd, .events = POLLIN}};
    for (;;) {
        int r = poll(p, stop_fd >= 0 ? 2 : 1, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return 0;   /* poll itself failed (ENOMEM): give up like a stop rather than spin */
        if (stop_fd >= 0 && p[1].revents)
            return 0;
        if (r > 0)
            return 1;
    }
}

/* For transports' send on ENOBUFS (no buffer for the packet; poll cannot tell when there will be):
 * nap 1 ms, watching stop_fd. 1 to try again, 0 when stop_fd fired. Callers nap at most
 * GX_NOBUFS_NAPS times for one packet, then drop it: a retry without a nap would spin. */
int gx_transport_nap(int stop_fd) {
    struct pollfd p = {.fd = stop_fd, .events = POLLIN};
    int r = poll(stop_fd >= 0 ? &p : NULL, stop_fd >= 0 ? 1 : 0, 1);
    return !(r > 0 && p.revents);
}

static int udp_recv_plain(struct udp_state *u, struct gx_batch *b, uint64_t *bytes) {
    uint32_t room = gx_batch_room(b);
    for (uint32_t i = 0; i < b->cap; i++) {
        u->riov[i].iov_base = b->pkt[i].data;
        u->riov[i].iov_len = room;
        memset(&u->rmsg[i].msg_hdr, 0, sizeof(u->rmsg[i].msg_hdr));
        u->rmsg[i].msg_hdr.msg_iov = &u->riov[i];
        u->rmsg[i].msg_hdr.msg_iovlen = 1;
        u->rmsg[i].msg_hdr.msg_name = &b->addr[i];
        u->rmsg[i].msg_hdr.msg_namelen = sizeof(b->addr[i]);
    }
    int n = recvmmsg(u->fd, u->rmsg, b->cap, MSG_DONTWAIT, NULL);
    if (n < 0) {
        /* ICMP errors queued on the socket (port unreachable, ...) are not fatal for a datagram socket */
        if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED || errno == EHOSTUNREACH ||
            errno == ENETUNREACH)
            return -EAGAIN;
        return -errno;
    }
    b->n = (uint32_t)n;
    for (int i = 0; i < n; i++) {
        *bytes += u->rmsg[i].msg_len;
        b->pkt[i].len = (u->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : u->rmsg[i].msg_len;
        b->addrlen[i] = u->rmsg[i].msg_hdr.msg_namelen;
    }
    return n;
}

static int udp_send_plain(const struct udp_state *u, const struct gx_tunnel_dgram *d, int n, int stop_fd, uint64_t *bytes,
                    uint64_t *dropped) {
    struct mmsghdr msg[SEND_CHUNK];
    struct iovec iov[SEND_CHUNK];
    int sent = 0;
    while (sent < n) {
        int chunk = n - sent > SEND_CHUNK ? SEND_CHUNK : n - sent;
        for (int i = 0; i < chunk; i++) {
            const struct gx_tunnel_dgram *g = &d[sent + i];
            iov[i].iov_base = (void *)g->data;
            iov[i].iov_len = g->len;
            memset(&msg[i], 0, sizeof(msg[i]));
            msg[i].msg_hdr.msg_iov = &iov[i];
            msg[i].msg_hdr.msg_iovlen = 1;
            msg[i].msg_hdr.msg_name = (void *)g->addr;
            msg[i].msg_hdr.msg_namelen = g->addrlen;
        }
        int done = 0, naps = 0;
        while (done < chunk) {
            int r = sendmmsg(u->fd, msg + done, (unsigned)(chunk - done), 0);
            if (r > 0) {
                for (int i = done; i < done + r; i++)
                    *bytes += msg[i].msg_len;
                done += r;
                naps = 0;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            int wait = r < 0 && errno == EAGAIN;
            if (wait || (r < 0 && errno == ENOBUFS && naps++ < GX_NOBUFS_NAPS)) {
                if (!(wait ? gx_transport_wait_writable(u->fd, stop_fd) : gx_transport_nap(stop_fd))) {
                    *dropped += (uint64_t)(n - sent - done);
                    return sent + done;
                }
                continue;
            }
            /* this datagram was refused (unreachable, too big, no buffer after the naps; or sendmmsg
             * returned 0, which it should not): skip it, so that every turn makes progress */
            (*dropped)++;
            done++;
            naps = 0;
        }
        sent += chunk;
    }
    return sent;
}

/* Move pending coalesced datagrams into the batch, one segment a slot. */
static void gro_drain(struct udp_state *u, struct gx_batch *b, uint64_t *bytes) {
    uint32_t room = gx_batch_room(b);
    while (u->ipend < u->npend && b->n < b->cap) {
        __typeof__(u->pend[0]) *p = &u->pend[u->ipend];
        if (p->off >= p->len) {
            u->ipend++;
            continue;
        }
        uint32_t take = p->len - p->off < p->seg ? p->len - p->off : p->seg;
        uint32_t i = b->n++;
        if (take <= room) {
            memcpy(b->pkt[i].data, u->gbuf[u->ipend] + p->off, take);
            b->pkt[i].len = take;
        } else {
            b->pkt[i].len = 0; /* larger than a slot: dropped (counted by the tunnel) */
        }
        memcpy(&b->addr[i], &p->addr, p->addrlen);
        b->addrlen[i] = p->addrlen;
        *bytes += take;
        p->off += take;
    }
}

/* With UDP_GRO: the kernel may hand over a run of datagrams from one sender as one buffer plus a
 * segment size; split it into the batch (a copy per datagram; the slots are what open/seal work on). */
static int udp_recv(void *state, struct gx_batch *b, uint64_t *bytes) {
    struct udp_state *u = state;
    if (!u->gro)
        return udp_recv_plain(u, b, bytes);
    b->n = 0;
    gro_drain(u, b, bytes);
    if (b->n == b->cap)
        return (int)b->n;
    for (int k = 0; k < GRO_BUFS; k++) {
        u->riov[k].iov_base = u->gbuf[k];
        u->riov[k].iov_len = GRO_BUF_SIZE;
        memset(&u->rmsg[k].msg_hdr, 0, sizeof(u->rmsg[k].msg_hdr));
        u->rmsg[k].msg_hdr.msg_iov = &u->riov[k];
        u->rmsg[k].msg_hdr.msg_iovlen = 1;
        u->rmsg[k].msg_hdr.msg_name = &u->pend[k].addr;
        u->rmsg[k].msg_hdr.msg_namelen = sizeof(u->pend[k].addr);
        u->rmsg[k].msg_hdr.msg_control = u->gctl[k].buf;
        u->rmsg[k].msg_hdr.msg_controllen = sizeof(u->gctl[k].buf);
    }
    int n = recvmmsg(u->fd, u->rmsg, GRO_BUFS, MSG_DONTWAIT, NULL);
    if (n < 0) {
        if (b->n > 0)
            return (int)b->n;
        if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED || errno == EHOSTUNREACH ||
            errno == ENETUNREACH)
            return -EAGAIN;
        return -errno;
    }
    for (int k = 0; k < n; k++) {
        struct msghdr *m = &u->rmsg[k].msg_hdr;
        uint32_t len = u->rmsg[k].msg_len, seg = len;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
                int g;
                memcpy(&g, CMSG_DATA(c), sizeof(g));
                if (g > 0 && (uint32_t)g < len)
                    seg = (uint32_t)g;
            }
        }
        u->pend[k].off = 0;
        u->pend[k].len = (m->msg_flags & MSG_TRUNC) ? 0 : len;
        u->pend[k].seg = seg ? seg : 1;
        u->pend[k].addrlen = m->msg_namelen;
        if (len == 0 && b->n < b->cap) { /* an empty datagram: report it (dropped and counted) */
            uint32_t i = b->n++;
            b->pkt[i].len = 0;
            memcpy(&b->addr[i], &u->pend[k].addr, m->msg_namelen);
            b->addrlen[i] = m->msg_namelen;
        }
    }
    u->npend = n;
    u->ipend = 0;
    gro_drain(u, b, bytes);
    return (int)b->n;
}

static int same_peer(const struct gx_tunnel_dgram *a, const struct gx_tunnel_dgram *b) {
    return a->addr == b->addr || (a->addrlen == b->addrlen && memcmp(a->addr, b->addr, a->addrlen) == 0);
}

/* UDP GSO: a run of datagrams to one peer, all of one size but the last (which may be shorter), goes
 * out as one sendmsg with UDP_SEGMENT: the kernel builds and routes one large packet and segments it
 * as late as it can (on veth, not at all until the receiver). Runs of one go out plainly, and so does
 * a datagram that fits in no run (empty, or over GSO_MAX_BYTES: up to 65507 bytes go out alone).
 * Every turn of the loop sends or drops at least one datagram. */
static int udp_send(void *state, const struct gx_tunnel_dgram *d, int n, int stop_fd, uint64_t *bytes,
                    uint64_t *dropped) {
    struct udp_state *u = state;
    if (!atomic_load_explicit(&u->gso, memory_order_relaxed))
        return udp_send_plain(u, d, n, stop_fd, bytes, dropped);
    struct iovec iov[GSO_MAX_SEGS];
    union gx_udp_segment_ctl ctl;
    int sent = 0;
    while (sent < n) {
        /* the run starting at sent */
        uint32_t seg = d[sent].len, total = 0;
        int k = 0;
        while (sent + k < n && k < GSO_MAX_SEGS && d[sent + k].len > 0 && total + d[sent + k].len <= GSO_MAX_BYTES &&
               same_peer(&d[sent], &d[sent + k]) && d[sent + k].len <= seg) {
            iov[k].iov_base = (void *)d[sent + k].data;
            iov[k].iov_len = d[sent + k].len;
            total += d[sent + k].len;
            k++;
            if (d[sent + k - 1].len < seg)
                break; /* a shorter datagram ends the run */
        }
        if (k <= 1) {
            /* a run of one, or a datagram no run can take (empty, or larger than GSO_MAX_BYTES): plainly.
             * It is sent or refused (counted) and the loop moves on; 0 means stop_fd fired. */
            int r = udp_send_plain(u, d + sent, 1, stop_fd, bytes, dropped);
            if (r < 1) {
                *dropped += (uint64_t)(n - sent - 1);   /* the one tried is counted already */
                return sent;
            }
            sent++;
            continue;
        }
        struct msghdr m = {0};
        m.msg_name = (void *)d[sent].addr;
        m.msg_namelen = d[sent].addrlen;
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)k;
        gx_udp_segment_cmsg(&m, &ctl, (uint16_t)seg);
        for (int naps = 0;;) {
            ssize_t r = sendmsg(u->fd, &m, 0);
            if (r >= 0) {
                *bytes += (uint64_t)r;
                sent += k;
                break;
            }
            if (errno == EINTR)
                continue;
            int wait = errno == EAGAIN;
            if (wait || (errno == ENOBUFS && naps++ < GX_NOBUFS_NAPS)) {
                if (!(wait ? gx_transport_wait_writable(u->fd, stop_fd) : gx_transport_nap(stop_fd))) {
                    *dropped += (uint64_t)(n - sent);
                    return sent;
                }
                continue;
            }
            if (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP) {
                /* no segmentation offload on this path: plain sends from now on */
                atomic_store_explicit(&u->gso, 0, memory_order_relaxed);
                return sent + udp_send_plain(u, d + sent, n - sent, stop_fd, bytes, dropped);
            }
            *dropped += (uint64_t)k; /* refused (unreachable, too big, no buffer): skip the run */
            sent += k;
            break;
        }
    }
    return sent;
}

static void udp_close(void *state) {
    struct udp_state *u = state;
    for (int k = 0; k < GRO_BUFS; k++)
        free(u->gbuf[k]);
    free(u);
}

int gx_transport_udp(struct gx_transport *out, int fd) {
    struct udp_state *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return -ENOMEM;
    u->fd = fd;
    atomic_init(&u->gso, 1);
    int on = 1;
    if (setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on)) == 0) {
        u->gro = 1;
        for (int k = 0; k < GRO_BUFS && u->gro; k++)
            if ((u->gbuf[k] = malloc(GRO_BUF_SIZE)) == NULL)
                u->gro = 0;
        if (!u->gro) {
            for (int k = 0; k < GRO_BUFS; k++)
                free(u->gbuf[k]);
            free(u);
            return -ENOMEM;
        }
    }
    out->state = u;
    out->fd = fd;
    out->recv = udp_recv;
    out->send = udp_send;
    out->close = udp_close;
    return 0;
}
