/* The server side of GOST's SOCKS5 0xF3 relay (csrc/proxy/socks_relay.c), through its public calls only
 * (gx/proxy.h), so a rewrite of its internals keeps this target: a peer's stream of frames is
 * relayed to UDP, and datagrams come back as frames.
 *
 * The relay sends each frame to the address in it and resolves names, so the target first moves into
 * a network namespace of its own (unshare(CLONE_NEWNET), or with a user namespace when not root) with
 * only loopback up: nothing leaves the machine. Without one it exits with status 85 (skipped).
 *
 * Input: byte 0: max_datagram for the relay (0 = 65535, else b0 * 8); bytes 1-2: the length of a datagram
 * sent to the relay's UDP socket first (its bytes follow); the rest: the stream (frames, fuzz bytes).
 * Checks: the datagram comes back as one frame that parses (gx_socks_udp_parse) with its payload and the
 * sender's address (unless larger than max_datagram); then the relay consumes the stream and ends by
 * itself (its event fd) at EOF or a malformed frame, within 5 s, with status 0 or EPROTO; stop and free
 * are clean (ASan checks the rest). */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "gx/proxy.h"

static int lo_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (unshare(CLONE_NEWNET) != 0 && unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
        fprintf(stderr, "fuzz_socks_relay: SKIP: no private network namespace (needs root or user namespaces): %s\n",
                strerror(errno));
        exit(85);
    }
    if (lo_up() != 0) {
        fprintf(stderr, "fuzz_socks_relay: SKIP: cannot bring lo up in the namespace: %s\n", strerror(errno));
        exit(85);
    }
    return 0;
}

static int udp_socket(struct sockaddr_in *a) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t l = sizeof(*a);
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof(*a)) != 0 || getsockname(fd, (struct sockaddr *)a, &l) != 0)
        abort();
    return fd;
}

/* Read one whole frame from the stream within timeout_ms into buf; returns its size or 0. */
static size_t read_frame(int fd, uint8_t *buf, size_t cap, int timeout_ms) {
    size_t have = 0;
    for (;;) {
        struct gx_socks_frame fr;
        int rc = gx_socks_udp_parse(buf, have, &fr);
        FZ_CHECK(rc >= 0, "the relay wrote a malformed frame");
        if (rc > 0 && (size_t)rc <= have)
            return (size_t)rc;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            return 0;
        ssize_t r = read(fd, buf + have, cap - have);
        if (r <= 0)
            return 0;
        have += (size_t)r;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t frame[70000];
    struct fz f = {data, size};
    uint32_t maxd = fz_u8(&f) * 8u;
    size_t dlen = fz_u16(&f);
    if (dlen > f.n)
        dlen = f.n;
    const uint8_t *dgram = f.p;
    f.p += dlen;
    f.n -= dlen;
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0)
        abort();
    struct sockaddr_in ra, pa;
    int rfd = udp_socket(&ra), peer = udp_socket(&pa);
    struct gx_socks_relay *r;
    FZ_CHECK(gx_socks_relay_new(&r, sp[0], rfd, maxd) == 0, "relay_new");
    FZ_CHECK(gx_socks_relay_start(r) == 0, "relay_start");
    if (dlen > 0 && sendto(peer, dgram, dlen, 0, (struct sockaddr *)&ra, sizeof(ra)) == (ssize_t)dlen) {
        uint32_t limit = maxd ? maxd : 65535;
        size_t n = read_frame(sp[1], frame, sizeof(frame), dlen <= limit ? 2000 : 50);
        if (dlen <= limit) {
            FZ_CHECK(n > 0, "a %zu-byte datagram did not come back as a frame", dlen);
            struct gx_socks_frame fr;
            gx_socks_udp_parse(frame, n, &fr);
            FZ_CHECK(fr.len == dlen && memcmp(frame + fr.hdr_len, dgram, dlen) == 0, "the frame's payload differs");
            FZ_CHECK(fr.atyp == GX_SOCKS_ATYP_IPV4 && memcmp(fr.host, &pa.sin_addr, 4) == 0 &&
                         fr.port == ntohs(pa.sin_port),
                     "the frame does not carry the sender's address");
        } else {
            FZ_CHECK(n == 0, "a datagram larger than max_datagram was relayed");
        }
    }
    /* the stream: written whole (blocking for room), then EOF */
    for (size_t w = 0; w < f.n;) {
        ssize_t k = write(sp[1], f.p + w, f.n - w);
        if (k > 0) {
            w += (size_t)k;
            continue;
        }
        if (gx_socks_relay_status(r) != 0)
            break;       /* the relay ended (malformed frame): it reads no more */
        struct pollfd p[2] = {{.fd = sp[1], .events = POLLOUT}, {.fd = gx_socks_relay_event_fd(r), .events = POLLIN}};
        if (poll(p, 2, 1000) <= 0)
            break;
        if (p[1].revents)
            break;
        char junk[4096];   /* datagrams the relay sent to itself may come back as frames: drain them */
        while (read(sp[1], junk, sizeof(junk)) > 0) {
        }
    }
    shutdown(sp[1], SHUT_WR);
    struct pollfd ev = {.fd = gx_socks_relay_event_fd(r), .events = POLLIN};
    for (int waited = 0; waited < 5000; waited += 10) {
        if (poll(&ev, 1, 10) > 0)
            break;
        char junk[4096];
        while (read(sp[1], junk, sizeof(junk)) > 0) {
        }
    }
    FZ_CHECK(ev.revents & POLLIN, "the relay did not end within 5 s of the stream's EOF");
    int st = gx_socks_relay_status(r);
    FZ_CHECK(st == 0 || st == EPROTO, "relay status %d", st);
    struct gx_socks_relay_stats stats;
    gx_socks_relay_get_stats(r, &stats);
    FZ_CHECK(gx_socks_relay_stop(r) == 0, "stop");
    gx_socks_relay_free(r);
    close(sp[0]);
    close(sp[1]);
    close(rfd);
    close(peer);
    return 0;
}
