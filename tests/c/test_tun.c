/* TUN/TAP devices for real: needs root and /dev/net/tun (skips with a reason otherwise).
 *
 * The test first moves itself into a private network namespace (unshare(CLONE_NEWNET)), so the
 * devices, the 10.99.0.0/24 address and the traffic below touch nothing else; devices are named
 * gxt<pid>a/b and are gone when their fds are closed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if_arp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx/base.h"
#include "gx/tun.h"
#include "gxtest.h"
#include "pktref.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define TUN_IP "10.99.0.1"     /* the device's address */
#define PEER_IP "10.99.0.2"    /* "behind" the device: traffic to it goes into the TUN */

static char name_a[IFNAMSIZ], name_b[IFNAMSIZ];

static int device_exists(const char *name) { return if_nametoindex(name) != 0; }

static void close_fds(int *fds, int n) {
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void test_bad_arguments(void) {
    int fds[4];
    struct gx_tun_info info;
    CHECK(gx_tun_open("x", 0x100, 1, fds, &info) == -EINVAL, "unknown flag");
    CHECK(gx_tun_open("x", 0, 2, fds, &info) == -EINVAL, "2 queues without MULTI_QUEUE");
    CHECK(gx_tun_open("x", GX_TUN_MULTI_QUEUE, 0, fds, &info) == -EINVAL, "0 queues");
    CHECK(gx_tun_open("x", GX_TUN_MULTI_QUEUE, GX_TUN_MAX_QUEUES + 1, fds, &info) == -EINVAL, "too many queues");
    CHECK(gx_tun_open("x", GX_TUN_GSO, 1, fds, &info) == -EINVAL, "GSO without VNET_HDR");
    CHECK(gx_tun_open("x", GX_TUN_TAP | GX_TUN_GSO, 1, fds, &info) == -EINVAL, "TAP GSO without VNET_HDR");
    CHECK(gx_tun_open("a-name-of-16-chr", 0, 1, fds, &info) == -ENAMETOOLONG, "16-byte name");
    CHECK(gx_tun_open("x", 0, 1, NULL, &info) == -EINVAL, "NULL fds");
    CHECK(gx_tun_open("bad/name", 0, 1, fds, &info) == -EINVAL, "a name the kernel refuses");
}

static void test_kernel_name(void) {
    int fd;
    struct gx_tun_info info;
    CHECK(gx_tun_open(NULL, 0, 1, &fd, &info) == 0, "open with a kernel-picked name");
    CHECK(strncmp(info.name, "tun", 3) == 0 && device_exists(info.name), "kernel name '%s'", info.name);
    CHECK(info.offloads == 0 && info.vnet_hdr == GX_TUN_VNET_NONE, "no offloads without VNET_HDR");
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    CHECK((fl & O_NONBLOCK) && (fdfl & FD_CLOEXEC), "non-blocking and close-on-exec");
    char name[IFNAMSIZ];
    memcpy(name, info.name, IFNAMSIZ);
    close(fd);
    CHECK(!device_exists(name), "device %s removed on close", name);

    CHECK(gx_tun_open("", GX_TUN_TAP, 1, &fd, &info) == 0, "TAP with an empty name");
    CHECK(strncmp(info.name, "tap", 3) == 0, "kernel TAP name '%s'", info.name);
    close(fd);
    CHECK(gx_tun_open("gxpat%d", 0, 1, &fd, &info) == 0, "a name pattern");
    CHECK(strncmp(info.name, "gxpat", 5) == 0 && info.name[5] >= '0' && info.name[5] <= '9', "'%s'", info.name);
    close(fd);
}

static void test_name_in_use(void) {
    int fd, fd2 = -1;
    struct gx_tun_info info, info2;
    CHECK(gx_tun_open(name_a, 0, 1, &fd, &info) == 0, "open %s", name_a);
    CHECK(strcmp(info.name, name_a) == 0, "name read back: '%s'", info.name);
    CHECK(device_exists(name_a), "%s exists", name_a);
    CHECK(gx_tun_open(name_a, 0, 1, &fd2, &info2) == -EBUSY, "same name again -> -EBUSY");
    CHECK(fd2 == -1, "no fd left behind");
    CHECK(gx_tun_open(name_a, GX_TUN_TAP, 1, &fd2, &info2) == -EBUSY, "TAP on a TUN's name -> -EBUSY");
    int two[2];
    CHECK(gx_tun_open(name_a, GX_TUN_MULTI_QUEUE, 2, two, &info2) == -EBUSY && two[0] == -1 && two[1] == -1,
          "multi-queue on a single-queue TUN's name -> -EBUSY");
    CHECK(gx_tun_open("lo", 0, 1, &fd2, &info2) == -EBUSY, "a device that is not a TUN -> -EBUSY");
    close(fd);
    CHECK(!device_exists(name_a), "%s removed on close", name_a);
}

static void test_multi_queue(void) {
    int fds[3] = {-1, -1, -1};
    struct gx_tun_info info;
    int rc = gx_tun_open(name_b, GX_TUN_MULTI_QUEUE, 3, fds, &info);
    CHECK(rc == 0, "3 queues: %d", rc);
    CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0 && fds[0] != fds[1] && fds[1] != fds[2], "3 fds");
    for (int q = 0; q < 3; q++) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        CHECK(ioctl(fds[q], TUNGETIFF, &ifr) == 0 && strcmp(ifr.ifr_name, name_b) == 0 &&
                  (ifr.ifr_flags & IFF_MULTI_QUEUE),
              "queue %d is attached to %s as a multi-queue fd", q, name_b);
    }
    int one = -1;
    struct gx_tun_info other;
    CHECK(gx_tun_open(name_b, 0, 1, &one, &other) == -EBUSY, "single-queue open of a multi-queue name");
    close(fds[0]);
    CHECK(device_exists(name_b), "device stays while queues remain");
    close_fds(fds + 1, 2);
    CHECK(!device_exists(name_b), "device gone with its last queue");
}

