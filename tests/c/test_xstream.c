/* xstream (gx/proxy.h): TLS and WebSocket transport streams on the relay engine, over loopback TCP.
 * Certificates are made with the openssl command line in a temporary folder. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx/proxy.h"
#include "gxtest.h"
#include "netutil.h"

static char dir[64], cert[128], key[128], ca2[128];
static const char REQ[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
static const char RESP[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
static size_t read_head(int fd, char *buf, size_t cap);

static bool make_certs(void) {
    snprintf(dir, sizeof(dir), "/tmp/gx-xs-XXXXXX");
    if (!mkdtemp(dir))
        return false;
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(ca2, sizeof(ca2), "%s/other.pem", dir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=gost.run "
             "-addext subjectAltName=DNS:gost.run -keyout %s -out %s 2>/dev/null && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=other "
             "-keyout %s/other.key -out %s 2>/dev/null",
             key, cert, dir, ca2);
    return system(cmd) == 0;
}

static void tcp_pair(int *client, int *server) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    bind(l, (struct sockaddr *)&a, sizeof(a));
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&a, &al);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    connect(*client, (struct sockaddr *)&a, sizeof(a));
    *server = accept(l, NULL, NULL);
    close(l);
}

/* An xstream over net; *app gets the test's end of the app socketpair (blocking). */
static struct gx_xs *xs_over(int net, struct gx_xs_cfg *cfg, int *app) {
    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
    struct gx_xs *x = NULL;
    int rc = gx_xs_new(&x, net, sp[1], cfg);
    CHECK(rc == 0, "gx_xs_new: %d", rc);
    if (rc) {
        close(sp[0]);
        close(sp[1]);
        return NULL;
    }
    CHECK(gx_xs_start(x) == 0, "start");
    *app = sp[0];
    return x;
}

static uint32_t wait_stage(struct gx_xs *x, uint32_t bits, int ms) {
    for (int t = 0; t < ms; t++) {
        uint32_t s = gx_xs_stage(x);
        if (s & (bits | GX_XS_ENDED))
            return s;
        struct pollfd p = {.fd = gx_xs_event_fd(x), .events = POLLIN};
        poll(&p, 1, 1);
        uint64_t v;
        ssize_t r = read(p.fd, &v, sizeof(v));
        (void)r;
    }
    return gx_xs_stage(x);
}

static struct gx_tls_ctx *ctx_new(int server, const char *ca, int verify) {
    struct gx_tls_cfg c = {.server = server, .cert_file = server ? cert : NULL, .key_file = server ? key : NULL,
                           .ca_file = ca, .verify = verify};
    struct gx_tls_ctx *t = NULL;
    char err[160];
    int rc = gx_tls_ctx_new(&t, &c, err, sizeof(err));
    CHECK(rc == 0, "tls ctx: %s", err);
    return t;
}

/* Send n pattern bytes on a, read them on b (both blocking); returns true when they match. */
struct pump_arg {
    int fd;
    size_t n;
    unsigned seed;
};

static void *writer(void *p) {
    struct pump_arg *a = p;
    uint8_t buf[8192];
    size_t sent = 0;
    while (sent < a->n) {
        size_t k = a->n - sent < sizeof(buf) ? a->n - sent : sizeof(buf);
        for (size_t i = 0; i < k; i++)
            buf[i] = (uint8_t)((sent + i) * 31 + a->seed);
        ssize_t w = write(a->fd, buf, k);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    return NULL;
}

static bool read_pattern(int fd, size_t n, unsigned seed) {
    uint8_t buf[8192];
    size_t got = 0;
    bool ok = true;
    while (got < n) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r <= 0)
            return false;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != (uint8_t)((got + (size_t)i) * 31 + seed))
                ok = false;
        got += (size_t)r;
    }
    return ok;
}

#include <pthread.h>

/* both directions at once (n bytes each), then the client's EOF: with half_close (TLS, TCP) the server
 * still answers after it; WebSocket has none (the close frame is answered with a close frame). */
