/* gx/proxy.h: the public interface of csrc/proxy/ (one header per csrc folder).
 * Sections: relay, resolve, socks_udp, ws, xstream, splice_relay, udp_fwd, socks_assoc, dgram_frames. */
#ifndef GX_PROXY_H
#define GX_PROXY_H

/* The relay engine: one small, fixed set of event-loop threads (epoll, level-triggered) shared by every
 * relayed connection of the process, instead of a thread (or two) per connection.
 *
 * A relay is a struct gx_relay_conn embedded as the FIRST member of a handler's own struct, plus a
 * table of callbacks (gx_relay_ops). The engine owns no fd: the handler registers up to GX_RELAY_FDS
 * non-blocking fds it was given and says, after every callback, which readiness it wants on each
 * (gx_relay_want). The engine calls the handler only in the one engine thread the relay was assigned
 * to, so a handler needs no locks for its own state.
 *
 *   attach(engine, conn)    any thread: hands the relay to the least loaded engine thread, which calls
 *                           ops->start and from then on ops->ready(conn, slot, events)
 *   gx_relay_end(conn, e)   engine thread (inside a callback): the relay ended by itself (0 or an errno)
 *   gx_relay_cancel(conn)   any thread, never blocks: ask the engine to let go of the relay
 *   gx_relay_poke(conn)     any thread, never blocks: have the engine call ready(conn, GX_RELAY_POKE, 0)
 *   done fd                 an eventfd that becomes readable once the engine has let go (ended or
 *                           cancelled): the conn's fds are out of the engine. It is the owner's
 *                           notification only (e.g. Python's loop.add_reader; the owner may read it):
 *                           gx_relay_wait does not use it, it blocks on the engine thread's condition
 *                           variable until the conn is DONE (and the engine's last touch of the conn is
 *                           over); after it the owner may free the conn and close its fds.
 *
 * The per-connection handlers bound their own buffers: a handler that cannot pass data on stops asking
 * for readability on the other side (backpressure), it never queues without a cap.
 *
 * The 0xF3 SOCKS relay (gx/proxy.h) is the first user; TLS / WebSocket / relay framing and the UDP
 * relays are meant to become handlers on the same engine.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define GX_RELAY_FDS 4          /* fds one relay may watch */
#define GX_RELAY_THREADS_MAX 8

struct gx_relay_conn;
struct gx_relay_thread;

struct gx_relay_ops {
    /* Engine thread, once: register fds (gx_relay_watch_fd) and the initial wants. 0 or -errno (the
     * relay then ends with that error). */
    int (*start)(struct gx_relay_conn *c);
    /* Engine thread: the fd in `slot` reported `events` (EPOLLIN/OUT/ERR/HUP); or slot GX_RELAY_KICK /
     * GX_RELAY_POKE with events 0 (gx_relay_kick_all, gx_relay_poke). */
    void (*ready)(struct gx_relay_conn *c, int slot, uint32_t events);
    /* Engine thread, once, after the last ready: the engine is letting go (ended or cancelled). */
    void (*stop)(struct gx_relay_conn *c);
};

struct gx_relay_conn {
    const struct gx_relay_ops *ops;
    /* engine private */
    struct gx_relay_thread *thread;
    struct gx_relay_conn *next_cmd;      /* the thread's command list (under its lock) */
    struct gx_relay_conn *next_end;      /* the relays ended in this round */
    struct gx_relay_conn *prev, *next;   /* the thread's relays */
    int fd[GX_RELAY_FDS];
    uint32_t want[GX_RELAY_FDS], armed[GX_RELAY_FDS];
    int done_fd;
    _Atomic int state;                   /* GX_RELAY_NEW .. GX_RELAY_DONE */
    _Atomic int status;                  /* the errno it ended with, 0 for a clean end or a cancel */
    _Atomic bool cancel;
    _Atomic bool gone;                   /* the engine's last touch is over (after the done fd write) */
    bool ended;                          /* engine thread: end requested in this round */
    bool queued;                         /* on the command list (under the thread's lock) */
    bool poked;                          /* queued for a ready(GX_RELAY_POKE) (under the thread's lock) */
    bool want_kick;                      /* engine thread: call ready(GX_RELAY_KICK) at the next kick */
};

