/* The tunnel's default transport: one bound UDP socket, batched with recvmmsg/sendmmsg. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gx/tunnel.h"

/* Only the down thread receives, so the receive scratch lives here; send is called from both threads
 * (data from the up thread, control messages and relays from the down thread) and keeps its scratch on
 * the caller's stack. */
struct udp_state {
    int fd;
    struct mmsghdr rmsg[GX_BATCH_MAX];
    struct iovec riov[GX_BATCH_MAX];
};

#define SEND_CHUNK 64

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

static int udp_send(void *state, const struct gx_tunnel_dgram *d, int n, int stop_fd, uint64_t *bytes,
                    uint64_t *dropped) {
    const struct udp_state *u = state;
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

static void udp_close(void *state) { free(state); }

int gx_transport_udp(struct gx_transport *out, int fd) {
    struct udp_state *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return -ENOMEM;
    u->fd = fd;
    out->state = u;
    out->fd = fd;
    out->recv = udp_recv;
    out->send = udp_send;
    out->close = udp_close;
    return 0;
}
