/* Datagrams <-> GOST 0xF3 frames on a stream, on the relay engine (gx/relay.h): the tungo stack's UDP
 * session (one end of a SOCK_SEQPACKET socketpair, one message per datagram) carried by a SOCKS5 hop
 * after its 0xF3 handshake (the hop's TCP socket, or a socketpair end carrying TLS / WebSocket bytes).
 *
 *   dgram fd --datagram--> frame LEN(2) + hdr (FRAG ATYP ADDR PORT) + data --> stream fd
 *   dgram fd <--payload--- frame (any address, gx/socks_udp.h)            <-- stream fd
 *
 * Bounded: at most two frames wait for the stream (the datagram side is not read meanwhile: its own
 * socket buffer then drops), a frame's payload that the datagram side cannot take is dropped and counted.
 * The relay ends at EOF of either side (an empty message on the datagram side reads as its end), a
 * malformed frame (EPROTO) or an error. Both fds stay owned by the caller.
 */
#ifndef GX_DGRAM_FRAMES_H
#define GX_DGRAM_FRAMES_H

#include <stdint.h>

struct gx_dgram_frames;

struct gx_dgram_frames_stats {
    uint64_t up_pkts, up_bytes;       /* datagrams framed onto the stream (payload bytes) */
    uint64_t down_pkts, down_bytes;   /* frames delivered as datagrams */
    uint64_t drop_up, drop_down;      /* too big for a frame / refused by the datagram side */
};

int gx_dgram_frames_new(struct gx_dgram_frames **out, int dgram_fd, int stream_fd, const uint8_t *hdr,
                        uint32_t hdr_len);
int gx_dgram_frames_start(struct gx_dgram_frames *r);
int gx_dgram_frames_event_fd(const struct gx_dgram_frames *r);  /* readable once the engine let go */
int gx_dgram_frames_status(struct gx_dgram_frames *r);           /* 0: clean end or running; else errno */
void gx_dgram_frames_get_stats(struct gx_dgram_frames *r, struct gx_dgram_frames_stats *out);
void gx_dgram_frames_cancel(struct gx_dgram_frames *r);
void gx_dgram_frames_free(struct gx_dgram_frames *r);            /* cancels and waits first */

#endif