enum { GX_RELAY_NEW, GX_RELAY_ATTACHED, GX_RELAY_DONE };

struct gx_relay_engine_stats {
    uint64_t threads;        /* engine threads running */
    uint64_t relays;         /* relays attached now */
    uint64_t attached;       /* relays ever attached */
};

/* Prepare a conn (ops set, no fd watched, a new done eventfd). 0 or -errno. */
int gx_relay_conn_init(struct gx_relay_conn *c, const struct gx_relay_ops *ops);
/* Release the done fd. Only when the conn was never attached or is DONE. */
void gx_relay_conn_release(struct gx_relay_conn *c);

/* The process's shared engine, its threads started on first use (GX_RELAY_THREADS_DEFAULT, or the
 * GOSTX_RELAY_THREADS environment variable, 1..GX_RELAY_THREADS_MAX). Never freed. */
#define GX_RELAY_THREADS_DEFAULT 2
int gx_relay_attach(struct gx_relay_conn *c);
void gx_relay_cancel(struct gx_relay_conn *c);
/* Block until the engine let go (after attach; a condition variable, not the done fd). Returns the
 * conn's status. */
int gx_relay_wait(struct gx_relay_conn *c);
/* Any thread, blocks: gx_relay_cancel + gx_relay_wait (a conn never attached returns at once). After it
 * the engine holds nothing of c. Returns the conn's status. */
int gx_relay_stop(struct gx_relay_conn *c);
void gx_relay_engine_get_stats(struct gx_relay_engine_stats *out);

/* Engine thread only (inside start/ready). */
int gx_relay_watch_fd(struct gx_relay_conn *c, int slot, int fd);   /* registers fd with no interest */
/* Takes fd out of the epoll set now and frees the slot: the handler may close it right after. */
void gx_relay_unwatch_fd(struct gx_relay_conn *c, int slot);
void gx_relay_want(struct gx_relay_conn *c, int slot, uint32_t events);  /* applied after the callback */
void gx_relay_end(struct gx_relay_conn *c, int err);
/* Ask for one ready(c, GX_RELAY_KICK, 0) call after the next gx_relay_kick_all (e.g. a name this relay
 * waits for was resolved). */
#define GX_RELAY_KICK (-1)
void gx_relay_want_kick(struct gx_relay_conn *c);
/* Any thread, never blocks: every relay that asked for a kick gets one, in its own engine thread. */
void gx_relay_kick_all(void);
/* Any thread, never blocks: one ready(c, GX_RELAY_POKE, 0) call soon, in c's engine thread (several
 * pokes before it runs make one call). Nothing for a conn that is DONE or not attached yet (its start
 * runs after the poke: it sees what the poke was for). For commands a handler takes from other threads
 * (under its own lock), with no fd of their own. */
#define GX_RELAY_POKE (-2)
void gx_relay_poke(struct gx_relay_conn *c);

/* Pieces every relay module shares.
 * Counters: an array of relaxed atomics, added to in the engine thread, copied out from any thread. */
static inline void gx_relay_count(_Atomic uint64_t *stats, int i, uint64_t n) {
    if (n)
        atomic_fetch_add_explicit(&stats[i], n, memory_order_relaxed);
}
void gx_relay_stats_copy(uint64_t *out, const _Atomic uint64_t *stats, int n);
/* An engine thread's scratch memory for one module: *slot is the module's own _Thread_local pointer; the
 * first call in a thread allocates `size` zeroed bytes (kept for the thread's life: engine threads live
 * as long as the process). NULL when out of memory. */
void *gx_relay_scratch(void **slot, size_t size);
/* Bytes waiting for a stream: buf[*head..*tail) of cap bytes (engine thread only).
 * gx_relay_outq_room: true when `need` more bytes fit behind them (moved to the front when that makes room).
 * gx_relay_outq_flush: sends what fd takes (non-blocking, no SIGPIPE); 0 (all sent, or fd is full) or the
 * -errno of a failed send. Both offsets go back to 0 once all is sent. */
