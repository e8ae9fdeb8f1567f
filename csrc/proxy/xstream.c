/* xstream (gx/proxy.h): TLS + WebSocket transport streams on the shared relay engine.
 *
 * Engine slots: 0 the net fd, 1 the app fd, 2 the peer fd (after a join); ws_start and join come as
 * pokes (gx_relay_poke: ready(GX_RELAY_POKE), no fd). Every event runs
 * pump(): handshake, then both directions until neither makes progress, then the wants are set from
 * what each direction is waiting for (a read that returned EAGAIN, a write that could not finish).
 *
 * net -> app: bytes read from the net side (SSL_read or recv) land in rbuf[rlen..); [rpos, rlen) is not
 *   parsed yet; [dpos, dpos+dlen) is payload ready for the app fd (WebSocket payload is unmasked in
 *   place). Nothing is read while payload waits for the app side (backpressure).
 * app -> net: the app fd is read into wbuf after WS_HDR bytes of room, the frame header goes in front,
 *   the payload is masked in place (client), and [op, op+olen) is written until done; control frames
 *   (pong, close) go out between data frames from ctrl.
 * TLS records go out through a write queue (a BIO of ours, wq): OpenSSL writes each record into it,
 *   and the queue is sent in one send() when it is full and at the end of every pump. Several 16 KiB
 *   records leave in one syscall, one TCP push, one large GSO packet, instead of one per record.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "gx/proxy.h"

enum { SLOT_NET = 0, SLOT_APP = 1, SLOT_PEER = 2 };
#define JOIN_DRAIN_MAX (8u << 20) /* more than any socketpair queue holds */
#define WS_HDR GX_WS_HEADER_MAX
#define CLOSE_NORMAL 1000
#define GATHER_ROOM 16384     /* a TLS record's payload */
#define PUMP_ROUNDS 64         /* rounds of both directions per event (about 4 MiB each way) */
#define WQ_CAP (120u << 10)    /* the TLS write queue: 7 full records; under malloc's mmap threshold */

struct gx_tls_ctx {
    SSL_CTX *ctx;
    _Atomic int refs;   /* the owner's + one per stream made with it */
    uint8_t alpn[256];  /* wire format (server: the list it selects from) */
    unsigned alpn_len;
};

struct gx_xs {
    struct gx_relay_conn conn; /* first: the engine's handle */
    int net_fd, app_fd;
    SSL *ssl;
    struct gx_tls_ctx *tls;    /* a reference (the server's ALPN callback points into it) */
    pthread_mutex_t lock;      /* reason, the pending command */
    _Atomic uint32_t stage;
    char reason[GX_XS_REASON_MAX];
    /* the pending ws_start command (under lock) */
    bool cmd_set;
    int cmd_mode;
    uint8_t *cmd_raw;
    size_t cmd_raw_len;
    bool started;              /* gx_xs_ws_start was called (under lock) */
    int cmd_join_app, cmd_join_peer; /* the pending join (under lock; -1: none) */
    bool join_called;          /* (under lock) */
    bool head_mode;            /* made in head mode (constant) */

    /* engine thread state */
    bool hs_done;
    bool yield;                /* pump hit its round cap */
    uint32_t hs_want;
    bool head;                 /* head mode */
    bool head_found;           /* the head's end is known (dlen / dpos cover it) */
    bool head_told;            /* GX_XS_HEAD was signalled */
    size_t head_scan;
    int ws;                    /* GX_XS_RAW / _WS_CLIENT / _WS_SERVER */
    int err;                   /* the errno to end with once both directions are done */

    /* join: n2a writes to out_fd, a2n reads from in_fd (both app_fd before a join) */
    int out_fd, in_fd, peer_fd;
    bool draining;             /* in_fd is the old app fd: read it to its EOF, then switch to peer_fd */
    uint8_t *jbuf;             /* net->app bytes taken back from the socketpair, sent to peer_fd first */
    size_t jpos, jlen;

    /* net -> app */
    uint8_t *rbuf;
    size_t rpos, rlen, dpos, dlen;
    struct gx_ws_reader wsr;   /* the WebSocket frame reader (set up by ws_start) */
    bool net_eof;              /* no more bytes from the net side (EOF, close frame, close_notify) */
    bool n2a_done;             /* ... and everything was passed on, app side shut down */
    uint32_t rd_want;          /* what the last net read waits for (EPOLLIN, or EPOLLOUT for TLS) */
    bool n2a_need_net, n2a_need_app;

    /* app -> net */
    uint8_t *wbuf;
    const uint8_t *op;
    size_t olen;
    uint8_t *raw;              /* unframed bytes to send first (owned) */
    size_t raw_len;
    bool raw_queued;
    uint8_t ctrl[WS_HDR + 125];
    bool pong_pending;
    uint8_t pong[125];
    size_t pong_len;
    int close_code;            /* a close frame to send (0: none) */
    bool close_sent;
    bool app_eof;
    bool a2n_done;
    bool tls_shut;             /* close_notify sent (or being sent) */
    uint32_t wr_want;
    bool a2n_need_net, a2n_need_app;

    /* TLS records not sent yet: [wq_off, wq_len) of wq (WQ_CAP bytes, allocated while in use) */
    uint8_t *wq;
    size_t wq_off, wq_len;
    bool wq_touched;           /* written to during this pump (an idle stream lets the queue go) */

    struct gx_xs_stats st;
};

/* ---- TLS contexts -------------------------------------------------------------------------------- */

static void ssl_reason(char *out, size_t len, const char *what) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, len, "%s%s%s", what, r ? ": " : "", r ? r : "");
    ERR_clear_error();
}