static void exchange(int ca, int sa, size_t n, const char *what, bool half_close) {
    pthread_t t1, t2;
    struct pump_arg a1 = {ca, n, 7}, a2 = {sa, n, 11};
    pthread_create(&t1, NULL, writer, &a1);
    pthread_create(&t2, NULL, writer, &a2);
    CHECK(read_pattern(sa, n, 7), "%s: client -> server bytes", what);
    CHECK(read_pattern(ca, n, 11), "%s: server -> client bytes", what);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    /* half-close: the client ends its side; the server still answers */
    shutdown(ca, SHUT_WR);
    uint8_t b;
    CHECK(read(sa, &b, 1) == 0, "%s: EOF reaches the server app", what);
    if (!half_close) {
        CHECK(read(ca, &b, 1) == 0, "%s: the answering close frame ends the client's reads", what);
        return;
    }
    CHECK(write(sa, "late", 4) == 4, "%s: server writes after the client's EOF", what);
    char late[8] = {0};
    CHECK(read(ca, late, 4) == 4 && memcmp(late, "late", 4) == 0, "%s: half-closed client still reads", what);
    shutdown(sa, SHUT_WR);
    CHECK(read(ca, &b, 1) == 0, "%s: EOF reaches the client app", what);
}

static void test_tls(void) {
    struct gx_tls_ctx *sctx = ctx_new(1, NULL, 0), *cctx = ctx_new(0, cert, 1);
    int cn, sn, ca, sa;
    tcp_pair(&cn, &sn);
    struct gx_xs_cfg cc = {.tls = cctx, .server_name = "gost.run", .verify_name = "gost.run"};
    struct gx_xs_cfg sc = {.tls = sctx};
    struct gx_xs *c = xs_over(cn, &cc, &ca), *s = xs_over(sn, &sc, &sa);
    gx_tls_ctx_free(sctx); /* the streams hold their own references */
    gx_tls_ctx_free(cctx);
    CHECK(wait_stage(c, GX_XS_UP, 3000) == GX_XS_UP, "client TLS up");
    CHECK(wait_stage(s, GX_XS_UP, 3000) == GX_XS_UP, "server TLS up");
    exchange(ca, sa, 3 << 20, "tls", true);
    CHECK(wait_stage(c, GX_XS_ENDED, 3000) & GX_XS_ENDED, "client ended");
    CHECK(wait_stage(s, GX_XS_ENDED, 3000) & GX_XS_ENDED, "server ended");
    CHECK(gx_xs_status(c) == 0 && gx_xs_status(s) == 0, "clean ends: %d %d", gx_xs_status(c), gx_xs_status(s));
    struct gx_xs_stats st;
    gx_xs_get_stats(c, &st);
    CHECK(st.app_out == (3u << 20) && st.app_in == (3u << 20) + 4, "client counts %lu %lu",
          (unsigned long)st.app_out, (unsigned long)st.app_in);
    gx_xs_free(c);
    gx_xs_free(s);
    close(ca);
    close(sa);
}

/* After a handshake on the app side, a TCP peer takes its place: bytes left in the socketpair both ways
 * arrive first and in order, then the relay runs net <-> peer in C, half-close included. */
