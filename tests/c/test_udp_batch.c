/* gx_udp_sendmmsg (gx/proxy.h): batches of datagrams on loopback arrive whole, in order, with their
 * boundaries: runs of one length (with a shorter last one) through UDP GSO, mixed lengths and mixed
 * addresses plainly, a connected and an unconnected socket, with GSO turned off, two headers (iov pairs)
 * per datagram as a SOCKS5 hop sends them, and a datagram too large for one GSO packet. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx/proxy.h"
#include "gxtest.h"

#define MAXN 128

static int udp_bound(struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t len = sizeof(*addr);
    getsockname(fd, (struct sockaddr *)addr, &len);
    return fd;
}

static uint8_t fill(int i, size_t j) { return (uint8_t)(i * 31 + j * 7 + 1); }

/* Receive n datagrams from fd and compare them with lens[] and fill() (hdr: "HDR!" first); 0: all match */
static int expect_h(int fd, const size_t *lens, const int *ids, int n, const char *what, bool hdr) {
    static uint8_t buf[70000];
    int bad = 0;
    for (int i = 0; i < n; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) != 1) {
            CHECK(0, "%s: datagram %d of %d did not come", what, i, n);
            return 1;
        }
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        bool ok = r == (ssize_t)lens[i] && (!hdr || memcmp(buf, "HDR!", 4) == 0);
        for (size_t j = hdr ? 4 : 0; ok && j < lens[i]; j++)
            ok = buf[j] == fill(ids[i], j);
        if (!ok) {
            CHECK(0, "%s: datagram %d: %zd bytes, wanted %zu (or its bytes differ)", what, i, r, lens[i]);
            bad++;
        }
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 50) == 0, "%s: more datagrams than sent", what);
    return bad;
}

static int expect(int fd, const size_t *lens, const int *ids, int n, const char *what) {
    return expect_h(fd, lens, ids, n, what, false);
}

struct batch {
    struct mmsghdr msg[MAXN];
    struct iovec iov[MAXN][2];
    uint8_t hdr[4];
    uint8_t data[MAXN][1400 + 4];
    size_t lens[MAXN]; /* what the receiver sees */
    int ids[MAXN];
};

/* n datagrams with payload lengths len[i] to dst (NULL: a connected socket); hdr: a 4-byte first iov */
static void build(struct batch *b, const size_t *len, int n, struct sockaddr_in *dst, struct sockaddr_in *alt,
                  bool hdr) {
    memset(b->msg, 0, sizeof(b->msg));
    memcpy(b->hdr, "HDR!", 4);
    for (int i = 0; i < n; i++) {
        b->ids[i] = i;
        for (size_t j = 0; j < len[i]; j++)
            b->data[i][j] = fill(i, j + (hdr ? 4 : 0));
        struct msghdr *h = &b->msg[i].msg_hdr;
        if (hdr) {
            b->iov[i][0] = (struct iovec){.iov_base = b->hdr, .iov_len = 4};
            b->iov[i][1] = (struct iovec){.iov_base = b->data[i], .iov_len = len[i]};
            h->msg_iovlen = 2;
            b->lens[i] = len[i] + 4;
        } else {
            b->iov[i][0] = (struct iovec){.iov_base = b->data[i], .iov_len = len[i]};
            h->msg_iovlen = 1;
            b->lens[i] = len[i];
        }
        h->msg_iov = b->iov[i];
        struct sockaddr_in *to = alt && (i & 1) ? alt : dst;
        if (to) {
            h->msg_name = to;
            h->msg_namelen = sizeof(*to);
        }
    }
}

static void test_runs(bool connected, bool gso_allowed) {
    struct sockaddr_in ra, sa;
    int rx = udp_bound(&ra), tx = udp_bound(&sa);
    if (connected)
        connect(tx, (struct sockaddr *)&ra, sizeof(ra));
    static struct batch b;
    size_t len[MAXN];
    int n = 0;
    for (int i = 0; i < 40; i++) /* a run of 40 full datagrams */
        len[n++] = 1400;
    len[n++] = 300;              /* ... ended by a shorter one */
    for (int i = 0; i < 5; i++)
        len[n++] = 700;
    len[n++] = 1200;             /* a longer one after a run: starts anew */
    len[n++] = 900;
    len[n++] = 1;
    for (int i = 0; i < 70; i++) /* more than GX_UDP_GSO_SEGS in one run */
        len[n++] = 800;
    n = n > MAXN ? MAXN : n;
    build(&b, len, n, connected ? NULL : &ra, NULL, false);
    bool off = !gso_allowed;
    _Atomic uint64_t gso[2] = {0, 0};
    int sent = gx_udp_sendmmsg(tx, b.msg, n, &off, gso);
    char what[64];
    snprintf(what, sizeof(what), "%s, gso %s", connected ? "connected" : "unconnected", gso_allowed ? "on" : "off");
    CHECK(sent == n, "%s: sent %d of %d (errno %d)", what, sent, n, errno);
    for (int i = 0; i < n; i++)
        CHECK(b.msg[i].msg_len == b.lens[i], "%s: msg_len of %d", what, i);
    expect(rx, b.lens, b.ids, n, what);
    if (gso_allowed)
        CHECK(gso[0] >= 3 && !off && gso[1] == 0, "%s: %llu GSO sends (loopback takes UDP GSO)", what, (unsigned long long)gso[0]);
    else
        CHECK(gso[0] == 0, "%s: GSO used while off", what);
    close(rx);
    close(tx);
}