bool gx_relay_outq_room(uint8_t *buf, uint32_t cap, uint32_t *head, uint32_t *tail, uint32_t need);
int gx_relay_outq_flush(int fd, uint8_t *buf, uint32_t *head, uint32_t *tail);
/* sendmmsg(fd, msg, n, MSG_DONTWAIT) with UDP GSO (csrc/proxy/udp_batch.c): a run of datagrams of one
 * length to the same address (the last one may be shorter) leaves in one sendmsg with UDP_SEGMENT, one
 * trip through the IP stack and the device for up to GX_UDP_GSO_SEGS datagrams; the rest as sendmmsg.
 * Same result as sendmmsg: how many of msg[] were sent (a prefix), or -1 with errno when none was.
 * *gso_off (the caller's, per socket) is set when the route cannot take GSO (no checksum offload, an old
 * kernel): that socket then sends plainly. gso_counts (may be NULL) is two adjacent counters of the
 * caller's stats: [0] += the GSO sendmsg calls, [1] += 1 when this call turned *gso_off on. */
#define GX_UDP_GSO_SEGS 64
int gx_udp_sendmmsg(int fd, struct mmsghdr *msg, int n, bool *gso_off, _Atomic uint64_t *gso_counts);

/* Name lookups for data-plane event loops, which must never block in getaddrinfo.
 *
 * gx_resolve_lookup answers from a small shared cache (GX_RESOLVE_SLOTS entries, direct-mapped by a hash
 * of the name; answers kept GX_RESOLVE_TTL_OK seconds, failures GX_RESOLVE_TTL_FAIL seconds). A miss queues
 * the name for ONE resolver thread (started on first use; at most GX_RESOLVE_QUEUE names waiting) and
 * returns GX_RESOLVE_PENDING; when the answer is in, gx_relay_kick_all() wakes the relays that wait for it
 * (gx/proxy.h). A full queue, or a slot held by another name still being resolved, answers
 * GX_RESOLVE_FAIL: the caller drops the datagram and counts it.
 */

#include <stddef.h>
#include <sys/socket.h>

#define GX_RESOLVE_SLOTS 512
#define GX_RESOLVE_QUEUE 64
#define GX_RESOLVE_TTL_OK 60
#define GX_RESOLVE_TTL_FAIL 10

enum { GX_RESOLVE_OK = 0, GX_RESOLVE_PENDING = 1, GX_RESOLVE_FAIL = 2 };

/* name: name_len bytes (1..255, not NUL-terminated). v4only: an IPv4-only socket asks (AF_INET answers
 * only), else the first answer of any family. On GX_RESOLVE_OK *out holds the address, port 0. */
int gx_resolve_lookup(const uint8_t *name, size_t name_len, bool v4only, struct sockaddr_storage *out,
                      socklen_t *out_len);

