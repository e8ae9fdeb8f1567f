/* SOCKS5 UDP ASSOCIATE (RFC 1928 section 7) relayed in C, on the shared relay engine (gx/relay.h).
 *
 * Datagram from the client, on the association's relay socket:
 *
 *   RSV (2, 0) | FRAG (1) | ATYP (1) | DST.ADDR | DST.PORT (2) | DATA
 *   ATYP 0x01: 4 bytes; 0x04: 16 bytes; 0x03: 1-byte length + name (1..255 bytes).
 *
 * The same layout as GOST's 0xF3 frame header (gx/socks_udp.h) with RSV where the frame has its length.
 * FRAG != 0 (fragments, which gost does not reassemble either) is dropped.
 *
 * The relay: client datagrams (from the client's IP only, any port: the latest port is where replies
 * go) are sent to their destination from the upstream UDP socket (names through gx/resolve.h: the relay
 * holds the one datagram and stops reading until the answer is in); datagrams arriving on the upstream
 * socket go back to the client with their source in the header. Bad input is dropped and counted, the
 * association lives on. Both fds stay owned by the caller.
 */
#ifndef GX_SOCKS_ASSOC_H
#define GX_SOCKS_ASSOC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gx/socks_udp.h"

/* Parse the header of the datagram buf[0..len). The payload is buf[f->hdr_len..len) (f->len bytes,
 * may be 0). 0, or -EPROTO (short, RSV != 0, unknown ATYP, empty name), -EMSGSIZE (FRAG != 0). */
int gx_socks_assoc_parse(const uint8_t *buf, size_t len, struct gx_socks_frame *f);

/* The header of a reply from addr (RSV 0, FRAG 0; v4-mapped IPv6 written as IPv4). Its length, or
 * -EAFNOSUPPORT. */
int gx_socks_assoc_header(uint8_t out[GX_SOCKS_UDP_HDR_MAX], const struct sockaddr_storage *addr);

struct gx_socks_assoc;

struct gx_socks_assoc_stats {
    uint64_t up_pkts, up_bytes;          /* client datagrams sent on (payload bytes) */
    uint64_t down_pkts, down_bytes;      /* replies sent back to the client (payload bytes) */
    uint64_t drop_foreign;               /* not from the client's IP */
    uint64_t drop_malformed;             /* bad header, or a fragment */
    uint64_t drop_resolve;               /* a name that did not resolve */
    uint64_t drop_size;                  /* larger than max_datagram, or truncated */
    uint64_t drop_send;                  /* a socket refused it (full, unreachable, no client yet) */
};

/* relay_fd: the association's socket the client sends to; up_fd: an unconnected UDP socket for the
 * destinations, or a stream after a SOCKS5 0xF3 handshake (a chain's SOCKS5 hop: each client datagram
 * goes on as a frame, its RSV turned into LEN, names resolved by the hop; each frame comes back as a
 * reply datagram; the hop's EOF ends the relay, a malformed frame with EPROTO); client: the control connection's peer (its IP is what counts); max_datagram: the
 * largest payload relayed (0 = 65535). */
int gx_socks_assoc_new(struct gx_socks_assoc **out, int relay_fd, int up_fd, const struct sockaddr_storage *client,
                       uint32_t max_datagram);
int gx_socks_assoc_start(struct gx_socks_assoc *a);
/* Readable (eventfd) once the engine let go (it ended by itself: ENOMEM, the stream's end; or after
 * cancel). */
int gx_socks_assoc_event_fd(const struct gx_socks_assoc *a);
int gx_socks_assoc_status(struct gx_socks_assoc *a);
void gx_socks_assoc_get_stats(struct gx_socks_assoc *a, struct gx_socks_assoc_stats *out);
void gx_socks_assoc_cancel(struct gx_socks_assoc *a);
int gx_socks_assoc_stop(struct gx_socks_assoc *a);   /* cancel and wait; idempotent */
void gx_socks_assoc_free(struct gx_socks_assoc *a);  /* stops first */

#endif
