/* The splice relay (gx/proxy.h) on loopback TCP: both directions with half-close in either order,
 * 8 MiB each way at once with a checksum (default and tiny pipes), a peer reset, a cancel, backpressure
 * without spinning (CPU time while a reader stalls), many relays on the engine's few threads. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx/proxy.h"
#include "gxtest.h"
#include "netutil.h"

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* A connected loopback TCP pair: *x the connecting end, *y the accepted one (both non-blocking). */
static int tcp_pair(int *x, int *y) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0)
        return -1;
    *x = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*x, (struct sockaddr *)&a, sizeof(a)) < 0)
        return -1;
    *y = accept(l, NULL, NULL);
    close(l);
    if (*y < 0)
        return -1;
    nonblock(*x);
    nonblock(*y);
    return 0;
}

struct rig {
    int user, a, b, far; /* user <-> a ==relay== b <-> far */
    struct gx_splice_relay *r;
};

static int rig_up(struct rig *g, size_t pipe_size) {
    if (tcp_pair(&g->user, &g->a) < 0 || tcp_pair(&g->b, &g->far) < 0)
        return -1;
    int rc = gx_splice_relay_new(&g->r, g->a, g->b, pipe_size);
    if (rc == 0)
        rc = gx_splice_relay_start(g->r);
    return rc;
}

static void rig_down(struct rig *g) {
    gx_splice_relay_free(g->r);
    close(g->user);
    close(g->a);
    close(g->b);
    close(g->far);
}

/* Wait up to ms for fd to be readable. */
static int wait_readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Read fd to EOF (or ms elapsed) into buf; returns the byte count, -1 on an error or a timeout. */
static long read_to_eof(int fd, uint8_t *buf, size_t cap, int ms) {
    size_t got = 0;
    for (;;) {
        if (!wait_readable(fd, ms))
            return -1;
        ssize_t n = read(fd, buf + got, cap - got);
        if (n == 0)
            return (long)got;
        if (n < 0 && errno != EAGAIN)
            return -1;
        if (n > 0)
            got += (size_t)n;
        if (got == cap)
            return (long)got;
    }
}

