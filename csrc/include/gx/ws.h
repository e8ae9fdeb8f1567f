/* WebSocket framing (RFC 6455 section 5): pure, I/O-free helpers, and an incremental frame reader.
 *
 * Client-to-server frames are masked: every payload byte is XORed with byte (i % 4) of a 4-byte key. The
 * helpers apply the mask while copying, so a frame costs exactly one pass over its payload:
 *
 *   gx_ws_mask_copy     dst[i] = src[i] ^ key[(offset + i) % 4]   (offset: where in the key a partial
 *                        payload continues; dst and src may be the same buffer, or dst below src)
 *   gx_ws_header        a frame header (FIN, opcode, MASK bit, 7/16/64-bit length, key) into out
 *   gx_ws_header_len    how long that header is (to put it right in front of a payload in place)
 *   gx_ws_encode        one whole frame (header + payload, masked when a key is given) into a buffer
 *   gx_ws_close_payload the payload of a close frame (status code + reason)
 *   gx_ws_parse_header  the header at buf: lengths, opcode, flags, key; 0 when incomplete
 *
 *   struct gx_ws_reader an incremental reader: feed it the received bytes split anywhere (1 byte at a
 *                        time works); it writes the data payload, unmasked, into the caller's buffer
 *                        (text, binary and continuation frames alike: a byte stream, as gost's ws
 *                        transports use it), and stops at each whole control frame (ping, close) or at
 *                        the first protocol error, with the close code to send.
 *
 * Nothing here does I/O, allocates, or keeps pointers into the caller's buffers between calls.
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

/* ---- encoding ---------------------------------------------------------------------------------- */

/* The length of the header gx_ws_header writes for this payload length (2, 4 or 10; +4 when masked). */
size_t gx_ws_header_len(uint64_t payload_len, int masked);

/* One whole frame into out[0..cap): the header, then payload[0..len) (XORed with key when key != NULL;
 * clients must mask, servers must not). payload may be NULL when len is 0; out and payload must not
 * overlap (to frame in place, write gx_ws_header at payload - gx_ws_header_len(...) and mask the payload
 * with gx_ws_mask_copy(p, p, len, key, 0)). Returns the frame length, -ENOSPC when cap is too small
 * (nothing written), -EINVAL for an opcode above 0xF or a control frame (opcode >= 0x8) that is not FIN
 * or longer than 125 bytes. */
long gx_ws_encode(uint8_t *out, size_t cap, uint8_t opcode, int fin, const uint8_t *payload, size_t len,
                  const uint8_t *key);

#define GX_WS_CONTROL_MAX 125 /* payload bytes of a ping, pong or close frame */

/* Close frame payload: the status code big-endian, then up to 123 bytes of reason (cut there; the caller
 * keeps it ASCII or cuts at a UTF-8 boundary). code 0 = no code and no reason (an empty close payload).
 * Returns the payload length (0..125). */
size_t gx_ws_close_payload(uint8_t out[GX_WS_CONTROL_MAX], uint16_t code, const char *reason, size_t reason_len);

/* Close status codes (RFC 6455 7.4.1) the reader reports or asks the caller to send. */
#define GX_WS_CLOSE_NORMAL 1000
#define GX_WS_CLOSE_GOING_AWAY 1001
#define GX_WS_CLOSE_PROTOCOL 1002     /* protocol error: the reader's ERROR for malformed frames */
#define GX_WS_CLOSE_NO_STATUS 1005    /* never sent: what the reader reports for a close frame without a code */
#define GX_WS_CLOSE_BAD_DATA 1007     /* a close reason that is not UTF-8 */
#define GX_WS_CLOSE_TOO_BIG 1009      /* a data frame longer than the reader's max_frame */

/* ---- incremental reader ---------------------------------------------------------------------------- */

/* Which side we are: a server reads masked frames (an unmasked one is a protocol error), a client reads
 * unmasked frames (a masked one is a protocol error), RFC 6455 5.1. */
#define GX_WS_ROLE_CLIENT 0
#define GX_WS_ROLE_SERVER 1

