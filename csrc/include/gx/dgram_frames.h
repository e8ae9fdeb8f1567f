/* Datagrams <-> frames on a stream, on the relay engine (gx/relay.h). Two framings:
 *   GX_FRAMES_F3     GOST's SOCKS5 0xF3: LEN(2) + hdr (FRAG ATYP ADDR PORT) + data up, any address down
 *                    (gx/socks_udp.h): the tungo stack's UDP session through a SOCKS5 hop;
 *   GX_FRAMES_RELAY  the relay protocol's UDP data phase: LEN(2) + data both ways (LEN 0: an empty
 *                    datagram, not delivered): the relay handler's UDP (its dgram fd a UDP socket
 *                    connected to the target) and a tungo UDP session through a relay hop.
 * The dgram fd is one end of a SOCK_SEQPACKET socketpair (one message per datagram) or a connected UDP
 * socket; the stream fd the hop's TCP socket, or a socketpair end carrying TLS / WebSocket bytes.
 *
 *   dgram fd --datagram--> frame --> stream fd
 *   dgram fd <--payload--- frame <-- stream fd
 *
 * Bounded: at most two frames wait for the stream (the datagram side is not read meanwhile: its own
 * socket buffer then drops), a frame's payload that the datagram side cannot take is dropped and counted.
 * The relay ends at EOF of either side (an empty message on the datagram side reads as its end), a
 * malformed frame (EPROTO) or an error. Both fds stay owned by the caller.
 */
#ifndef GX_DGRAM_FRAMES_H
#define GX_DGRAM_FRAMES_H

#include <stddef.h>
#include <stdint.h>

struct gx_dgram_frames;

struct gx_dgram_frames_stats {
    uint64_t up_pkts, up_bytes;       /* datagrams framed onto the stream (payload bytes) */
    uint64_t down_pkts, down_bytes;   /* frames delivered as datagrams */
    uint64_t drop_up, drop_down;      /* too big for a frame / refused by the datagram side */
};

enum { GX_FRAMES_F3 = 0, GX_FRAMES_RELAY = 1 };

/* The relay protocol's UDP frame at buf[0..avail): its whole size (2 + LEN), 0 while the 2-byte length
 * is incomplete. Never fails: every LEN is valid. */
static inline int gx_relay_udp_frame(const uint8_t *buf, size_t avail, uint32_t *len) {
    if (avail < 2)
        return 0;
    *len = ((uint32_t)buf[0] << 8) | buf[1];
    return 2 + (int)*len;
}

/* mode GX_FRAMES_F3 needs hdr (2..260 bytes), GX_FRAMES_RELAY none (hdr_len 0). */
int gx_dgram_frames_new(struct gx_dgram_frames **out, int dgram_fd, int stream_fd, int mode, const uint8_t *hdr,
                        uint32_t hdr_len);
int gx_dgram_frames_start(struct gx_dgram_frames *r);
int gx_dgram_frames_event_fd(const struct gx_dgram_frames *r);  /* readable once the engine let go */
int gx_dgram_frames_status(struct gx_dgram_frames *r);           /* 0: clean end or running; else errno */
void gx_dgram_frames_get_stats(struct gx_dgram_frames *r, struct gx_dgram_frames_stats *out);
void gx_dgram_frames_cancel(struct gx_dgram_frames *r);
void gx_dgram_frames_free(struct gx_dgram_frames *r);            /* cancels and waits first */

#endif