static void test_half_close(int far_first) {
    struct rig g;
    CHECK(rig_up(&g, 0) == 0, "rig");
    uint8_t buf[64];
    const char *first = far_first ? "from far" : "from user";
    int w1 = far_first ? g.far : g.user, r1 = far_first ? g.user : g.far;
    int w2 = far_first ? g.user : g.far, r2 = far_first ? g.far : g.user;
    CHECK(write(w1, first, strlen(first)) == (ssize_t)strlen(first), "write");
    shutdown(w1, SHUT_WR);
    CHECK(read_to_eof(r1, buf, sizeof buf, 2000) == (long)strlen(first) && memcmp(buf, first, strlen(first)) == 0,
          "first direction with its EOF (far_first=%d)", far_first);
    CHECK(!wait_readable(gx_splice_relay_event_fd(g.r), 50), "still relaying after one EOF");
    /* the half-closed side still gets the answer */
    CHECK(write(w2, "answer!", 7) == 7, "write answer");
    shutdown(w2, SHUT_WR);
    CHECK(read_to_eof(r2, buf, sizeof buf, 2000) == 7 && memcmp(buf, "answer!", 7) == 0, "answer with its EOF");
    CHECK(wait_readable(gx_splice_relay_event_fd(g.r), 2000), "relay ended after both EOFs");
    struct gx_splice_relay_stats st;
    gx_splice_relay_get_stats(g.r, &st);
    uint64_t ab = far_first ? 7 : strlen(first), ba = far_first ? strlen(first) : 7;
    CHECK(gx_splice_relay_status(g.r) == 0 && gx_splice_relay_finished(g.r) == 1, "clean end: status %d",
          gx_splice_relay_status(g.r));
    CHECK(st.bytes_ab == ab && st.bytes_ba == ba, "counts %llu %llu", (unsigned long long)st.bytes_ab,
          (unsigned long long)st.bytes_ba);
    rig_down(&g);
}

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* 8 MiB from user to far and 8 MiB from far to user at once, then EOFs; checksums at both ends. */
static void test_bulk(size_t pipe_size) {
    enum { TOTAL = 8 << 20, CHUNK = 65536 };
    struct rig g;
    CHECK(rig_up(&g, pipe_size) == 0, "rig");
    static uint8_t src[2][CHUNK], buf[CHUNK];
    uint32_t seed = 7;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < CHUNK; i++)
            src[s][i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 16);
    int wfd[2] = {g.user, g.far}, rfd[2] = {g.far, g.user};
    size_t sent[2] = {0, 0}, got[2] = {0, 0};
    uint32_t hs[2] = {2166136261u, 2166136261u}, hr[2] = {2166136261u, 2166136261u};
    int eof[2] = {0, 0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int guard = 0; guard < 1000000 && !(eof[0] && eof[1]); guard++) {
        struct pollfd p[4];
        int np = 0;
        for (int s = 0; s < 2; s++) {
            if (sent[s] < TOTAL)
                p[np++] = (struct pollfd){.fd = wfd[s], .events = POLLOUT};
            if (!eof[s])
                p[np++] = (struct pollfd){.fd = rfd[s], .events = POLLIN};
        }
        if (poll(p, (nfds_t)np, 5000) <= 0)
            break;
        for (int s = 0; s < 2; s++) {
            if (sent[s] < TOTAL) {
                size_t off = sent[s] % CHUNK, n = CHUNK - off;
                if (n > TOTAL - sent[s])
                    n = TOTAL - sent[s];
                ssize_t k = write(wfd[s], src[s] + off, n);
                if (k > 0) {
                    hs[s] = fnv(hs[s], src[s] + off, (size_t)k);
                    sent[s] += (size_t)k;
                    if (sent[s] == TOTAL)
                        shutdown(wfd[s], SHUT_WR);
                }
            }
            ssize_t k = read(rfd[s], buf, sizeof buf);
            if (k > 0) {
                hr[s] = fnv(hr[s], buf, (size_t)k);
                got[s] += (size_t)k;
            } else if (k == 0) {
                eof[s] = 1;
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(eof[0] && eof[1] && got[0] == TOTAL && got[1] == TOTAL, "pipe %zu: got %zu / %zu", pipe_size, got[0],
          got[1]);
    CHECK(hs[0] == hr[0] && hs[1] == hr[1], "pipe %zu: checksums", pipe_size);
    CHECK(wait_readable(gx_splice_relay_event_fd(g.r), 2000) && gx_splice_relay_status(g.r) == 0 &&
              gx_splice_relay_finished(g.r),
          "pipe %zu: clean end", pipe_size);
    struct gx_splice_relay_stats st;
    gx_splice_relay_get_stats(g.r, &st);
    CHECK(st.bytes_ab == TOTAL && st.bytes_ba == TOTAL, "counts");
    printf("bulk pipe %zu: 2 x 8 MiB in %.3f s\n", pipe_size, secs);
    rig_down(&g);
}

static void test_reset(void) {
    struct rig g;
    CHECK(rig_up(&g, 0) == 0, "rig");
    uint8_t buf[16];
    CHECK(write(g.user, "hello", 5) == 5, "write");
    CHECK(wait_readable(g.far, 2000) && read(g.far, buf, sizeof buf) == 5, "hello through");
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(g.far, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(g.far); /* RST */
    g.far = -1;
    CHECK(wait_readable(gx_splice_relay_event_fd(g.r), 2000), "relay ended at the reset");
    int st = gx_splice_relay_status(g.r);
    CHECK(st == ECONNRESET || st == EPIPE, "status %d (%s)", st, strerror(st));
    CHECK(!gx_splice_relay_finished(g.r), "not a clean finish");
    rig_down(&g);
}

static void test_cancel(void) {
    struct rig g;
    CHECK(rig_up(&g, 0) == 0, "rig");
    CHECK(!wait_readable(gx_splice_relay_event_fd(g.r), 20), "running");
    gx_splice_relay_cancel(g.r);
    CHECK(wait_readable(gx_splice_relay_event_fd(g.r), 2000), "cancel lets go");
    CHECK(gx_splice_relay_status(g.r) == 0 && !gx_splice_relay_finished(g.r), "cancelled");
    gx_splice_relay_stop(g.r); /* idempotent */
    rig_down(&g);
}

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* far reads nothing: every buffer fills, the relay waits for EPOLLOUT without burning CPU; then far reads
 * everything. */
static void test_backpressure(void) {
    struct rig g;
    CHECK(rig_up(&g, 0) == 0, "rig");
    static uint8_t chunk[65536], buf[65536];
    memset(chunk, 0x5A, sizeof chunk);
    size_t sent = 0;
    for (int idle = 0; idle < 20;) { /* until user's writes block for 20 ms in a row */
        ssize_t k = write(g.user, chunk, sizeof chunk);
        if (k > 0) {
            sent += (size_t)k;
            idle = 0;
        } else {
            sleep_ms(1);
            idle++;
        }
    }
    double c0 = cpu_seconds();
    sleep_ms(200);
    double used = cpu_seconds() - c0;
    CHECK(used < 0.05, "%.3f s CPU in 200 ms while stalled (spinning?)", used);
    shutdown(g.user, SHUT_WR);
    size_t got = 0;
    for (;;) {
        if (!wait_readable(g.far, 2000))
            break;
        ssize_t n = read(g.far, buf, sizeof buf);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    CHECK(got == sent && sent > (1u << 20), "stalled bytes all arrive: %zu of %zu", got, sent);
    rig_down(&g);
}

static void test_many(void) {
    enum { MANY = 100 }; /* 9 fds each: under a 1024 fd limit */
    static struct rig g[MANY];
    int before = threads_now(), ok = 0;
    for (int i = 0; i < MANY; i++)
        ok += rig_up(&g[i], 0) == 0;
    CHECK(ok == MANY, "%d of %d relays up", ok, MANY);
    CHECK(threads_now() <= before + GX_RELAY_THREADS_MAX, "threads %d -> %d", before, threads_now());
    int through = 0;
    for (int i = 0; i < MANY; i++)
        through += write(g[i].user, &i, sizeof i) == sizeof i;
    for (int i = 0; i < MANY; i++) {
        int v = -1;
        through += wait_readable(g[i].far, 2000) && read(g[i].far, &v, sizeof v) == sizeof v && v == i;
    }
    CHECK(through == 2 * MANY, "%d of %d", through, 2 * MANY);
    for (int i = 0; i < MANY; i++)
        rig_down(&g[i]);
}

static void test_bad_args(void) {
    struct gx_splice_relay *r;
    CHECK(gx_splice_relay_new(&r, -1, 3, 0) == -EINVAL, "bad fd");
    CHECK(gx_splice_relay_new(&r, 3, 3, 0) == -EINVAL, "same fd");
    CHECK(gx_splice_relay_new(&r, 3, 4, (size_t)1 << 30) == -EINVAL, "huge pipe");
    gx_splice_relay_free(NULL);
}

int main(void) {
    test_bad_args();
    test_half_close(0);
    test_half_close(1);
    test_bulk(0);
    test_bulk(4096);
    test_reset();
    test_cancel();
    test_backpressure();
    test_many();
    TEST_DONE();
}