static void test_two_headers_and_addresses(void) {
    struct sockaddr_in ra, rb, sa;
    int rx = udp_bound(&ra), ry = udp_bound(&rb), tx = udp_bound(&sa);
    static struct batch b;
    size_t len[20];
    for (int i = 0; i < 20; i++)
        len[i] = 1000;
    /* header + payload iovs, one address: one GSO run */
    build(&b, len, 20, &ra, NULL, true);
    bool off = false;
    _Atomic uint64_t gso[2] = {0, 0};
    CHECK(gx_udp_sendmmsg(tx, b.msg, 20, &off, gso) == 20 && gso[0] == 1, "iov pairs: one GSO send (%llu)",
          (unsigned long long)gso[0]);
    expect_h(rx, b.lens, b.ids, 20, "iov pairs", true);
    /* alternating addresses: no run, every datagram to its own receiver */
    build(&b, len, 20, &ra, &rb, true);
    gso[0] = 0;
    CHECK(gx_udp_sendmmsg(tx, b.msg, 20, &off, gso) == 20 && gso[0] == 0, "alternating addresses: plain");
    size_t lens[10];
    int ids_a[10], ids_b[10];
    for (int i = 0; i < 10; i++) {
        lens[i] = 1004;
        ids_a[i] = 2 * i;
        ids_b[i] = 2 * i + 1;
    }
    expect_h(rx, lens, ids_a, 10, "address A", true);
    expect_h(ry, lens, ids_b, 10, "address B", true);
    close(rx);
    close(ry);
    close(tx);
}

/* One address in a separate struct per datagram, its sin_zero padding different each time (as a parser
 * may leave it): still one run, compared by family, address and port. */
static void test_equal_addresses_apart(void) {
    struct sockaddr_in ra, sa;
    int rx = udp_bound(&ra), tx = udp_bound(&sa);
    static struct batch b;
    static struct sockaddr_in each[20];
    size_t len[20];
    for (int i = 0; i < 20; i++)
        len[i] = 900;
    build(&b, len, 20, &ra, NULL, false);
    for (int i = 0; i < 20; i++) {
        each[i] = ra;
        memset(each[i].sin_zero, 0x5a + i, sizeof(each[i].sin_zero));
        b.msg[i].msg_hdr.msg_name = &each[i];
    }
    bool off = false;
    _Atomic uint64_t gso[2] = {0, 0};
    CHECK(gx_udp_sendmmsg(tx, b.msg, 20, &off, gso) == 20 && gso[0] == 1, "equal addresses apart: one GSO send (%llu)",
          (unsigned long long)gso[0]);
    expect(rx, b.lens, b.ids, 20, "equal addresses apart");
    close(rx);
    close(tx);
}

/* A socket whose sends the kernel cannot segment (SO_NO_CHECK: GSO needs the checksum offload, so
 * UDP_SEGMENT fails with EINVAL): the run goes out plainly, the socket is marked, the fallback counted
 * once, and later calls send plainly without trying again. */
static void test_fallback(void) {
    struct sockaddr_in ra, sa;
    int rx = udp_bound(&ra), tx = udp_bound(&sa);
    int one = 1;
    CHECK(setsockopt(tx, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)) == 0, "SO_NO_CHECK");
    static struct batch b;
    size_t len[20];
    for (int i = 0; i < 20; i++)
        len[i] = 800;
    bool off = false;
    _Atomic uint64_t gso[2] = {0, 0};
    for (int round = 0; round < 2; round++) {
        build(&b, len, 20, &ra, NULL, false);
        int sent = gx_udp_sendmmsg(tx, b.msg, 20, &off, gso);
        CHECK(sent == 20 && off && gso[0] == 0 && gso[1] == 1,
              "fallback round %d: sent %d, off %d, GSO sends %llu, fallbacks %llu", round, sent, off,
              (unsigned long long)gso[0], (unsigned long long)gso[1]);
        expect(rx, b.lens, b.ids, 20, round ? "after the fallback" : "the fallback's run");
    }
    close(rx);
    close(tx);
}

int main(void) {
    test_fallback();
    test_equal_addresses_apart();
    test_runs(true, true);
    test_runs(false, true);
    test_runs(true, false);
    test_two_headers_and_addresses();
    TEST_DONE();
}