static int alpn_wire(const char *list, uint8_t *out, unsigned cap, unsigned *len) {
    unsigned n = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k > 0) {
            if (k > 255 || n + 1 + k > cap)
                return -EINVAL;
            out[n++] = (uint8_t)k;
            memcpy(out + n, p, k);
            n += (unsigned)k;
        }
        p += k + (e ? 1 : 0);
    }
    *len = n;
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
    (void)ssl;
    struct gx_tls_ctx *t = arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, t->alpn, t->alpn_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

int gx_tls_ctx_new(struct gx_tls_ctx **out, const struct gx_tls_cfg *cfg, char *err, size_t errlen) {
    *out = NULL;
    if (errlen)
        err[0] = 0;
    struct gx_tls_ctx *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    ERR_clear_error();
    t->ctx = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
    if (!t->ctx) {
        free(t);
        ssl_reason(err, errlen, "tls: cannot make a context");
        return -ENOMEM;
    }
    SSL_CTX *c = t->ctx;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    /* records are read from the socket in bulk (one recv for many records, not two per record) */
    SSL_CTX_set_read_ahead(c, 1);
    /* ... and with room for four full records, one recv takes up to four (OpenSSL's default is one) */
    SSL_CTX_set_default_read_buffer_len(c, 4 * (16384 + 256 + 5));
    if (cfg->server)
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    int rc = -EINVAL;
    if (cfg->cert_file && cfg->cert_file[0]) {
        if (SSL_CTX_use_certificate_chain_file(c, cfg->cert_file) != 1) {
            ssl_reason(err, errlen, "tls: cannot load the certificate");
            goto fail;
        }
        const char *key = cfg->key_file && cfg->key_file[0] ? cfg->key_file : cfg->cert_file;
        if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(c) != 1) {
            ssl_reason(err, errlen, "tls: cannot load the private key");
            goto fail;
        }
    } else if (cfg->server) {
        snprintf(err, errlen, "tls: a server needs a certificate");
        goto fail;
    }
    if (cfg->ca_file && cfg->ca_file[0] && SSL_CTX_load_verify_locations(c, cfg->ca_file, NULL) != 1) {
        ssl_reason(err, errlen, "tls: cannot load the CA file");
        goto fail;
    }
    if (!cfg->server && cfg->default_paths)
        SSL_CTX_set_default_verify_paths(c);
    if (cfg->server)
        SSL_CTX_set_verify(c, cfg->ca_file && cfg->ca_file[0] ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                                              : SSL_VERIFY_NONE, NULL);
    else
        SSL_CTX_set_verify(c, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (cfg->alpn && cfg->alpn[0]) {
        if (alpn_wire(cfg->alpn, t->alpn, sizeof(t->alpn), &t->alpn_len) < 0) {
            snprintf(err, errlen, "tls: ALPN list too long");
            goto fail;
        }
        if (cfg->server)
            SSL_CTX_set_alpn_select_cb(c, alpn_select, t);
        else if (t->alpn_len && SSL_CTX_set_alpn_protos(c, t->alpn, t->alpn_len) != 0) {
            snprintf(err, errlen, "tls: bad ALPN list");
            goto fail;
        }
    }
    atomic_init(&t->refs, 1);
    *out = t;
    return 0;
fail:
    SSL_CTX_free(c);
    free(t);
    return rc;
}

void gx_tls_ctx_free(struct gx_tls_ctx *t) {
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- helpers ------------------------------------------------------------------------------------- */

/* Stage changes go out on the engine's done fd (gx_xs_event_fd): the bits first, then the write, so a
 * reader that reads the eventfd and then the stage never misses one. GX_XS_ENDED is the engine's own
 * write when it let go (gx_xs_stage). */
static void signal_stage(struct gx_xs *x, uint32_t bits) {
    atomic_fetch_or(&x->stage, bits);
    uint64_t one = 1;
    ssize_t w = write(x->conn.done_fd, &one, sizeof(one));
    (void)w;
}

__attribute__((noinline)) static void set_reason(struct gx_xs *x, const char *fmt, const char *detail) {
    pthread_mutex_lock(&x->lock);
    if (!x->reason[0]) {
        /* a longer reason is cut (noinline: gcc cannot see the lengths, no truncation warning) */
        snprintf(x->reason, sizeof(x->reason), fmt, detail ? detail : "");
    }
    pthread_mutex_unlock(&x->lock);
}

static int wq_flush(struct gx_xs *x);

static void fail(struct gx_xs *x, int err) {
    if (x->ssl)
        (void)wq_flush(x); /* a TLS alert OpenSSL queued, if the socket takes it */
    if (!x->err)
        x->err = err;
    atomic_fetch_or(&x->stage, GX_XS_FAILED);
    gx_relay_end(&x->conn, err);
}

size_t gx_xs_head_end(const uint8_t *buf, size_t len, size_t from, size_t *next) {
    size_t i = from > 3 ? from - 3 : 0;
    for (; i + 4 <= len; i++) {
        const uint8_t *p = memchr(buf + i, '\r', len - i);
        if (!p)
            break;
        i = (size_t)(p - buf);
        if (i + 4 <= len && p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
            if (next)
                *next = i + 4;
            return i + 4;
        }
    }
    if (next)
        *next = len;
    return 0;
}

/* ---- the TLS write queue ------------------------------------------------------------------------- */

static int wq_bio_write(BIO *b, const char *data, int len) {
    struct gx_xs *x = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (x->wq_off == x->wq_len)
        x->wq_off = x->wq_len = 0;
    if ((size_t)len > WQ_CAP)
        return -1; /* can never fit (records are 16 KiB): an error, not a retry that would spin */
    if ((size_t)len > WQ_CAP - (x->wq_len - x->wq_off)) {
        BIO_set_retry_write(b); /* full: SSL_ERROR_WANT_WRITE, net_write sends the queue */
        return -1;
    }
    if (!x->wq) {
        x->wq = malloc(WQ_CAP);
        if (!x->wq)
            return -1;
    }
    if ((size_t)len > WQ_CAP - x->wq_len) {
        memmove(x->wq, x->wq + x->wq_off, x->wq_len - x->wq_off);
        x->wq_len -= x->wq_off;
        x->wq_off = 0;
    }
    memcpy(x->wq + x->wq_len, data, (size_t)len);
    x->wq_len += (size_t)len;
    x->wq_touched = true;
    return len;
}

static long wq_bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)num;
    (void)ptr;
    struct gx_xs *x = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: /* the pump sends the queue before it waits */
        return 1;
    case BIO_CTRL_WPENDING:
        return x ? (long)(x->wq_len - x->wq_off) : 0;
    default:
        return 0;
    }
}

