/* WebSocket framing helpers (RFC 6455 section 5) for the Python WebSocket stream (gostx/net/ws.py).
 *
 * Client-to-server frames are masked: every payload byte is XORed with byte (i % 4) of a 4-byte key. The
 * helpers apply the mask while copying, so a frame costs exactly one pass over its payload:
 *
 *   gx_ws_mask_copy     dst[i] = src[i] ^ key[(offset + i) % 4]   (offset: where in the key a partial
 *                        payload continues; dst and src may be the same buffer)
 *   gx_ws_header        a frame header (FIN, opcode, MASK bit, 7/16/64-bit length, key) into out
 *   gx_ws_parse_header  the header at buf: lengths, opcode, flags, key; 0 when incomplete
 */
#ifndef GX_WS_H
#define GX_WS_H

#include <stddef.h>
#include <stdint.h>

#define GX_WS_HEADER_MAX 14 /* 2 + 8 (64-bit length) + 4 (key) */

#define GX_WS_OP_CONT 0x0
#define GX_WS_OP_TEXT 0x1
#define GX_WS_OP_BINARY 0x2
#define GX_WS_OP_CLOSE 0x8
#define GX_WS_OP_PING 0x9
#define GX_WS_OP_PONG 0xA

struct gx_ws_frame {
    uint32_t header_len;   /* bytes before the payload (2..14) */
    uint64_t payload_len;
    uint8_t opcode;
    uint8_t fin;
    uint8_t rsv;           /* the three RSV bits, shifted down (must be 0 without extensions) */
    uint8_t masked;
    uint8_t key[4];
};

/* XOR-copy len bytes with the rotating 4-byte key starting at key position (offset % 4). */
void gx_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4], size_t offset);

/* Write a header for a payload of payload_len bytes; key NULL = unmasked. Returns the header length,
 * or -EINVAL for an opcode above 0xF. */
int gx_ws_header(uint8_t out[GX_WS_HEADER_MAX], uint8_t opcode, int fin, uint64_t payload_len,
                 const uint8_t *key);

/* Parse the header at buf[0..avail). Returns the header length, 0 when more bytes are needed, or -EPROTO
 * for a 64-bit length whose most significant bit is set (RFC 6455 5.2). */
int gx_ws_parse_header(const uint8_t *buf, size_t avail, struct gx_ws_frame *f);

#endif
