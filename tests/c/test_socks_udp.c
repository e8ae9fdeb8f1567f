/* GOST SOCKS5 UDP-over-TCP (0xF3) frames: the parser and encoder against hand-built frames from the
 * spec (v3.md 9.3), the tunnel stream transport over a socketpair, and the relay against a UDP echo. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx/base.h"
#include "gx/proxy.h"
#include "gxtest.h"
#include "netutil.h"

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static struct sockaddr_storage v4(const char *ip, uint16_t port) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a = (void *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *a = (void *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return ss;
}

static void test_wire(void) {
    /* 1.2.3.4:53, payload "abc", written by hand from the spec */
    static const uint8_t frame4[] = {0x00, 0x03, 0x00, 0x01, 1, 2, 3, 4, 0x00, 0x35, 'a', 'b', 'c'};
    struct gx_socks_frame f;
    CHECK(gx_socks_udp_parse(frame4, sizeof(frame4), &f) == (int)sizeof(frame4), "whole v4 frame");
    CHECK(f.hdr_len == 10 && f.len == 3 && f.atyp == 1 && f.port == 53, "v4 fields");
    CHECK(memcmp(f.host, "\x01\x02\x03\x04", 4) == 0, "v4 host");
    for (size_t cut = 0; cut < 10; cut++)
        CHECK(gx_socks_udp_parse(frame4, cut, &f) == 0, "header cut at %zu needs more", cut);
    CHECK(gx_socks_udp_parse(frame4, 11, &f) == 13, "payload cut: size still known");

    uint8_t hdr[GX_SOCKS_UDP_HDR_MAX];
    struct sockaddr_storage a = v4("1.2.3.4", 53);
    CHECK(gx_socks_udp_header(hdr, &a, 3) == 10 && memcmp(hdr, frame4, 10) == 0, "encode v4");
    a = v6("::ffff:1.2.3.4", 53);
    CHECK(gx_socks_udp_header(hdr, &a, 3) == 10 && memcmp(hdr, frame4, 10) == 0, "v4-mapped encodes as v4");
    a = v6("fd00::1", 8421);
    int h = gx_socks_udp_header(hdr, &a, 1400);
    static const uint8_t hdr6[] = {0x05, 0x78, 0x00, 0x04, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                                   0x20, 0xe5};
    CHECK(h == 22 && memcmp(hdr, hdr6, 22) == 0, "encode v6");
    CHECK(gx_socks_udp_parse(hdr6, sizeof(hdr6), &f) == 22 + 1400 && f.atyp == 4 && f.port == 8421, "parse v6");
    CHECK(gx_socks_udp_header(hdr, &a, 0) == -EINVAL, "empty datagram refused");
    CHECK(gx_socks_udp_header(hdr, &a, 65536) == -EINVAL, "oversized refused");
    struct sockaddr_storage un = {.ss_family = AF_UNIX};
    CHECK(gx_socks_udp_header(hdr, &un, 1) == -EAFNOSUPPORT, "unix address refused");

    static const uint8_t named[] = {0x00, 0x02, 0xff, 0x03, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't',
                                    0x1f, 0x90, 'h', 'i'};
    CHECK(gx_socks_udp_parse(named, sizeof(named), &f) == (int)sizeof(named), "name frame");
    CHECK(f.atyp == 3 && f.host_len == 9 && memcmp(f.host, "localhost", 9) == 0 && f.port == 8080, "name fields");
    struct sockaddr_storage out;
    socklen_t outlen;
    CHECK(gx_socks_frame_sockaddr(&f, &out, &outlen) == -EAFNOSUPPORT, "a name has no sockaddr");

    static const uint8_t len0[] = {0x00, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 53};
    static const uint8_t atyp9[] = {0x00, 0x01, 0x00, 0x09, 1, 2, 3, 4, 0, 53, 'x'};
    static const uint8_t name0[] = {0x00, 0x01, 0x00, 0x03, 0, 0, 53, 'x'};
    CHECK(gx_socks_udp_parse(len0, sizeof(len0), &f) == -EPROTO, "LEN 0 is a protocol error");
    CHECK(gx_socks_udp_parse(atyp9, sizeof(atyp9), &f) == -EPROTO, "bad ATYP is a protocol error");
    CHECK(gx_socks_udp_parse(name0, sizeof(name0), &f) == -EPROTO, "empty name is a protocol error");
}