static int wq_bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *wq_method;
static pthread_once_t wq_once = PTHREAD_ONCE_INIT;

static void wq_method_init(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gx tls write queue");
    if (m && (BIO_meth_set_write(m, wq_bio_write) != 1 || BIO_meth_set_ctrl(m, wq_bio_ctrl) != 1 ||
              BIO_meth_set_create(m, wq_bio_create) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    wq_method = m;
}

/* Send the queue: 0 when it is empty, -EAGAIN when the socket is full (wait for EPOLLOUT), -errno */
static int wq_flush(struct gx_xs *x) {
    while (x->wq_off < x->wq_len) {
        ssize_t n = send(x->net_fd, x->wq + x->wq_off, x->wq_len - x->wq_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
        x->wq_off += (size_t)n;
    }
    x->wq_off = x->wq_len = 0;
    return 0;
}

static bool wq_pending(const struct gx_xs *x) { return x->wq_off < x->wq_len; }

/* ---- net I/O (TLS or plain) ---------------------------------------------------------------------- */

/* > 0 bytes, 0 EOF, -EAGAIN (want set), or -errno (-EPROTO: a TLS error, reason set) */
/* SSL_get_error needs an empty error queue before the call; it nearly always is, and peeking is cheaper
 * than clearing (which walks all of its slots) on every record */
static void clear_errors(void) {
    if (ERR_peek_error())
        ERR_clear_error();
}

static ssize_t net_read(struct gx_xs *x, uint8_t *buf, size_t len) {
    if (len > (1u << 30))
        len = 1u << 30;
    if (!x->ssl) {
        ssize_t n = recv(x->net_fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            x->rd_want = EPOLLIN;
            return -EAGAIN;
        }
        return errno == EINTR ? -EAGAIN : -errno;
    }
    clear_errors();
    int n = SSL_read(x->ssl, buf, (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(x->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        x->rd_want = EPOLLIN;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        x->rd_want = EPOLLOUT;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || errno == EAGAIN)
            return 0;
        return -errno;
    default: {
        char r[GX_XS_REASON_MAX];
        ssl_reason(r, sizeof(r), "tls");
        set_reason(x, "%s", r);
        return -EPROTO;
    }
    }
}

static ssize_t net_write(struct gx_xs *x, const uint8_t *buf, size_t len) {
    if (len > (1u << 30))
        len = 1u << 30;
    if (!x->ssl) {
        ssize_t n = send(x->net_fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            x->wr_want = EPOLLOUT;
            return -EAGAIN;
        }
        return -errno;
    }
    clear_errors();
    int n = SSL_write(x->ssl, buf, (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(x->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE && wq_pending(x)) { /* the queue is full: send it, then once more */
        int rc = wq_flush(x);
        if (rc < 0 && rc != -EAGAIN)
            return rc;
        if (rc == 0) {
            ERR_clear_error();
            n = SSL_write(x->ssl, buf, (int)len);
            if (n > 0)
                return n;
            e = SSL_get_error(x->ssl, n);
        }
    }
    switch (e) {
    case SSL_ERROR_WANT_WRITE:
        x->wr_want = EPOLLOUT;
        return -EAGAIN;
    case SSL_ERROR_WANT_READ:
        x->wr_want = EPOLLIN;
        return -EAGAIN;
    case SSL_ERROR_SYSCALL:
        return errno ? -errno : -EPIPE;
    default: {
        char r[GX_XS_REASON_MAX];
        ssl_reason(r, sizeof(r), "tls");
        set_reason(x, "%s", r);
        return -EPROTO;
    }
    }
}

/* ---- the TLS handshake --------------------------------------------------------------------------- */

static void handshake_reason(struct gx_xs *x) {
    long v = SSL_get_verify_result(x->ssl);
    char r[GX_XS_REASON_MAX];
    if (v != X509_V_OK) {
        snprintf(r, sizeof(r), "certificate verify failed: %s", X509_verify_cert_error_string(v));
        for (char *p = r; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        ERR_clear_error();
    } else {
        unsigned long e = ERR_peek_last_error();
        const char *s = e ? ERR_reason_error_string(e) : NULL;
        snprintf(r, sizeof(r), "%s", s ? s : "connection closed during the TLS handshake");
        ERR_clear_error();
    }
    set_reason(x, "tls handshake: %s", r);
}

static void queue_raw(struct gx_xs *x) {
    if (x->raw && !x->raw_queued) {
        x->raw_queued = true;
    }
}

/* 1 done, 0 in progress, -1 failed (ended) */
static int handshake(struct gx_xs *x) {
    ERR_clear_error();
    int rc = SSL_do_handshake(x->ssl);
    if (rc == 1) {
        x->hs_done = true;
        x->hs_want = 0;
        queue_raw(x);
        signal_stage(x, GX_XS_UP);
        return 1;
    }
    int e = SSL_get_error(x->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        x->hs_want = EPOLLIN;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        x->hs_want = EPOLLOUT;
        return 0;
    }
    x->st.tls_failures++;
    handshake_reason(x);
    fail(x, e == SSL_ERROR_SYSCALL && errno ? errno : EPROTO);
    return -1;
}

/* ---- WebSocket: net -> app ----------------------------------------------------------------------- */

static void ws_protocol_error(struct gx_xs *x, const char *why, int code) {
    x->st.ws_errors++;
    set_reason(x, "websocket: %s", why);
    if (!x->err)
        x->err = EPROTO;
    atomic_fetch_or(&x->stage, GX_XS_FAILED);
    if (!x->close_code && !x->close_sent)
        x->close_code = code;
    x->net_eof = true;
    x->rpos = x->rlen = 0;
}

/* Read the buffered frames with gx_ws_read (ws.c), in place: data payload becomes [dpos, dpos+dlen) for
 * the app side, a ping a pending pong, a close frame the net side's end, a protocol error the stream's.
 * true on progress; false when more net bytes are needed (the reader keeps a partial header or control
 * frame itself). */
static bool ws_read(struct gx_xs *x) {
    size_t avail = x->rlen - x->rpos;
    if (!avail)
        return false;
    uint8_t *p = x->rbuf + x->rpos;
    size_t cap = avail;
    if (x->ws == GX_XS_WS_CLIENT) {
        /* unmasked payload: capped at the current frame, it stays where it lies (no copy; a server's
         * masked payload costs one pass anyway, so its frames are joined into one app write) */
        uint64_t left = gx_ws_reader_payload_left(&x->wsr);
        if (left < cap)
            cap = (size_t)left;
    }
    struct gx_ws_event ev;
    long used = gx_ws_read(&x->wsr, p, avail, p, cap, &ev);
    if (used < 0) { /* finished: cannot happen (its close or error emptied rbuf and ended the reads) */
        x->rpos = x->rlen = 0;
        return false;
    }
    x->rpos += (size_t)used;
    x->st.frames_in = x->wsr.stats.data_frames;
    if (ev.out_len) {
        x->dpos = (size_t)(p - x->rbuf);
        x->dlen = ev.out_len;
    }
    switch (ev.type) {
    case GX_WS_EV_PING:
        x->st.pings++;
        if (x->pong_pending)
            x->st.pings_coalesced++;
        memcpy(x->pong, ev.payload, ev.payload_len);
        x->pong_len = ev.payload_len;
        x->pong_pending = true;
        break;
    case GX_WS_EV_CLOSE:
        x->net_eof = true;
        if (!x->close_code && !x->close_sent) /* echo the peer's code (1005 is never sent) */
            x->close_code = ev.code == GX_WS_CLOSE_NO_STATUS ? CLOSE_NORMAL : ev.code;
        x->rpos = x->rlen = 0;
        break;
    case GX_WS_EV_ERROR:
        ws_protocol_error(x, ev.error, ev.code);
        break;
    default:
        break;
    }
    return used > 0 || ev.out_len > 0 || ev.type != GX_WS_EV_NONE;
}

/* ---- the two directions -------------------------------------------------------------------------- */

/* One send toward the app side: bytes sent; -EAGAIN (the app side is full: wait for it), -EINTR (try
 * again), or another -errno after the stream was failed with it. */
static ssize_t app_send(struct gx_xs *x, const uint8_t *p, size_t len) {
    ssize_t n = send(x->out_fd, p, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    int e = errno == EWOULDBLOCK ? EAGAIN : errno;
    if (e == EAGAIN)
        x->n2a_need_app = true;
    else if (e != EINTR)
        fail(x, e);
    return -e;
}

static bool flow_n2a(struct gx_xs *x) {
    bool progress = false;
    for (int guard = 0; guard < 64 && !x->conn.ended && !x->n2a_done; guard++) {
        if (x->jlen) {
            ssize_t n = app_send(x, x->jbuf + x->jpos, x->jlen);
            if (n == -EINTR)
                continue;
            if (n < 0)
                return n == -EAGAIN ? progress : true;
            x->jpos += (size_t)n;
            x->jlen -= (size_t)n;
            if (!x->jlen) {
                free(x->jbuf);
                x->jbuf = NULL;
            }
            progress = true;
            continue;
        }
        if (x->dlen) {
            ssize_t n = app_send(x, x->rbuf + x->dpos, x->dlen);
            if (n == -EINTR)
                continue;
            if (n < 0)
                return n == -EAGAIN ? progress : true;
            x->dpos += (size_t)n;
            x->dlen -= (size_t)n;
            if (!x->head)
                x->st.app_in += (uint64_t)n;
            progress = true;
            continue;
        }
        if (x->head) {
            if (x->head_found) {
                if (!x->head_told) {
                    x->head_told = true;
                    signal_stage(x, GX_XS_HEAD);
                    progress = true;
                }
                return progress; /* hold the rest until ws_start */
            }
            size_t end = gx_xs_head_end(x->rbuf, x->rlen, x->head_scan, &x->head_scan);
            if (end) {
                x->head_found = true;
                x->dpos = 0;
                x->dlen = end;
                x->rpos = end;
                progress = true;
                continue;
            }
            if (x->rlen >= GX_XS_HEAD_MAX) {
                set_reason(x, "http head over %s bytes", "16384");
                fail(x, EMSGSIZE);
                return true;
            }
        } else if (x->ws) {
            if (ws_read(x)) {
                progress = true;
                continue;
            }
            if (x->rpos == x->rlen) /* all read: the reader keeps a partial header or control frame */
                x->rpos = x->rlen = 0;
        } else if (x->rpos < x->rlen) {
            x->dpos = x->rpos;
            x->dlen = x->rlen - x->rpos;
            x->rpos = x->rlen = 0;
            progress = true;
            continue;
        } else {
            x->rpos = x->rlen = 0;
        }
        if (x->net_eof) {
            if (x->head && !x->head_found)
                x->head = false; /* pass on what came; Python sees the EOF in the head */
            if (x->ws && gx_ws_reader_mid_frame(&x->wsr)) {
                x->st.ws_errors++;
                set_reason(x, "websocket: %s", "connection closed inside a frame");
                if (!x->err)
                    x->err = EPROTO;
            }
            shutdown(x->out_fd, SHUT_WR);
            x->n2a_done = true;
            return true;
        }
        size_t room = (x->head ? GX_XS_HEAD_MAX : GX_XS_BUF) - x->rlen;
        if (room == 0) /* a control frame cannot be longer than this buffer: this is a bug guard */
            return progress;
        ssize_t n = net_read(x, x->rbuf + x->rlen, room);
        if (n == -EAGAIN) {
            x->n2a_need_net = true;
            return progress;
        }
        if (n < 0) {
            fail(x, (int)-n);
            return true;
        }
        progress = true;
        if (n == 0) {
            x->net_eof = true;
            continue;
        }
        x->rlen += (size_t)n;
        x->st.net_in += (uint64_t)n;
        /* TLS hands out one record per read: gather the records already here into one app write */
        size_t cap = x->head ? GX_XS_HEAD_MAX : GX_XS_BUF;
        while (x->ssl && !x->head && x->rlen + GATHER_ROOM <= cap) {
            n = net_read(x, x->rbuf + x->rlen, cap - x->rlen);
            if (n == -EAGAIN)
                break; /* the next round reads again and asks epoll */
            if (n < 0) {
                fail(x, (int)-n);
                return true;
            }
            if (n == 0) {
                x->net_eof = true;
                break;
            }
            x->rlen += (size_t)n;
            x->st.net_in += (uint64_t)n;
        }
    }
    return progress;
}

/* A WebSocket masking key from a per-thread pool of RAND_bytes (one call per 256 keys: OpenSSL's DRBG
 * makes a getpid() syscall per call, once per frame otherwise). RFC 6455 wants keys a peer cannot
 * predict; they come from the same DRBG (and each is sent in the clear in its frame's header). */
static void mask_key(uint8_t key[4]) {
    static _Thread_local uint8_t pool[1024];
    static _Thread_local size_t used = sizeof(pool);
    if (used == sizeof(pool)) {
        if (RAND_bytes(pool, sizeof(pool)) != 1) { /* no entropy now: this key alone, as before */
            RAND_bytes(key, 4);
            return;
        }
        used = 0;
    }
    memcpy(key, pool + used, 4);
    used += 4;
}

static void build_control(struct gx_xs *x, uint8_t opcode, const uint8_t *payload, size_t len) {
    uint8_t key[4];
    const uint8_t *k = NULL;
    if (x->ws == GX_XS_WS_CLIENT) {
        mask_key(key);
        k = key;
    }
    int h = gx_ws_header(x->ctrl, opcode, 1, len, k);
    if (k)
        gx_ws_mask_copy(x->ctrl + h, payload, len, k, 0);
    else if (len)
        memcpy(x->ctrl + h, payload, len);
    x->op = x->ctrl;
    x->olen = (size_t)h + len;
    x->st.frames_out++;
}

static bool flow_a2n(struct gx_xs *x) {
    bool progress = false;
    for (int guard = 0; guard < 64 && !x->conn.ended && !x->a2n_done; guard++) {
        if (x->olen) {
            ssize_t n = net_write(x, x->op, x->olen);
            if (n == -EAGAIN) {
                x->a2n_need_net = true;
                return progress;
            }
            if (n < 0) {
                fail(x, (int)-n);
                return true;
            }
            x->op += n;
            x->olen -= (size_t)n;
            x->st.net_out += (uint64_t)n;
            progress = true;
            continue;
        }
        if (x->raw_queued && x->raw) {
            x->op = x->raw;
            x->olen = x->raw_len;
            x->raw_queued = false;
            x->raw_len = 0;
            continue;
        }
        if (x->ws && x->close_code && !x->close_sent) {
            uint8_t code[2] = {(uint8_t)(x->close_code >> 8), (uint8_t)x->close_code};
            build_control(x, GX_WS_OP_CLOSE, code, 2);
            x->close_sent = true;
            progress = true;
            continue;
        }
        if (x->ws && x->pong_pending && !x->close_sent) {
            x->pong_pending = false;
            build_control(x, GX_WS_OP_PONG, x->pong, x->pong_len);
            progress = true;
            continue;
        }
        if (x->head)
            return progress; /* app bytes wait for ws_start */
        if (!x->app_eof && !x->close_sent) {
            uint8_t *payload = x->wbuf + WS_HDR;
            ssize_t n = recv(x->in_fd, payload, GX_XS_BUF - WS_HDR, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    x->a2n_need_app = true;
                    return progress;
                }
                if (errno == EINTR)
                    continue;
                fail(x, errno);
                return true;
            }
            progress = true;
            if (n == 0 && x->draining) { /* the socketpair is empty and closed: the peer fd takes over */
                gx_relay_unwatch_fd(&x->conn, SLOT_APP);
                close(x->app_fd);
                x->app_fd = -1;
                x->in_fd = x->peer_fd;
                x->draining = false;
                continue;
            }
            if (n == 0) {
                x->app_eof = true;
                if (x->ws && !x->close_code)
                    x->close_code = CLOSE_NORMAL;
                continue;
            }
            x->st.app_out += (uint64_t)n;
            if (x->ws) {
                uint8_t key[4];
                const uint8_t *k = NULL;
                if (x->ws == GX_XS_WS_CLIENT) {
                    mask_key(key);
                    k = key;
                    gx_ws_mask_copy(payload, payload, (size_t)n, key, 0);
                }
                uint8_t hdr[WS_HDR];
                int h = gx_ws_header(hdr, GX_WS_OP_BINARY, 1, (uint64_t)n, k);
                memcpy(payload - h, hdr, (size_t)h);
                x->op = payload - h;
                x->olen = (size_t)n + (size_t)h;
                x->st.frames_out++;
            } else {
                x->op = payload;
                x->olen = (size_t)n;
            }
            continue;
        }
        /* no more app data: close_notify, then FIN */
        if (x->ssl && !x->tls_shut) {
            ERR_clear_error();
            int rc = SSL_shutdown(x->ssl);
            if (rc < 0) {
                int e = SSL_get_error(x->ssl, rc);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    x->wr_want = e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN;
                    x->a2n_need_net = true;
                    return progress;
                }
                ERR_clear_error(); /* the peer is gone: the FIN below is all we can do */
            }
            x->tls_shut = true;
        }
        if (x->ssl) { /* the queued records and the close_notify go before the FIN */
            int rc = wq_flush(x);
            if (rc == -EAGAIN) {
                x->wr_want = EPOLLOUT;
                x->a2n_need_net = true;
                return progress;
            }
        }
        shutdown(x->net_fd, SHUT_WR);
        x->a2n_done = true;
        return true;
    }
    return progress;
}

/* ---- engine callbacks ---------------------------------------------------------------------------- */

static void take_join(struct gx_xs *x, int app_end, int peer) {
    if (x->head || x->peer_fd >= 0) { /* gx_xs_join refused both already: a guard */
        close(app_end);
        close(peer);
        return;
    }
    /* what C wrote to the app side and Python did not read: it goes to the peer first */
    size_t cap = 0;
    for (;;) {
        if (x->jlen == cap) {
            if (cap >= JOIN_DRAIN_MAX)
                break;
            size_t ncap = cap ? cap * 2 : 65536;
            uint8_t *nb = realloc(x->jbuf, ncap);
            if (!nb)
                break;
            x->jbuf = nb;
            cap = ncap;
        }
        ssize_t n = recv(app_end, x->jbuf + x->jlen, cap - x->jlen, MSG_DONTWAIT);
        if (n <= 0)
            break;
        x->jlen += (size_t)n;
    }
    x->jpos = 0;
    /* the app fd now reads what Python wrote, then EOF (a shutdown: the caller may hold a dup) */
    shutdown(app_end, SHUT_WR);
    close(app_end);
    x->peer_fd = peer;
    if (gx_relay_watch_fd(&x->conn, SLOT_PEER, peer) < 0) {
        fail(x, EBADF);
        return;
    }
    x->out_fd = peer;
    x->draining = !x->app_eof;
    if (x->app_eof) { /* nothing more to read from the socketpair: its last fd goes now */
        x->in_fd = peer;
        gx_relay_unwatch_fd(&x->conn, SLOT_APP);
        close(x->app_fd);
        x->app_fd = -1;
    }
    x->st.joined = 1;
    signal_stage(x, GX_XS_JOINED); /* the caller's own ends of the socketpair and the peer may close */
    if (x->n2a_done) { /* the app side had its EOF already: pass it on after the drained bytes */
        x->n2a_done = false;
        x->net_eof = true;
    }
}

static void take_command(struct gx_xs *x) {
    pthread_mutex_lock(&x->lock);
    int join_app = x->cmd_join_app, join_peer = x->cmd_join_peer;
    x->cmd_join_app = x->cmd_join_peer = -1;
    pthread_mutex_unlock(&x->lock);
    if (join_app >= 0)
        take_join(x, join_app, join_peer);
    pthread_mutex_lock(&x->lock);
    bool set = x->cmd_set;
    x->cmd_set = false;
    uint8_t *raw = x->cmd_raw;
    size_t raw_len = x->cmd_raw_len;
    int mode = x->cmd_mode;
    x->cmd_raw = NULL;
    pthread_mutex_unlock(&x->lock);
    if (!set || !x->head)
        return;
    if (!x->head_found || x->dlen) {
        free(raw);
        set_reason(x, "%s", "websocket start before the head was read");
        fail(x, EINVAL);
        return;
    }
    x->head = false;
    x->ws = mode;
    if (mode != GX_XS_RAW)
        gx_ws_reader_init(&x->wsr, mode == GX_XS_WS_SERVER ? GX_WS_ROLE_SERVER : GX_WS_ROLE_CLIENT,
                          GX_XS_WS_FRAME_MAX);
    free(x->raw);
    x->raw = raw;
    x->raw_len = raw_len;
    x->raw_queued = raw != NULL && raw_len > 0;
    /* the held bytes follow the head: parse them from rpos (head mode read at most GX_XS_HEAD_MAX) */
}

static void set_wants(struct gx_xs *x) {
    uint32_t net = 0, app = 0;
    if (!x->hs_done) {
        net = x->hs_want;
    } else {
        if (x->n2a_need_net)
            net |= x->rd_want;
        if (x->a2n_need_net)
            net |= x->wr_want;
    }
    uint32_t peer = 0;
    if (x->hs_done) {
        uint32_t *out = x->out_fd == x->app_fd ? &app : &peer;
        uint32_t *in = x->in_fd == x->app_fd ? &app : &peer;
        if (x->n2a_need_app)
            *out |= EPOLLOUT;
        if (x->a2n_need_app)
            *in |= EPOLLIN;
    }
    /* pump stopped at its round cap with work left (bytes OpenSSL holds wake no epoll): a writable
     * net fd brings the next round at once, after the other relays of this thread had theirs */
    if (x->yield || wq_pending(x))
        net |= EPOLLOUT;
    gx_relay_want(&x->conn, SLOT_NET, net);
    if (x->app_fd >= 0)
        gx_relay_want(&x->conn, SLOT_APP, app);
    if (x->peer_fd >= 0)
        gx_relay_want(&x->conn, SLOT_PEER, peer);
}

static void pump(struct gx_xs *x) {
    x->wq_touched = false;
    x->n2a_need_net = x->n2a_need_app = x->a2n_need_net = x->a2n_need_app = false;
    x->yield = false;
    for (int round = 0; !x->conn.ended; round++) {
        if (round == PUMP_ROUNDS) {
            x->yield = true;
            break;
        }
        if (!x->hs_done) {
            int h = handshake(x);
            if (h <= 0)
                break;
        }
        x->n2a_need_net = x->n2a_need_app = x->a2n_need_net = x->a2n_need_app = false;
        bool p = flow_n2a(x);
        p |= flow_a2n(x);
        if (!p)
            break;
    }
    if (x->ssl && !x->conn.ended && wq_pending(x)) {
        int rc = wq_flush(x);
        if (rc < 0 && rc != -EAGAIN)
            fail(x, -rc);
    }
    if (x->wq && !wq_pending(x) && !x->wq_touched) { /* idle: 120 KiB less per held connection */
        free(x->wq);
        x->wq = NULL;
    }
    if (x->conn.ended)
        return;
    if (x->n2a_done && x->a2n_done) {
        if (x->err)
            atomic_fetch_or(&x->stage, GX_XS_FAILED);
        gx_relay_end(&x->conn, x->err);
        return;
    }
    set_wants(x);
}

static int xs_start(struct gx_relay_conn *c) {
    struct gx_xs *x = (struct gx_xs *)c;
    int rc = gx_relay_watch_fd(c, SLOT_NET, x->net_fd);
    if (rc == 0)
        rc = gx_relay_watch_fd(c, SLOT_APP, x->app_fd);
    if (rc < 0)
        return rc;
    if (!x->ssl) {
        x->hs_done = true;
        queue_raw(x);
        signal_stage(x, GX_XS_UP);
    }
    pump(x);
    /* a ws_start or join that came before the attach (its poke found no engine thread): take it now */
    pthread_mutex_lock(&x->lock);
    bool pending = x->cmd_set || x->cmd_join_app >= 0;
    pthread_mutex_unlock(&x->lock);
    if (pending && !c->ended)
        gx_relay_poke(c);
    return 0;
}

static void xs_ready(struct gx_relay_conn *c, int slot, uint32_t events) {
    struct gx_xs *x = (struct gx_xs *)c;
    (void)events;
    if (slot == GX_RELAY_POKE)
        take_command(x);
    if (x->conn.ended)
        return;
    pump(x);
}

static void xs_stop(struct gx_relay_conn *c) {
    struct gx_xs *x = (struct gx_xs *)c;
    if (x->ssl) {
        SSL_free(x->ssl);
        x->ssl = NULL;
    }
    if (x->net_fd >= 0)
        close(x->net_fd);
    if (x->app_fd >= 0)
        close(x->app_fd);
    if (x->peer_fd >= 0)
        close(x->peer_fd);
    x->net_fd = x->app_fd = x->peer_fd = -1;
    pthread_mutex_lock(&x->lock); /* a join that came too late: its fds are ours to close */
    if (x->cmd_join_app >= 0) {
        close(x->cmd_join_app);
        close(x->cmd_join_peer);
        x->cmd_join_app = x->cmd_join_peer = -1;
    }
    pthread_mutex_unlock(&x->lock);
    int st = atomic_load(&c->status);
    if (st && !(atomic_load(&x->stage) & GX_XS_FAILED) && !atomic_load(&c->cancel))
        atomic_fetch_or(&x->stage, GX_XS_FAILED);
    if (st && !x->reason[0] && !atomic_load(&c->cancel))
        set_reason(x, "%s", strerror(st));
    if (!st && x->err)
        atomic_store(&c->status, x->err);
    /* no signal here: GX_XS_ENDED is the engine's DONE state, set and written to the done fd after this */
}

static const struct gx_relay_ops XS_OPS = {.start = xs_start, .ready = xs_ready, .stop = xs_stop};

/* ---- public API ---------------------------------------------------------------------------------- */

static int nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int gx_xs_new(struct gx_xs **out, int net_fd, int app_fd, const struct gx_xs_cfg *cfg) {
    *out = NULL;
    if (net_fd < 0 || app_fd < 0)
        return -EBADF;
    int rc = nonblock(net_fd);
    if (rc == 0)
        rc = nonblock(app_fd);
    if (rc < 0)
        return rc;
    /* records and frames go out whole: Nagle would hold each one's last segment for an ACK */
    int one = 1;
    (void)setsockopt(net_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* not TCP: nothing to do */
    struct gx_xs *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->net_fd = net_fd;
    x->app_fd = x->out_fd = x->in_fd = app_fd;
    x->peer_fd = x->cmd_join_app = x->cmd_join_peer = -1;
    pthread_mutex_init(&x->lock, NULL);
    atomic_init(&x->stage, 0);
    rc = gx_relay_conn_init(&x->conn, &XS_OPS);
    if (rc < 0)
        goto fail;
    x->rbuf = malloc(GX_XS_BUF);
    x->wbuf = malloc(GX_XS_BUF);
    if (!x->rbuf || !x->wbuf) {
        rc = -ENOMEM;
        goto fail;
    }
    x->head = x->head_mode = cfg->head != 0;
    if (cfg->raw && cfg->raw_len) {
        x->raw = malloc(cfg->raw_len);
        if (!x->raw) {
            rc = -ENOMEM;
            goto fail;
        }
        memcpy(x->raw, cfg->raw, cfg->raw_len);
        x->raw_len = cfg->raw_len;
    }
    if (cfg->tls) {
        atomic_fetch_add(&cfg->tls->refs, 1);
        x->tls = cfg->tls;
        ERR_clear_error();
        x->ssl = SSL_new(cfg->tls->ctx);
        pthread_once(&wq_once, wq_method_init);
        BIO *wq = wq_method ? BIO_new(wq_method) : NULL;
        if (wq)
            BIO_set_data(wq, x);
        if (!x->ssl || !wq || SSL_set_rfd(x->ssl, net_fd) != 1) {
            BIO_free(wq);
            rc = -ENOMEM;
            goto fail;
        }
        SSL_set0_wbio(x->ssl, wq); /* the SSL owns it now */
        if (SSL_is_server(x->ssl)) {
            SSL_set_accept_state(x->ssl);
        } else {
            SSL_set_connect_state(x->ssl);
            if (cfg->server_name && cfg->server_name[0] && SSL_set_tlsext_host_name(x->ssl, cfg->server_name) != 1) {
                rc = -EINVAL;
                goto fail;
            }
            if (cfg->verify_name && cfg->verify_name[0]) {
                SSL_set_verify(x->ssl, SSL_VERIFY_PEER, NULL);
                X509_VERIFY_PARAM *vp = SSL_get0_param(x->ssl);
                /* an IP address is checked against the certificate's IP SANs, a name against its DNS names */
                int ok = X509_VERIFY_PARAM_set1_ip_asc(vp, cfg->verify_name) == 1 ||
                         SSL_set1_host(x->ssl, cfg->verify_name) == 1;
                if (!ok) {
                    rc = -EINVAL;
                    goto fail;
                }
            }
        }
        ERR_clear_error();
    }
    *out = x;
    return 0;
fail:
    ERR_clear_error();
    x->net_fd = x->app_fd = -1; /* the caller keeps its fds on failure */
    gx_xs_free(x);
    return rc;
}

int gx_xs_start(struct gx_xs *x) { return gx_relay_attach(&x->conn); }

int gx_xs_event_fd(const struct gx_xs *x) { return x->conn.done_fd; }

uint32_t gx_xs_stage(const struct gx_xs *x) {
    struct gx_xs *m = (struct gx_xs *)x;
    /* ENDED exactly when the engine let go: DONE is set before the engine writes the done fd. The state
     * is read first: the bits xs_stop set (FAILED) are in by the time DONE is. */
    uint32_t ended = atomic_load(&m->conn.state) == GX_RELAY_DONE ? GX_XS_ENDED : 0;
    return atomic_load(&m->stage) | ended;
}

void gx_xs_reason(struct gx_xs *x, char *out, size_t len) {
    if (!len)
        return;
    pthread_mutex_lock(&x->lock);
    snprintf(out, len, "%s", x->reason);
    pthread_mutex_unlock(&x->lock);
}

int gx_xs_join(struct gx_xs *x, int app_end, int peer_fd) {
    if (app_end < 0 || peer_fd < 0)
        return -EBADF;
    pthread_mutex_lock(&x->lock);
    bool head_open = x->head_mode && !x->started;
    if (x->join_called || head_open) {
        pthread_mutex_unlock(&x->lock);
        return -EINVAL;
    }
    int rc = nonblock(peer_fd);
    if (rc < 0) {
        pthread_mutex_unlock(&x->lock);
        return rc;
    }
    x->join_called = true;
    x->cmd_join_app = app_end;
    x->cmd_join_peer = peer_fd;
    pthread_mutex_unlock(&x->lock);
    gx_relay_poke(&x->conn);
    return 0;
}

int gx_xs_ws_start(struct gx_xs *x, const uint8_t *raw, size_t raw_len, int mode) {
    if (!x->head_mode || mode < GX_XS_RAW || mode > GX_XS_WS_SERVER)
        return -EINVAL;
    uint8_t *copy = NULL;
    if (raw_len) {
        copy = malloc(raw_len);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, raw, raw_len);
    }
    pthread_mutex_lock(&x->lock);
    if (x->started) {
        pthread_mutex_unlock(&x->lock);
        free(copy);
        return -EINVAL;
    }
    x->started = true;
    x->cmd_set = true;
    x->cmd_mode = mode;
    x->cmd_raw = copy;
    x->cmd_raw_len = raw_len;
    pthread_mutex_unlock(&x->lock);
    gx_relay_poke(&x->conn);
    return 0;
}

void gx_xs_cancel(struct gx_xs *x) { gx_relay_cancel(&x->conn); }

int gx_xs_stop(struct gx_xs *x) {
    return gx_relay_stop(&x->conn);
}

int gx_xs_status(struct gx_xs *x) { return atomic_load(&x->conn.status); }

void gx_xs_get_stats(struct gx_xs *x, struct gx_xs_stats *out) { *out = x->st; }

void gx_xs_free(struct gx_xs *x) {
    if (!x)
        return;
    if (x->conn.thread != NULL)
        gx_xs_stop(x);
    if (x->ssl)
        SSL_free(x->ssl);
    gx_tls_ctx_free(x->tls);
    if (x->net_fd >= 0)
        close(x->net_fd);
    if (x->app_fd >= 0)
        close(x->app_fd);
    gx_relay_conn_release(&x->conn);
    pthread_mutex_destroy(&x->lock);
    if (x->cmd_join_app >= 0) {
        close(x->cmd_join_app);
        close(x->cmd_join_peer);
    }
    free(x->jbuf);
    free(x->cmd_raw);
    free(x->raw);
    free(x->rbuf);
    free(x->wbuf);
    free(x->wq);
    free(x);
}
