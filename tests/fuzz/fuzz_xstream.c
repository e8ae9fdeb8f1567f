/* xstream (csrc/xstream.c) as a WebSocket server or client facing a hostile peer: the head scan, then the
 * frames (read by ws.c's gx_ws_read: compacted in place as a server, frame by frame as a client).
 *
 * Input: byte 0 selects a split of the rest into the HTTP part and the frame part (head_len = byte 0 *
 * len / 255) and, with its low bit, the role (1 = client). Checks: gx_xs_head_end agrees with a plain
 * search for CRLFCRLF whatever the scan steps; a whole stream (no TLS, head mode, then GX_XS_WS_SERVER or
 * _CLIENT) fed the input on its net side ends within a second, passes to the app side exactly the payload
 * a reference gx_ws_read (fed everything at once, into a buffer of its own) reads up to its close or
 * error, and counts at most one protocol error. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "gx/proxy.h"

static size_t ref_head_end(const uint8_t *p, size_t n) {
    const uint8_t *e = memmem(p, n, "\r\n\r\n", 4);
    return e ? (size_t)(e - p) + 4 : 0;
}

static void check_scan(const uint8_t *p, size_t n, size_t step) {
    size_t from = 0, next = 0, got = 0;
    for (size_t len = step; ; len += step) {
        if (len > n)
            len = n;
        got = gx_xs_head_end(p, len, from, &next);
        if (got)
            break;
        FZ_CHECK(next <= len, "next %zu past len %zu", next, len);
        from = next;
        if (len == n)
            break;
    }
    FZ_CHECK(got == ref_head_end(p, n), "head end %zu, reference %zu (step %zu)", got, ref_head_end(p, n), step);
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

/* The payload a reader of the role reads from in[0..n) up to its close or error: into out, its length. */
static size_t reference(int mode, const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    struct gx_ws_reader r;
    gx_ws_reader_init(&r, mode == GX_XS_WS_SERVER ? GX_WS_ROLE_SERVER : GX_WS_ROLE_CLIENT, GX_XS_WS_FRAME_MAX);
    size_t pos = 0, len = 0;
    while (pos < n) {
        struct gx_ws_event ev;
        long k = gx_ws_read(&r, in + pos, n - pos, out + len, cap - len, &ev);
        if (k < 0)
            break;
        pos += (size_t)k;
        len += ev.out_len;
        if (ev.type == GX_WS_EV_CLOSE || ev.type == GX_WS_EV_ERROR || (k == 0 && ev.out_len == 0))
            break;
    }
    return len;
}

static uint8_t ref_in[65536 + 8], ref_out[65536 + 8], got[65536 + 8];

static void run_stream(const uint8_t *head, size_t hlen, const uint8_t *frames, size_t flen, int mode) {
    int net[2], app[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, net) < 0)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, app) < 0) {
        close(net[0]);
        close(net[1]);
        return;
    }
    struct gx_xs_cfg cfg = {.head = 1};
    struct gx_xs *x = NULL;
    if (gx_xs_new(&x, net[1], app[1], &cfg) < 0) {
        close(net[0]);
        close(net[1]);
        close(app[0]);
        close(app[1]);
        return;
    }
    gx_xs_start(x);
    ssize_t w = send(net[0], head, hlen, MSG_NOSIGNAL);
    (void)w;
    w = send(net[0], "\r\n\r\n", 4, MSG_NOSIGNAL);
    uint8_t buf[4096];
    bool started = false;
    if (wait_stage(x, GX_XS_HEAD, 1000) & GX_XS_HEAD) {
        started = true;
        while (recv(app[0], buf, sizeof(buf), MSG_DONTWAIT) > 0)
            ;
        gx_xs_ws_start(x, NULL, 0, mode);
        w = send(net[0], frames, flen, MSG_NOSIGNAL); /* socketpair buffers hold a fuzz input */
    }
    shutdown(net[0], SHUT_WR);
    size_t payload = 0;
    for (int t = 0; t < 1000 && !(gx_xs_stage(x) & GX_XS_ENDED); t++) {
        ssize_t r = recv(app[0], got + payload, sizeof(got) - payload, MSG_DONTWAIT);
        if (r > 0) {
            payload += (size_t)r;
            continue;
        }
        if (r == 0)
            shutdown(app[0], SHUT_WR); /* the app side ends too: the stream can finish */
        while (recv(net[0], buf, sizeof(buf), MSG_DONTWAIT) > 0)
            ;
        wait_stage(x, 0, 1);
    }
    FZ_CHECK(gx_xs_stage(x) & GX_XS_ENDED, "the stream did not end (stage %u)", gx_xs_stage(x));
    for (ssize_t r; payload < sizeof(got) && (r = recv(app[0], got + payload, sizeof(got) - payload, MSG_DONTWAIT)) > 0;)
        payload += (size_t)r;
    struct gx_xs_stats st;
    gx_xs_get_stats(x, &st);
    FZ_CHECK(st.app_in <= flen && st.ws_errors <= 1, "app_in %lu of %zu bytes, %lu errors",
             (unsigned long)st.app_in, flen, (unsigned long)st.ws_errors);
    if (started) {
        /* what followed the head's end in the HTTP part plus CRLFCRLF was held, then read as frames */
        memcpy(ref_in, head, hlen);
        memcpy(ref_in + hlen, "\r\n\r\n", 4);
        size_t end = ref_head_end(ref_in, hlen + 4), held = hlen + 4 - end;
        memmove(ref_in, ref_in + end, held);
        memcpy(ref_in + held, frames, flen);
        size_t want = reference(mode, ref_in, held + flen, ref_out, sizeof(ref_out));
        FZ_CHECK(payload == want && st.app_in == want && memcmp(got, ref_out, want) == 0,
                 "app side got %zu bytes (app_in %lu), the reference reader %zu", payload, (unsigned long)st.app_in,
                 want);
    }
    gx_xs_free(x);
    close(net[0]);
    close(app[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz f = {data, size};
    size_t split = fz_u8(&f);
    if (f.n > 60000)
        return 0;
    for (size_t step = 1; step <= 7; step += 3)
        check_scan(f.p, f.n, step);
    check_scan(f.p, f.n, f.n ? f.n : 1);
    size_t hlen = split * f.n / 255;
    /* the HTTP part must not end the head early: drop any CRLFCRLF from it */
    if (ref_head_end(f.p, hlen))
        hlen = ref_head_end(f.p, hlen) - 4;
    run_stream(f.p, hlen, f.p + hlen, f.n - hlen, split & 1 ? GX_XS_WS_CLIENT : GX_XS_WS_SERVER);
    return 0;
}
