/* Fake TCP flows: the server's flow table (open addressing, backward-shift deletion; the down thread
 * writes under the write lock, the up thread reads under the read lock, seq/ack are atomics), what each
 * received segment does to its flow (tcpraw's sequence rules, RST/FIN), accepting connections, RSTs
 * for unknown flows, and expiry. Down thread only, except ftcp_table_find. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "faketcp_internal.h"

struct flow *ftcp_table_find(struct gx_faketcp *f, const struct fkey *k) {
    for (uint32_t i = key_hash(k) & f->mask;; i = (i + 1) & f->mask) {
        struct flow *p = &f->slots[i];
        if (!p->used)
            return NULL;
        if (key_eq(&p->key, k))
            return p;
    }
}

static void flow_init(struct flow *p, const struct fkey *k, uint64_t now) {
    memset(p, 0, sizeof(*p));
    p->used = true;
    p->key = *k;
    p->seen_ms = p->born_ms = now;
}

/* Caller holds the write lock. NULL when the table is full. */
static struct flow *table_add(struct gx_faketcp *f, const struct fkey *k, uint64_t now) {
    if (f->count >= f->limit)
        return NULL;
    uint32_t i = key_hash(k) & f->mask;
    while (f->slots[i].used)
        i = (i + 1) & f->mask;
    flow_init(&f->slots[i], k, now);
    f->count++;
    atomic_store_explicit(&f->stats.v[STAT(flows)], f->count, memory_order_relaxed);
    return &f->slots[i];
}