static void test_vnet_probe(void) {
    int fd;
    struct gx_tun_info info;
    CHECK(gx_tun_open(name_a, GX_TUN_VNET_HDR, 1, &fd, &info) == 0, "open with VNET_HDR");
    CHECK(info.offloads == GX_TUN_F_CSUM && info.vnet_hdr == GX_TUN_VNET_CSUM,
          "VNET_HDR alone enables checksum offload only: %#x", info.offloads);
    int sz = 0;
    CHECK(ioctl(fd, TUNGETVNETHDRSZ, &sz) == 0 && sz == GX_VNET_HDR_LEN, "vnet header size %d", sz);
    close(fd);

    CHECK(gx_tun_open(name_a, GX_TUN_VNET_HDR | GX_TUN_GSO, 1, &fd, &info) == 0, "open with GSO");
    CHECK((info.offloads & (GX_TUN_F_CSUM | GX_TUN_F_TSO4 | GX_TUN_F_TSO6)) ==
              (GX_TUN_F_CSUM | GX_TUN_F_TSO4 | GX_TUN_F_TSO6),
          "TSO enabled: %#x", info.offloads);
    CHECK(info.vnet_hdr == GX_TUN_VNET_GSO, "GSO read mode");
    printf("offloads with GSO: %#x (USO %s)\n", info.offloads,
           (info.offloads & GX_TUN_F_USO4) ? "on" : "not supported by this kernel");
    close(fd);

    CHECK(gx_tun_open(name_a, GX_TUN_TAP | GX_TUN_VNET_HDR | GX_TUN_GSO, 1, &fd, &info) == 0, "TAP with GSO");
    CHECK((info.offloads & (GX_TUN_F_TSO4 | GX_TUN_F_TSO6)) == (GX_TUN_F_TSO4 | GX_TUN_F_TSO6) &&
              info.vnet_hdr == GX_TUN_VNET_GSO_ETH,
          "TAP: TSO enabled %#x, Ethernet GSO read mode %d", info.offloads, info.vnet_hdr);
    close(fd);
}

