/* Fake TCP as a tunnel transport (gx_transport): batched receive (epoll over the raw sockets, the
 * kernel connections, the listener and a timer; recvmmsg into the batch) and batched send (headers
 * built in per-thread memory, sendmmsg with two iovecs per segment). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "faketcp_internal.h"

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
        /* Only segments with a payload have their checksum checked. Those from a raw socket (ours or
         * tcpraw's) carry a complete one; segments of a kernel TCP (a plain TCP client, or its data
         * and FIN riding together: FIN|PSH) that crossed a virtual link (veth, lo) carry the partial
         * one the sender left for the device (CHECKSUM_PARTIAL), which a raw socket cannot tell from
         * a bad one but by its value. Refusing those kept such a flow's FIN out until its timeout. */
        if ((rx->msg[j].msg_hdr.msg_flags & MSG_TRUNC) || gx_faketcp_parse(pkt, len, !v6, &seg) < 0 ||
            (!v6 && seg.payload_len > 0 && !gx_faketcp_csum_ok(pkt, &seg) &&
             !gx_faketcp_csum_partial(pkt, &seg))) {
            bad++;
            continue;
        }
        int deliver;
        struct fkey k;
        if (f->role == ROLE_CLIENT) {
            deliver = ftcp_client_segment(f, &seg, now);
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
            deliver = ftcp_server_segment(f, &seg, &k, now);
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
            ftcp_conn_event(f, s, ev[i].events);
    }
    if (listen)
        ftcp_server_accept(f, now);
    if (f->dead)
        return -f->dead;
    if (tick) {
        uint64_t expirations;
        ssize_t r = read(f->timer, &expirations, sizeof(expirations));
        (void)r;
        if (f->role == ROLE_SERVER)
            ftcp_server_sweep(f, now);
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

/* Send scratch, one per thread: the up thread sends data, the down thread control messages and
 * relayed packets, both through ftcp_send. */
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


/* Prepare message m for datagram d on flow p. Server messages carry the destination and the source
 * address (IP_PKTINFO / IPV6_PKTINFO). */
static void tx_prepare(struct gx_faketcp *f, int m, const struct gx_tunnel_dgram *d, struct flow *p) {
    bool v6 = p->key.v6;
    uint32_t seq = atomic_fetch_add_explicit(&p->seq, d->len, memory_order_relaxed);
    uint32_t ack = atomic_load_explicit(&p->ack, memory_order_relaxed);
    if (!atomic_load_explicit(&p->sent, memory_order_relaxed))
        atomic_store_explicit(&p->sent, true, memory_order_relaxed);
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
        int done = 0, naps = 0;
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
                naps = 0;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            int wait = r < 0 && errno == EAGAIN;
            if (wait || (r < 0 && errno == ENOBUFS && naps++ < GX_NOBUFS_NAPS)) {
                /* ENOBUFS: poll cannot tell when buffers free up, so nap (a bounded number of times) */
                if (!(wait ? gx_transport_wait_writable(fd, stop_fd) : gx_transport_nap(stop_fd)))
                    *stopped = true;
                continue;
            }
            refused++; /* this segment was refused (unreachable, too big, no buffer): skip it */
            done++;
            naps = 0;
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
                struct flow *p = (last != NULL && key_eq(&k, &last_key)) ? last : ftcp_table_find(f, &k);
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
