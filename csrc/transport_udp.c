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
struct udp_state {
    int fd;
    atomic_int gso;            /* UDP_SEGMENT works on this socket's path (cleared on EIO) */
    struct mmsghdr rmsg[GX_BATCH_MAX];
    struct iovec riov[GX_BATCH_MAX];
};

#define SEND_CHUNK 64
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define GSO_MAX_SEGS 64           /* the kernel's UDP_MAX_SEGMENTS is at least 64 */
#define GSO_MAX_BYTES 60000       /* well under 64 KiB minus the IPv6 and UDP headers */

/* Wait until fd is writable; false when stop_fd became readable. */
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

static int udp_recv(void *state, struct gx_batch *b, uint64_t *bytes) {
    struct udp_state *u = state;
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
        int done = 0;
        while (done < chunk) {
            int r = sendmmsg(u->fd, msg + done, (unsigned)(chunk - done), 0);
            if (r > 0) {
                for (int i = done; i < done + r; i++)
                    *bytes += msg[i].msg_len;
                done += r;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
                if (!wait_writable(u->fd, stop_fd)) {
                    *dropped += (uint64_t)(n - sent - done);
                    return sent + done;
                }
                continue;
            }
            (*dropped)++; /* this datagram was refused (unreachable, too big): skip it */
            done++;
        }
        sent += chunk;
    }
    return sent;
}

static int same_peer(const struct gx_tunnel_dgram *a, const struct gx_tunnel_dgram *b) {
    return a->addr == b->addr || (a->addrlen == b->addrlen && memcmp(a->addr, b->addr, a->addrlen) == 0);
}

/* UDP GSO: a run of datagrams to one peer, all of one size but the last (which may be shorter), goes
 * out as one sendmsg with UDP_SEGMENT: the kernel builds and routes one large packet and segments it
 * as late as it can (on veth, not at all until the receiver). Runs of one go out plainly. */
static int udp_send(void *state, const struct gx_tunnel_dgram *d, int n, int stop_fd, uint64_t *bytes,
                    uint64_t *dropped) {
    struct udp_state *u = state;
    if (!atomic_load_explicit(&u->gso, memory_order_relaxed))
        return udp_send_plain(u, d, n, stop_fd, bytes, dropped);
    struct iovec iov[GSO_MAX_SEGS];
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl;
    int sent = 0;
    while (sent < n) {
        /* the run starting at sent */
        uint32_t seg = d[sent].len, total = 0;
        int k = 0;
        while (sent + k < n && k < GSO_MAX_SEGS && total + d[sent + k].len <= GSO_MAX_BYTES &&
               same_peer(&d[sent], &d[sent + k]) && d[sent + k].len <= seg) {
            iov[k].iov_base = (void *)d[sent + k].data;
            iov[k].iov_len = d[sent + k].len;
            total += d[sent + k].len;
            k++;
            if (d[sent + k - 1].len < seg)
                break; /* a shorter datagram ends the run */
        }
        if (k == 1) {
            int r = udp_send_plain(u, d + sent, 1, stop_fd, bytes, dropped);
            if (r < 1 && *dropped == 0)
                return sent;
            sent++;
            continue;
        }
        struct msghdr m = {0};
        m.msg_name = (void *)d[sent].addr;
        m.msg_namelen = d[sent].addrlen;
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)k;
        m.msg_control = ctl.buf;
        m.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t size = (uint16_t)seg;
        memcpy(CMSG_DATA(c), &size, sizeof(size));
        for (;;) {
            ssize_t r = sendmsg(u->fd, &m, 0);
            if (r >= 0) {
                *bytes += (uint64_t)r;
                sent += k;
                break;
            }
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == ENOBUFS) {
                if (!wait_writable(u->fd, stop_fd)) {
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
            *dropped += (uint64_t)k; /* refused (unreachable, too big): skip the run */
            sent += k;
            break;
        }
    }
    return sent;
}

static void udp_close(void *state) { free(state); }

int gx_transport_udp(struct gx_transport *out, int fd) {
    struct udp_state *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return -ENOMEM;
    u->fd = fd;
    atomic_init(&u->gso, 1);
    out->state = u;
    out->fd = fd;
    out->recv = udp_recv;
    out->send = udp_send;
    out->close = udp_close;
    return 0;
}