static void test_down_device(void) {
    int fd;
    struct gx_tun_info info;
    struct gx_batch b;
    CHECK(gx_tun_open(name_a, 0, 1, &fd, &info) == 0, "open");
    CHECK(gx_batch_init(&b, 4, GX_SLOT_SIZE, GX_HEADROOM) == 0, "batch");
    CHECK(gx_tun_read_batch(fd, 0, &b) == -EAGAIN && b.n == 0, "idle device -> -EAGAIN");
    b.n = 2;
    b.pkt[0].len = b.pkt[1].len = 28;
    memset(b.pkt[0].data, 0, 28);
    b.pkt[0].data[0] = 0x45;
    CHECK(gx_tun_write_batch(fd, 0, &b) == 0, "a device that is down refuses packets: dropped, not an error");
    CHECK(gx_tun_write_batch(-1, 0, &b) == -EBADF, "bad fd -> -EBADF");
    CHECK(gx_tun_read_batch(-1, 0, &b) == -EBADF, "read bad fd -> -EBADF");
    b.n = 0;
    CHECK(gx_tun_write_batch(-1, 0, &b) == 0, "empty batch: no syscall");
    gx_batch_free(&b);
    close(fd);
}

/* ---- traffic through a configured device (private namespace only) ---- */

static int ifioctl(unsigned long req, struct ifreq *ifr) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    int rc = ioctl(s, req, ifr) < 0 ? -errno : 0;
    close(s);
    return rc;
}

static int bring_up(const char *name, const char *ip) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &sin->sin_addr);
    int rc = ifioctl(SIOCSIFADDR, &ifr);
    inet_pton(AF_INET, "255.255.255.0", &sin->sin_addr);
    if (rc == 0)
        rc = ifioctl(SIOCSIFNETMASK, &ifr);
    if (rc == 0)
        rc = ifioctl(SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP;
    if (rc == 0)
        rc = ifioctl(SIOCSIFFLAGS, &ifr);
    return rc;
}

static int udp_socket(const char *bind_ip, uint16_t port) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, bind_ip, &a.sin_addr);
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(s);
        return -1;
    }
    return s;
}

static void send_to_peer(int s, const uint8_t *data, size_t len, uint16_t port) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, PEER_IP, &to.sin_addr);
    ssize_t r = sendto(s, data, len, 0, (struct sockaddr *)&to, sizeof(to));
    CHECK(r == (ssize_t)len, "sendto %zu bytes: %zd (%s)", len, r, r < 0 ? strerror(errno) : "");
}

/* Is p an IPv4/UDP packet PEER_IP:port with a valid checksum? Returns its payload length or -1. */
static int udp_to_peer(const struct gx_pkt *p, uint16_t port) {
    const uint8_t *d = p->data;
    struct in_addr peer;
    inet_pton(AF_INET, PEER_IP, &peer);
    if (p->len < 28 || d[0] != 0x45 || d[9] != 17 || memcmp(d + 16, &peer, 4) != 0 || get16(d + 22) != port)
        return -1;
    if (get16(d + 2) != p->len || get16(d + 24) != p->len - 20 || !ip4_valid(d))
        return -1;
    return l4_valid(d, p->len, 0, 17, 20) ? (int)p->len - 28 : -1;
}

