/* UDP port forwarding (`gost -L udp://:PORT/TARGET`) in C: one listening UDP socket, one session per
 * client address, every datagram moved by the relay engine (gx/relay.h) with no Python per datagram.
 *
 * A forwarder is ONE relay on the engine (so one engine thread): it watches the listening socket, an
 * inner epoll set holding every session's upstream fd (any number of sessions, no GX_RELAY_FDS limit), a
 * timerfd for the idle checks and a command eventfd. Python is told when a session starts (its client
 * address: Python picks the route and answers with an upstream fd, or refuses) and when it ends (idle for
 * `ttl`, an upstream error, a cap), through a bounded event queue and an eventfd it watches.
 *
 *   client --dgram--> listen fd --(session by client addr)--> upstream fd (connected UDP) --> target
 *   client <--dgram-- listen fd (sendmmsg to the client)   <-- upstream fd
 *
 * Caps (all counted when they bite, see gx_udp_fwd_stats): max_sessions live sessions (a new client
 * over it is dropped), `queue` datagrams per session while Python decides, max_datagram bytes per
 * datagram. Datagrams a full socket cannot take are dropped (UDP semantics), never queued without a cap.
 * Sessions that Python refused stay as "refused" for a second (their datagrams dropped, no new event) so
 * a refused client does not call Python per datagram.
 */
#ifndef GX_UDP_FWD_H
#define GX_UDP_FWD_H

#include <stdint.h>
#include <sys/socket.h>

struct gx_udp_fwd;

struct gx_udp_fwd_config {
    uint32_t max_sessions;   /* live sessions (1..1<<20) */
    uint32_t queue;          /* datagrams kept per session until its route is known (1..4096) */
    uint32_t max_datagram;   /* largest datagram relayed (1..65535; 0 = 65535) */
    uint32_t ttl_ms;         /* idle time that ends a session (>= 10) */
};

/* Counters of one forwarder, read at any time (relaxed). issue 19 scrapes these. */
struct gx_udp_fwd_stats {
    uint64_t up_pkts, up_bytes;         /* client -> target datagrams sent */
    uint64_t down_pkts, down_bytes;     /* target -> client datagrams sent */
    uint64_t sessions_open;             /* live now */
    uint64_t sessions_total;            /* ever opened */
    uint64_t drop_sessions;             /* new client over max_sessions (or the event queue full) */
    uint64_t drop_refused;              /* datagrams of a session Python refused */
    uint64_t drop_queue;                /* session queue full while Python decided */
    uint64_t drop_size;                 /* datagram larger than max_datagram (or truncated) */
    uint64_t drop_send;                 /* a socket refused the datagram (full buffer, error) */
    uint64_t drop_malformed;            /* a reply without a valid SOCKS5 UDP header (ASSOCIATE hops) */
};

enum { GX_UDP_FWD_OPEN = 1, GX_UDP_FWD_CLOSE = 2 };

struct gx_udp_fwd_event {
    uint32_t kind;                      /* GX_UDP_FWD_OPEN / GX_UDP_FWD_CLOSE */
    int32_t reason;                     /* CLOSE: 0 (refused or closed by Python), ETIMEDOUT (idle), errno */
    uint64_t id;                        /* the session, for gx_udp_fwd_route / _close */
    struct sockaddr_storage client;
    socklen_t client_len;
    uint64_t up_pkts, up_bytes, down_pkts, down_bytes;  /* CLOSE: the session's totals */
};

/* listen_fd: a bound UDP socket (the forwarder owns it from here on: closed by gx_udp_fwd_free). */
int gx_udp_fwd_new(struct gx_udp_fwd **out, int listen_fd, const struct gx_udp_fwd_config *cfg);
int gx_udp_fwd_start(struct gx_udp_fwd *f);
/* Readable (eventfd) when events wait, and once the engine has let go of the forwarder. */
int gx_udp_fwd_event_fd(const struct gx_udp_fwd *f);
/* The next event: 1 (ev filled), 0 (none now). Any thread; never blocks. */
int gx_udp_fwd_next_event(struct gx_udp_fwd *f, struct gx_udp_fwd_event *ev);
/* Python's answer to OPEN: the session's upstream is fd (the forwarder owns it from here on, also on
 * error), or fd < 0: refused. By mode:
 *   GX_UDP_FWD_DGRAM  a connected datagram socket (UDP to the target, or a socketpair end); no header.
 *   GX_UDP_FWD_ASSOC  UDP to a SOCKS5 ASSOCIATE relay: every datagram up goes behind hdr (RSV FRAG ATYP
 *                     DST.ADDR DST.PORT), every reply must carry such a header, which is taken off
 *                     (gx/socks_assoc.h; without one it is dropped and counted).
 *   GX_UDP_FWD_F3     a stream after a SOCKS5 0xF3 handshake (TCP, or a socketpair end carrying TLS/WS
 *                     bytes): every datagram up becomes the frame LEN(2) + hdr (FRAG ATYP ADDR PORT) +
 *                     data; frames from the stream go back as datagrams (gx/socks_udp.h); EOF or a
 *                     malformed frame ends the session. At most 2 frames wait for the stream: past that
 *                     datagrams are dropped (drop_send).
 *   GX_UDP_FWD_RELAY  a relay-protocol UDP stream after its handshake: LEN(2) + data frames both ways, no
 *                     header (hdr_len 0); otherwise as GX_UDP_FWD_F3.
 * hdr: at most GX_UDP_FWD_HDR_MAX bytes. 0 or -errno (-EAGAIN: the command queue is full). */
#define GX_UDP_FWD_HDR_MAX 262
enum { GX_UDP_FWD_DGRAM = 0, GX_UDP_FWD_ASSOC = 1, GX_UDP_FWD_F3 = 2, GX_UDP_FWD_RELAY = 3 };
int gx_udp_fwd_route(struct gx_udp_fwd *f, uint64_t id, int fd, int mode, const uint8_t *hdr, uint32_t hdr_len);
/* End a session (its CLOSE event follows). 0 or -ENOENT. */
int gx_udp_fwd_close(struct gx_udp_fwd *f, uint64_t id);
void gx_udp_fwd_get_stats(struct gx_udp_fwd *f, struct gx_udp_fwd_stats *out);
/* 0 while running, else the errno that stopped it. */
int gx_udp_fwd_status(struct gx_udp_fwd *f);
int gx_udp_fwd_stop(struct gx_udp_fwd *f);   /* let go of every session (fds closed); idempotent */
void gx_udp_fwd_free(struct gx_udp_fwd *f);  /* stops first; closes the listening fd */

#endif
