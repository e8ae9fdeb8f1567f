/* GOST's SOCKS5 UDP-over-TCP ("UDP-TUN", command 0xF3): datagrams framed on a TCP stream.
 *
 * Frame, both directions, back to back on the stream:
 *
 *   LEN (2, big endian: payload bytes, 1..65535) | FRAG (1) | ATYP (1) | ADDR | PORT (2) | DATA (LEN)
 *   ATYP 0x01: ADDR = 4 bytes; 0x04: 16 bytes; 0x03: 1-byte length + name (1..255 bytes).
 *
 * Client -> server frames carry the destination, server -> client frames the source. LEN 0 is never
 * valid on the stream (gost reads it as a "standard datagram" running to EOF), so the parser rejects it,
 * and the writers never send an empty datagram. FRAG: gostx writes 0x00 like gost v2 (v3 writes 0xFF);
 * every reader ignores it.
 *
 * Three users:
 *   - gx_socks_udp_parse / gx_socks_udp_header: the wire format alone (tests, fuzzing, Python-free).
 *   - gx_transport_socks_udp: a gx_transport (gx/tunnel.h) over a connected stream fd, so the tun/tap
 *     engine carries its datagrams through a SOCKS5 chain with no Python per packet.
 *   - gx_socks_relay: the server side of 0xF3: frames on a stream <-> datagrams on a UDP socket, a
 *     handler on the shared relay engine (gx/relay.h; the socks5 handler's relay mode).
 */
#ifndef GX_SOCKS_UDP_H
#define GX_SOCKS_UDP_H

#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>

#include "gx/tunnel.h"

#define GX_SOCKS_ATYP_IPV4 0x01
#define GX_SOCKS_ATYP_DOMAIN 0x03
#define GX_SOCKS_ATYP_IPV6 0x04
#define GX_SOCKS_UDP_HDR_MAX (2 + 1 + 1 + 1 + 255 + 2) /* the longest header: a 255-byte name */
#define GX_SOCKS_UDP_FRAG 0x00

struct gx_socks_frame {
    uint32_t hdr_len;              /* bytes before the payload */
    uint32_t len;                  /* payload bytes (1..65535) */
    uint8_t atyp;
    const uint8_t *host;           /* 4 or 16 address bytes, or the name (not NUL-terminated) */
    uint32_t host_len;
    uint16_t port;
};

/* Parse the frame at buf[0..avail). Returns the whole frame's size (header + payload; the payload may
 * still be incomplete: compare with avail), 0 when the header itself is incomplete, or -EPROTO when the
 * header is malformed (LEN 0, unknown ATYP, empty name). */
int gx_socks_udp_parse(const uint8_t *buf, size_t avail, struct gx_socks_frame *f);

/* Write the header of a len-byte datagram to/from addr (AF_INET, or AF_INET6 where a v4-mapped address
 * is written as IPv4, as gost does). Returns the header length, -EINVAL (len 0 or > 65535) or
 * -EAFNOSUPPORT. */
int gx_socks_udp_header(uint8_t out[GX_SOCKS_UDP_HDR_MAX], const struct sockaddr_storage *addr, uint32_t len);

/* The frame's address as a socket address (IPv4 or IPv6 frames only). 0 or -EAFNOSUPPORT (a name). */
int gx_socks_frame_sockaddr(const struct gx_socks_frame *f, struct sockaddr_storage *out, socklen_t *len);

/* A transport over a connected, non-blocking stream fd (owned by the caller). Received frames whose
 * address is a name are dropped (counted as empty datagrams); so are frames larger than a batch slot.
 * recv returns -ECONNRESET at a clean EOF, -EPROTO at a malformed frame or an EOF inside a frame. */
int gx_transport_socks_udp(struct gx_transport *out, int fd);

/* ---------------------------------------------------------------------------------------------- */
/* The relay: stream fd (frames) <-> udp fd (datagrams). Both fds stay owned by the caller and must be
 * non-blocking sockets. Frames from the stream are sent to their address (names through the shared
 * resolver, gx/resolve.h: the relay waits for an answer without blocking any thread, an unresolvable
 * name drops the datagram); datagrams received on the udp socket go back as frames carrying their
 * source (any source, as gost's 0xF3 relay mode). Datagrams longer than max_datagram (0 = 65535) are
 * dropped and counted. Buffers are bounded (128 KiB each way): a side that cannot take more stops the
 * other side's reads. No thread per relay: all relays share the engine's threads. */

struct gx_socks_relay;

struct gx_socks_relay_stats {
    uint64_t up_pkts, up_bytes;          /* frames from the stream sent as datagrams */
    uint64_t down_pkts, down_bytes;      /* datagrams sent back as frames */
    uint64_t drop_up, drop_down;         /* refused / unresolvable / too big */
};

int gx_socks_relay_new(struct gx_socks_relay **out, int stream_fd, int udp_fd, uint32_t max_datagram);
int gx_socks_relay_start(struct gx_socks_relay *r);
/* Readable (eventfd) once the engine let go of the relay: it ended by itself (stream EOF/reset or a
 * protocol error) or after gx_socks_relay_cancel. From then on no thread touches it or its fds. */
int gx_socks_relay_event_fd(const struct gx_socks_relay *r);
/* 0 while running or after a clean EOF; else the errno that ended it (EPROTO: a malformed frame). */
int gx_socks_relay_status(struct gx_socks_relay *r);
void gx_socks_relay_get_stats(struct gx_socks_relay *r, struct gx_socks_relay_stats *out);
void gx_socks_relay_cancel(struct gx_socks_relay *r); /* ask the engine to let go; never blocks */
int gx_socks_relay_stop(struct gx_socks_relay *r);    /* cancel and wait until it let go; idempotent */
void gx_socks_relay_free(struct gx_socks_relay *r);  /* stops first */

#endif