static void test_join(bool ws) {
    struct gx_tls_ctx *sctx = ctx_new(1, NULL, 0), *cctx = ctx_new(0, NULL, 0);
    int cn, sn, ca, sa;
    tcp_pair(&cn, &sn);
    struct gx_xs_cfg cc = {.tls = cctx, .head = ws, .raw = ws ? (const uint8_t *)REQ : NULL, .raw_len = ws ? strlen(REQ) : 0};
    struct gx_xs_cfg sc = {.tls = sctx, .head = ws};
    struct gx_xs *c = xs_over(cn, &cc, &ca), *s = xs_over(sn, &sc, &sa);
    if (ws) {
        char head[512];
        CHECK(wait_stage(s, GX_XS_HEAD, 3000) & GX_XS_HEAD, "join: server head");
        read_head(sa, head, sizeof(head));
        CHECK(gx_xs_join(s, sa, sa) == -EINVAL, "no join in the head phase");
        gx_xs_ws_start(s, (const uint8_t *)RESP, strlen(RESP), GX_XS_WS_SERVER);
        CHECK(wait_stage(c, GX_XS_HEAD, 3000) & GX_XS_HEAD, "join: client head");
        read_head(ca, head, sizeof(head));
        gx_xs_ws_start(c, NULL, 0, GX_XS_WS_CLIENT);
    }
    CHECK(wait_stage(s, GX_XS_UP, 3000) & GX_XS_UP, "join: server up");
    /* the "proxy handshake": a request read on the app side, an answer written, plus bytes nobody read */
    CHECK(write(ca, "request", 7) == 7, "request");
    char req[7];
    ssize_t rq = read(sa, req, 7);
    CHECK(rq == 7 && memcmp(req, "request", 7) == 0, "request read on the app side (%zd: %.*s)", rq, (int)(rq > 0 ? rq : 0), req);
    CHECK(write(ca, "early", 5) == 5, "early client bytes");
    CHECK(write(sa, "answer", 6) == 6, "answer");
    sleep_ms(50); /* "early" is in the socketpair now, unread */
    int tc, ts;
    tcp_pair(&tc, &ts);
    CHECK(gx_xs_join(s, sa, ts) == 0, "join");
    CHECK(gx_xs_join(s, sa, ts) == -EINVAL, "one join only");
    char early[5];
    size_t got = 0;
    while (got < 5) {
        ssize_t r = read(tc, early + got, 5 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    CHECK(got == 5 && memcmp(early, "early", 5) == 0, "unread socketpair bytes reach the peer first");
    char ans[6];
    CHECK(read(ca, ans, 6) == 6 && memcmp(ans, "answer", 6) == 0, "answer reaches the client");
    exchange(ca, tc, 2 << 20, ws ? "join wss" : "join tls", !ws);
    CHECK(wait_stage(s, GX_XS_ENDED, 3000) & GX_XS_ENDED, "joined stream ended");
    struct gx_xs_stats st;
    gx_xs_get_stats(s, &st);
    CHECK(st.joined == 1 && gx_xs_status(s) == 0, "joined, clean end (%d)", gx_xs_status(s));
    gx_xs_free(c);
    gx_xs_free(s);
    gx_tls_ctx_free(sctx);
    gx_tls_ctx_free(cctx);
    close(ca);
    close(tc);
}

static void test_tls_failure(const char *ca, const char *name, const char *want) {
    struct gx_tls_ctx *sctx = ctx_new(1, NULL, 0), *cctx = ctx_new(0, ca, 1);
    int cn, sn, cap, sap;
    tcp_pair(&cn, &sn);
    struct gx_xs_cfg cc = {.tls = cctx, .server_name = name, .verify_name = name};
    struct gx_xs_cfg sc = {.tls = sctx};
    struct gx_xs *c = xs_over(cn, &cc, &cap), *s = xs_over(sn, &sc, &sap);
    uint32_t st = wait_stage(c, GX_XS_UP, 3000);
    CHECK((st & GX_XS_ENDED) && (st & GX_XS_FAILED) && !(st & GX_XS_UP), "%s: client failed (stage %u)", want, st);
    char r[GX_XS_REASON_MAX];
    gx_xs_reason(c, r, sizeof(r));
    CHECK(strstr(r, want) != NULL, "reason '%s' has '%s'", r, want);
    struct gx_xs_stats stats;
    gx_xs_get_stats(c, &stats);
    CHECK(stats.tls_failures == 1, "a handshake failure counted");
    CHECK(wait_stage(s, GX_XS_UP, 3000) & GX_XS_ENDED, "server ended too");
    gx_xs_free(c);
    gx_xs_free(s);
    gx_tls_ctx_free(sctx);
    gx_tls_ctx_free(cctx);
    close(cap);
    close(sap);
}

static size_t read_head(int fd, char *buf, size_t cap) {
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = 0;
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    buf[n] = 0;
    return n;
}

static void test_wss(bool tls) {
    struct gx_tls_ctx *sctx = tls ? ctx_new(1, NULL, 0) : NULL, *cctx = tls ? ctx_new(0, NULL, 0) : NULL;
    int cn, sn, ca, sa;
    tcp_pair(&cn, &sn);
    struct gx_xs_cfg cc = {.tls = cctx, .head = 1, .raw = (const uint8_t *)REQ, .raw_len = strlen(REQ)};
    struct gx_xs_cfg sc = {.tls = sctx, .head = 1};
    struct gx_xs *c = xs_over(cn, &cc, &ca), *s = xs_over(sn, &sc, &sa);
    char head[512];
    CHECK(wait_stage(s, GX_XS_HEAD, 3000) & GX_XS_HEAD, "server got the head");
    size_t n = read_head(sa, head, sizeof(head));
    CHECK(n == strlen(REQ) && memcmp(head, REQ, n) == 0, "server app reads exactly the request head (%zu)", n);
    CHECK(gx_xs_ws_start(s, (const uint8_t *)RESP, strlen(RESP), GX_XS_WS_SERVER) == 0, "server ws_start");
    CHECK(gx_xs_ws_start(s, NULL, 0, GX_XS_WS_SERVER) == -EINVAL, "a second ws_start is refused");
    CHECK(wait_stage(c, GX_XS_HEAD, 3000) & GX_XS_HEAD, "client got the head");
    n = read_head(ca, head, sizeof(head));
    CHECK(n == strlen(RESP) && memcmp(head, RESP, n) == 0, "client app reads exactly the response head");
    CHECK(gx_xs_ws_start(c, NULL, 0, GX_XS_WS_CLIENT) == 0, "client ws_start");
    exchange(ca, sa, 2 << 20, tls ? "wss" : "ws", false);
    CHECK(wait_stage(c, GX_XS_ENDED, 3000) & GX_XS_ENDED, "client ended");
    CHECK(wait_stage(s, GX_XS_ENDED, 3000) & GX_XS_ENDED, "server ended");
    struct gx_xs_stats cs, ss;
    gx_xs_get_stats(c, &cs);
    gx_xs_get_stats(s, &ss);
    CHECK(cs.app_out == (2u << 20) && ss.app_in == (2u << 20), "ws payload counts %lu %lu",
          (unsigned long)cs.app_out, (unsigned long)ss.app_in);
    CHECK(cs.frames_out > 2 && ss.frames_in == cs.frames_out - 1 /* the close frame */, "frames: client sent %lu, server read %lu data",
          (unsigned long)cs.frames_out, (unsigned long)ss.frames_in);
    CHECK(cs.ws_errors == 0 && ss.ws_errors == 0, "no ws errors");
    gx_xs_free(c);
    gx_xs_free(s);
    gx_tls_ctx_free(sctx);
    gx_tls_ctx_free(cctx);
    close(ca);
    close(sa);
}

/* A raw WebSocket client (the test) against a plain ws server stream: ping -> pong, fragmented and text
 * data, then an unmasked frame: close 1002, the stream fails, the error is counted. */
static void test_ws_control(void) {
    int cn, sn, sa;
    tcp_pair(&cn, &sn);
    struct gx_xs_cfg sc = {.head = 1};
    struct gx_xs *s = xs_over(sn, &sc, &sa);
    CHECK(write(cn, REQ, strlen(REQ)) == (ssize_t)strlen(REQ), "request");
    /* a frame right behind the head is held until ws_start */
    const uint8_t early[] = {0x82, 0x83, 1, 2, 3, 4, 'a' ^ 1, 'b' ^ 2, 'c' ^ 3};
    CHECK(write(cn, early, sizeof(early)) == sizeof(early), "early frame");
    char head[512];
    CHECK(wait_stage(s, GX_XS_HEAD, 3000) & GX_XS_HEAD, "head");
    CHECK(read_head(sa, head, sizeof(head)) == strlen(REQ), "head only");
    gx_xs_ws_start(s, (const uint8_t *)RESP, strlen(RESP), GX_XS_WS_SERVER);
    char in[256];
    CHECK(read_head(cn, in, sizeof(in)) == strlen(RESP), "101 raw");
    char abc[3];
    CHECK(read(sa, abc, 3) == 3 && memcmp(abc, "abc", 3) == 0, "held frame delivered after ws_start");
    /* ping "hi" (masked) -> pong "hi" (unmasked) */
    const uint8_t ping[] = {0x89, 0x82, 9, 9, 9, 9, 'h' ^ 9, 'i' ^ 9};
    CHECK(write(cn, ping, sizeof(ping)) == sizeof(ping), "ping");
    uint8_t pong[4];
    CHECK(read(cn, pong, 4) == 4 && pong[0] == 0x8A && pong[1] == 2 && pong[2] == 'h' && pong[3] == 'i', "pong");
    /* fragmented: text "xy" not final, continuation "z" final */
    const uint8_t frag[] = {0x01, 0x82, 0, 0, 0, 0, 'x', 'y', 0x80, 0x81, 0, 0, 0, 0, 'z'};
    CHECK(write(cn, frag, sizeof(frag)) == sizeof(frag), "fragments");
    char xyz[3];
    size_t got = 0;
    while (got < 3) {
        ssize_t r = read(sa, xyz + got, 3 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    CHECK(got == 3 && memcmp(xyz, "xyz", 3) == 0, "fragments joined");
    /* server app data -> one unmasked binary frame */
    CHECK(write(sa, "out", 3) == 3, "app write");
    uint8_t fr[5];
    CHECK(read(cn, fr, 5) == 5 && fr[0] == 0x82 && fr[1] == 3 && memcmp(fr + 2, "out", 3) == 0, "binary frame");
    /* an unmasked client frame breaks the protocol */
    const uint8_t bad[] = {0x82, 0x01, 'q'};
    CHECK(write(cn, bad, sizeof(bad)) == sizeof(bad), "bad frame");
    uint8_t cl[4];
    CHECK(read(cn, cl, 4) == 4 && cl[0] == 0x88 && cl[1] == 2 && cl[2] == 0x03 && cl[3] == 0xEA, "close 1002");
    uint32_t st = wait_stage(s, GX_XS_ENDED, 500);
    if (!(st & GX_XS_ENDED)) { /* the test's app end is open: ending it finishes the stream */
        shutdown(sa, SHUT_WR);
        st = wait_stage(s, GX_XS_ENDED, 3000);
    }
    CHECK((st & GX_XS_ENDED) && (st & GX_XS_FAILED), "stream failed (stage %u)", st);
    char r[GX_XS_REASON_MAX];
    gx_xs_reason(s, r, sizeof(r));
    CHECK(strstr(r, "websocket: unmasked frame from a client") != NULL, "reason: %s", r);
    struct gx_xs_stats ss;
    gx_xs_get_stats(s, &ss);
    CHECK(ss.ws_errors == 1 && ss.pings == 1, "counted: errors %lu pings %lu", (unsigned long)ss.ws_errors,
          (unsigned long)ss.pings);
    gx_xs_free(s);
    close(cn);
    close(sa);
}

/* Read exactly n bytes (blocking); true when they all came. */
static bool read_all(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (uint8_t *)buf + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* The next frame from a client stream (masked, payload <= 125): its opcode, the payload unmasked into p;
 * -1 when it is not such a frame. */
static int client_frame(int fd, uint8_t *p, size_t *len) {
    uint8_t h[6];
    if (!read_all(fd, h, 2) || !(h[1] & 0x80) || (h[1] & 0x7F) > 125 || !read_all(fd, h + 2, 4))
        return -1;
    *len = h[1] & 0x7F;
    if (!read_all(fd, p, *len))
        return -1;
    gx_ws_mask_copy(p, p, *len, h + 2, 0);
    return h[0];
}

/* A plain ws client stream past its upgrade: *srv is the test's end of the net side (the "server"),
 * *app the client app's end. `after` is written right behind the 101 head (held until ws_start). */
static struct gx_xs *ws_client_stream(int *srv, int *app, const uint8_t *after, size_t after_len) {
    int cn, sn;
    tcp_pair(&cn, &sn);
    struct gx_xs_cfg cc = {.head = 1, .raw = (const uint8_t *)REQ, .raw_len = strlen(REQ)};
    struct gx_xs *c = xs_over(cn, &cc, app);
    char head[512];
    CHECK(read_head(sn, head, sizeof(head)) == strlen(REQ), "ws client: request head");
    CHECK(write(sn, RESP, strlen(RESP)) == (ssize_t)strlen(RESP), "101");
    if (after_len)
        CHECK(write(sn, after, after_len) == (ssize_t)after_len, "frames behind the head");
    CHECK(wait_stage(c, GX_XS_HEAD, 3000) & GX_XS_HEAD, "ws client: head");
    CHECK(read_head(*app, head, sizeof(head)) == strlen(RESP), "ws client: response head only");
    CHECK(gx_xs_ws_start(c, NULL, 0, GX_XS_WS_CLIENT) == 0, "ws client: ws_start");
    *srv = sn;
    return c;
}

/* The client's side of the reader: unmasked frames (several in one read, a ping between data frames,
 * fragments, an empty frame) come out as the stream bytes, the ping is answered with a masked pong, and
 * a close 1001 is echoed (masked) and ends the app side cleanly. */
static void test_ws_client_reads(void) {
    const uint8_t frames[] = {0x82, 3, 'a', 'b', 'c', 0x89, 2, 'h', 'i', 0x01, 2, 'd', 'e',
                              0x80, 1, 'f', 0x82, 0, 0x82, 126, 0, 4, 'g', 'h', 'i', 'j'};
    int sn, ca;
    struct gx_xs *c = ws_client_stream(&sn, &ca, frames, sizeof(frames));
    char got[10];
    CHECK(read_all(ca, got, 10) && memcmp(got, "abcdefghij", 10) == 0, "ws client: the payload in order");
    uint8_t p[125];
    size_t n = 0;
    int op = client_frame(sn, p, &n);
    CHECK(op == 0x8A && n == 2 && memcmp(p, "hi", 2) == 0, "ws client: masked pong 'hi' (op %d, %zu bytes)", op, n);
    const uint8_t close1001[] = {0x88, 3, 0x03, 0xE9, 'x'};
    CHECK(write(sn, close1001, sizeof(close1001)) == sizeof(close1001), "close 1001");
    uint8_t b;
    CHECK(read(ca, &b, 1) == 0, "ws client: the close frame ends the app side's reads");
    op = client_frame(sn, p, &n);
    CHECK(op == 0x88 && n == 2 && p[0] == 0x03 && p[1] == 0xE9, "ws client: close 1001 echoed (op %d, %zu bytes)", op, n);
    shutdown(ca, SHUT_WR);
    shutdown(sn, SHUT_WR);
    uint32_t st = wait_stage(c, GX_XS_ENDED, 3000);
    CHECK((st & GX_XS_ENDED) && !(st & GX_XS_FAILED) && gx_xs_status(c) == 0, "ws client: clean end (stage %u, %d)",
          st, gx_xs_status(c));
    struct gx_xs_stats cs;
    gx_xs_get_stats(c, &cs);
    CHECK(cs.app_in == 10 && cs.frames_in == 5 && cs.pings == 1 && cs.ws_errors == 0,
          "ws client counts: app_in %lu frames_in %lu pings %lu errors %lu", (unsigned long)cs.app_in,
          (unsigned long)cs.frames_in, (unsigned long)cs.pings, (unsigned long)cs.ws_errors);
    gx_xs_free(c);
    close(sn);
    close(ca);
}

/* Broken server frames end a client stream: the close code the reader asks for is sent, the data before
 * it still arrives, the error is counted once and named; an EOF inside a frame is an error too. */
static void test_ws_client_errors(void) {
    static const struct {
        const char *name;
        uint8_t bytes[16];
        size_t len;
        int code;          /* close code expected from the client, 0: none (EOF) */
        const char *reason;
    } cases[] = {
        {"over the cap", {0x82, 1, 'z', 0x82, 127, 0, 0, 0, 1, 0, 0, 0, 1}, 13, 1009, "over the size cap"},
        {"close reason not UTF-8", {0x82, 1, 'z', 0x88, 3, 0x03, 0xE8, 0xFF}, 8, 1007, "not UTF-8"},
        {"close code 1005", {0x82, 1, 'z', 0x88, 2, 0x03, 0xED}, 7, 1002, "close code"},
        {"continuation first", {0x82, 1, 'z', 0x80, 1, 'y'}, 6, 1002, "continuation without"},
        {"EOF inside a header", {0x82, 1, 'z', 0x82, 126, 0}, 6, 0, "closed inside a frame"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int sn, ca;
        struct gx_xs *c = ws_client_stream(&sn, &ca, cases[i].bytes, cases[i].len);
        if (!cases[i].code)
            shutdown(sn, SHUT_WR);
        char z;
        CHECK(read(ca, &z, 1) == 1 && z == 'z', "%s: the data before the error", cases[i].name);
        CHECK(read(ca, &z, 1) == 0, "%s: then the app side's EOF", cases[i].name);
        if (cases[i].code) {
            uint8_t p[125];
            size_t n = 0;
            int op = client_frame(sn, p, &n);
            CHECK(op == 0x88 && n == 2 && (p[0] << 8 | p[1]) == cases[i].code, "%s: close %d sent (op %d, %zu bytes)",
                  cases[i].name, cases[i].code, op, n);
        }
        shutdown(ca, SHUT_WR);
        uint32_t st = wait_stage(c, GX_XS_ENDED, 3000);
        CHECK((st & GX_XS_ENDED) && (st & GX_XS_FAILED) && gx_xs_status(c) == EPROTO, "%s: failed (stage %u, %d)",
              cases[i].name, st, gx_xs_status(c));
        char r[GX_XS_REASON_MAX];
        gx_xs_reason(c, r, sizeof(r));
        CHECK(strncmp(r, "websocket: ", 11) == 0 && strstr(r, cases[i].reason), "%s: reason '%s'", cases[i].name, r);
        struct gx_xs_stats cs;
        gx_xs_get_stats(c, &cs);
        CHECK(cs.ws_errors == 1 && cs.app_in == 1, "%s: errors %lu app_in %lu", cases[i].name,
              (unsigned long)cs.ws_errors, (unsigned long)cs.app_in);
        gx_xs_free(c);
        close(sn);
        close(ca);
    }
}

static void test_head_limit(void) {
    int cn, sn, sa;
    tcp_pair(&cn, &sn);
    struct gx_xs_cfg sc = {.head = 1};
    struct gx_xs *s = xs_over(sn, &sc, &sa);
    static char junk[GX_XS_HEAD_MAX + 10];
    memset(junk, 'a', sizeof(junk));
    CHECK(write(cn, junk, sizeof(junk)) == (ssize_t)sizeof(junk), "junk");
    uint32_t st = wait_stage(s, GX_XS_HEAD, 3000);
    CHECK((st & GX_XS_ENDED) && (st & GX_XS_FAILED) && !(st & GX_XS_HEAD), "a head over the cap fails");
    gx_xs_free(s);
    close(cn);
    close(sa);
}

static void test_head_end(void) {
    const uint8_t h[] = "GET / HTTP/1.1\r\nA: b\r\n\r\nrest";
    size_t next = 0;
    CHECK(gx_xs_head_end(h, 10, 0, &next) == 0 && next == 10, "incomplete");
    CHECK(gx_xs_head_end(h, 23, next, &next) == 0, "one byte short");
    CHECK(gx_xs_head_end(h, sizeof(h) - 1, next, &next) == 24, "found across scans");
    CHECK(gx_xs_head_end((const uint8_t *)"\r\n\r", 3, 0, NULL) == 0, "short");
    CHECK(gx_xs_head_end((const uint8_t *)"\r\r\n\r\n", 5, 0, NULL) == 5, "CR then CRLFCRLF");
}

static void test_cancel_unstarted_free(void) {
    int cn, sn, sa;
    tcp_pair(&cn, &sn);
    struct gx_xs_cfg sc = {.head = 1};
    struct gx_xs *s = xs_over(sn, &sc, &sa);
    gx_xs_cancel(s);
    CHECK(wait_stage(s, 0, 3000) & GX_XS_ENDED, "cancelled");
    CHECK(!(gx_xs_stage(s) & GX_XS_FAILED), "a cancel is not a failure");
    gx_xs_free(s);
    uint8_t b;
    CHECK(read(cn, &b, 1) == 0, "the net fd was closed");
    close(cn);
    close(sa);
}

/* The engine pieces xstream's commands and stages ride on: gx_relay_poke (coalesced, from any thread, a
 * no-op once DONE) and gx_relay_wait on a conn whose done fd its owner already read. */
struct poker {
    struct gx_relay_conn conn;
    _Atomic int pokes, stops;
};

static int poker_start(struct gx_relay_conn *c) {
    (void)c;
    return 0;
}

static void poker_ready(struct gx_relay_conn *c, int slot, uint32_t events) {
    struct poker *p = (struct poker *)c;
    (void)events;
    if (slot == GX_RELAY_POKE)
        atomic_fetch_add(&p->pokes, 1);
}

static void poker_stop(struct gx_relay_conn *c) { atomic_fetch_add(&((struct poker *)c)->stops, 1); }

static const struct gx_relay_ops POKER_OPS = {.start = poker_start, .ready = poker_ready, .stop = poker_stop};

static void test_engine_poke(void) {
    struct poker *p = calloc(1, sizeof(*p));
    CHECK(p && gx_relay_conn_init(&p->conn, &POKER_OPS) == 0, "poker init");
    if (!p)
        return;
    gx_relay_poke(&p->conn); /* not attached: nothing */
    CHECK(gx_relay_attach(&p->conn) == 0, "poker attach");
    for (int i = 0; i < 1000; i++)
        gx_relay_poke(&p->conn);
    for (int t = 0; t < 2000 && atomic_load(&p->pokes) == 0; t++)
        usleep(1000);
    int n = atomic_load(&p->pokes);
    CHECK(n >= 1 && n <= 1000, "pokes run, coalesced (%d calls)", n);
    gx_relay_poke(&p->conn);
    for (int t = 0; t < 2000 && atomic_load(&p->pokes) == n; t++)
        usleep(1000);
    CHECK(atomic_load(&p->pokes) == n + 1, "a later poke runs once more");
    /* the owner reads the done fd (as Python does): the wait must not depend on it */
    gx_relay_cancel(&p->conn);
    struct pollfd pf = {.fd = p->conn.done_fd, .events = POLLIN};
    CHECK(poll(&pf, 1, 3000) == 1, "done fd readable after the cancel");
    uint64_t v;
    CHECK(read(p->conn.done_fd, &v, sizeof(v)) == sizeof(v), "done fd read");
    CHECK(gx_relay_wait(&p->conn) == 0, "wait returns after the done fd was read");
    CHECK(atomic_load(&p->stops) == 1, "stopped once");
    int before = atomic_load(&p->pokes);
    gx_relay_poke(&p->conn); /* DONE: nothing queued, nothing called */
    usleep(20000);
    CHECK(atomic_load(&p->pokes) == before, "no poke after DONE");
    CHECK(gx_relay_stop(&p->conn) == 0, "stop after DONE returns at once");
    gx_relay_conn_release(&p->conn);
    free(p);
}

int main(void) {
    if (!make_certs()) {
        printf("openssl CLI missing: cannot make test certificates\n");
        return 1;
    }
    test_head_end();
    test_tls();
    test_tls_failure(ca2, "gost.run", "certificate verify failed");
    test_tls_failure(cert, "wrong.name", "hostname mismatch");
    test_wss(true);
    test_join(false);
    test_join(true);
    test_wss(false);
    test_ws_control();
    test_ws_client_reads();
    test_ws_client_errors();
    test_head_limit();
    test_cancel_unstarted_free();
    test_engine_poke();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    int rc = system(cmd);
    (void)rc;
    TEST_DONE();
}
