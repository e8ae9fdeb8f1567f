/* The tun/tap tunnel engine: TUN/TAP device <-> (AEAD) <-> UDP, in two data-plane threads.
 *
 *   thread "up"   (device -> net): TUN batch read -> validate -> pick peer -> seal -> sendmmsg
 *   thread "down" (net -> device): recvmmsg -> open -> control messages / learn peers -> TUN batch write
 *                                  (server: packets for another client are relayed, re-sealed)
 *
 * Wire format (gost v2's): one IP packet (TUN) or Ethernet frame (TAP) per datagram, optionally
 * sealed as a Shadowsocks AEAD UDP packet (gx/crypto.h). gost v3's control message ("GOST" + 16-byte
 * passphrase + N x 16-byte IPs; reply "GOST" + the client's 16-byte UDP source IP) is understood by the
 * server always and sent by the client when keepalive is on, so one server serves v2- and v3-style clients.
 *
 * The server learns inner source address -> UDP peer from every valid datagram (v2) and from control
 * messages (v3); entries idle for peer_timeout_ms expire. No Python runs per packet: Python starts, stops,
 * reads counters and drains an event ring (peer learned/expired, keepalive state) for its logs.
 *
 * What the server learns (gostx's rules; gost learns any source): TUN, a unicast address inside one of
 * its own nets (ips[i]/prefix[i]), neither one of its own addresses nor a v4 net's network/broadcast
 * address; a source inside a configured route (gx_tunnel_add_route) is reached through that route's
 * gateway and not learned; anything else is refused (learn_refused). TAP, a unicast source MAC other
 * than the device's own (mac). Each peer (outer address) owns at most peer_routes entries; more are
 * refused (learn_capped). A key pinned with gx_tunnel_add_pin is learned only from a peer with that
 * outer IP (any port); other claims are refused (learn_refused) and reported (GX_TEV_PIN_REFUSED).
 * A packet whose source is not learned is still delivered.
 *
 * Peers whose datagrams fail (AEAD open: wrong key or cipher, forged, replayed; not an IP packet or
 * frame; a refused control message; route cap hit) are counted per outer address in a small table
 * (GX_TUNNEL_BAD_PEERS) by the down thread, which reports each peer at most once per
 * GX_TUNNEL_BAD_REPORT_MS as one event carrying the count since its last report (about 1 s after the
 * first failure). Peers beyond the table's size are reported together, without an address.
 */
#ifndef GX_TUNNEL_H
#define GX_TUNNEL_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "gx/crypto.h"

#define GX_TUNNEL_TUN 0
#define GX_TUNNEL_TAP 1
#define GX_TUNNEL_SERVER 0
#define GX_TUNNEL_CLIENT 1
#define GX_TUNNEL_MAX_IPS 16
#define GX_TUNNEL_MAX_ROUTES 256
#define GX_TUNNEL_MAX_PINS 256
#define GX_TUNNEL_PEER_ROUTES_DEFAULT 4   /* learned entries per peer address */
#define GX_TUNNEL_BAD_PEERS 64            /* failing peers tracked for the rate-limited reports */
#define GX_TUNNEL_BAD_REPORT_MS 10000u    /* at most one report per failing peer and reason this often */