static void flow_move(struct flow *to, struct flow *from) {
    to->used = true;
    to->key = from->key;
    atomic_store_explicit(&to->seq, atomic_load_explicit(&from->seq, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&to->ack, atomic_load_explicit(&from->ack, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&to->sent, atomic_load_explicit(&from->sent, memory_order_relaxed), memory_order_relaxed);
    to->ack_known = from->ack_known;
    memcpy(to->local, from->local, 16);
    to->scope = from->scope;
    atomic_store_explicit(&to->local_known, atomic_load_explicit(&from->local_known, memory_order_relaxed),
                          memory_order_relaxed);
    to->conn = from->conn;
    to->seen_ms = from->seen_ms;
    to->born_ms = from->born_ms;
    from->used = false;
}

/* Caller holds the write lock; the flow's connection is already dealt with. */
static void table_delete(struct gx_faketcp *f, struct flow *p) {
    uint32_t i = (uint32_t)(p - f->slots);
    f->slots[i].used = false;
    f->count--;
    atomic_store_explicit(&f->stats.v[STAT(flows)], f->count, memory_order_relaxed);
    for (uint32_t j = (i + 1) & f->mask; f->slots[j].used; j = (j + 1) & f->mask) {
        uint32_t home = key_hash(&f->slots[j].key) & f->mask;
        bool in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            flow_move(&f->slots[i], &f->slots[j]);
            i = j;
        }
    }
}

/* Caller holds the write lock: make room for an accepted connection by forgetting the oldest
 * handshake that was never accepted (spoofed SYNs must not lock real clients out). */
static void evict_orphan(struct gx_faketcp *f) {
    struct flow *oldest = NULL;
    for (uint32_t i = 0; i <= f->mask; i++) {
        struct flow *p = &f->slots[i];
        if (p->used && p->conn == NULL && (oldest == NULL || p->born_ms < oldest->born_ms))
            oldest = p;
    }
    if (oldest != NULL) {
        table_delete(f, oldest);
        f->orphans--;
        count(f, STAT(flows_closed), 1);
    }
}

/* Close a kernel connection; graceful: with its normal TTL, after discarding what it holds, so a
 * FIN (not an RST) goes out. */
void ftcp_conn_close(struct gx_faketcp *f, struct src *c, bool graceful) {
    if (c == NULL)
        return;
    epoll_ctl(f->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (graceful) {
        (void)ftcp_set_ttl(c->fd, 0, c->v6, -1);
        while (recv(c->fd, NULL, DISCARD_BYTES, MSG_DONTWAIT | MSG_TRUNC) > 0) {
        }
    }
    close(c->fd);
    if (c != &f->s_tcp)
        free(c);
}

/* Server, down thread: end a flow. */
static void flow_end(struct gx_faketcp *f, struct flow *p, bool graceful) {
    struct src *c = p->conn;
    if (c == NULL)
        f->orphans--;
    pthread_rwlock_wrlock(&f->lock);
    table_delete(f, p);
    pthread_rwlock_unlock(&f->lock);
    ftcp_conn_close(f, c, graceful);
    count(f, STAT(flows_closed), 1);
}

void ftcp_server_accept(struct gx_faketcp *f, uint64_t now) {
    for (int i = 0; i < ACCEPT_MAX; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        int fd = accept4(f->tcp, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct fkey k;
        struct sockaddr_storage me;
        socklen_t melen = sizeof(me);
        struct fkey mine;
        if (!key_of(&sa, salen, &k) || getsockname(fd, (struct sockaddr *)&me, &melen) < 0 ||
            !key_of(&me, melen, &mine) || ftcp_mute(fd, sa.ss_family, k.v6) < 0) {
            close(fd);
            continue;
        }
        struct src *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        *c = (struct src){.kind = SRC_CONN, .fd = fd, .v6 = k.v6, .key = k};
        if (ftcp_ep_add(f, c, EPOLLIN | EPOLLRDHUP) < 0) {
            close(fd);
            free(c);
            continue;
        }
        struct src *old = NULL;
        pthread_rwlock_wrlock(&f->lock);
        struct flow *p = ftcp_table_find(f, &k);
        if (p == NULL && f->count >= f->limit)
            evict_orphan(f);
        if (p == NULL)
            p = table_add(f, &k, now);
        else if (p->conn == NULL)
            f->orphans--;
        if (p != NULL) {
            old = p->conn;
            p->conn = c;
            p->seen_ms = now;
            memcpy(p->local, mine.ip, 16);
            p->scope = me.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&me)->sin6_scope_id : 0;
            atomic_store_explicit(&p->local_known, true, memory_order_release);
        }
        pthread_rwlock_unlock(&f->lock);
        if (p == NULL) { /* table full */
            ftcp_conn_close(f, c, true);
            continue;
        }
        ftcp_conn_close(f, old, false);
        count(f, STAT(accepted), 1);
    }
}

/* Server: answer a data segment of a flow we do not know (e.g. from a client of the server process
 * before this one) with an RST, as the kernel would if it saw the segment: <SEQ=SEG.ACK><CTL=RST>.
 * The kernel may not: an old, orphaned connection of that 4-tuple can still hold the segment. */
static bool budget(uint64_t *window_ms, uint32_t *used, uint32_t per_s, uint64_t now) {
    if (now - *window_ms >= 1000u) {
        *window_ms = now;
        *used = 0;
    }
    if (*used >= per_s)
        return false;
    (*used)++;
    return true;
}

/* Server: one header-only segment to the sender of seg, from the address seg was sent to. */
static bool server_emit(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, const struct fkey *k,
                        uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window) {
    int fd = k->v6 ? f->raw6 : f->raw4;
    if (fd < 0)
        return false;
    uint8_t hdr[GX_FAKETCP_HDR];
    gx_faketcp_build(hdr, f->port, seg->sport, seq, ack, flags, window, k->v6 ? NULL : seg->dst + 12,
                     k->v6 ? NULL : seg->src + 12, 0, NULL, 0);
    struct fkey to = *k;
    to.port = 0;
    struct sockaddr_storage sa;
    socklen_t salen = sockaddr_of(&to, &sa);
    union {
        char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
    struct msghdr m = {.msg_name = &sa, .msg_namelen = salen, .msg_iov = &iov, .msg_iovlen = 1};
    if (!k->v6) { /* from the address the segment was sent to */
        struct in_pktinfo pi = {0};
        memcpy(&pi.ipi_spec_dst, seg->dst + 12, 4);
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(pi));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    }
    return sendmsg(fd, &m, MSG_DONTWAIT) == (ssize_t)sizeof(hdr);
}

static void server_reset(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, const struct fkey *k,
                         uint64_t now) {
    if (budget(&f->reset_window_ms, &f->resets_in_window, RESET_PER_S, now) &&
        server_emit(f, seg, k, seg->ack, 0, GX_TCP_RST, 0))
        count(f, STAT(tx_resets), 1);
}

/* Server: answer a segment whose data the flow already had with an ACK of what it has, as TCP answers
 * a duplicate (RFC 9293 3.10.7.4). Fake TCP never resends, so only a kernel TCP peer (a plain TCP
 * client on the port) does: its data reaches just the raw socket (the muted connection filters it and
 * its ACKs would be dropped), so without this it resends its first unacknowledged segment until it
 * gives up, with everything after it, its FIN included, held back: the flow could not see it close.
 * Flows we sent data on are never answered so (see ftcp_server_segment).
 * The ACK carries nothing an off-path sender could not get from the kernel (a duplicate ACK); it goes
 * only to the flow's own peer, is no larger than the segment, and is rate-limited. */
static void server_dup_ack(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, const struct fkey *k,
                           struct flow *p, uint64_t now) {
    uint32_t seq = atomic_load_explicit(&p->seq, memory_order_relaxed);
    uint32_t ack = atomic_load_explicit(&p->ack, memory_order_relaxed);
    if (budget(&f->ack_window_ms, &f->acks_in_window, DUP_ACK_PER_S, now) &&
        server_emit(f, seg, k, seq, ack, GX_TCP_ACK, 0xffff))
        count(f, STAT(tx_acks), 1);
}

/* Follow the peer's sequence space from a received segment: our next seq is its ack, our ack its
 * seq (+1 after a SYN, + the payload of in-order data). True when the segment carries a datagram (PSH). */
static bool track(struct flow *p, const struct gx_faketcp_seg *seg) {
    if (seg->flags & GX_TCP_ACK)
        atomic_store_explicit(&p->seq, seg->ack, memory_order_relaxed);
    if (seg->flags & GX_TCP_SYN) {
        atomic_store_explicit(&p->ack, seg->seq + 1, memory_order_relaxed);
        p->ack_known = true;
    } else if (!p->ack_known) {
        atomic_store_explicit(&p->ack, seg->seq, memory_order_relaxed);
        p->ack_known = true;
    }
    if (!(seg->flags & GX_TCP_PSH))
        return false;
    if (atomic_load_explicit(&p->ack, memory_order_relaxed) == seg->seq)
        atomic_store_explicit(&p->ack, seg->seq + seg->payload_len, memory_order_relaxed);
    return true;
}

/* Returns 1 when the segment carries a datagram for the tunnel, 0 when not. */
int ftcp_server_segment(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, const struct fkey *k,
                          uint64_t now) {
    count(f, STAT(rx_segments), 1);
    pthread_rwlock_rdlock(&f->lock);
    struct flow *p = ftcp_table_find(f, k);
    pthread_rwlock_unlock(&f->lock); /* only this thread changes the table */
    if (seg->flags & (GX_TCP_RST | GX_TCP_FIN)) {
        if (p != NULL) {
            count(f, STAT(rx_resets), 1);
            flow_end(f, p, (seg->flags & GX_TCP_RST) == 0);
        }
        return 0;
    }
    if (p == NULL) {
        if ((seg->flags & (GX_TCP_SYN | GX_TCP_ACK)) != GX_TCP_SYN) {
            if (seg->flags & GX_TCP_PSH) { /* data of a flow we do not know */
                count(f, STAT(rx_orphan), 1);
                if (seg->flags & GX_TCP_ACK)
                    server_reset(f, seg, k, now);
            }
            return 0;
        }
        if (f->orphans >= f->limit / 2 + 1)
            return 0; /* too many handshakes in flight: this one is served without its SYN */
        pthread_rwlock_wrlock(&f->lock);
        p = table_add(f, k, now);
        pthread_rwlock_unlock(&f->lock);
        if (p == NULL)
            return 0;
        f->orphans++;
    }
    p->seen_ms = now;
    /* all of its data was had already, and we never sent the peer data: a kernel TCP peer resending
     * (see server_dup_ack). A fake-TCP peer's seq goes back only to an ack we sent it (tcpraw takes the
     * peer's ack as its seq), that is after we sent it data: such a flow is never answered this way,
     * so fake TCP on the wire stays data segments only. */
    bool dup = p->conn != NULL && p->ack_known && (seg->flags & GX_TCP_PSH) && seg->payload_len > 0 &&
               !atomic_load_explicit(&p->sent, memory_order_relaxed) &&
               (int32_t)(seg->seq + seg->payload_len - atomic_load_explicit(&p->ack, memory_order_relaxed)) <= 0;
    if (!track(p, seg))
        return 0;
    if (dup)
        server_dup_ack(f, seg, k, p, now);
    if (p->conn == NULL) {
        count(f, STAT(rx_orphan), 1);
        return 0;
    }
    return 1;
}

/* Server, down thread: forget handshakes never accepted, end idle flows. */
void ftcp_server_sweep(struct gx_faketcp *f, uint64_t now) {
    for (uint32_t i = 0; i <= f->mask; i++) {
        struct flow *p = &f->slots[i];
        while (p->used && ((p->conn == NULL && now - p->born_ms > ORPHAN_TTL_MS) ||
                           (p->conn != NULL && now - p->seen_ms > f->flow_timeout_ms)))
            flow_end(f, p, true); /* another flow may shift into slot i: look again */
    }
}

/* Returns 1 when the segment carries a datagram, 0 when not, -1 when the flow ended. */
int ftcp_client_segment(struct gx_faketcp *f, const struct gx_faketcp_seg *seg, uint64_t now) {
    struct flow *p = &f->cflow;
    count(f, STAT(rx_segments), 1);
    f->last_rx_ms = now;
    if (seg->flags & (GX_TCP_RST | GX_TCP_FIN)) {
        count(f, STAT(rx_resets), 1);
        f->dead = ECONNRESET;
        return -1;
    }
    if (!track(p, seg))
        return 0;
    return 1;
}

/* Discard what a muted connection received; false when it ended (EOF or error). */
static bool conn_discard(int fd) {
    for (;;) {
        ssize_t n = recv(fd, NULL, DISCARD_BYTES, MSG_DONTWAIT | MSG_TRUNC);
        if (n > 0)
            continue;
        if (n == 0)
            return false;
        return errno == EAGAIN || errno == EINTR;
    }
}

void ftcp_conn_event(struct gx_faketcp *f, struct src *c, uint32_t events) {
    bool alive = !(events & (EPOLLERR | EPOLLHUP)) && conn_discard(c->fd);
    if (events & EPOLLRDHUP)
        alive = false;
    if (alive)
        return;
    if (f->role == ROLE_CLIENT) {
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        f->dead = err ? err : ECONNRESET;
        return;
    }
    pthread_rwlock_rdlock(&f->lock);
    struct flow *p = ftcp_table_find(f, &c->key);
    pthread_rwlock_unlock(&f->lock);
    if (p != NULL && p->conn == c) {
        flow_end(f, p, !(events & (EPOLLERR | EPOLLHUP)));
    } else { /* not attached (replaced): just close it */
        ftcp_conn_close(f, c, false);
    }
}