/* Read exactly n bytes from a blocking-ish fd (retries EAGAIN for up to 2 s). */
static size_t read_all(int fd, uint8_t *buf, size_t n) {
    size_t got = 0;
    for (int tries = 0; got < n && tries < 2000; tries++) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0)
            break;
        else
            sleep_ms(1);
    }
    return got;
}

static int recv_some(struct gx_transport *tr, struct gx_batch *b, uint64_t *bytes) {
    for (int tries = 0; tries < 2000; tries++) {
        gx_batch_reset(b);
        int n = tr->recv(tr->state, b, bytes);
        if (n != -EAGAIN)
            return n;
        sleep_ms(1);
    }
    return -ETIMEDOUT;
}

static void test_transport(void) {
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
    nonblock(sp[0]);
    struct gx_transport tr;
    CHECK(gx_transport_socks_udp(&tr, sp[0]) == 0, "transport");

    /* send: two datagrams (v4 and v6 destinations) and one empty one (dropped, never on the wire) */
    struct sockaddr_storage d4 = v4("10.0.0.1", 8421), d6 = v6("fd00::2", 53);
    uint8_t p1[1400], p2[5] = {'h', 'e', 'l', 'l', 'o'};
    for (int i = 0; i < 1400; i++)
        p1[i] = (uint8_t)i;
    struct gx_tunnel_dgram d[3] = {
        {.data = p1, .len = sizeof(p1), .addr = &d4, .addrlen = sizeof(struct sockaddr_in)},
        {.data = p2, .len = 0, .addr = &d4, .addrlen = sizeof(struct sockaddr_in)},
        {.data = p2, .len = sizeof(p2), .addr = &d6, .addrlen = sizeof(struct sockaddr_in6)},
    };
    uint64_t bytes = 0, dropped = 0;
    int sent = tr.send(tr.state, d, 3, -1, &bytes, &dropped);
    CHECK(sent == 2 && dropped == 1, "sent %d dropped %llu", sent, (unsigned long long)dropped);
    CHECK(bytes == 10 + 1400 + 22 + 5, "wire bytes %llu", (unsigned long long)bytes);
    uint8_t wire[2000];
    CHECK(read_all(sp[1], wire, bytes) == bytes, "frames on the stream");
    CHECK(wire[0] == 0x05 && wire[1] == 0x78 && wire[2] == 0 && wire[3] == 1, "first header");
    CHECK(memcmp(wire + 4, "\x0a\x00\x00\x01\x20\xe5", 6) == 0, "first address");
    CHECK(memcmp(wire + 10, p1, sizeof(p1)) == 0, "first payload");
    CHECK(wire[1410] == 0 && wire[1411] == 5 && wire[1413] == 4 && memcmp(wire + 1432, "hello", 5) == 0,
          "second frame");

    /* recv: feed the same bytes back one byte at a time, with an oversized-for-slot frame between */
    struct gx_batch b;
    CHECK(gx_batch_init(&b, 8, 1024, GX_HEADROOM) == 0, "batch");
    uint64_t rbytes = 0;
    uint32_t got = 0, big = 0, small = 0;
    for (size_t off = 0; off < bytes; off += 7) { /* in 7-byte pieces, receiving in between */
        size_t piece = bytes - off < 7 ? bytes - off : 7;
        CHECK(write(sp[1], wire + off, piece) == (ssize_t)piece, "write");
        gx_batch_reset(&b);
        int n = tr.recv(tr.state, &b, &rbytes);
        CHECK(n > 0 || n == -EAGAIN, "recv %d", n);
        for (int i = 0; i < n; i++, got++) {
            if (b.pkt[i].len == 0)
                big++; /* 1400 bytes do not fit a 1024-byte slot: dropped, stream stays in sync */
            else if (b.pkt[i].len == 5 && memcmp(b.pkt[i].data, "hello", 5) == 0 && b.addr[i].ss_family == AF_INET6)
                small++;
        }
    }
    CHECK(big == 1 && small == 1 && rbytes == bytes, "big %u small %u bytes %llu", big, small,
          (unsigned long long)rbytes);
    CHECK(tr.recv(tr.state, &b, &rbytes) == -EAGAIN, "nothing more");

    /* a malformed frame finishes the transport */
    static const uint8_t bad[] = {0x00, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 53};
    CHECK(write(sp[1], bad, sizeof(bad)) == (ssize_t)sizeof(bad), "write bad");
    CHECK(recv_some(&tr, &b, &rbytes) == -EPROTO, "LEN 0 => -EPROTO");
    CHECK(tr.recv(tr.state, &b, &rbytes) == -EPROTO, "stays finished");
    tr.close(tr.state);
    close(sp[0]);
    close(sp[1]);

    /* EOF: clean => -ECONNRESET; inside a frame => -EPROTO */
    for (int partial = 0; partial < 2; partial++) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
        nonblock(sp[0]);
        CHECK(gx_transport_socks_udp(&tr, sp[0]) == 0, "transport");
        if (partial)
            CHECK(write(sp[1], "\x00\x05\x00\x01\x01", 5) == 5, "half a header");
        close(sp[1]);
        int want = partial ? -EPROTO : -ECONNRESET;
        CHECK(recv_some(&tr, &b, &rbytes) == want, "EOF (partial=%d)", partial);
        tr.close(tr.state);
        close(sp[0]);
    }
    gx_batch_free(&b);
}