/* Datagrams sent into the device come back out of one read call, checksums complete. */
static void test_read_traffic(unsigned flags, const char *what) {
    int fd;
    struct gx_tun_info info;
    struct gx_batch b;
    CHECK(gx_tun_open(name_a, flags, 1, &fd, &info) == 0, "%s: open", what);
    CHECK(bring_up(name_a, TUN_IP) == 0, "%s: address and up", what);
    CHECK(gx_batch_init(&b, GX_BATCH_MAX, GX_SLOT_SIZE, GX_HEADROOM) == 0, "batch");
    while (gx_tun_read_batch(fd, info.vnet_hdr, &b) > 0) {
    }
    int s = udp_socket(TUN_IP, 0);
    uint8_t msg[1400];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 3);
    static const size_t sizes[] = {1, 100, 1371, 1372, 0, 2};  /* odd and even, the largest for MTU 1400 */
    const int n = sizeof(sizes) / sizeof(sizes[0]);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name_a);
    ifr.ifr_mtu = 1400;
    CHECK(ifioctl(SIOCSIFMTU, &ifr) == 0, "mtu");
    for (int i = 0; i < n; i++)
        send_to_peer(s, msg, sizes[i], 9999);
    int rc = gx_tun_read_batch(fd, info.vnet_hdr, &b);
    int found = 0;
    for (int i = 0; i < rc; i++) {
        int len = udp_to_peer(&b.pkt[i], 9999);
        if (len < 0)
            continue;   /* e.g. IPv6 router solicitations on the new link */
        CHECK(found < n && (size_t)len == sizes[found] && memcmp(b.pkt[i].data + 28, msg, (size_t)len) == 0,
              "%s: datagram %d (%d bytes) intact, in order", what, found, len);
        found++;
    }
    CHECK(found == n, "%s: %d of %d datagrams in one read (%d packets)", what, found, n, rc);

    /* 64 datagrams of one kind: a batch of 128 slots takes them in one call. */
    for (int i = 0; i < 64; i++)
        send_to_peer(s, msg, 64, 9998);
    rc = gx_tun_read_batch(fd, info.vnet_hdr, &b);
    found = 0;
    for (int i = 0; i < rc; i++)
        found += udp_to_peer(&b.pkt[i], 9998) == 64;
    CHECK(found == 64, "%s: 64 datagrams in one read: %d", what, found);

    if (info.offloads & GX_TUN_F_USO4) {
        /* One UDP_SEGMENT send becomes one super-packet on the device, split again by the read. */
        int seg = 1000;
        CHECK(setsockopt(s, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg)) == 0, "UDP_SEGMENT");
        send_to_peer(s, msg, 1000, 9997);   /* warm-up: the first send resolves the route */
        uint8_t big[5500];
        for (size_t i = 0; i < sizeof(big); i++)
            big[i] = (uint8_t)(i / 1000 + i);
        while (gx_tun_read_batch(fd, info.vnet_hdr, &b) > 0) {
        }
        send_to_peer(s, big, sizeof(big), 9997);
        rc = gx_tun_read_batch(fd, info.vnet_hdr, &b);
        found = 0;
        for (int i = 0; i < rc; i++) {
            int len = udp_to_peer(&b.pkt[i], 9997);
            if (len < 0)
                continue;
            int want = found < 5 ? 1000 : 500;
            CHECK(len == want && memcmp(b.pkt[i].data + 28, big + found * 1000, (size_t)want) == 0,
                  "%s: USO segment %d: %d bytes", what, found, len);
            found++;
        }
        CHECK(found == 6, "%s: 6 segments from one 5500-byte UDP_SEGMENT send: %d", what, found);
        /* Proof that the kernel really sent one super-packet: a read in CSUM mode cannot split it
         * and drops it. */
        send_to_peer(s, big, sizeof(big), 9997);
        rc = gx_tun_read_batch(fd, GX_TUN_VNET_CSUM, &b);
        found = 0;
        for (int i = 0; i < rc; i++)
            found += udp_to_peer(&b.pkt[i], 9997) >= 0;
        CHECK(found == 0, "%s: a super-packet read without GSO mode is dropped: %d segments", what, found);
    }
    close(s);
    gx_batch_free(&b);
    close(fd);
}

