/* The 0xF3 relay on the shared relay engine (gx/proxy.h): many relays on a few threads, backpressure
 * (a stream nobody reads stops the UDP reads, memory stays bounded), cancel, names through the
 * resolver without blocking the loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx/proxy.h"
#include "gxtest.h"
#include "netutil.h"

#define MANY 300

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* Echo whatever arrives on fd, for up to ms milliseconds or until `want` datagrams were echoed. */
static int echo_for(int fd, int want, int ms) {
    int seen = 0;
    for (int t = 0; t < ms && seen < want; t++) {
        uint8_t buf[2048];
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n;
        while ((n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl)) > 0) {
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
            seen++;
            fl = sizeof(from);
        }
        if (seen < want)
            sleep_ms(1);
    }
    return seen;
}

/* MANY relays, one datagram each through a UDP echo, on the engine's few threads. */
static void test_many(void) {
    struct sockaddr_in echo_addr;
    int echo = udp_bound(&echo_addr);
    int big = 4 << 20; /* MANY datagrams arrive at once: none may be lost before the echo reads them */
    setsockopt(echo, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    int before = threads_now();
    static int sp[MANY][2], udp[MANY];
    static struct gx_socks_relay *r[MANY];
    for (int i = 0; i < MANY; i++) {
        struct sockaddr_in a;
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp[i]) == 0, "socketpair");
        nonblock(sp[i][0]);
        udp[i] = udp_bound(&a);
        CHECK(gx_socks_relay_new(&r[i], sp[i][0], udp[i], 0) == 0, "new");
        CHECK(gx_socks_relay_start(r[i]) == 0, "start");
    }
    int during = threads_now();
    CHECK(during - before <= GX_RELAY_THREADS_MAX && during < 12, "threads %d -> %d for %d relays", before,
          during, MANY);
    struct gx_relay_engine_stats es;
    gx_relay_engine_get_stats(&es);
    CHECK(es.threads == GX_RELAY_THREADS_DEFAULT && es.relays >= MANY, "engine %llu threads, %llu relays",
          (unsigned long long)es.threads, (unsigned long long)es.relays);
    for (int i = 0; i < MANY; i++) {
        uint8_t frame[GX_SOCKS_UDP_HDR_MAX + 8];
        struct sockaddr_storage to;
        memcpy(&to, &echo_addr, sizeof(echo_addr));
        int h = gx_socks_udp_header(frame, &to, 4);
        memcpy(frame + h, &i, 4);
        CHECK(write(sp[i][1], frame, (size_t)h + 4) == h + 4, "write");
    }
    CHECK(echo_for(echo, MANY, 5000) == MANY, "every relay's datagram reached the echo");
    int back = 0;
    for (int i = 0; i < MANY; i++) {
        uint8_t buf[64];
        struct pollfd p = {.fd = sp[i][1], .events = POLLIN};
        if (poll(&p, 1, 2000) == 1 && read(sp[i][1], buf, sizeof(buf)) == 14 && memcmp(buf + 10, &i, 4) == 0)
            back++;
    }
    CHECK(back == MANY, "%d of %d replies came back on their own stream", back, MANY);
    for (int i = 0; i < MANY; i++) {
        gx_socks_relay_free(r[i]);
        close(sp[i][0]);
        close(sp[i][1]);
        close(udp[i]);
    }
    gx_relay_engine_get_stats(&es);
    CHECK(es.relays == 0, "all let go (%llu)", (unsigned long long)es.relays);
    close(echo);
}

/* A client that never reads its stream: the relay stops reading UDP once its bounded buffer and the
 * socket buffers are full (the datagrams wait in the kernel, where they are dropped), instead of
 * queueing without end; when the client reads again everything flows. */