struct gx_tunnel_cfg {
    int mode;                      /* GX_TUNNEL_TUN or GX_TUNNEL_TAP */
    int role;                      /* GX_TUNNEL_SERVER or GX_TUNNEL_CLIENT */
    int dev_fd;                    /* non-blocking TUN/TAP fd (owned by the caller) */
    int dev_vnet_hdr;              /* dev_fd carries virtio_net_hdr */
    int net_fd;                    /* non-blocking UDP socket, bound (owned by the caller), for the
                                      default UDP transport; -1 when another transport is set */
    struct sockaddr_storage remote;/* client: the server's address in net_fd's family */
    socklen_t remote_len;
    struct gx_aead *aead;          /* NULL = plaintext (borrowed; must outlive the tunnel) */
    uint32_t mtu;                  /* device MTU: sizes the buffers */
    uint32_t batch;                /* packets per batch (1..GX_BATCH_MAX); 0 = default 64 */
    int keepalive;                 /* client: send the v3 control message every ttl_ms */
    uint32_t ttl_ms;               /* keepalive period (default 10000) */
    uint8_t passphrase[16];        /* client: v3 passphrase, zero padded */
    uint8_t ips[GX_TUNNEL_MAX_IPS][16]; /* the device's own IPs (16-byte form, v4 mapped) */
    int n_ips;
    int p2p;                       /* server: v3 point-to-point (all traffic to the last announcer) */
    uint32_t peer_timeout_ms;      /* server: learned entries idle this long expire (0 = 300000) */
    uint32_t max_peers;            /* server: table size (0 = 4096) */
    uint8_t prefix[GX_TUNNEL_MAX_IPS]; /* server (TUN): the prefix of ips[i]'s net over the 16-byte form
                                      (an IPv4 /24 is 96 + 24); the server learns only sources inside
                                      these nets. 0 = any address (no net check) */
    uint8_t mac[6];                /* server (TAP): the device's own MAC, never learned (zeros: unknown) */
    uint32_t peer_routes;          /* server: learned entries per peer address (0 = default 4) */
};

/* Counters: monotonically increasing, read at any time. */
struct gx_tunnel_stats {
    uint64_t dev_rx_pkts, dev_rx_bytes;    /* read from the device */
    uint64_t dev_tx_pkts, dev_tx_bytes;    /* written to the device */
    uint64_t net_rx_pkts, net_rx_bytes;    /* datagrams received (before opening) */
    uint64_t net_tx_pkts, net_tx_bytes;    /* datagrams sent */
    uint64_t relayed_pkts;                 /* server: client -> client */
    uint64_t control_rx, control_tx;       /* v3 control messages */
    uint64_t drop_short, drop_auth, drop_replay; /* AEAD open failures */
    uint64_t drop_malformed;               /* not an IP packet / Ethernet frame */
    uint64_t drop_no_route;                /* no peer for the destination */
    uint64_t drop_dev_full;                /* device queue full / write refused */
    uint64_t drop_send;                    /* sendmmsg refused the datagram */
    uint64_t drop_control;                 /* control message rejected */
    uint64_t dev_tx_supers;                /* GRO: coalesced super-packets written to the device */
    uint64_t peers;                        /* learned entries now */
    uint64_t dev_rx_supers;                /* GSO: super-packets read from the device and split */
    uint64_t learn_refused;                /* server: inner sources not learned (not a unicast address in
                                              net, the server's own, a multicast/broadcast MAC) */
    uint64_t learn_capped;                 /* server: not learned, the peer owns peer_routes entries */
};

enum gx_tunnel_event_type {
    GX_TEV_PEER_LEARNED = 1,       /* key (IP or MAC) now reached via addr */
    GX_TEV_PEER_MOVED = 2,         /* key moved to a new addr */
    GX_TEV_PEER_EXPIRED = 3,
    GX_TEV_KEEPALIVE_REPLY = 4,    /* client: server answered; addr = the server */
    GX_TEV_KEEPALIVE_TIMEOUT = 5,  /* client: no answer for 3 x ttl; handshake resent */
    GX_TEV_CONTROL_REJECTED = 6,   /* server: control messages refused (value = how many since the
                                      peer's last report; key = the last refused IP, if one was) */
    GX_TEV_TABLE_FULL = 7,         /* server: a new key not learned, the table is full (value = its size);
                                      at most one a second */
    GX_TEV_NET_ERROR = 8,          /* a socket error other than EAGAIN (value = errno) */
    GX_TEV_DEV_ERROR = 9,          /* a device error (value = errno); the up thread stops */
    GX_TEV_NET_CLOSED = 10,        /* the transport ended (stream EOF/reset; value = errno): the down
                                      thread stops; the control plane reconnects with a new tunnel */
    /* Rate-limited failure reports (see the top): value = datagrams since the peer's last report of the
     * same kind; addrlen 0 = peers the table had no room for. */
    GX_TEV_AUTH_FAILED = 11,       /* datagrams that failed to open: wrong key/cipher, forged, replayed */
    GX_TEV_MALFORMED = 12,         /* not an IP packet (TUN) / Ethernet frame (TAP) */
    GX_TEV_ROUTES_CAPPED = 13,     /* sources not learned: the peer owns peer_routes entries (key = the
                                      last one refused) */
    GX_TEV_PIN_REFUSED = 14,       /* a pinned key claimed by a peer with another outer IP (key = it) */
};