/* An IPv4/TCP packet PEER_IP:80 -> TUN_IP:dport with correct checksums, and an MSS option on a SYN. */
static uint32_t make_tcp_in(uint8_t *d, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t mss) {
    uint32_t thlen = mss ? 24 : 20, len = 20 + thlen;
    memset(d, 0, len);
    d[0] = 0x45;
    put16(d + 2, len);
    d[8] = 64;
    d[9] = 6;
    inet_pton(AF_INET, PEER_IP, d + 12);
    inet_pton(AF_INET, TUN_IP, d + 16);
    put16(d + 10, (uint16_t)~ref_fold(ref_sum(d, 20, 0)));
    uint8_t *t = d + 20;
    put16(t, 80);
    put16(t + 2, dport);
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = (uint8_t)(thlen / 4 << 4);
    t[13] = flags;
    put16(t + 14, 65535);
    if (mss) {
        t[20] = 2;
        t[21] = 4;
        put16(t + 22, mss);
    }
    put16(t + 16, (uint16_t)~ref_fold(ref_sum(t, thlen, ref_pseudo(d, 0, 6, thlen))));
    return len;
}

/* Wait up to 2 s for packets, then read a batch. */
static int read_wait(int fd, int vnet, struct gx_batch *b) {
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 2000) <= 0)
        return -ETIMEDOUT;
    return gx_tun_read_batch(fd, vnet, b);
}

/* TCP from the kernel through a GSO-mode device: the kernel sends TSO super-packets, the reads
 * cut them into MSS-sized segments with consecutive sequence numbers and valid checksums. */
static void test_tso_traffic(void) {
    int fd;
    struct gx_tun_info info;
    struct gx_batch b;
    const uint16_t mss = 1360;
    CHECK(gx_tun_open(name_a, GX_TUN_VNET_HDR | GX_TUN_GSO, 1, &fd, &info) == 0, "tso: open");
    CHECK(bring_up(name_a, TUN_IP) == 0, "tso: address and up");
    CHECK(gx_batch_init(&b, GX_BATCH_MAX, GX_SLOT_SIZE, GX_HEADROOM) == 0, "batch");
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, PEER_IP, &to.sin_addr);
    CHECK(connect(c, (struct sockaddr *)&to, sizeof(to)) < 0 && errno == EINPROGRESS, "connect starts");

    uint32_t isn = 0;
    uint16_t cport = 0;
    for (int tries = 0; tries < 5 && cport == 0; tries++) {
        int rc = read_wait(fd, info.vnet_hdr, &b);
        for (int i = 0; i < rc; i++) {
            const uint8_t *d = b.pkt[i].data;
            if (b.pkt[i].len >= 40 && d[0] == 0x45 && d[9] == 6 && (d[33] & 0x02)) {
                cport = get16(d + 20);
                isn = get32(d + 24);
            }
        }
    }
    CHECK(cport != 0, "tso: the SYN came out of the device");
    b.n = 1;
    b.pkt[0].data = gx_batch_slot(&b, 0) + b.headroom;
    b.pkt[0].len = make_tcp_in(b.pkt[0].data, cport, 5000, isn + 1, 0x12, mss);
    CHECK(gx_tun_write_batch(fd, info.vnet_hdr, &b) == 1, "tso: SYN-ACK written");
    struct pollfd pfd = {c, POLLOUT, 0};
    CHECK(poll(&pfd, 1, 2000) == 1, "tso: connected");

    static uint8_t data[12 * 1360];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 13 + (i >> 9));
    ssize_t sent = send(c, data, sizeof(data), 0);
    CHECK(sent == (ssize_t)sizeof(data), "tso: send %zd", sent);

    /* The initial window is 10 segments: expect them, in order, without waiting for ACKs. */
    uint32_t next = isn + 1, got = 0, segments = 0, bad = 0;
    for (int tries = 0; tries < 20 && got < 10u * mss; tries++) {
        int rc = read_wait(fd, info.vnet_hdr, &b);
        for (int i = 0; i < rc; i++) {
            const uint8_t *d = b.pkt[i].data;
            uint32_t len = b.pkt[i].len;
            if (len < 40 || d[0] != 0x45 || d[9] != 6 || get16(d + 20) != cport)
                continue;
            uint32_t hl = 20 + (d[32] >> 4) * 4u;
            if (len <= hl)
                continue;   /* a pure ACK */
            uint32_t plen = len - hl;
            if (get32(d + 24) != next || plen > mss || get16(d + 2) != len || !ip4_valid(d) ||
                !l4_valid(d, len, 0, 6, 20) || memcmp(d + hl, data + got, plen) != 0)
                bad++;
            next += plen;
            got += plen;
            segments++;
        }
    }
    CHECK(bad == 0, "tso: %u of %u segments wrong (seq, size, checksums or payload)", bad, segments);
    CHECK(got >= 10u * mss, "tso: %u bytes in order of the 10-segment initial window", got);
    close(c);
    gx_batch_free(&b);
    close(fd);
}

