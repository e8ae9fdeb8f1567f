/* UDP sessions: one per (client address, original destination) pair, spliced to a connected fd.
 *
 * One catch-all lwIP pcb (UDP_FLAGS_ANY_DST) receives every datagram; replies go out through the same
 * pcb with udp_sendto_if_src from the session's original destination, the pcb's local_port set to
 * the session's destination port for the call. Sessions sit in a list ordered by last activity, so
 * the idle sweep only looks at the oldest. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lwip/ip.h"
#include "lwip/prot/udp.h"
#include "lwip/udp.h"

#include "stack_int.h"

#define DGRAM_MAX 65535u
#define READS_PER_WAKEUP 64
#define ANY_PORT_PCB_PORT 9   /* the catch-all pcb's own port (discard); it takes every port anyway */

/* ---- the session table ---- */

static uint32_t sess_hash(const ip_addr_t *src, uint16_t sport, const ip_addr_t *dst, uint16_t dport) {
    uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)sport << 16 | dport);
    const uint32_t *a = IP_IS_V6(src) ? ip_2_ip6(src)->addr : &ip_2_ip4(src)->addr;
    const uint32_t *b = IP_IS_V6(dst) ? ip_2_ip6(dst)->addr : &ip_2_ip4(dst)->addr;
    int words = IP_IS_V6(src) ? 4 : 1;
    for (int i = 0; i < words; i++) {
        h = (h ^ a[i]) * 0x100000001b3ull;
        h = (h ^ b[i]) * 0x100000001b3ull;
    }
    h ^= h >> 29;
    return (uint32_t)h;
}

static int hash_grow(struct gx_stack *s) {
    uint32_t cap = s->udp_hash ? (s->udp_hash_mask + 1) * 2 : 256;
    struct udp_sess **table = calloc(cap, sizeof(*table));
    if (table == NULL)
        return -ENOMEM;
    if (s->udp_hash != NULL) {
        for (uint32_t i = 0; i <= s->udp_hash_mask; i++) {
            struct udp_sess *u = s->udp_hash[i];
            while (u != NULL) {
                struct udp_sess *next = u->hash_next;
                uint32_t k = sess_hash(&u->src, u->sport, &u->dst, u->dport) & (cap - 1);
                u->hash_next = table[k];
                table[k] = u;
                u = next;
            }
        }
        free(s->udp_hash);
    }
    s->udp_hash = table;
    s->udp_hash_mask = cap - 1;
    return 0;
}

static struct udp_sess *sess_find(struct gx_stack *s, const ip_addr_t *src, uint16_t sport, const ip_addr_t *dst,
                                  uint16_t dport) {
    uint32_t k = sess_hash(src, sport, dst, dport) & s->udp_hash_mask;
    for (struct udp_sess *u = s->udp_hash[k]; u != NULL; u = u->hash_next) {
        if (u->sport == sport && u->dport == dport && ip_addr_cmp(&u->src, src) && ip_addr_cmp(&u->dst, dst))
            return u;
    }
    return NULL;
}

static void sess_unhash(struct gx_stack *s, struct udp_sess *u) {
    uint32_t k = sess_hash(&u->src, u->sport, &u->dst, u->dport) & s->udp_hash_mask;
    for (struct udp_sess **pp = &s->udp_hash[k]; *pp != NULL; pp = &(*pp)->hash_next) {
        if (*pp == u) {
            *pp = u->hash_next;
            s->n_udp--;
            return;
        }
    }
}

static void lru_unlink(struct gx_stack *s, struct udp_sess *u) {
    if (u->lru_prev != NULL)
        u->lru_prev->lru_next = u->lru_next;
    else if (s->lru_head == u)
        s->lru_head = u->lru_next;
    if (u->lru_next != NULL)
        u->lru_next->lru_prev = u->lru_prev;
    else if (s->lru_tail == u)
        s->lru_tail = u->lru_prev;
    u->lru_prev = u->lru_next = NULL;
}

static void lru_append(struct gx_stack *s, struct udp_sess *u) {
    u->lru_prev = s->lru_tail;
    u->lru_next = NULL;
    if (s->lru_tail != NULL)
        s->lru_tail->lru_next = u;
    else
        s->lru_head = u;
    s->lru_tail = u;
}

static void touch(struct gx_stack *s, struct udp_sess *u) {
    u->last_ms = s->now_ms;
    if (s->lru_tail != u) {
        lru_unlink(s, u);
        lru_append(s, u);
    }
}

