/* Internal to csrc/stack/: the stack object and the pieces its modules share. Everything here runs on the
 * data-plane thread unless marked otherwise. */
#ifndef GX_STACK_INT_H
#define GX_STACK_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lwip/ip_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"

#include "gx/stack.h"

#define STAT_ADD(s, field, n) atomic_fetch_add_explicit(&(s)->stats.field, (uint64_t)(n), memory_order_relaxed)
#define STAT_SUB(s, field, n) atomic_fetch_sub_explicit(&(s)->stats.field, (uint64_t)(n), memory_order_relaxed)

/* What an epoll registration points at: the first member of everything registered. */
enum ep_kind { EP_TUN = 1, EP_CMD, EP_TCP, EP_UDP };
struct ep_tag {
    uint8_t kind;
};

enum flow_state {
    FLOW_SNIFF = 1,    /* TCP: waiting for the first bytes before reporting */
    FLOW_PENDING,      /* reported; waiting for the caller's decision */
    FLOW_CONNECTED,    /* spliced to fd */
    FLOW_DEAD,         /* finished; freed at the end of the loop iteration (or at the decision) */
};

/* The part TCP flows and UDP sessions share. */
struct flow {
    struct ep_tag tag;           /* EP_TCP / EP_UDP */
    uint8_t state;
    bool decided;                /* the caller's decision arrived (or no event was ever sent) */
    bool in_graveyard;
    uint32_t slot;               /* index in the flow table */
    uint64_t id;
    int fd;                      /* upstream; -1 until connected */
    struct gx_stack *stack;
    struct flow *grave_next;
};

struct tcp_flow {
    struct flow f;
    struct tcp_pcb *pcb;         /* NULL once lwIP freed it (err callback) or we let it go */
    struct pbuf *rxq;            /* client bytes not yet written upstream (not yet tcp_recved): single */
    struct pbuf *rxq_tail;       /*   pbufs linked by ->next */
    uint32_t rxq_bytes;
    uint64_t sniff_deadline_ms;
    bool fd_readable, fd_writable;
    bool client_eof;             /* the client sent FIN */
    bool up_shut;                /* shutdown(fd, SHUT_WR) done */
    bool upstream_eof;           /* fd gave EOF: FIN queued to the client */
    bool dirty;                  /* on the stack's dirty list */
    struct tcp_flow *dirty_next;
};

struct udp_sess {
    struct flow f;
    struct udp_sess *hash_next;
    struct udp_sess *lru_prev, *lru_next;
    ip_addr_t src, dst;
    uint16_t sport, dport;
    bool eof_on_zero;            /* the fd is a SOCK_SEQPACKET/STREAM relay end: a 0-byte read is its EOF */
    uint64_t last_ms;
    struct pbuf *pending[GX_STACK_UDP_PENDING_MAX];
    uint32_t n_pending;
};

struct cmd {
    uint32_t type;               /* CMD_CONNECT / CMD_DROP */
    int fd;
    uint64_t id;
};
enum { CMD_CONNECT = 1, CMD_DROP = 2 };

struct out_queue {               /* packets lwIP sent, written to the TUN device in a batch */
    struct pbuf *p[64];
    uint32_t n;
};

struct gx_stack {
    struct gx_stack_cfg cfg;
    int epfd, cmd_efd, ev_efd;
    pthread_t thread;
    bool started;
    atomic_bool stopping;

    /* events: C -> caller (mutex; the caller's side polls) */
    pthread_mutex_t ev_lock;
    struct gx_stack_event *ev_ring;
    uint32_t ev_cap, ev_head, ev_count;

    /* commands: caller -> C */
    pthread_mutex_t cmd_lock;
    struct cmd *cmds;
    uint32_t cmd_cap, cmd_count;
    bool cmd_closed;