/* A TAP device with a vnet header: frames come out bare, with their UDP checksums completed (the
 * checksum offsets count from the start of the Ethernet frame). */
static void test_tap_vnet_traffic(void) {
    int fd;
    struct gx_tun_info info;
    struct gx_batch b;
    CHECK(gx_tun_open(name_a, GX_TUN_TAP | GX_TUN_VNET_HDR, 1, &fd, &info) == 0, "tap vnet: open");
    CHECK(info.offloads == GX_TUN_F_CSUM && info.vnet_hdr == GX_TUN_VNET_CSUM, "tap vnet: csum offload");
    CHECK(bring_up(name_a, TUN_IP) == 0, "tap vnet: address and up");
    struct arpreq arp;
    memset(&arp, 0, sizeof(arp));
    struct sockaddr_in *pa = (struct sockaddr_in *)&arp.arp_pa;
    pa->sin_family = AF_INET;
    inet_pton(AF_INET, PEER_IP, &pa->sin_addr);
    arp.arp_ha.sa_family = ARPHRD_ETHER;
    memcpy(arp.arp_ha.sa_data, "\x02\x11\x22\x33\x44\x55", 6);
    arp.arp_flags = ATF_COM | ATF_PERM;
    snprintf(arp.arp_dev, sizeof(arp.arp_dev), "%s", name_a);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(ioctl(s, SIOCSARP, &arp) == 0, "tap vnet: static neighbour: %s", strerror(errno));
    CHECK(gx_batch_init(&b, GX_BATCH_MAX, GX_SLOT_SIZE, GX_HEADROOM) == 0, "batch");
    uint8_t msg[333];
    memset(msg, 0x5a, sizeof(msg));
    for (int i = 0; i < 3; i++)
        send_to_peer(s, msg, sizeof(msg) - (size_t)i, 9996);
    int found = 0;
    for (int tries = 0; tries < 5 && found < 3; tries++) {
        int rc = read_wait(fd, info.vnet_hdr, &b);
        for (int i = 0; i < rc; i++) {
            const uint8_t *f = b.pkt[i].data;
            if (b.pkt[i].len < 14 + 28 || get16(f + 12) != 0x0800 || memcmp(f, arp.arp_ha.sa_data, 6) != 0)
                continue;
            struct gx_pkt ip = {(uint8_t *)f + 14, b.pkt[i].len - 14, 0};
            int len = udp_to_peer(&ip, 9996);
            CHECK(len == (int)sizeof(msg) - found, "tap vnet: frame %d: udp payload %d, checksums valid", found, len);
            found++;
        }
    }
    CHECK(found == 3, "tap vnet: %d of 3 frames", found);
    close(s);
    gx_batch_free(&b);
    close(fd);
}

