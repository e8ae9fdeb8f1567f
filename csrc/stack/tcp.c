/* TCP flows: lwIP connections from the TUN device, spliced to upstream fds.
 *
 * Flow control (both ways bounded by lwIP's own buffers):
 *  - client -> upstream: lwIP hands us received pbufs; they stay queued (rxq) until written to the fd,
 *    and only then are they acknowledged to lwIP with tcp_recved(), which reopens the client's window.
 *    A slow upstream therefore closes the window instead of growing a buffer.
 *  - upstream -> client: the fd is read only while lwIP has send buffer (tcp_sndbuf) and queue room for
 *    what we read; the sent callback resumes reading when the client acknowledges data.
 * The fd is registered edge-triggered; fd_readable/fd_writable remember readiness between edges.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/tcp.h"

#include "stack_int.h"

#define UP_IOV_MAX 64
#define WRITE_CHUNK 0xffffu
#define GSO_PAYLOAD_MAX (0xffffu - 40u - 60u)   /* a TCP segment in one IPv6 or IPv4 packet, options included */

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err);
static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len);
static void on_err(void *arg, err_t err);

/* ---- the receive queue: single pbufs linked by ->next (never one chain: tot_len is 16 bits) ---- */

static void rxq_append(struct tcp_flow *t, struct pbuf *p) {
    while (p != NULL) {
        struct pbuf *next = p->next;
        p->next = NULL;
        p->tot_len = p->len;
        if (p->len == 0) {
            pbuf_free(p);
        } else {
            if (t->rxq_tail != NULL)
                t->rxq_tail->next = p;
            else
                t->rxq = p;
            t->rxq_tail = p;
            t->rxq_bytes += p->len;
        }
        p = next;
    }
}

static void rxq_consume(struct tcp_flow *t, size_t n) {
    t->rxq_bytes -= (uint32_t)n;
    while (n > 0 && t->rxq != NULL) {
        struct pbuf *head = t->rxq;
        if (n < head->len) {
            pbuf_remove_header(head, n);
            return;
        }
        n -= head->len;
        t->rxq = head->next;
        if (t->rxq == NULL)
            t->rxq_tail = NULL;
        head->next = NULL;
        pbuf_free(head);
    }
}

static void rxq_free(struct tcp_flow *t) {
    while (t->rxq != NULL) {
        struct pbuf *head = t->rxq;
        t->rxq = head->next;
        head->next = NULL;
        pbuf_free(head);
    }
    t->rxq_tail = NULL;
    t->rxq_bytes = 0;
}

static uint32_t rxq_copy(const struct tcp_flow *t, uint8_t *out, uint32_t cap) {
    uint32_t n = 0;
    for (const struct pbuf *q = t->rxq; q != NULL && n < cap; q = q->next) {
        uint32_t k = q->len < cap - n ? q->len : cap - n;
        memcpy(out + n, q->payload, k);
        n += k;
    }
    return n;
}

/* ---- ending ---- */

static void detach(struct tcp_pcb *pcb) {
    tcp_arg(pcb, NULL);
    tcp_recv(pcb, NULL);
    tcp_sent(pcb, NULL);
    tcp_err(pcb, NULL);
}

/* Reset the client's connection (RST) and end the flow. */
static void flow_reset(struct gx_stack *s, struct tcp_flow *t) {
    struct tcp_pcb *pcb = t->pcb;
    t->pcb = NULL;
    if (pcb != NULL) {
        detach(pcb);
        tcp_abort(pcb);
    }
    flow_bury(s, &t->f);
}

/* Both directions finished: let lwIP finish the connection on its own, end the flow. */
static void maybe_finish(struct gx_stack *s, struct tcp_flow *t) {
    if (t->f.state != FLOW_CONNECTED)
        return;
    bool up_done = t->client_eof && t->rxq == NULL && t->up_shut;
    bool down_done = t->upstream_eof || t->pcb == NULL;
    if (!up_done || !down_done)
        return;
    struct tcp_pcb *pcb = t->pcb;
    t->pcb = NULL;
    if (pcb != NULL) {
        detach(pcb);
        if (tcp_close(pcb) != ERR_OK)
            tcp_abort(pcb);
    }
    flow_bury(s, &t->f);
}

/* ---- reporting a new flow ---- */

static int report(struct gx_stack *s, struct tcp_flow *t) {
    struct gx_stack_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = GX_STACK_EV_TCP;
    ev.id = t->f.id;
    event_fill_addrs(&ev, &t->pcb->remote_ip, t->pcb->remote_port, &t->pcb->local_ip, t->pcb->local_port);
    if (s->cfg.sniff_bytes > 0 && t->rxq_bytes > 0) {
        uint32_t cap = t->rxq_bytes < s->cfg.sniff_bytes ? t->rxq_bytes : s->cfg.sniff_bytes;
        ev.data = malloc(cap);
        if (ev.data != NULL)
            ev.len = rxq_copy(t, ev.data, cap);
    }
    int rc = events_push(s, &ev);
    if (rc == 0)
        t->f.state = FLOW_PENDING;
    return rc;
}

