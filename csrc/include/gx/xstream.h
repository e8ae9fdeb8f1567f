/* xstream: a TLS and/or WebSocket transport stream run in C on the shared relay engine (gx/relay.h), so
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
 *             client); any data frame's payload (binary, text, continuation) is stream bytes; a ping is
 *             answered with a pong (one pending pong at most: a newer ping replaces it); a close frame
 *             ends the net->app direction and is answered with a close frame; protocol errors (RSV
 *             bits, wrong masking, a control frame over 125 bytes or fragmented, unknown opcode, a frame
 *             over GX_XS_WS_FRAME_MAX) send a close frame 1002 / 1009, are counted, and end the stream.
 *
 * Half-close: an EOF from the app side becomes a WebSocket close frame (WS), a TLS close_notify (TLS)
 * and a TCP FIN; the net->app direction goes on until the peer ends it (close frame, close_notify or
 * FIN), which becomes shutdown(SHUT_WR) on the app side. The stream ends when both directions did, or at
 * the first error; the engine then closes the net and app fds (stop).
 *
 * Join (gx_xs_join): after Python's proxy handshake on the app side, the flow's other end (a TCP socket)
 * takes the app side's place and the relay runs in C alone; the socketpair is drained and closed.
 *
 * Python learns about stage changes from an eventfd (gx_xs_event_fd): readable after the TLS handshake
 * (GX_XS_UP), after the head was passed to the app side in full (GX_XS_HEAD) and once the engine let go
 * of the stream (GX_XS_ENDED; gx_xs_reason tells why when it failed, e.g. "certificate verify failed:
 * hostname mismatch"). Counters (gx_xs_get_stats) are kept per stream and read once at the end.
 */
#ifndef GX_XSTREAM_H
#define GX_XSTREAM_H

#include <stddef.h>
#include <stdint.h>

#define GX_XS_HEAD_MAX 16384              /* an HTTP head longer than this fails the stream */
#define GX_XS_BUF 65536                   /* per direction */
#define GX_XS_WS_FRAME_MAX (1ULL << 32)   /* a frame announcing more is refused with close 1009 */
#define GX_XS_REASON_MAX 160

/* stage bits (gx_xs_stage) */
#define GX_XS_UP 1u       /* TLS handshake done (at once without TLS) */
#define GX_XS_HEAD 2u     /* head mode: the whole head was written to the app side */
#define GX_XS_ENDED 4u    /* the engine let go: fds closed, counters final */
#define GX_XS_FAILED 8u   /* ended by an error (gx_xs_reason) */

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
int gx_xs_event_fd(const struct gx_xs *x);         /* readable at each stage change (eventfd counter) */
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
 * and half-close. 0, -EINVAL (joined before, or still in head mode), -EBADF. A stream that ended before
 * the engine took the command closes both fds unused (stats.joined stays 0): the caller that passed
 * dups still holds the socketpair's unread bytes. */
int gx_xs_join(struct gx_xs *x, int app_end, int peer_fd);
void gx_xs_cancel(struct gx_xs *x);                /* any thread, never blocks */
int gx_xs_stop(struct gx_xs *x);                   /* cancel and wait until the engine let go */
int gx_xs_status(struct gx_xs *x);                 /* 0, or the errno the stream ended with */
void gx_xs_get_stats(struct gx_xs *x, struct gx_xs_stats *out);
void gx_xs_free(struct gx_xs *x);                  /* stops first when needed */

/* Head scanning: the length of the head at buf[0..len) including its CRLFCRLF, 0 while incomplete.
 * `from` is where the previous scan of the same (grown) buffer stopped (0 at first); *next gets where
 * the next scan can start. */
size_t gx_xs_head_end(const uint8_t *buf, size_t len, size_t from, size_t *next);

#endif