/* End a session: out of the table and the list at once, freed with the graveyard. */
static void sess_end(struct gx_stack *s, struct udp_sess *u) {
    if (u->f.state == FLOW_DEAD)
        return;
    sess_unhash(s, u);
    lru_unlink(s, u);
    STAT_SUB(s, udp_active, 1);
    flow_bury(s, &u->f);
}

/* ---- datagrams ---- */

static void send_up(struct gx_stack *s, struct udp_sess *u, struct pbuf *p) {
    const void *data = p->payload;
    if (p->next != NULL) {
        pbuf_copy_partial(p, s->dgram, p->tot_len, 0);
        data = s->dgram;
    }
    ssize_t w = send(u->f.fd, data, p->tot_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK)
        w = write(u->f.fd, data, p->tot_len);
    if (w == (ssize_t)p->tot_len)
        STAT_ADD(s, udp_up_pkts, 1);
    else
        STAT_ADD(s, udp_drops, 1); /* a full buffer or an ICMP error: dropped, as UDP does */
}

static void send_down(struct gx_stack *s, struct udp_sess *u, const uint8_t *data, uint32_t len) {
    struct pbuf *p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)len, PBUF_RAM);
    if (p == NULL) {
        STAT_ADD(s, udp_drops, 1);
        return;
    }
    memcpy(p->payload, data, len);
    u16_t own_port = s->udp_any->local_port;
    s->udp_any->local_port = u->dport; /* replies come from the original destination port */
    err_t err = udp_sendto_if_src(s->udp_any, p, &u->src, u->sport, &s->netif, &u->dst);
    s->udp_any->local_port = own_port;
    pbuf_free(p);
    if (err == ERR_OK)
        STAT_ADD(s, udp_down_pkts, 1);
    else
        STAT_ADD(s, udp_drops, 1);
}

static int report(struct gx_stack *s, struct udp_sess *u, struct pbuf *first) {
    struct gx_stack_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = GX_STACK_EV_UDP;
    ev.id = u->f.id;
    event_fill_addrs(&ev, &u->src, u->sport, &u->dst, u->dport);
    uint32_t len = first->tot_len; /* a whole datagram (<= 65535 = GX_STACK_SNIFF_MAX) */
    if (len > 0) {
        ev.data = malloc(len);
        if (ev.data != NULL)
            ev.len = pbuf_copy_partial(first, ev.data, (u16_t)len, 0);
    }
    return events_push(s, &ev);
}

static struct udp_sess *sess_new(struct gx_stack *s, const ip_addr_t *src, uint16_t sport, const ip_addr_t *dst,
                                 uint16_t dport) {
    if (s->n_udp + 1 > (s->udp_hash_mask + 1) && hash_grow(s) < 0)
        return NULL;
    struct udp_sess *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    if (flowtab_add(s, &u->f) < 0) {
        STAT_ADD(s, flow_limit_hits, 1);
        free(u);
        return NULL;
    }
    u->f.tag.kind = EP_UDP;
    u->f.fd = -1;
    u->f.stack = s;
    u->f.state = FLOW_PENDING;
    ip_addr_copy(u->src, *src);
    ip_addr_copy(u->dst, *dst);
    u->sport = sport;
    u->dport = dport;
    uint32_t k = sess_hash(src, sport, dst, dport) & s->udp_hash_mask;
    u->hash_next = s->udp_hash[k];
    s->udp_hash[k] = u;
    s->n_udp++;
    u->last_ms = s->now_ms;
    lru_append(s, u);
    STAT_ADD(s, udp_sessions, 1);
    STAT_ADD(s, udp_active, 1);
    return u;
}

static void on_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr, u16_t port) {
    struct gx_stack *s = arg;
    (void)pcb;
    /* the destination port: the UDP header is still in front of the payload */
    if (pbuf_add_header(p, UDP_HLEN) != 0) {
        pbuf_free(p);
        return;
    }
    const struct udp_hdr *hdr = (const struct udp_hdr *)p->payload;
    uint16_t dport = lwip_ntohs(hdr->dest);
    pbuf_remove_header(p, UDP_HLEN);
    const ip_addr_t *dst = ip_current_dest_addr();
    if (port == 0 || dport == 0 || ip_addr_ismulticast(dst) ||
        (IP_IS_V4(dst) && ip4_addr_isbroadcast(ip_2_ip4(dst), &s->netif))) {
        STAT_ADD(s, udp_drops, 1);
        pbuf_free(p);
        return;
    }
    struct udp_sess *u = sess_find(s, addr, port, dst, dport);
    if (u == NULL) {
        u = sess_new(s, addr, port, dst, dport);
        if (u == NULL || report(s, u, p) < 0) {
            if (u != NULL)
                sess_end(s, u);
            STAT_ADD(s, udp_drops, 1);
            pbuf_free(p);
            return;
        }
        u->pending[u->n_pending++] = p;
        return;
    }
    touch(s, u);
    if (u->f.state == FLOW_PENDING) {
        if (u->n_pending < GX_STACK_UDP_PENDING_MAX) {
            u->pending[u->n_pending++] = p;
            return;
        }
        STAT_ADD(s, udp_drops, 1);
    } else if (u->f.state == FLOW_CONNECTED) {
        send_up(s, u, p);
    }
    pbuf_free(p);
}