    /* data-plane thread only */
    struct netif netif;
    struct tcp_pcb *listener;
    struct udp_pcb *udp_any;
    struct ep_tag tun_tag, cmd_tag;
    struct out_queue out;
    struct pbuf *rx_spare;       /* a read buffer not handed to lwIP (reused by the next read) */
    struct tcp_flow *dirty;      /* TCP flows that received data this iteration (flushed at its end) */
    uint8_t *scratch;            /* upstream reads */
    uint32_t scratch_size;
    uint8_t *dgram;              /* one UDP datagram */
    struct flow **slots;         /* flow table: slot -> flow */
    uint32_t *gens;              /* slot -> generation (ids of freed flows never match again) */
    uint32_t n_slots, free_head, n_flows;
    uint32_t *free_next;
    struct udp_sess **udp_hash;
    uint32_t udp_hash_mask, n_udp;
    struct udp_sess *lru_head, *lru_tail;   /* least recently active first */
    struct flow *graveyard;
    uint64_t now_ms;
    uint64_t trim_seen, trim_done;   /* TUN bytes at the last tick / at the last malloc_trim */
    uint32_t tw_recycled_seen;       /* lwIP's tcp_tw_recycled at the last tick */

    struct {
        _Atomic uint64_t tun_rx_pkts, tun_rx_bytes, tun_tx_pkts, tun_tx_bytes, tun_tx_drops, tun_rx_errors;
        _Atomic uint64_t tcp_flows, tcp_active, tcp_refused, tcp_up_bytes, tcp_down_bytes, tcp_resets, tcp_client_resets;
        _Atomic uint64_t udp_sessions, udp_active, udp_expired, udp_up_pkts, udp_down_pkts, udp_drops;
        _Atomic uint64_t event_overflows, flow_limit_hits;
        _Atomic uint64_t tcp_closing, tcp_time_wait, tcp_tw_recycled;
        _Atomic uint64_t lwip_mem_used, lwip_mem_max, lwip_mem_errors;
    } stats;
};

uint64_t gx_stack_now_ms(void);

/* flow table (flowtab.c) */
int flowtab_init(struct gx_stack *s);
void flowtab_free(struct gx_stack *s);
int flowtab_add(struct gx_stack *s, struct flow *f);     /* sets f->slot, f->id; -ENOSPC at max_flows */
struct flow *flowtab_get(struct gx_stack *s, uint64_t id);
void flowtab_remove(struct gx_stack *s, struct flow *f);

/* events (events.c); any thread */
int events_init(struct gx_stack *s, uint32_t cap);
void events_free(struct gx_stack *s);
/* Queue an event (takes ownership of ev->data). -ENOBUFS when the ring is full (data freed). */
int events_push(struct gx_stack *s, struct gx_stack_event *ev);
void event_fill_addrs(struct gx_stack_event *ev, const ip_addr_t *src, uint16_t sport, const ip_addr_t *dst,
                      uint16_t dport);

/* TUN netif (netif.c) */
int tun_netif_add(struct gx_stack *s);
void tun_netif_remove(struct gx_stack *s);
void tun_read_packets(struct gx_stack *s);   /* read what the device has (bounded) and feed lwIP */
void tun_flush(struct gx_stack *s);          /* write the queued output packets */

/* TCP (tcp.c) */
int tcp_flows_listen(struct gx_stack *s);
void tcp_flow_on_fd(struct gx_stack *s, struct tcp_flow *t, uint32_t events);
void tcp_flow_decide(struct gx_stack *s, struct tcp_flow *t, int fd);  /* fd < 0: drop */
void tcp_flows_tick(struct gx_stack *s);     /* sniff timeouts */
void tcp_flows_flush(struct gx_stack *s);    /* end of an iteration: write what arrived upstream, ACK it */
void tcp_flow_free(struct gx_stack *s, struct tcp_flow *t);
void tcp_flows_shutdown(struct gx_stack *s); /* reset everything lwIP still has (stop) */

/* UDP (udp.c) */
int udp_sessions_open(struct gx_stack *s);
void udp_sess_on_fd(struct gx_stack *s, struct udp_sess *u, uint32_t events);
void udp_sess_decide(struct gx_stack *s, struct udp_sess *u, int fd);
void udp_sessions_tick(struct gx_stack *s);  /* idle timeouts */
void udp_sess_free(struct gx_stack *s, struct udp_sess *u);
void udp_sessions_close(struct gx_stack *s);

/* Closing: a flow leaves epoll (fd closed) and the flow table at once, and is freed after the loop
 * iteration (epoll results may still point at it). */
void flow_bury(struct gx_stack *s, struct flow *f);
int flow_watch_fd(struct gx_stack *s, struct flow *f, int fd);

#endif