/* ---- moving bytes ---- */

/* client -> upstream. 0, or -errno of a fatal fd error. */
static int flush_up(struct gx_stack *s, struct tcp_flow *t) {
    while (t->rxq != NULL && t->fd_writable) {
        struct iovec iov[UP_IOV_MAX];
        int n = 0;
        for (struct pbuf *q = t->rxq; q != NULL && n < UP_IOV_MAX; q = q->next) {
            iov[n].iov_base = q->payload;
            iov[n].iov_len = q->len;
            n++;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(t->f.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); /* no SIGPIPE for a closed peer */
        if (w < 0 && errno == ENOTSOCK)
            w = writev(t->f.fd, iov, n); /* a pipe or another stream fd */
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                t->fd_writable = false;
                break;
            }
            return -errno;
        }
        if (w == 0)
            return -EIO; /* never for a non-empty write to a stream; would loop without progress */
        rxq_consume(t, (size_t)w);
        STAT_ADD(s, tcp_up_bytes, w);
        size_t left = (size_t)w;
        while (left > 0 && t->pcb != NULL) {
            u16_t k = left > WRITE_CHUNK ? (u16_t)WRITE_CHUNK : (u16_t)left;
            tcp_recved(t->pcb, k);
            left -= k;
        }
    }
    if (t->rxq == NULL && t->client_eof && !t->up_shut) {
        if (shutdown(t->f.fd, SHUT_WR) < 0 && errno != ENOTCONN && errno != ENOTSOCK)
            return -errno;
        t->up_shut = true;
    }
    return 0;
}

/* upstream -> client. 0, or -errno (fatal). */
static int pump_down(struct gx_stack *s, struct tcp_flow *t) {
    struct tcp_pcb *pcb = t->pcb;
    bool wrote = false;
    while (pcb != NULL && t->fd_readable && !t->upstream_eof) {
        uint32_t space = pcb->snd_buf;
        uint32_t mss = tcp_mss(pcb) ? tcp_mss(pcb) : 536u;
        uint32_t queued = tcp_sndqueuelen(pcb);
        if (space < mss || queued + 4 >= TCP_SND_QUEUELEN)
            break; /* resumed by the sent callback */
        uint32_t by_queue = (TCP_SND_QUEUELEN - queued - 4) * mss;
        uint32_t limit = space < s->scratch_size ? space : s->scratch_size;
        if (limit > by_queue)
            limit = by_queue;
        ssize_t n = read(t->f.fd, s->scratch, limit);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                t->fd_readable = false;
                break;
            }
            return -errno;
        }
        if (n == 0) {
            t->upstream_eof = true;
            if (tcp_shutdown(pcb, 0, 1) != ERR_OK)
                return -ENOMEM;
            wrote = true;
            break;
        }
        STAT_ADD(s, tcp_down_bytes, n);
        for (ssize_t off = 0; off < n;) {
            u16_t k = (n - off) > (ssize_t)WRITE_CHUNK ? (u16_t)WRITE_CHUNK : (u16_t)(n - off);
            u8_t flags = TCP_WRITE_FLAG_COPY | ((off + k < n) ? TCP_WRITE_FLAG_MORE : 0);
            if (tcp_write(pcb, s->scratch + off, k, flags) != ERR_OK)
                return -ENOMEM; /* cannot happen with the room checked above; never lose bytes silently */
            off += k;
        }
        wrote = true;
    }
    if (wrote && pcb != NULL)
        tcp_output(pcb);
    return 0;
}

/* Move what can move; end the flow when done or failed. Returns false when the flow ended by a reset
 * (its pcb was aborted). */
static bool pump(struct gx_stack *s, struct tcp_flow *t) {
    if (flush_up(s, t) < 0 || pump_down(s, t) < 0) {
        STAT_ADD(s, tcp_resets, 1);
        flow_reset(s, t);
        return false;
    }
    maybe_finish(s, t);
    return true;
}

/* ---- the dirty list: flows that received data during this loop iteration ---- */

static void mark_dirty(struct gx_stack *s, struct tcp_flow *t) {
    if (t->dirty)
        return;
    t->dirty = true;
    t->dirty_next = s->dirty;
    s->dirty = t;
}

/* One upstream write per flow per iteration (not one per segment), then one ACK for all of it (lwIP
 * would otherwise wait for its delayed-ACK timer when fewer than two segments came in). */