/* A UDP packet for PEER_IP -> TUN_IP:port with correct checksums. */
static uint32_t make_udp_in(uint8_t *d, uint16_t port, uint8_t tag, uint32_t payload) {
    uint32_t len = 28 + payload;
    memset(d, 0, 28);
    d[0] = 0x45;
    put16(d + 2, len);
    d[6] = 0x40;
    d[8] = 64;
    d[9] = 17;
    inet_pton(AF_INET, PEER_IP, d + 12);
    inet_pton(AF_INET, TUN_IP, d + 16);
    put16(d + 10, (uint16_t)~ref_fold(ref_sum(d, 20, 0)));
    put16(d + 20, 4444);
    put16(d + 22, port);
    put16(d + 24, 8 + payload);
    memset(d + 28, tag, payload);
    uint16_t c = (uint16_t)~ref_fold(ref_sum(d + 20, 8 + payload, ref_pseudo(d, 0, 17, 8 + payload)));
    put16(d + 26, c ? c : 0xffff);
    return len;
}

/* A batch written to the device reaches a socket bound to its address; 0-length slots are skipped
 * and a malformed packet is dropped without stopping the batch. */
static void test_write_traffic(unsigned flags, const char *what) {
    int fd;
    struct gx_tun_info info;
    struct gx_batch b;
    CHECK(gx_tun_open(name_a, flags, 1, &fd, &info) == 0, "%s: open", what);
    CHECK(bring_up(name_a, TUN_IP) == 0, "%s: address and up", what);
    CHECK(gx_batch_init(&b, 16, GX_SLOT_SIZE, GX_HEADROOM) == 0, "batch");
    int s = udp_socket(TUN_IP, 7777);
    CHECK(s >= 0, "bind %s:7777", TUN_IP);
    for (uint32_t i = 0; i < 10; i++)
        b.pkt[i].len = (i % 3 == 1) ? 0 : make_udp_in(b.pkt[i].data, 7777, (uint8_t)('a' + i), 10 + i);
    b.pkt[5].data[0] = 0x55;   /* IP version 5: the kernel refuses it (EINVAL), the batch goes on */
    b.n = 10;
    int written = gx_tun_write_batch(fd, info.vnet_hdr, &b);
    CHECK(written == 6, "%s: written %d (7 non-empty, one refused)", what, written);
    int got = 0;
    char expect_tags[] = "acdgij";   /* i = 0 2 3 6 8 9 (1 4 7 empty, 5 malformed) */
    for (;;) {
        struct pollfd pfd = {s, POLLIN, 0};
        if (poll(&pfd, 1, 500) <= 0)
            break;
        uint8_t buf[64];
        ssize_t r = recv(s, buf, sizeof(buf), 0);
        if (r <= 0)
            break;
        CHECK(got < 6 && buf[0] == (uint8_t)expect_tags[got], "%s: datagram %d tag %c", what, got, buf[0]);
        got++;
    }
    CHECK(got == 6, "%s: the socket received %d of 6 datagrams", what, got);
    close(s);
    gx_batch_free(&b);
    close(fd);
}

int main(void) {
    if (geteuid() != 0) {
        printf("0 passed, 0 failed (skipped: needs root for TUN devices)\n");
        return 0;
    }
    if (access("/dev/net/tun", R_OK | W_OK) != 0) {
        printf("0 passed, 0 failed (skipped: no /dev/net/tun)\n");
        return 0;
    }
    int private_ns = unshare(CLONE_NEWNET) == 0;
    if (!private_ns)
        printf("note: no private network namespace (%s): traffic tests skipped\n", strerror(errno));
    snprintf(name_a, sizeof(name_a), "gxt%da", (int)getpid());
    snprintf(name_b, sizeof(name_b), "gxt%db", (int)getpid());
    test_bad_arguments();
    test_kernel_name();
    test_name_in_use();
    test_multi_queue();
    test_vnet_probe();
    test_down_device();
    if (private_ns) {
        test_read_traffic(0, "plain");
        test_read_traffic(GX_TUN_VNET_HDR, "vnet csum");
        test_read_traffic(GX_TUN_VNET_HDR | GX_TUN_GSO, "vnet gso");
        test_tso_traffic();
        test_tap_vnet_traffic();
        test_write_traffic(0, "plain");
        test_write_traffic(GX_TUN_VNET_HDR, "vnet");
    }
    TEST_DONE();
}