static void test_relay(void) {
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
    nonblock(sp[0]);
    struct sockaddr_in relay_addr, echo_addr;
    int udp = udp_bound(&relay_addr);
    int echo = udp_bound(&echo_addr);
    struct gx_socks_relay *r;
    CHECK(gx_socks_relay_new(&r, sp[0], udp, 0) == 0, "relay");
    CHECK(gx_socks_relay_start(r) == 0, "start");

    /* a frame to the echo socket by IP, and one by name */
    uint8_t frame[GX_SOCKS_UDP_HDR_MAX + 8];
    struct sockaddr_storage to;
    memcpy(&to, &echo_addr, sizeof(echo_addr));
    int h = gx_socks_udp_header(frame, &to, 4);
    memcpy(frame + h, "ping", 4);
    CHECK(write(sp[1], frame, (size_t)h + 4) == h + 4, "write frame");
    uint8_t named[32] = {0x00, 0x04, 0x00, 0x03, 9};
    memcpy(named + 5, "localhost", 9);
    named[14] = (uint8_t)(ntohs(echo_addr.sin_port) >> 8);
    named[15] = (uint8_t)ntohs(echo_addr.sin_port);
    memcpy(named + 16, "name", 4);
    CHECK(write(sp[1], named, 20) == 20, "write named frame");

    int seen = 0;
    for (int tries = 0; tries < 2000 && seen < 2; tries++) {
        uint8_t buf[64];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(echo, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
        if (n < 0) {
            sleep_ms(1);
            continue;
        }
        CHECK(n == 4 && (memcmp(buf, "ping", 4) == 0 || memcmp(buf, "name", 4) == 0), "echo got it");
        CHECK(from.sin_port == relay_addr.sin_port, "from the relay socket");
        sendto(echo, "pong", 4, 0, (struct sockaddr *)&from, fl);
        seen++;
    }
    CHECK(seen == 2, "both frames reached the echo (%d)", seen);
    /* two replies come back as frames whose address is the echo's */
    uint8_t back[2 * 14];
    CHECK(read_all(sp[1], back, sizeof(back)) == sizeof(back), "replies");
    for (int i = 0; i < 2; i++) {
        struct gx_socks_frame f;
        CHECK(gx_socks_udp_parse(back + 14 * i, 14, &f) == 14, "reply frame");
        CHECK(f.atyp == 1 && f.port == ntohs(echo_addr.sin_port) && memcmp(back + 14 * i + 10, "pong", 4) == 0,
              "reply source and payload");
    }
    struct gx_socks_relay_stats st;
    for (int tries = 0; tries < 1000; tries++) { /* counters are added right after the write */
        gx_socks_relay_get_stats(r, &st);
        if (st.down_pkts == 2)
            break;
        sleep_ms(1);
    }
    CHECK(st.up_pkts == 2 && st.down_pkts == 2 && st.drop_up == 0, "stats up %llu down %llu",
          (unsigned long long)st.up_pkts, (unsigned long long)st.down_pkts);

    /* a malformed frame ends the relay with EPROTO and wakes the event fd */
    CHECK(write(sp[1], "\x00\x01\x00\x07\x00\x00\x00\x00\x00\x00x", 11) == 11, "bad atyp");
    struct pollfd p = {.fd = gx_socks_relay_event_fd(r), .events = POLLIN};
    CHECK(poll(&p, 1, 2000) == 1, "event fd readable");
    CHECK(gx_socks_relay_status(r) == EPROTO, "status %d", gx_socks_relay_status(r));
    gx_socks_relay_free(r);
    close(sp[0]);
    close(sp[1]);

    /* a clean EOF ends it with status 0 */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
    nonblock(sp[0]);
    CHECK(gx_socks_relay_new(&r, sp[0], udp, 0) == 0, "relay 2");
    CHECK(gx_socks_relay_start(r) == 0, "start 2");
    close(sp[1]);
    p.fd = gx_socks_relay_event_fd(r);
    CHECK(poll(&p, 1, 2000) == 1, "event on EOF");
    CHECK(gx_socks_relay_status(r) == 0, "clean EOF status %d", gx_socks_relay_status(r));
    gx_socks_relay_free(r);
    close(sp[0]);

    /* stop while idle */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
    nonblock(sp[0]);
    CHECK(gx_socks_relay_new(&r, sp[0], udp, 0) == 0, "relay 3");
    CHECK(gx_socks_relay_start(r) == 0, "start 3");
    CHECK(gx_socks_relay_stop(r) == 0 && gx_socks_relay_stop(r) == 0, "stop twice");
    gx_socks_relay_free(r);
    close(sp[0]);
    close(sp[1]);
    CHECK(gx_socks_relay_new(&r, -1, udp, 0) == -EINVAL, "bad fd");
    close(udp);
    close(echo);
}

/* Random bytes never crash the parser and every accepted size is consistent. */
static void test_parse_fuzz(void) {
    uint32_t x = 12345;
    uint8_t buf[300];
    int bad = 0;
    for (int round = 0; round < 200000; round++) {
        size_t n = 0;
        x = x * 1103515245u + 12345u;
        n = (x >> 16) % sizeof(buf);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (uint8_t)(x >> 16);
        }
        if (n > 3 && (x & 1))
            buf[3] = (uint8_t)(1 + (x >> 8) % 4);
        struct gx_socks_frame f;
        int r = gx_socks_udp_parse(buf, n, &f);
        if (r > 0 && (f.hdr_len > n || f.hdr_len + f.len != (uint32_t)r || f.len == 0))
            bad++;
    }
    CHECK(bad == 0, "%d inconsistent parses", bad);
}

int main(void) {
    test_wire();
    test_transport();
    test_relay();
    test_parse_fuzz();
    TEST_DONE();
}