struct gx_resolve_stats {
    uint64_t lookups, misses, resolved, failed, queue_full;
};
void gx_resolve_get_stats(struct gx_resolve_stats *out);

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
 *     handler on the shared relay engine (gx/proxy.h; the socks5 handler's relay mode).
 */


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
/* The SOCKS5 address at p[0..avail) (ATYP, address, port: the tail of a frame or datagram header): sets
 * f->atyp, host, host_len, port. Returns its size, 0 when incomplete, -EPROTO (unknown ATYP, empty name). */
int gx_socks_addr_parse(const uint8_t *p, size_t avail, struct gx_socks_frame *f);

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
 * resolver, gx/proxy.h: the relay waits for an answer without blocking any thread, an unresolvable
 * name drops the datagram); datagrams received on the udp socket go back as frames carrying their
 * source (any source, as gost's 0xF3 relay mode). Datagrams longer than max_datagram (0 = 65535) are
 * dropped and counted. Buffers are bounded (128 KiB each way): a side that cannot take more stops the
 * other side's reads. No thread per relay: all relays share the engine's threads. */

struct gx_socks_relay;

struct gx_socks_relay_stats {
    uint64_t up_pkts, up_bytes;          /* frames from the stream sent as datagrams */
    uint64_t down_pkts, down_bytes;      /* datagrams sent back as frames */
    uint64_t drop_up, drop_down;         /* refused / unresolvable / too big */
    uint64_t gso_sends, gso_fallbacks;   /* as in gx_udp_fwd_stats (datagrams up, to the UDP socket) */
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
    uint64_t data_frames;    /* of those, data frames (binary, text, continuation) */
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

/* The payload bytes of the current data frame still to come (0 between frames, in a header or a control
 * frame, after the end). Reading in place with out_cap capped at it, each data frame's payload stays
 * where it lies in the input (unmasked frames: no byte copied): see xstream's net -> app direction. */
uint64_t gx_ws_reader_payload_left(const struct gx_ws_reader *r);

/* 1 when the bytes read so far end inside a frame (a partial header, data payload or control frame):
 * the peer's EOF here cuts a frame short. 0 between frames and once the reader is finished. */
int gx_ws_reader_mid_frame(const struct gx_ws_reader *r);

/* xstream: a TLS and/or WebSocket transport stream run in C on the shared relay engine (gx/proxy.h), so
 * the tls / ws / wss / mtls transports move their bytes with no Python per chunk.
 *
 * An xstream owns a connected non-blocking TCP socket (the "net" side) and one end of a unix socketpair
 * (the "app" side). Python keeps the other end of the socketpair as a plain kernel socket: its protocol
 * handshakes (relay, socks5, http; once per flow) read and write it like any socket, and every C consumer
 * that wants an fd (splice, the tun engine, tungo's flows, the 0xF3 relay) takes it unchanged.
 *
 *   net fd <-> [ TLS (OpenSSL's record layer) ] <-> [ WebSocket framing ] <-> app fd
 *
 * Layers, each optional:
 *   TLS       an SSL* over the net fd (SSL_CTX built once per listener / dialer: gx_tls_ctx_new); the
 *             handshake runs non-blocking on the engine thread.
 *   head      (WebSocket upgrade) the HTTP heads stay in Python: net->app bytes are forwarded only up to
 *             and including the first CRLFCRLF (at most GX_XS_HEAD_MAX bytes, else the stream fails),
 *             the rest is held, and app bytes are not read, until gx_xs_ws_start(raw, mode): C sends
 *             `raw` (the server's 101 response) unframed, then frames both directions. The client's
 *             request head is given at creation (gx_xs_cfg.raw) and sent right after the TLS handshake.
 *   WS        RFC 6455 framing: each app read becomes one binary frame (masked with a fresh key from a
 *             client); frames are read by gx_ws_read (above; in place, the client's role or the
 *             server's): any data frame's payload (binary, text, continuation) is stream bytes; a ping is
 *             answered with a pong (one pending pong at most: a newer ping replaces it); a close frame
 *             ends the net->app direction and is answered with a close frame echoing its code (1000
 *             when it had none); the reader's protocol errors (RSV bits, wrong masking, a control frame
 *             over 125 bytes or fragmented, a reserved opcode, broken fragmentation, a bad close frame, a
 *             data frame over GX_XS_WS_FRAME_MAX) send a close frame with its code (1002 / 1007 / 1009),
 *             are counted, and end the stream; so does a net EOF inside a frame (no close frame then).
 *
 * Half-close: an EOF from the app side becomes a WebSocket close frame (WS), a TLS close_notify (TLS)
 * and a TCP FIN; the net->app direction goes on until the peer ends it (close frame, close_notify or
 * FIN), which becomes shutdown(SHUT_WR) on the app side. The stream ends when both directions did, or at
 * the first error; the engine then closes the net and app fds (stop).
 *
 * Join (gx_xs_join): after Python's proxy handshake on the app side, the flow's other end (a TCP socket)
 * takes the app side's place and the relay runs in C alone; the socketpair is drained and closed.
 *
 * Python learns about stage changes from an eventfd (gx_xs_event_fd: the relay conn's done fd, no fd of
 * its own; the stage bits are set before each write, so read the eventfd, then gx_xs_stage): readable
 * after the TLS handshake
 * (GX_XS_UP), after the head was passed to the app side in full (GX_XS_HEAD) and once the engine let go
 * of the stream (GX_XS_ENDED; gx_xs_reason tells why when it failed, e.g. "certificate verify failed:
 * hostname mismatch"). Counters (gx_xs_get_stats) are kept per stream and read once at the end.
 */


#define GX_XS_HEAD_MAX 16384              /* an HTTP head longer than this fails the stream */
#define GX_XS_BUF 65536                   /* per direction */
#define GX_XS_WS_FRAME_MAX (1ULL << 32)   /* a frame announcing more is refused with close 1009 */
#define GX_XS_REASON_MAX 160

/* stage bits (gx_xs_stage) */
#define GX_XS_UP 1u       /* TLS handshake done (at once without TLS) */
#define GX_XS_HEAD 2u     /* head mode: the whole head was written to the app side */
#define GX_XS_ENDED 4u    /* the engine let go: fds closed, counters final */
#define GX_XS_FAILED 8u   /* ended by an error (gx_xs_reason) */
#define GX_XS_JOINED 16u  /* the engine took the join (gx_xs_join): the caller's own ends may close now */

/* gx_xs_ws_start modes */
#define GX_XS_RAW 0       /* no framing: bytes pass through unchanged (e.g. after an HTTP error answer) */
#define GX_XS_WS_CLIENT 1 /* masks what it sends, expects unmasked frames */
#define GX_XS_WS_SERVER 2 /* expects masked frames, sends unmasked */

struct gx_tls_ctx;
struct gx_xs;

struct gx_tls_cfg {
    int server;                /* 1: a server context */
    const char *cert_file;     /* PEM certificate chain (server: required; client: optional client cert) */
    const char *key_file;      /* PEM private key for cert_file */
    const char *ca_file;       /* client: verify the server against it; server: require client certs */
    int verify;                /* client: check the server's chain (against ca_file / default paths) */
    int default_paths;         /* client: also trust the system's default CA store */
    const char *alpn;          /* comma-separated protocol list, or NULL */
};

/* A TLS context (OpenSSL SSL_CTX). 0 or -errno; on failure err holds a one-line reason. */
int gx_tls_ctx_new(struct gx_tls_ctx **out, const struct gx_tls_cfg *cfg, char *err, size_t errlen);
void gx_tls_ctx_free(struct gx_tls_ctx *ctx);   /* streams made with it keep their own reference */

struct gx_xs_cfg {
    struct gx_tls_ctx *tls;    /* NULL: no TLS */
    const char *server_name;   /* client: SNI (NULL: none, e.g. for an IP address) */
    const char *verify_name;   /* client: the host name the certificate must carry (NULL: not checked) */
    int head;                  /* start in head mode (WebSocket upgrade) */
    const uint8_t *raw;        /* sent first, unframed, right after the TLS handshake (client request) */
    size_t raw_len;
};

struct gx_xs_stats {
    uint64_t app_in;           /* payload bytes net -> app */
    uint64_t app_out;          /* payload bytes app -> net */
    uint64_t net_in;           /* bytes read from the net side after TLS (frames, heads) */
    uint64_t net_out;          /* bytes written to the net side before TLS */
    uint64_t frames_in, frames_out;
    uint64_t pings, pings_coalesced;
    uint64_t ws_errors;        /* WebSocket protocol errors (0 or 1: the first one ends the stream) */
    uint64_t tls_failures;     /* handshake failures (0 or 1; the reason says which) */
    uint64_t joined;           /* 1 once the relay runs net <-> peer fd (gx_xs_join) */
};

/* A stream over net_fd and app_fd (both connected, made non-blocking here, owned by the stream from
 * now on: the engine closes them when it lets go; gx_xs_free closes them if it never started). */
int gx_xs_new(struct gx_xs **out, int net_fd, int app_fd, const struct gx_xs_cfg *cfg);
int gx_xs_start(struct gx_xs *x);                  /* attach to the engine */
int gx_xs_event_fd(const struct gx_xs *x);         /* readable at each stage change (the done eventfd) */
uint32_t gx_xs_stage(const struct gx_xs *x);       /* GX_XS_* bits */
/* The failure reason ("" while none); copies at most len-1 bytes. */
void gx_xs_reason(struct gx_xs *x, char *out, size_t len);
/* Any thread, once, in head mode: send raw unframed, then start mode (GX_XS_RAW / _WS_CLIENT / _SERVER).
 * 0, -EINVAL (not in head mode, or started before), -ENOMEM. */
int gx_xs_ws_start(struct gx_xs *x, const uint8_t *raw, size_t raw_len, int mode);
/* Any thread, once, after the head phase: move the relay fully into C. peer_fd (a connected stream
 * socket: the flow's other end) replaces the app side; app_end is the caller's end of the app socketpair
 * (given up, as peer_fd: the stream owns both now). The engine first passes on what still sits in the
 * socketpair, in order (net->app bytes Python did not read go to peer_fd first; app->net bytes Python
 * wrote go to the net before peer_fd's), then relays net <-> peer_fd with the same buffers, backpressure
 * and half-close. 0, -EINVAL (joined before, or still in head mode), -EBADF. Once the engine took the
 * join, GX_XS_JOINED is signalled (and stats.joined is 1): a caller that passed dups closes its own fds
 * then. A stream that ended before the engine took the command closes both fds unused (stats.joined
 * stays 0, no GX_XS_JOINED): the caller that passed dups still holds the socketpair's unread bytes. */
int gx_xs_join(struct gx_xs *x, int app_end, int peer_fd);
/* (gx_xs_ws_start and gx_xs_join reach the engine thread with gx_relay_poke: no fd of their own.) */
void gx_xs_cancel(struct gx_xs *x);                /* any thread, never blocks */
int gx_xs_stop(struct gx_xs *x);                   /* cancel and wait until the engine let go */
int gx_xs_status(struct gx_xs *x);                 /* 0, or the errno the stream ended with */
void gx_xs_get_stats(struct gx_xs *x, struct gx_xs_stats *out);
void gx_xs_free(struct gx_xs *x);                  /* stops first when needed */

/* Head scanning: the length of the head at buf[0..len) including its CRLFCRLF, 0 while incomplete.
 * `from` is where the previous scan of the same (grown) buffer stopped (0 at first); *next gets where
 * the next scan can start. */
size_t gx_xs_head_end(const uint8_t *buf, size_t len, size_t from, size_t *next);

/* Two connected TCP sockets relayed both ways in the kernel with splice(2), as one handler on the shared
 * relay engine (gx/proxy.h): no thread of its own, no byte ever copied to user space, Python called once
 * when the relay starts and once when it ends.
 *
 * Each direction (a -> b, b -> a) owns a pipe: the kernel's default size (64 KiB) at first, grown to
 * pipe_size (default 1 MiB, where the kernel allows) once the direction carries bulk data. The source
 * socket is spliced into the pipe while the pipe is empty, the pipe into the destination socket while it
 * holds bytes; a destination that cannot take more stops that direction's reads until it is writable
 * again (backpressure: memory per relay is bounded by the two pipes). An EOF from a source is passed on
 * as shutdown(SHUT_WR) of the destination once its pipe is drained (half-close). The relay ends by
 * itself when both directions passed their EOF on (status 0), or at the first error
 * (status ECONNRESET, EPIPE, ...).
 */


#define GX_SPLICE_PIPE_DEFAULT (1u << 20)

struct gx_splice_relay;

struct gx_splice_relay_stats {
    uint64_t bytes_ab, bytes_ba; /* bytes read from a (sent to b), from b (sent to a) */
};

/* fd_a, fd_b: connected non-blocking stream sockets, owned by the caller and kept open until the relay
 * is stopped (or its event fd became readable). pipe_size: bytes a busy direction's pipe grows to
 * (0 = GX_SPLICE_PIPE_DEFAULT; the kernel may round it up, or keep its default when it refuses); a size
 * below the kernel's default is set at once (tests). 0 or -errno. */
int gx_splice_relay_new(struct gx_splice_relay **out, int fd_a, int fd_b, size_t pipe_size);
int gx_splice_relay_start(struct gx_splice_relay *r);
/* Readable (eventfd) once the engine let go of the relay: it ended by itself or after a cancel. From then
 * on no thread touches it or its fds. */
int gx_splice_relay_event_fd(const struct gx_splice_relay *r);
/* 0 while running, after both EOFs or after a cancel; else the errno that ended it. */
int gx_splice_relay_status(struct gx_splice_relay *r);
/* 1 once both directions passed their EOF on (the relay finished by itself), else 0. */
int gx_splice_relay_finished(struct gx_splice_relay *r);
void gx_splice_relay_get_stats(struct gx_splice_relay *r, struct gx_splice_relay_stats *out);
void gx_splice_relay_cancel(struct gx_splice_relay *r); /* ask the engine to let go; never blocks */
int gx_splice_relay_stop(struct gx_splice_relay *r);    /* cancel and wait until it let go; idempotent */
void gx_splice_relay_free(struct gx_splice_relay *r);  /* stops first; closes the pipes, not fd_a/fd_b */

/* UDP port forwarding (`gost -L udp://:PORT/TARGET`) in C: one listening UDP socket, one session per
 * client address, every datagram moved by the relay engine (gx/proxy.h) with no Python per datagram.
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
    uint64_t gso_sends;                 /* UDP GSO sendmsg calls (gx_udp_sendmmsg), each a run of datagrams */
    uint64_t gso_fallbacks;             /* sockets whose route refused GSO: they send plainly since */
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
 *                     (gx/proxy.h; without one it is dropped and counted).
 *   GX_UDP_FWD_F3     a stream after a SOCKS5 0xF3 handshake (TCP, or a socketpair end carrying TLS/WS
 *                     bytes): every datagram up becomes the frame LEN(2) + hdr (FRAG ATYP ADDR PORT) +
 *                     data; frames from the stream go back as datagrams (gx/proxy.h); EOF or a
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

/* SOCKS5 UDP ASSOCIATE (RFC 1928 section 7) relayed in C, on the shared relay engine (gx/proxy.h).
 *
 * Datagram from the client, on the association's relay socket:
 *
 *   RSV (2, 0) | FRAG (1) | ATYP (1) | DST.ADDR | DST.PORT (2) | DATA
 *   ATYP 0x01: 4 bytes; 0x04: 16 bytes; 0x03: 1-byte length + name (1..255 bytes).
 *
 * The same layout as GOST's 0xF3 frame header (gx/proxy.h) with RSV where the frame has its length.
 * FRAG != 0 (fragments, which gost does not reassemble either) is dropped.
 *
 * The relay: client datagrams (from the client's IP only, any port: the latest port is where replies
 * go) are sent to their destination from the upstream UDP socket (names through gx/proxy.h: the relay
 * holds the one datagram and stops reading until the answer is in); datagrams arriving on the upstream
 * socket go back to the client with their source in the header. Bad input is dropped and counted, the
 * association lives on. Both fds stay owned by the caller.
 */



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
    uint64_t gso_sends, gso_fallbacks;   /* as in gx_udp_fwd_stats */
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

/* Datagrams <-> frames on a stream, on the relay engine (gx/proxy.h). Two framings:
 *   GX_FRAMES_F3     GOST's SOCKS5 0xF3: LEN(2) + hdr (FRAG ATYP ADDR PORT) + data up, any address down
 *                    (gx/proxy.h): the tungo stack's UDP session through a SOCKS5 hop;
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

#endif /* GX_PROXY_H */