enum gx_ws_event_type {
    GX_WS_EV_NONE = 0, /* input used up, or out full: call again with more input / after draining out */
    GX_WS_EV_PING,     /* a whole ping: answer with a pong carrying payload[0..payload_len) */
    GX_WS_EV_CLOSE,    /* a whole close frame: code (1005 when it had none), reason in payload; the reader
                        * is finished (answer with a close frame, echoing the code, then shut down) */
    GX_WS_EV_ERROR,    /* a protocol error: send a close frame with `code` and drop the connection; the
                        * reader is finished */
};

struct gx_ws_event {
    int type;                /* enum gx_ws_event_type */
    size_t out_len;          /* data payload bytes written to out in this call (with any type: they come
                              * before the event in the stream, so pass them on first) */
    uint16_t code;           /* CLOSE: the peer's status code; ERROR: the status code to send */
    const uint8_t *payload;  /* PING: the ping payload; CLOSE: the reason (UTF-8); points into the reader,
                              * valid until the next call */
    size_t payload_len;      /* 0..125 (ping) or 0..123 (close reason) */
    const char *error;       /* ERROR: a short static description for the log ("unmasked frame", ...) */
};

struct gx_ws_reader_stats {
    uint64_t frames;         /* frames read whole (data and control) */
    uint64_t data_bytes;     /* data payload bytes written to out */
    uint64_t pings, pongs;   /* pongs are read and dropped (no pings of ours wait for one) */
};

/* Reader state: every field private to ws.c; the caller only allocates it (or embeds it) and calls
 * gx_ws_reader_init. No pointers inside: it may be copied or moved. */
struct gx_ws_reader {
    uint64_t max_frame;      /* data frame payload cap (1009 above it); control frames: 125 */
    uint64_t remaining;      /* payload bytes of the current frame still to come */
    uint64_t key_off;        /* payload bytes of the current frame already read (mask position) */
    struct gx_ws_reader_stats stats;
    struct gx_ws_frame frame;/* the current frame's header */
    uint8_t role;            /* GX_WS_ROLE_* */
    uint8_t state;           /* header / data payload / control payload / finished */
    uint8_t in_message;      /* a fragmented data message is open (continuations expected) */
    uint8_t hdr_len;         /* header bytes gathered in hdr */
    uint8_t hdr[GX_WS_HEADER_MAX];
    uint8_t ctl_len;         /* control payload bytes gathered in ctl */
    uint8_t ctl[GX_WS_CONTROL_MAX];
};

/* role: GX_WS_ROLE_*; max_frame: the largest data frame payload accepted (0 = no cap below 2^63). */
void gx_ws_reader_init(struct gx_ws_reader *r, int role, uint64_t max_frame);

/* Read frames from in[0..in_len): data payload goes to out[0..out_cap) unmasked, in order. Returns the
 * number of input bytes consumed (0..in_len) and fills *ev. It returns before using all input only when
 *   - out is full (ev->type NONE, ev->out_len == out_cap): drain out and call again with the rest, or
 *   - an event happened (PING, CLOSE, ERROR): the bytes up to the end of that frame (PING, CLOSE) or up to
 *     the offending byte (ERROR) are consumed.
 * After CLOSE or ERROR the reader is finished: every later call consumes nothing and returns -EPIPE.
 * Any split of the input gives the same data and events (the reader buffers partial headers and partial
 * control payloads itself). out may equal in (decoding in place: the output never overtakes the input).
 *
 * Accepted as gost's peers (gorilla/websocket) accept them: non-minimal length encodings, text frames (not
 * checked for UTF-8: the payload is passed on as bytes), empty data frames, control frames between the
 * fragments of a message. Protocol errors (code 1002): RSV bits set (no extensions are negotiated), a
 * reserved opcode, a fragmented or > 125-byte control frame, a missing mask (server) or a mask (client),
 * a continuation without a message, a new data frame inside a fragmented message, a 64-bit length with its
 * top bit set, a close payload of 1 byte or with a code that may not be sent (RFC 6455 7.4); 1007: a close
 * reason that is not UTF-8; 1009: a data frame longer than max_frame. */
long gx_ws_read(struct gx_ws_reader *r, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
                struct gx_ws_event *ev);

#endif