/* ---- the rest of the stack calls these ---- */

int udp_sessions_open(struct gx_stack *s) {
    int rc = hash_grow(s);
    if (rc < 0)
        return rc;
    s->dgram = malloc(DGRAM_MAX);
    if (s->dgram == NULL)
        return -ENOMEM;
    struct udp_pcb *pcb = udp_new_ip_type(IPADDR_TYPE_ANY);
    if (pcb == NULL)
        return -ENOMEM;
    if (udp_bind(pcb, IP_ANY_TYPE, ANY_PORT_PCB_PORT) != ERR_OK) {
        udp_remove(pcb);
        return -EADDRINUSE;
    }
    udp_setflags(pcb, udp_flags(pcb) | UDP_FLAGS_ANY_DST);
    udp_recv(pcb, on_recv, s);
    s->udp_any = pcb;
    return 0;
}

void udp_sess_on_fd(struct gx_stack *s, struct udp_sess *u, uint32_t events) {
    if (u->f.state != FLOW_CONNECTED)
        return;
    (void)events;
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        ssize_t n = recv(u->f.fd, s->dgram, DGRAM_MAX, MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = read(u->f.fd, s->dgram, DGRAM_MAX);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == ECONNREFUSED) /* an ICMP error for an earlier datagram: the session goes on */
                continue;
            sess_end(s, u);
            return;
        }
        if (n == 0 && (u->eof_on_zero || (events & (EPOLLHUP | EPOLLRDHUP)))) { /* the other end closed */
            sess_end(s, u);
            return;
        }
        touch(s, u);
        send_down(s, u, s->dgram, (uint32_t)n);
    }
}

void udp_sess_decide(struct gx_stack *s, struct udp_sess *u, int fd) {
    if (fd >= 0 && flow_watch_fd(s, &u->f, fd) < 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        for (uint32_t i = 0; i < u->n_pending; i++)
            pbuf_free(u->pending[i]);
        u->n_pending = 0;
        sess_end(s, u);
        return;
    }
    u->f.state = FLOW_CONNECTED;
    int type = 0;
    socklen_t tlen = sizeof(type);
    /* a SOCK_SEQPACKET end (a Python relay): 0 bytes is its EOF; on a UDP socket, an empty datagram */
    u->eof_on_zero = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type != SOCK_DGRAM;
    for (uint32_t i = 0; i < u->n_pending; i++) {
        send_up(s, u, u->pending[i]);
        pbuf_free(u->pending[i]);
    }
    u->n_pending = 0;
    touch(s, u);
}

void udp_sessions_tick(struct gx_stack *s) {
    uint64_t timeout = s->cfg.udp_timeout_ms;
    while (s->lru_head != NULL && s->now_ms - s->lru_head->last_ms >= timeout) {
        struct udp_sess *u = s->lru_head;
        if (u->f.state == FLOW_PENDING) { /* keep it until the decision; look again later */
            touch(s, u);
            continue;
        }
        STAT_ADD(s, udp_expired, 1);
        sess_end(s, u);
    }
}

void udp_sess_free(struct gx_stack *s, struct udp_sess *u) {
    (void)s;
    for (uint32_t i = 0; i < u->n_pending; i++)
        pbuf_free(u->pending[i]);
    free(u);
}

void udp_sessions_close(struct gx_stack *s) {
    while (s->lru_head != NULL)
        sess_end(s, s->lru_head);
    if (s->udp_any != NULL) {
        udp_remove(s->udp_any);
        s->udp_any = NULL;
    }
    free(s->udp_hash);
    s->udp_hash = NULL;
    free(s->dgram);
    s->dgram = NULL;
}