static void test_backpressure(void) {
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
    nonblock(sp[0]);
    int small = 16384;
    setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    struct sockaddr_in relay_addr, src_addr;
    int udp = udp_bound(&relay_addr);
    int src = udp_bound(&src_addr);
    struct gx_socks_relay *r;
    CHECK(gx_socks_relay_new(&r, sp[0], udp, 0) == 0, "new");
    CHECK(gx_socks_relay_start(r) == 0, "start");
    /* tell the relay nothing; flood its UDP socket from src */
    uint8_t payload[1000];
    memset(payload, 0xab, sizeof(payload));
    int sent = 0;
    for (int i = 0; i < 4000; i++) {
        if (sendto(src, payload, sizeof(payload), 0, (struct sockaddr *)&relay_addr, sizeof(relay_addr)) > 0)
            sent++;
        if (i % 100 == 0)
            sleep_ms(1);
    }
    sleep_ms(100);
    struct gx_socks_relay_stats st;
    gx_socks_relay_get_stats(r, &st);
    int queued = 0;
    ioctl(udp, FIONREAD, &queued);
    /* relayed frames fit in the stream's socket buffers plus the relay's 128 KiB */
    uint64_t framed = st.down_pkts * (10 + sizeof(payload));
    CHECK(framed < 128u * 1024u + 1024u * 1024u, "frames taken %llu bytes", (unsigned long long)framed);
    CHECK(st.down_pkts < (uint64_t)sent, "the relay stopped taking datagrams (%llu of %d)",
          (unsigned long long)st.down_pkts, sent);
    CHECK(queued > 0, "datagrams wait in the UDP socket (%d bytes)", queued);
    /* read everything now: the relay resumes */
    uint64_t got = 0;
    uint8_t buf[65536];
    for (int idle = 0; idle < 200;) {
        ssize_t n = recv(sp[1], buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            got += (uint64_t)n;
            idle = 0;
        } else {
            sleep_ms(1);
            idle++;
        }
    }
    gx_socks_relay_get_stats(r, &st);
    CHECK(got == st.down_pkts * (10 + sizeof(payload)), "every taken frame arrives whole: %llu of %llu",
          (unsigned long long)got, (unsigned long long)(st.down_pkts * (10 + sizeof(payload))));
    CHECK(st.down_pkts > (uint64_t)framed / (10 + sizeof(payload)), "resumed");
    ioctl(udp, FIONREAD, &queued);
    CHECK(queued == 0, "the UDP socket was drained (%d)", queued);
    /* cancel while idle: the done fd fires, status 0 */
    gx_socks_relay_cancel(r);
    struct pollfd p = {.fd = gx_socks_relay_event_fd(r), .events = POLLIN};
    CHECK(poll(&p, 1, 2000) == 1, "done after cancel");
    CHECK(gx_socks_relay_status(r) == 0, "status %d", gx_socks_relay_status(r));
    gx_socks_relay_free(r);
    close(sp[0]);
    close(sp[1]);
    close(udp);
    close(src);
}

/* A name the resolver cannot answer drops that datagram (counted) and the next frame still goes. */
static void test_unresolvable(void) {
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
    nonblock(sp[0]);
    struct sockaddr_in relay_addr, echo_addr;
    int udp = udp_bound(&relay_addr);
    int echo = udp_bound(&echo_addr);
    struct gx_socks_relay *r;
    CHECK(gx_socks_relay_new(&r, sp[0], udp, 0) == 0, "new");
    CHECK(gx_socks_relay_start(r) == 0, "start");
    static const char bogus[] = "no-such-host.invalid";
    uint8_t f[64] = {0x00, 0x02, 0x00, 0x03, (uint8_t)(sizeof(bogus) - 1)};
    memcpy(f + 5, bogus, sizeof(bogus) - 1);
    size_t o = 5 + sizeof(bogus) - 1;
    f[o] = 0;
    f[o + 1] = 9;
    f[o + 2] = 'x';
    f[o + 3] = 'y';
    CHECK(write(sp[1], f, o + 4) == (ssize_t)(o + 4), "named frame");
    uint8_t frame[GX_SOCKS_UDP_HDR_MAX + 8];
    struct sockaddr_storage to;
    memcpy(&to, &echo_addr, sizeof(echo_addr));
    int h = gx_socks_udp_header(frame, &to, 4);
    memcpy(frame + h, "ping", 4);
    CHECK(write(sp[1], frame, (size_t)h + 4) == h + 4, "ip frame");
    CHECK(echo_for(echo, 1, 10000) == 1, "the frame after the unresolvable one went out");
    struct gx_socks_relay_stats st;
    gx_socks_relay_get_stats(r, &st);
    CHECK(st.drop_up == 1 && st.up_pkts == 1, "drop_up %llu up %llu", (unsigned long long)st.drop_up,
          (unsigned long long)st.up_pkts);
    struct gx_resolve_stats rs;
    gx_resolve_get_stats(&rs);
    CHECK(rs.failed >= 1, "resolver failures %llu", (unsigned long long)rs.failed);
    gx_socks_relay_free(r);
    close(sp[0]);
    close(sp[1]);
    close(udp);
    close(echo);
}

int main(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
        rl.rlim_cur = 4096; /* MANY relays take 4 fds each */
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    test_many();
    test_backpressure();
    test_unresolvable();
    TEST_DONE();
}