struct gx_tunnel_event {
    uint32_t type;
    uint32_t value;
    uint8_t key[16];               /* IPv6/v4-mapped address, or a MAC in the first 6 bytes */
    uint32_t keylen;               /* 16 (IP) or 6 (MAC) */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

/* The net side of a tunnel: how datagrams leave and arrive. UDP (gx_transport_udp) is the default;
 * other transports (GOST's SOCKS5 UDP-over-TCP stream, fake TCP) plug in here. */
struct gx_tunnel_dgram {
    const uint8_t *data;           /* the datagram; transports must not write in or around it (the same
                                      data may go to several peers): build headers in their own memory */
    uint32_t len;
    const struct sockaddr_storage *addr;
    socklen_t addrlen;
};

struct gx_transport {
    void *state;
    int fd;                        /* the down thread polls it for POLLIN */
    /* Receive datagrams into b: for i < n, fill pkt[i].data (already pointing at slot + headroom; a
     * transport may copy into it up to gx_batch_room(b) bytes, or set len 0 for a datagram it drops),
     * pkt[i].len, addr[i], addrlen[i]; set b->n. Return n (0 = nothing now), -EAGAIN, or -errno when
     * the transport is finished (then the tunnel emits GX_TEV_NET_CLOSED and its down thread stops). */
    int (*recv)(void *state, struct gx_batch *b, uint64_t *bytes);
    /* Send n datagrams in order. Block for room (polling stop_fd; give up when it is readable). Return
     * how many were handed to the kernel (the UDP transport counts the refused ones in it too);
     * *dropped counts the refused ones and, when stop_fd fired, the ones never tried, so n - *dropped
     * were sent, whatever the transport; *bytes the wire bytes. Each datagram is sent or dropped: no
     * datagram (of any size, 0..65535) makes the call loop without progress. */
    int (*send)(void *state, const struct gx_tunnel_dgram *d, int n, int stop_fd, uint64_t *bytes,
                uint64_t *dropped);
    void (*close)(void *state);    /* free state (fds stay owned by whoever opened them); may be NULL */
};

/* For transports' send: wait until fd is writable (1), or until stop_fd (when >= 0) is readable (0). */
int gx_transport_wait_writable(int fd, int stop_fd);
/* For transports' send on ENOBUFS: nap 1 ms (1), or stop_fd fired (0). At most GX_NOBUFS_NAPS naps for
 * one packet, then it is dropped (counted). */
int gx_transport_nap(int stop_fd);
#define GX_NOBUFS_NAPS 100

/* The default transport: datagrams on a bound, non-blocking UDP socket (recvmmsg/sendmmsg). */
int gx_transport_udp(struct gx_transport *out, int fd);

struct gx_tunnel;

int gx_tunnel_new(struct gx_tunnel **out, const struct gx_tunnel_cfg *cfg);
/* Server: a configured route `net/prefix via gw` (16-byte forms, prefix in 0..128 over the 16-byte form,
 * so an IPv4 /24 is 96 + 24). Packets to the net go to whichever peer owns gw. Before start only. */
int gx_tunnel_add_route(struct gx_tunnel *t, const uint8_t net[16], int prefix, const uint8_t gw[16]);
/* Server: learn key (a 16-byte IP, or a MAC in the first 6 bytes for TAP) only from peers whose outer
 * IP is outer (16-byte form). Before start only; -ENOSPC after GX_TUNNEL_MAX_PINS. */
int gx_tunnel_add_pin(struct gx_tunnel *t, const uint8_t key[16], const uint8_t outer[16]);
/* Replace the default UDP transport (before start). The tunnel calls tr->close when freed. */
int gx_tunnel_set_transport(struct gx_tunnel *t, const struct gx_transport *tr);
int gx_tunnel_start(struct gx_tunnel *t);
int gx_tunnel_stop(struct gx_tunnel *t);   /* signal both threads and join them; idempotent */
void gx_tunnel_free(struct gx_tunnel *t);  /* stops first if running */
void gx_tunnel_get_stats(struct gx_tunnel *t, struct gx_tunnel_stats *out);

/* One learned entry (server) and its traffic: inner bytes and packets received from it (rx) and sent to
 * it (tx, relayed client-to-client traffic included; TAP broadcast copies are not counted per entry).
 * The counters start at 0 when the entry is made (learned_ms changes) and are added once per run of
 * packets of one batch, with relaxed atomics: no lock and no per-packet cost on the data path. */
struct gx_tunnel_peer {
    uint8_t key[16];               /* the inner address (16-byte form, v4 mapped), or a MAC in the first 6 */
    uint32_t keylen;               /* 16 (IP) or 6 (MAC) */
    struct sockaddr_storage addr;  /* the peer's outer address */
    socklen_t addrlen;
    uint64_t learned_ms, seen_ms;  /* CLOCK_MONOTONIC milliseconds */
    uint64_t rx_bytes, rx_pkts, tx_bytes, tx_pkts;
};
/* Copy up to max learned entries to out (any order) under the table's read lock, held only for the copy
 * (one call per scrape, however many peers). Returns how many were copied, or -EINVAL. */
int gx_tunnel_peers(struct gx_tunnel *t, struct gx_tunnel_peer *out, int max);
/* An eventfd that becomes readable when events are queued (for the control plane's loop). */
int gx_tunnel_event_fd(const struct gx_tunnel *t);
/* Copy up to max queued events out; returns how many. Clears the eventfd. */
int gx_tunnel_poll_events(struct gx_tunnel *t, struct gx_tunnel_event *ev, int max);

/* Packet helpers, exported for tests: parse the inner addresses of an IP packet or Ethernet frame.
 * Return 0 and fill src/dst (16-byte forms; MACs use 6 bytes), or -EINVAL when malformed. */
int gx_tunnel_ip_addrs(const uint8_t *pkt, uint32_t len, uint8_t src[16], uint8_t dst[16]);
int gx_tunnel_eth_addrs(const uint8_t *frame, uint32_t len, uint8_t src[6], uint8_t dst[6]);
/* Control messages (v3): build the client handshake; parse one. Return length / count or -errno. */
int gx_tunnel_control_build(uint8_t *out, uint32_t cap, const uint8_t passphrase[16],
                            const uint8_t (*ips)[16], int n_ips);
int gx_tunnel_is_control(const uint8_t *pkt, uint32_t len);
/* Server: may key (a 16-byte IP for TUN, a MAC in the first 6 bytes for TAP) be learned? 1 yes; 0 no,
 * silently (inside a configured route: reached through its gateway); -EADDRNOTAVAIL refused (counted
 * as learn_refused). For tests; the rules are at the top of this file. */
int gx_tunnel_learnable(const struct gx_tunnel *t, const uint8_t key[16]);

/* ---- the control message of a UDP GSO send (UDP_SEGMENT): transport_udp.c, and the UDP relays ---- */
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
union gx_udp_segment_ctl {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
};
/* Point m's control at ctl, holding UDP_SEGMENT = seg: the kernel cuts the data into seg-byte datagrams */
static inline void gx_udp_segment_cmsg(struct msghdr *m, union gx_udp_segment_ctl *ctl, uint16_t seg) {
    memset(ctl, 0, sizeof(*ctl));
    m->msg_control = ctl->buf;
    m->msg_controllen = sizeof(ctl->buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    c->cmsg_level = IPPROTO_UDP; /* SOL_UDP */
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &seg, sizeof(seg));
}

#endif
