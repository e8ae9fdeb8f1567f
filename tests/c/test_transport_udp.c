/* The UDP transport's send (csrc/tunnel/transport_udp.c) over loopback, with UDP GSO and without it: every
 * datagram size up to 65507 is delivered, larger ones are refused and counted, and the call always
 * returns (a datagram over the GSO run limit once made it loop forever on sendmsg returning 0). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx/tunnel.h"
#include "gxtest.h"

#define WATCHDOG_S 10

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAIL: a send did not return (loops without progress)\n0 passed, 1 failed\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(1);
}

static int udp_socket(struct sockaddr_storage *addr, socklen_t *len) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    int big = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    memset(addr, 0, sizeof(*addr));
    *len = sizeof(*addr);
    getsockname(fd, (struct sockaddr *)addr, len);
    return fd;
}

static uint8_t payload[65535 + 1];
static uint8_t got[65535 + 1];

/* The next datagram on fd: its length, or -1 when there is none. */
static long next_dgram(int fd) {
    ssize_t r = recv(fd, got, sizeof(got), MSG_DONTWAIT);
    return r < 0 ? -1 : (long)r;
}

/* Send datagrams of the given sizes in one call; check what the receiver gets and the counts. */
static void send_sizes(struct gx_transport *tr, int rx, const struct sockaddr_storage *to, socklen_t tolen,
                       const uint32_t *sizes, int n, int stop_fd, const char *what) {
    struct gx_tunnel_dgram d[16];
    int refused = 0;
    for (int i = 0; i < n; i++) {
        d[i] = (struct gx_tunnel_dgram){.data = payload, .len = sizes[i], .addr = to, .addrlen = tolen};
        refused += sizes[i] > 65507;
    }
    uint64_t bytes = 0, dropped = 0;
    int r = tr->send(tr->state, d, n, stop_fd, &bytes, &dropped);
    CHECK(r == n, "%s: send returned %d of %d", what, r, n);
    CHECK(dropped == (uint64_t)refused, "%s: dropped %llu, want %d", what, (unsigned long long)dropped, refused);
    uint64_t want_bytes = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] > 65507)
            continue;
        want_bytes += sizes[i];
        long len = next_dgram(rx);
        CHECK(len == (long)sizes[i], "%s: datagram %d: got %ld bytes, want %u", what, i, len, sizes[i]);
        CHECK(len < 0 || memcmp(got, payload, (size_t)len) == 0, "%s: datagram %d: content", what, i);
    }
    CHECK(bytes == want_bytes, "%s: bytes %llu, want %llu", what, (unsigned long long)bytes,
          (unsigned long long)want_bytes);
    CHECK(next_dgram(rx) == -1, "%s: nothing more (no empty datagrams sprayed)", what);
}

static void run(int no_gso) {
    const char *mode = no_gso ? "plain" : "gso";
    struct sockaddr_storage rx_addr, tx_addr;
    socklen_t rx_len, tx_len;
    int rx = udp_socket(&rx_addr, &rx_len), tx = udp_socket(&tx_addr, &tx_len);
    int stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (no_gso) {
        /* UDP_SEGMENT needs UDP checksums: without them the kernel refuses it (EINVAL) and the transport
         * falls back to plain sends for good */
        int on = 1;
        CHECK(setsockopt(tx, SOL_SOCKET, SO_NO_CHECK, &on, sizeof(on)) == 0, "SO_NO_CHECK");
    }
    struct gx_transport tr;
    CHECK(gx_transport_udp(&tr, tx) == 0, "transport");
    char what[64];
    /* a GSO run first (with SO_NO_CHECK: it switches GSO off, and is resent plainly) */
    static const uint32_t run2[] = {1000, 1000, 500};
    snprintf(what, sizeof(what), "%s run", mode);
    send_sizes(&tr, rx, &rx_addr, rx_len, run2, 3, stop, what);
    /* each size alone, around the GSO limit (60000) and up to the largest IPv4 UDP payload */
    static const uint32_t alone[] = {59999, 60000, 60001, 60002, 61000, 65000, 65506, 65507, 65508, 65535, 0};
    for (size_t i = 0; i < sizeof(alone) / sizeof(alone[0]); i++) {
        snprintf(what, sizeof(what), "%s %u alone", mode, alone[i]);
        send_sizes(&tr, rx, &rx_addr, rx_len, &alone[i], 1, stop, what);
    }
    /* mixed in one call: large ones between runs, refused ones between sent ones */
    static const uint32_t mixed[] = {1200, 1200, 65000, 1200, 1200, 65535, 60001, 0, 800, 800, 65507};
    snprintf(what, sizeof(what), "%s mixed", mode);
    send_sizes(&tr, rx, &rx_addr, rx_len, mixed, (int)(sizeof(mixed) / sizeof(mixed[0])), stop, what);
    tr.close(tr.state);
    close(tx);
    close(rx);
    close(stop);
}

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm(WATCHDOG_S);
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    run(0);
    run(1);
    TEST_DONE();
}
