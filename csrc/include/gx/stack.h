/* The tungo netstack: a TUN device terminated by lwIP, every TCP connection and UDP session to any
 * destination handed to the caller once, then spliced to an upstream fd in C.
 *
 * Threads: one data-plane thread (started by gx_stack_start) owns lwIP, the TUN fd and every upstream
 * fd; it never calls back into the caller. The caller (Python) talks to it through two queues:
 *  - events (C -> caller): a new TCP connection or UDP session, with its addresses and, for sniffing,
 *    its first bytes. gx_stack_event_fd() becomes readable (an eventfd) when events wait; drain them
 *    with gx_stack_poll_events() and release each with gx_stack_event_release().
 *  - commands (caller -> C): for every new-flow event exactly one decision, gx_stack_connect() (splice
 *    the flow to this connected fd; the stack owns and closes the fd from then on) or gx_stack_drop().
 *
 * TCP: lwIP completes the handshake, then the flow is reported (sniff_bytes == 0), or (sniffing) once
 * the client has sent GX_STACK_SNIFF_MIN bytes (the event carries what is queued then, at most
 * sniff_bytes), or FIN, or sniff_timeout passed. Until the decision the client's bytes wait
 * in lwIP (its receive window closes). Connected: client bytes are written to the fd and acknowledged
 * to lwIP (tcp_recved) only once written; fd bytes are read only while lwIP has send buffer for them.
 * EOF passes as FIN / shutdown(SHUT_WR) both ways; an error on either side resets the other.
 * A drop resets the client's connection.
 *
 * UDP: one session per (source, destination) address pair; the first datagram is reported and
 * datagrams that arrive before the decision wait (at most GX_STACK_UDP_PENDING_MAX of them). The
 * connected fd (a connected UDP socket, or a SOCK_SEQPACKET/SOCK_DGRAM socketpair end) carries one
 * datagram per message both ways; a SOCK_SEQPACKET end's EOF ends the session. A session also ends
 * after udp_timeout_ms without a datagram in either direction.
 *
 * ICMP/ICMPv6 echo requests to any address are answered by lwIP.
 *
 * One stack per process (lwIP keeps global state): gx_stack_new fails with -EBUSY while another exists.
 * Every function returns 0 (or a count) on success and -errno on failure.
 */
#ifndef GX_STACK_H
#define GX_STACK_H

#include <stdint.h>

#define GX_STACK_EV_TCP 1u               /* a new TCP connection: decide with connect/drop */
#define GX_STACK_EV_UDP 2u               /* a new UDP session: decide with connect/drop */

#define GX_STACK_SNIFF_MAX 65536u        /* the most first bytes an event carries */
#define GX_STACK_SNIFF_MIN 5u            /* sniffing: bytes that make a TCP flow reportable (gost peeks 5) */
#define GX_STACK_UDP_PENDING_MAX 64u     /* datagrams a session keeps until its decision */
#define GX_STACK_MTU_MIN 576u
#define GX_STACK_MTU_MAX 65535u

struct gx_stack_cfg {
    int tun_fd;                  /* TUN device fd (IFF_TUN | IFF_NO_PI), non-blocking */
    int vnet_hdr;                /* 1: the fd has IFF_VNET_HDR (10-byte header): the stack turns on TSO and
                                    writes checksum-offloaded and GSO packets; 0: plain packets */
    uint32_t mtu;                /* the device's MTU */
    uint32_t udp_timeout_ms;     /* UDP session idle timeout; 0 = 30000 */
    uint32_t sniff_bytes;        /* 0: report TCP at once; else after this many bytes (<= GX_STACK_SNIFF_MAX) */
    uint32_t sniff_timeout_ms;   /* with sniff_bytes: report anyway after this long; 0 = never */
    uint32_t max_flows;          /* TCP connections + UDP sessions at once; 0 = 65536 */
};

struct gx_stack_event {
    uint32_t type;               /* GX_STACK_EV_* */
    uint32_t family;             /* 4 or 6 */
    uint64_t id;                 /* the flow, for gx_stack_connect/gx_stack_drop */
    uint8_t src[16];             /* client address (IPv4 in the first 4 bytes) */
    uint8_t dst[16];             /* the original destination */
    uint16_t sport, dport;       /* host byte order */
    uint32_t len;                /* bytes at data */
    uint8_t *data;               /* first bytes (TCP with sniffing, UDP: the first datagram); may be NULL */
};

/* Counters (all uint64_t, read with relaxed atomics; the field order is part of the binding). */
struct gx_stack_stats {
    uint64_t tun_rx_pkts, tun_rx_bytes, tun_tx_pkts, tun_tx_bytes, tun_tx_drops, tun_rx_errors;
    uint64_t tcp_flows, tcp_active, tcp_refused, tcp_up_bytes, tcp_down_bytes, tcp_resets, tcp_client_resets;
    uint64_t udp_sessions, udp_active, udp_expired, udp_up_pkts, udp_down_pkts, udp_drops;
    uint64_t event_overflows, flow_limit_hits;
    /* lwIP's own connections that are no flow any more (gauges, sampled every 250 ms): closing (FIN
     * exchange not finished, LAST_ACK, FIN_WAIT) and TIME_WAIT; tcp_tw_recycled counts new connections
     * whose SYN reused a TIME_WAIT connection's addresses (RFC 6191) */
    uint64_t tcp_closing, tcp_time_wait, tcp_tw_recycled;
    /* lwIP's heap (its pbufs, segments and PCBs come from malloc through it; lwIP's state is global, so
     * these are the process's): bytes held now, the most ever held, failed allocations. Sampled every
     * 250 ms by the stack thread. */
    uint64_t lwip_mem_used, lwip_mem_max, lwip_mem_errors;
};

struct gx_stack;

int gx_stack_new(struct gx_stack **out, const struct gx_stack_cfg *cfg);
/* Start the data-plane thread. */
int gx_stack_start(struct gx_stack *s);
/* Stop the thread (every flow is reset and its fd closed). Idempotent. */
int gx_stack_stop(struct gx_stack *s);
/* Stop if needed and free everything (events not yet polled included). NULL is fine. */
void gx_stack_free(struct gx_stack *s);

int gx_stack_event_fd(const struct gx_stack *s);
/* Move up to max queued events to ev[]; returns the count (0 when none). Clears the eventfd first. */
int gx_stack_poll_events(struct gx_stack *s, struct gx_stack_event *ev, int max);
void gx_stack_event_release(struct gx_stack_event *ev);

/* The decision for flow `id`. connect: the stack takes fd (non-blocking is set here) and closes it when
 * the flow ends; on failure (-ESHUTDOWN: stopped; -EINVAL) the caller keeps it. A decision for a flow
 * that has meanwhile ended is accepted; the fd is then closed. */
int gx_stack_connect(struct gx_stack *s, uint64_t id, int fd);
int gx_stack_drop(struct gx_stack *s, uint64_t id);

void gx_stack_get_stats(struct gx_stack *s, struct gx_stack_stats *out);

#endif