void tcp_flows_flush(struct gx_stack *s) {
    while (s->dirty != NULL) {
        struct tcp_flow *t = s->dirty;
        s->dirty = t->dirty_next;
        t->dirty = false;
        t->dirty_next = NULL;
        if (t->f.state == FLOW_CONNECTED && !pump(s, t))
            continue;
        if (t->f.state != FLOW_DEAD && t->pcb != NULL && (t->pcb->flags & TF_ACK_DELAY)) {
            tcp_ack_now(t->pcb);
            tcp_output(t->pcb);
        }
    }
}

/* ---- lwIP callbacks ---- */

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err) {
    struct gx_stack *s = arg;
    if (err != ERR_OK || pcb == NULL)
        return ERR_VAL;
    struct tcp_flow *t = calloc(1, sizeof(*t));
    if (t == NULL || flowtab_add(s, &t->f) < 0) {
        if (t != NULL)
            STAT_ADD(s, flow_limit_hits, 1);
        free(t);
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    t->f.tag.kind = EP_TCP;
    t->f.fd = -1;
    t->f.stack = s;
    t->pcb = pcb;
    tcp_arg(pcb, t);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    tcp_nagle_disable(pcb);
    ip_set_option(pcb, SOF_KEEPALIVE);
    if (s->cfg.vnet_hdr && pcb->mss > 0) {
        /* segments of up to 64 KiB (whole multiples of the client's MSS), written as GSO super-packets */
        uint32_t mss = pcb->mss;
        pcb->mss = (u16_t)(GSO_PAYLOAD_MAX / mss * mss);
    }
    STAT_ADD(s, tcp_flows, 1);
    STAT_ADD(s, tcp_active, 1);
    if (s->cfg.sniff_bytes > 0) {
        t->f.state = FLOW_SNIFF;
        t->sniff_deadline_ms = s->cfg.sniff_timeout_ms ? s->now_ms + s->cfg.sniff_timeout_ms : 0;
        return ERR_OK;
    }
    if (report(s, t) < 0) {
        flow_reset(s, t);
        return ERR_ABRT;
    }
    return ERR_OK;
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    struct tcp_flow *t = arg;
    (void)err;
    if (t == NULL) { /* not ours any more: lwIP's default (take and acknowledge) */
        if (p != NULL) {
            tcp_recved(pcb, p->tot_len);
            pbuf_free(p);
        }
        return ERR_OK;
    }
    struct gx_stack *s = t->f.stack;
    if (p == NULL)
        t->client_eof = true;
    else
        rxq_append(t, p);
    switch (t->f.state) {
    case FLOW_SNIFF:
        if (t->client_eof || t->rxq_bytes >= GX_STACK_SNIFF_MIN || t->rxq_bytes >= s->cfg.sniff_bytes) {
            if (report(s, t) < 0) {
                flow_reset(s, t);
                return ERR_ABRT;
            }
        }
        mark_dirty(s, t);
        return ERR_OK;
    default:
        mark_dirty(s, t); /* written upstream and acknowledged at the end of the loop iteration */
        return ERR_OK;
    }
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len) {
    struct tcp_flow *t = arg;
    (void)pcb;
    (void)len;
    if (t == NULL || t->f.state != FLOW_CONNECTED)
        return ERR_OK;
    return pump(t->f.stack, t) ? ERR_OK : ERR_ABRT;
}

/* lwIP freed the pcb: a reset from the client, a timeout, or (ERR_CLSD) the normal end after both FINs. */
static void on_err(void *arg, err_t err) {
    struct tcp_flow *t = arg;
    if (t == NULL)
        return;
    struct gx_stack *s = t->f.stack;
    t->pcb = NULL;
    if (err == ERR_CLSD && t->client_eof) {
        /* graceful: what the client sent may still have to reach the upstream */
        if (t->f.state == FLOW_CONNECTED) {
            pump(s, t);
            return;
        }
        if (t->f.state == FLOW_PENDING)
            return; /* the decision delivers it */
    }
    if (err != ERR_CLSD)
        STAT_ADD(s, tcp_client_resets, 1);
    flow_bury(s, &t->f);
}

/* ---- the rest of the stack calls these ---- */

int tcp_flows_listen(struct gx_stack *s) {
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);
    if (pcb == NULL)
        return -ENOMEM;
    /* never bound: with the netif's NETIF_FLAG_ANY_DST it takes SYNs to every address and port */
    err_t err;
    struct tcp_pcb *l = tcp_listen_with_backlog_and_err(pcb, TCP_DEFAULT_LISTEN_BACKLOG, &err);
    if (l == NULL) {
        tcp_close(pcb);
        return -ENOMEM;
    }
    tcp_arg(l, s);
    tcp_accept(l, on_accept);
    s->listener = l;
    s->tw_recycled_seen = tcp_tw_recycled;
    return 0;
}

void tcp_flow_on_fd(struct gx_stack *s, struct tcp_flow *t, uint32_t events) {
    if (t->f.state != FLOW_CONNECTED)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        t->fd_readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        t->fd_writable = true;
    pump(s, t);
}

void tcp_flow_decide(struct gx_stack *s, struct tcp_flow *t, int fd) {
    if (fd < 0) {
        STAT_ADD(s, tcp_refused, 1);
        flow_reset(s, t);
        return;
    }
    if (flow_watch_fd(s, &t->f, fd) < 0) {
        close(fd);
        flow_reset(s, t);
        return;
    }
    t->f.state = FLOW_CONNECTED;
    t->fd_readable = true;
    t->fd_writable = true;
    if (t->pcb == NULL && !t->client_eof) { /* the client went away while we waited */
        flow_bury(s, &t->f);
        return;
    }
    pump(s, t);
}

/* lwIP's connections that are no flow any more: detached ones finishing their FIN exchange, and TIME_WAIT.
 * TIME_WAIT is kept for at most TIME_WAIT_MAX connections (the oldest go first: lwIP adds at the head), as
 * Linux's tcp_max_tw_buckets does: lwIP finds a segment's connection by walking its lists, and under churn
 * where the servers close first (lwIP then closes first too) 2 MSL = 120 s of them would be hundreds of
 * thousands, walked for every new SYN. A client that reuses the port of one still kept gets a new
 * connection anyway (patches/0002-time-wait-recycle.patch). */
#define TIME_WAIT_MAX 4096u

static void count_lwip_pcbs(struct gx_stack *s) {
    uint64_t closing = 0, time_wait = 0;
    for (const struct tcp_pcb *pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next)
        closing += pcb->callback_arg == NULL;
    struct tcp_pcb *prev = NULL;
    for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; prev = pcb, pcb = pcb->next) {
        if (time_wait == TIME_WAIT_MAX) {
            prev->next = NULL; /* the older rest leaves the list */
            while (pcb != NULL) {
                struct tcp_pcb *next = pcb->next;
                tcp_pcb_purge(pcb);
                tcp_free(pcb);
                pcb = next;
            }
            break;
        }
        time_wait++;
    }
    atomic_store_explicit(&s->stats.tcp_closing, closing, memory_order_relaxed);
    atomic_store_explicit(&s->stats.tcp_time_wait, time_wait, memory_order_relaxed);
    uint32_t recycled = tcp_tw_recycled; /* lwIP's (global) count: this stack's share is the growth */
    STAT_ADD(s, tcp_tw_recycled, recycled - s->tw_recycled_seen);
    s->tw_recycled_seen = recycled;
    /* lwIP's heap counters (MEM_STATS, kept by this thread: lwIP runs only here) */
    atomic_store_explicit(&s->stats.lwip_mem_used, (uint64_t)lwip_stats.mem.used, memory_order_relaxed);
    atomic_store_explicit(&s->stats.lwip_mem_max, (uint64_t)lwip_stats.mem.max, memory_order_relaxed);
    atomic_store_explicit(&s->stats.lwip_mem_errors, (uint64_t)lwip_stats.mem.err, memory_order_relaxed);
}

void tcp_flows_tick(struct gx_stack *s) {
    count_lwip_pcbs(s);
    if (s->cfg.sniff_bytes == 0 || s->cfg.sniff_timeout_ms == 0)
        return;
    for (uint32_t i = 0; i < s->n_slots; i++) {
        struct flow *f = s->slots[i];
        if (f == NULL || f->tag.kind != EP_TCP || f->state != FLOW_SNIFF)
            continue;
        struct tcp_flow *t = (struct tcp_flow *)f;
        if (t->sniff_deadline_ms != 0 && s->now_ms >= t->sniff_deadline_ms && report(s, t) < 0)
            flow_reset(s, t);
    }
}

void tcp_flow_free(struct gx_stack *s, struct tcp_flow *t) {
    (void)s;
    rxq_free(t);
    free(t);
}

void tcp_flows_shutdown(struct gx_stack *s) {
    for (uint32_t i = 0; i < s->n_slots; i++) {
        struct flow *f = s->slots[i];
        if (f != NULL && f->tag.kind == EP_TCP)
            flow_reset(s, (struct tcp_flow *)f);
    }
    if (s->listener != NULL) {
        tcp_close(s->listener);
        s->listener = NULL;
    }
    /* connections we let lwIP finish on its own (closing, TIME_WAIT): lwIP's state is global */
    while (tcp_active_pcbs != NULL) {
        detach(tcp_active_pcbs);
        tcp_abort(tcp_active_pcbs);
    }
    while (tcp_tw_pcbs != NULL)
        tcp_abort(tcp_tw_pcbs);
}
