/* The tungo netstack (csrc/stack/) driven through a SOCK_SEQPACKET socketpair that stands in for the TUN
 * device (one message = one packet; with vnet_hdr a 10-byte virtio_net_hdr in front). The test plays the
 * host: it builds IPv4/IPv6 TCP, UDP and ICMP packets, answers the stack's events with upstream fds
 * (socketpairs), and checks every packet the stack sends back (addresses, ports, sequence numbers,
 * checksums against an independent reference, the vnet header's offload fields). No root needed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx/stack.h"
#include "gx/tun.h"
#include "gxtest.h"
#include "pktref.h"

/* The fuzz target's input path (tests/fuzz/fuzz_stack.c), to replay its corpus: test_fuzz_corpus. */
#include <dirent.h>
#define LLVMFuzzerTestOneInput fuzz_stack_one
#include "../fuzz/fuzz_stack.c"
#include "corpus.h"
#undef LLVMFuzzerTestOneInput

#define MTU 1400
#define TIMEOUT_MS 3000

struct host {
    int fd;             /* the host's end of the "TUN" */
    int tun;            /* the stack's end */
    int vnet;
    struct gx_stack *s;
};

static const uint8_t CLIENT4[4] = {10, 0, 0, 2};
static const uint8_t REMOTE4[4] = {198, 51, 100, 7};
static const uint8_t CLIENT6[16] = {0xfd, 0, 0, 0x12, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t REMOTE6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x44, 0x55};

/* ---- packets ---- */

struct tcpseg {
    int v6;
    const uint8_t *src, *dst;
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;      /* FIN 1, SYN 2, RST 4, PSH 8, ACK 16 */
    uint16_t win;
    const uint8_t *data;
    uint32_t len;
    uint16_t mss;       /* an MSS option (SYN) when non-zero */
};

enum { FIN = 1, SYN = 2, RST = 4, PSH = 8, ACK = 16 };

static uint32_t ip_header(uint8_t *p, int v6, const uint8_t *src, const uint8_t *dst, uint8_t proto, uint32_t l4len) {
    if (v6) {
        memset(p, 0, 40);
        p[0] = 0x60;
        put16(p + 4, l4len);
        p[6] = proto;
        p[7] = 64;
        memcpy(p + 8, src, 16);
        memcpy(p + 24, dst, 16);
        return 40;
    }
    memset(p, 0, 20);
    p[0] = 0x45;
    put16(p + 2, 20 + l4len);
    p[8] = 64;
    p[9] = proto;
    memcpy(p + 12, src, 4);
    memcpy(p + 16, dst, 4);
    put16(p + 10, (uint16_t)~ref_fold(ref_sum(p, 20, 0)));
    return 20;
}

static uint32_t build_tcp(uint8_t *p, const struct tcpseg *t) {
    uint32_t optlen = t->mss ? 4 : 0;
    uint32_t l4 = 20 + optlen + t->len;
    uint32_t off = ip_header(p, t->v6, t->src, t->dst, 6, l4);
    uint8_t *h = p + off;
    memset(h, 0, 20 + optlen);
    put16(h, t->sport);
    put16(h + 2, t->dport);
    put32(h + 4, t->seq);
    put32(h + 8, t->ack);
    h[12] = (uint8_t)((20 + optlen) / 4) << 4;
    h[13] = t->flags;
    put16(h + 14, t->win);
    if (t->mss) {
        h[20] = 2;
        h[21] = 4;
        put16(h + 22, t->mss);
    }
    if (t->len)
        memcpy(h + 20 + optlen, t->data, t->len);
    put16(h + 16, (uint16_t)~ref_fold(ref_sum(h, l4, ref_pseudo(p, t->v6, 6, l4))));
    return off + l4;
}

static uint32_t build_udp(uint8_t *p, int v6, const uint8_t *src, uint16_t sport, const uint8_t *dst, uint16_t dport,
                          const uint8_t *data, uint32_t len) {
    uint32_t off = ip_header(p, v6, src, dst, 17, 8 + len);
    uint8_t *h = p + off;
    put16(h, sport);
    put16(h + 2, dport);
    put16(h + 4, 8 + len);
    put16(h + 6, 0);
    memcpy(h + 8, data, len);
    put16(h + 6, (uint16_t)~ref_fold(ref_sum(h, 8 + len, ref_pseudo(p, v6, 17, 8 + len))));
    return off + 8 + len;
}

static uint32_t build_echo(uint8_t *p, int v6, const uint8_t *src, const uint8_t *dst, uint16_t id, uint16_t seq) {
    const uint8_t data[8] = {'g', 'o', 's', 't', 'x', '!', 0, 1};
    uint32_t off = ip_header(p, v6, src, dst, v6 ? 58 : 1, 16);
    uint8_t *h = p + off;
    h[0] = v6 ? 128 : 8;
    h[1] = 0;
    put16(h + 2, 0);
    put16(h + 4, id);
    put16(h + 6, seq);
    memcpy(h + 8, data, 8);
    uint32_t acc = v6 ? ref_pseudo(p, 1, 58, 16) : 0;
    put16(h + 2, (uint16_t)~ref_fold(ref_sum(h, 16, acc)));
    return off + 16;
}

static void send_pkt(struct host *h, const uint8_t *pkt, uint32_t len, const struct gx_vnet_hdr *vh) {
    uint8_t buf[70000];
    uint32_t off = 0;
    if (h->vnet) {
        struct gx_vnet_hdr none = {0};
        gx_vnet_hdr_encode(vh ? vh : &none, buf);
        off = GX_VNET_HDR_LEN;
    }
    memcpy(buf + off, pkt, len);
    ssize_t w = send(h->fd, buf, off + len, 0);
    CHECK(w == (ssize_t)(off + len), "send to the stack: %zd (%s)", w, strerror(errno));
}

/* The next packet from the stack (0 on timeout); its vnet header in *vh when the host uses one. */
static uint32_t recv_pkt_within(struct host *h, uint8_t *pkt, uint32_t cap, struct gx_vnet_hdr *vh, int timeout_ms) {
    uint8_t buf[70000];
    struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) != 1)
        return 0;
    ssize_t n = recv(h->fd, buf, sizeof(buf), 0);
    if (n <= 0)
        return 0;
    uint32_t off = 0;
    if (h->vnet) {
        if (n < GX_VNET_HDR_LEN)
            return 0;
        gx_vnet_hdr_decode(buf, vh);
        off = GX_VNET_HDR_LEN;
    } else if (vh) {
        memset(vh, 0, sizeof(*vh));
    }
    uint32_t len = (uint32_t)n - off;
    if (len > cap)
        return 0;
    memcpy(pkt, buf + off, len);
    return len;
}

static uint32_t recv_pkt(struct host *h, uint8_t *pkt, uint32_t cap, struct gx_vnet_hdr *vh) {
    return recv_pkt_within(h, pkt, cap, vh, TIMEOUT_MS);
}

/* A TCP packet from the stack, parsed. */
struct seen {
    uint32_t len, l3, hl, plen;
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t win;
    const uint8_t *payload;
    struct gx_vnet_hdr vh;
};

static int parse_tcp(struct host *h, const uint8_t *p, uint32_t len, int v6, struct seen *o) {
    o->len = len;
    o->l3 = v6 ? 40 : (uint32_t)(p[0] & 15) * 4;
    if (len < o->l3 + 20 || p[v6 ? 6 : 9] != 6)
        return 0;
    const uint8_t *t = p + o->l3;
    o->hl = (uint32_t)(t[12] >> 4) * 4;
    o->plen = len - o->l3 - o->hl;
    o->sport = get16(t);
    o->dport = get16(t + 2);
    o->seq = get32(t + 4);
    o->ack = get32(t + 8);
    o->flags = t[13];
    o->win = get16(t + 14);
    o->payload = t + o->hl;
    uint32_t l4 = len - o->l3;
    if (h->vnet) { /* checksum offloaded: the field holds the pseudo-header sum, the header says so */
        CHECK(o->vh.flags & GX_VNET_F_NEEDS_CSUM, "TCP out without NEEDS_CSUM");
        CHECK(o->vh.csum_start == o->l3 && o->vh.csum_offset == 16, "csum %u/%u", o->vh.csum_start, o->vh.csum_offset);
        CHECK(get16(t + 16) == ref_fold(ref_pseudo(p, v6, 6, l4)), "pseudo-header sum %04x", get16(t + 16));
    } else {
        CHECK(l4_valid(p, len, v6, 6, o->l3), "bad TCP checksum");
    }
    if (!v6)
        CHECK(ip4_valid(p), "bad IPv4 header checksum");
    return 1;
}

/* The next TCP packet (other packets are skipped). */
static int next_tcp(struct host *h, int v6, uint8_t *buf, struct seen *o) {
    for (int i = 0; i < 50; i++) {
        uint32_t n = recv_pkt(h, buf, 70000, &o->vh);
        if (n == 0)
            return 0;
        if (parse_tcp(h, buf, n, v6, o))
            return 1;
    }
    return 0;
}

static int wait_event(struct gx_stack *s, struct gx_stack_event *ev) {
    struct pollfd pfd = {.fd = gx_stack_event_fd(s), .events = POLLIN};
    for (int i = 0; i < 30; i++) {
        if (gx_stack_poll_events(s, ev, 1) == 1)
            return 1;
        poll(&pfd, 1, 100);
    }
    return 0;
}

static ssize_t read_exact(int fd, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, TIMEOUT_MS) != 1)
            break;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int open_host(struct host *h, int vnet, uint32_t udp_timeout_ms, uint32_t sniff) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) < 0)
        return -errno;
    struct gx_stack_cfg cfg = {.tun_fd = sv[0], .vnet_hdr = vnet, .mtu = MTU, .udp_timeout_ms = udp_timeout_ms,
                               .sniff_bytes = sniff, .sniff_timeout_ms = 500};
    int rc = gx_stack_new(&h->s, &cfg);
    if (rc < 0) {
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    fcntl(sv[1], F_SETFL, 0); /* the host blocks when the stack is behind (a SEQPACKET queue is short) */
    h->fd = sv[1];
    h->vnet = vnet;
    h->tun = sv[0];
    return gx_stack_start(h->s);
}

static void close_host(struct host *h) {
    gx_stack_free(h->s);
    close(h->fd);
    close(h->tun);
}

/* ---- TCP ---- */

/* Handshake from the client; returns the stack's ISN + 1 (0 on failure). Checks the SYN-ACK. */
static uint32_t handshake(struct host *h, int v6, uint16_t sport, uint16_t dport, uint32_t cseq) {
    uint8_t pkt[200], buf[70000];
    const uint8_t *src = v6 ? CLIENT6 : CLIENT4, *dst = v6 ? REMOTE6 : REMOTE4;
    struct tcpseg syn = {v6, src, dst, sport, dport, cseq, 0, SYN, 65535, NULL, 0, MTU - 40};
    send_pkt(h, pkt, build_tcp(pkt, &syn), NULL);
    struct seen o;
    int found = 0;
    for (int i = 0; i < 10 && !found; i++) { /* skip packets of earlier connections */
        if (!next_tcp(h, v6, buf, &o))
            return 0;
        found = o.dport == sport;
    }
    CHECK(found && o.flags == (SYN | ACK), "SYN-ACK flags %02x", o.flags);
    CHECK(o.sport == dport && o.dport == sport, "SYN-ACK ports %u -> %u", o.sport, o.dport);
    CHECK(o.ack == cseq + 1, "SYN-ACK ack %u", o.ack);
    CHECK(memcmp(buf + (v6 ? 8 : 12), dst, v6 ? 16 : 4) == 0, "SYN-ACK from the original destination");
    struct tcpseg ack = {v6, src, dst, sport, dport, cseq + 1, o.seq + 1, ACK, 65535, NULL, 0, 0};
    send_pkt(h, pkt, build_tcp(pkt, &ack), NULL);
    return o.seq + 1;
}

static void test_tcp_flow(int vnet, int v6) {
    struct host h;
    int rc = open_host(&h, vnet, 30000, 0);
    CHECK(rc == 0, "open: %d", rc);
    if (rc < 0)
        return;
    const uint8_t *src = v6 ? CLIENT6 : CLIENT4, *dst = v6 ? REMOTE6 : REMOTE4;
    uint32_t cseq = 1000, sseq = handshake(&h, v6, 40000, 443, cseq);
    CHECK(sseq != 0, "no SYN-ACK");
    struct gx_stack_event ev;
    CHECK(wait_event(h.s, &ev), "no event for the new connection");
    CHECK(ev.type == GX_STACK_EV_TCP && ev.family == (v6 ? 6u : 4u), "event %u/%u", ev.type, ev.family);
    CHECK(memcmp(ev.src, src, v6 ? 16 : 4) == 0 && memcmp(ev.dst, dst, v6 ? 16 : 4) == 0, "event addresses");
    CHECK(ev.sport == 40000 && ev.dport == 443, "event ports %u %u", ev.sport, ev.dport);
    gx_stack_event_release(&ev);

    /* data before the decision waits in the stack (its window closes, nothing is lost) */
    uint8_t pkt[70000], buf[70000];
    struct tcpseg d1 = {v6, src, dst, 40000, 443, cseq + 1, sseq, ACK | PSH, 65535, (const uint8_t *)"hello ", 6, 0};
    send_pkt(&h, pkt, build_tcp(pkt, &d1), NULL);
    cseq += 1 + 6;

    int up[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, up);
    CHECK(gx_stack_connect(h.s, ev.id, up[0]) == 0, "connect");
    uint8_t got[64];
    CHECK(read_exact(up[1], got, 6) == 6 && memcmp(got, "hello ", 6) == 0, "queued data reaches the upstream");
    struct tcpseg d2 = {v6, src, dst, 40000, 443, cseq, sseq, ACK | PSH, 65535, (const uint8_t *)"world", 5, 0};
    send_pkt(&h, pkt, build_tcp(pkt, &d2), NULL);
    cseq += 5;
    CHECK(read_exact(up[1], got, 5) == 5 && memcmp(got, "world", 5) == 0, "data reaches the upstream");

    /* upstream -> client: 3000 bytes arrive in order, as one or more segments from the destination */
    uint8_t big[3000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 3);
    CHECK(write(up[1], big, sizeof(big)) == (ssize_t)sizeof(big), "upstream write");
    uint32_t received = 0;
    struct seen o;
    while (received < sizeof(big) && next_tcp(&h, v6, buf, &o)) {
        if (o.plen == 0)
            continue;
        CHECK(o.seq == sseq + received, "segment seq %u, want %u", o.seq, sseq + received);
        CHECK(o.sport == 443 && o.dport == 40000, "ports");
        CHECK(memcmp(o.payload, big + received, o.plen) == 0, "payload at %u", received);
        if (!vnet)
            CHECK(o.len <= MTU, "plain mode keeps segments within the MTU: %u", o.len);
        received += o.plen;
        struct tcpseg a = {v6, src, dst, 40000, 443, cseq, sseq + received, ACK, 65535, NULL, 0, 0};
        send_pkt(&h, pkt, build_tcp(pkt, &a), NULL);
    }
    CHECK(received == sizeof(big), "received %u of %zu", received, sizeof(big));
    sseq += received;

    /* the client's FIN: the upstream sees EOF; the upstream's close: a FIN to the client */
    struct tcpseg fin = {v6, src, dst, 40000, 443, cseq, sseq, ACK | FIN, 65535, NULL, 0, 0};
    send_pkt(&h, pkt, build_tcp(pkt, &fin), NULL);
    cseq += 1;
    struct pollfd pfd = {.fd = up[1], .events = POLLIN};
    CHECK(poll(&pfd, 1, TIMEOUT_MS) == 1 && read(up[1], got, sizeof(got)) == 0, "upstream gets EOF");
    close(up[1]);
    int saw_fin = 0;
    for (int i = 0; i < 5 && !saw_fin && next_tcp(&h, v6, buf, &o); i++)
        saw_fin = (o.flags & FIN) != 0;
    CHECK(saw_fin, "no FIN after the upstream closed");
    struct tcpseg last = {v6, src, dst, 40000, 443, cseq, o.seq + 1, ACK, 65535, NULL, 0, 0};
    send_pkt(&h, pkt, build_tcp(pkt, &last), NULL);

    struct gx_stack_stats st;
    for (int i = 0; i < 30; i++) {
        gx_stack_get_stats(h.s, &st);
        if (st.tcp_active == 0)
            break;
        usleep(50000);
    }
    CHECK(st.tcp_flows == 1 && st.tcp_active == 0, "flows %lu active %lu", (unsigned long)st.tcp_flows,
          (unsigned long)st.tcp_active);
    CHECK(st.tcp_up_bytes == 11 && st.tcp_down_bytes == sizeof(big), "bytes up %lu down %lu",
          (unsigned long)st.tcp_up_bytes, (unsigned long)st.tcp_down_bytes);
    close_host(&h);
}

static void test_tcp_drop_resets(void) {
    struct host h;
    CHECK(open_host(&h, 0, 30000, 0) == 0, "open");
    uint32_t sseq = handshake(&h, 0, 40001, 25, 5);
    struct gx_stack_event ev;
    CHECK(sseq != 0 && wait_event(h.s, &ev), "event");
    CHECK(gx_stack_drop(h.s, ev.id) == 0, "drop");
    uint8_t buf[70000];
    struct seen o;
    CHECK(next_tcp(&h, 0, buf, &o) && (o.flags & RST), "a dropped connection is reset");
    /* a decision for a flow that is gone: accepted, its fd closed */
    int up[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, up);
    CHECK(gx_stack_connect(h.s, ev.id, up[0]) == 0, "late decision accepted");
    struct pollfd pfd = {.fd = up[1], .events = POLLIN};
    char c;
    CHECK(poll(&pfd, 1, TIMEOUT_MS) == 1 && read(up[1], &c, 1) == 0, "its fd is closed");
    close(up[1]);
    close_host(&h);
}

/* The upstream closes first, so lwIP closes first and keeps the connection in TIME_WAIT; the client
 * (whose side ended at once) reuses its port. A SYN below the old connection's sequence numbers still
 * gets lwIP's ACK for the old one; a SYN above them ends the TIME_WAIT and gets a new connection (RFC
 * 6191 / Linux): a SYN-ACK from an ISS above the old sequence space, and a new flow. */
static void test_time_wait_port_reuse(void) {
    struct host h;
    CHECK(open_host(&h, 0, 30000, 0) == 0, "open");
    uint8_t pkt[200], buf[70000];
    struct seen o;
    uint32_t cseq = 1000, sseq = handshake(&h, 0, 40100, 80, cseq);
    struct gx_stack_event ev;
    CHECK(sseq != 0 && wait_event(h.s, &ev), "event");
    gx_stack_event_release(&ev);
    int up[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, up);
    CHECK(gx_stack_connect(h.s, ev.id, up[0]) == 0, "connect");
    close(up[1]); /* the upstream closes first: a FIN to the client */
    int saw_fin = 0;
    for (int i = 0; i < 5 && !saw_fin && next_tcp(&h, 0, buf, &o); i++)
        saw_fin = (o.flags & FIN) != 0;
    CHECK(saw_fin && o.seq == sseq, "the stack's FIN (seq %u, want %u)", o.seq, sseq);
    cseq += 1;
    struct tcpseg fin = {0, CLIENT4, REMOTE4, 40100, 80, cseq, sseq + 1, ACK | FIN, 65535, NULL, 0, 0};
    send_pkt(&h, pkt, build_tcp(pkt, &fin), NULL);
    CHECK(next_tcp(&h, 0, buf, &o) && o.flags == ACK && o.ack == cseq + 1, "the last ACK (flags %02x)", o.flags);
    struct gx_stack_stats st;
    for (int i = 0; i < 40; i++) {
        gx_stack_get_stats(h.s, &st);
        if (st.tcp_time_wait == 1)
            break;
        usleep(50000);
    }
    CHECK(st.tcp_time_wait == 1 && st.tcp_active == 0, "time_wait %lu active %lu", (unsigned long)st.tcp_time_wait,
          (unsigned long)st.tcp_active);

    /* an old SYN (below what the connection received): lwIP's ACK for the old connection */
    struct tcpseg old = {0, CLIENT4, REMOTE4, 40100, 80, cseq - 500, 0, SYN, 65535, NULL, 0, MTU - 40};
    send_pkt(&h, pkt, build_tcp(pkt, &old), NULL);
    CHECK(next_tcp(&h, 0, buf, &o) && o.flags == ACK && o.ack == cseq + 1, "an old SYN gets the old ACK (flags %02x)",
          o.flags);

    /* the new connection on the same port */
    uint32_t nseq = handshake(&h, 0, 40100, 80, cseq + 100000);
    CHECK(nseq == sseq + 1 + 65537 + 1, "new ISS+1 %u, want %u (above the old connection)", nseq, sseq + 65539);
    CHECK(wait_event(h.s, &ev) && ev.sport == 40100 && ev.dport == 80, "a new flow for the reused port");
    gx_stack_event_release(&ev);
    CHECK(gx_stack_drop(h.s, ev.id) == 0, "drop");
    for (int i = 0; i < 40; i++) {
        gx_stack_get_stats(h.s, &st);
        if (st.tcp_tw_recycled == 1 && st.tcp_time_wait == 0)
            break;
        usleep(50000);
    }
    CHECK(st.tcp_flows == 2 && st.tcp_tw_recycled == 1 && st.tcp_time_wait == 0, "flows %lu recycled %lu tw %lu",
          (unsigned long)st.tcp_flows, (unsigned long)st.tcp_tw_recycled, (unsigned long)st.tcp_time_wait);
    close_host(&h);
}

/* Flow control: without upstream reads the advertised window shrinks; reading reopens it. */
static void test_tcp_window_follows_upstream(void) {
    struct host h;
    CHECK(open_host(&h, 0, 30000, 0) == 0, "open");
    uint32_t cseq = 77, sseq = handshake(&h, 0, 40002, 80, cseq);
    struct gx_stack_event ev;
    CHECK(wait_event(h.s, &ev), "event");
    int up[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, up);
    int small = 4096;
    setsockopt(up[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(up[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    CHECK(gx_stack_connect(h.s, ev.id, up[0]) == 0, "connect");
    cseq++;
    uint8_t data[1300], pkt[2000], buf[70000];
    memset(data, 'x', sizeof(data));
    uint32_t first_win = 0, last_win = 0, sent = 0;
    struct seen o;
    for (int i = 0; i < 300; i++) {
        struct tcpseg d = {0, CLIENT4, REMOTE4, 40002, 80, cseq + sent, sseq, ACK, 65535, data, sizeof(data), 0};
        send_pkt(&h, pkt, build_tcp(pkt, &d), NULL);
        sent += sizeof(data);
        uint32_t m;
        int timeout = 1000;
        while ((m = recv_pkt_within(&h, buf, sizeof(buf), &o.vh, timeout)) > 0) {
            if (parse_tcp(&h, buf, m, 0, &o))
                last_win = o.win;
            timeout = 20;
        }
        if (i == 3)
            first_win = last_win;
        if (i > 3 && last_win < first_win / 2)
            break;
    }
    /* the window is in units of 8 bytes (window scaling); it must have shrunk well below its start */
    CHECK(first_win > 0 && last_win < first_win, "window did not shrink: %u -> %u", first_win, last_win);
    struct gx_stack_stats st;
    gx_stack_get_stats(h.s, &st);
    CHECK(st.tcp_up_bytes < sent, "everything went upstream although nobody read: %lu", (unsigned long)st.tcp_up_bytes);
    /* read everything: all bytes arrive, in order */
    static uint8_t sink[400000];
    ssize_t got = read_exact(up[1], sink, sent);
    CHECK(got == (ssize_t)sent, "upstream got %zd of %u", got, sent);
    close(up[1]);
    close_host(&h);
}

/* vnet mode: a TSO super-packet in becomes one upstream write; a large upstream write comes back as GSO
 * super-packets of MTU-sized segments. */
static void test_offloads(void) {
    struct host h;
    CHECK(open_host(&h, 1, 30000, 0) == 0, "open");
    uint32_t cseq = 9, sseq = handshake(&h, 0, 40003, 5201, cseq);
    struct gx_stack_event ev;
    CHECK(wait_event(h.s, &ev), "event");
    int up[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, up);
    CHECK(gx_stack_connect(h.s, ev.id, up[0]) == 0, "connect");
    cseq++;
    static uint8_t data[20000], pkt[70000], buf[70000], got[200000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i ^ (i >> 8));
    struct tcpseg d = {0, CLIENT4, REMOTE4, 40003, 5201, cseq, sseq, ACK, 65535, data, sizeof(data), 0};
    uint32_t n = build_tcp(pkt, &d);
    put16(pkt + 2, 0); /* a super-packet's IP length may be anything: the stack sets it */
    struct gx_vnet_hdr tso = {.flags = GX_VNET_F_NEEDS_CSUM, .gso_type = GX_VNET_GSO_TCPV4, .hdr_len = 40,
                              .gso_size = MTU - 40, .csum_start = 20, .csum_offset = 16};
    send_pkt(&h, pkt, n, &tso);
    CHECK(read_exact(up[1], got, sizeof(data)) == (ssize_t)sizeof(data) && memcmp(got, data, sizeof(data)) == 0,
          "the super-packet's payload reaches the upstream");
    cseq += sizeof(data);

    static uint8_t big[150000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 13);
    CHECK(write(up[1], big, sizeof(big)) == (ssize_t)sizeof(big), "upstream write");
    uint32_t received = 0, gso_packets = 0;
    struct seen o;
    while (received < sizeof(big) && next_tcp(&h, 0, buf, &o)) {
        if (o.plen == 0)
            continue;
        CHECK(o.seq == sseq + received, "seq");
        CHECK(memcmp(o.payload, big + received, o.plen) == 0, "payload at %u", received);
        if (o.plen > MTU - 40) {
            gso_packets++;
            CHECK(o.vh.gso_type == GX_VNET_GSO_TCPV4 && o.vh.gso_size == MTU - 40 && o.vh.hdr_len == 40,
                  "GSO header: type %u size %u hdr %u", o.vh.gso_type, o.vh.gso_size, o.vh.hdr_len);
            CHECK(get16(buf + 2) == o.len, "IPv4 length of a super-packet");
        } else {
            CHECK(o.vh.gso_type == GX_VNET_GSO_NONE, "no GSO for a small segment");
        }
        received += o.plen;
        struct tcpseg a = {0, CLIENT4, REMOTE4, 40003, 5201, cseq, sseq + received, ACK, 65535, NULL, 0, 0};
        send_pkt(&h, pkt, build_tcp(pkt, &a), NULL);
    }
    CHECK(received == sizeof(big) && gso_packets > 0, "received %u, %u GSO packets", received, gso_packets);
    close(up[1]);
    close_host(&h);
}

/* With sniffing, the event waits for the first bytes and carries them. */
static void test_sniff_bytes(void) {
    struct host h;
    CHECK(open_host(&h, 0, 30000, 16) == 0, "open");
    uint32_t cseq = 3, sseq = handshake(&h, 0, 40004, 443, cseq);
    struct gx_stack_event ev;
    CHECK(gx_stack_poll_events(h.s, &ev, 1) == 0, "no event before the first bytes");
    uint8_t pkt[200];
    static const uint8_t hello[] = "\x16\x03\x01\x00\x20 client hello bytes";
    struct tcpseg d = {0, CLIENT4, REMOTE4, 40004, 443, cseq + 1, sseq, ACK | PSH, 65535, hello, sizeof(hello) - 1, 0};
    send_pkt(&h, pkt, build_tcp(pkt, &d), NULL);
    CHECK(wait_event(h.s, &ev), "event after the first bytes");
    CHECK(ev.len == 16 && memcmp(ev.data, hello, 16) == 0, "first bytes: %u", ev.len);
    gx_stack_event_release(&ev);
    CHECK(gx_stack_drop(h.s, ev.id) == 0, "drop");
    /* a connection that sends nothing is reported after the sniffing timeout, without bytes */
    handshake(&h, 0, 40005, 443, 50);
    CHECK(wait_event(h.s, &ev), "event after the timeout");
    CHECK(ev.len == 0 && ev.sport == 40005, "no bytes: %u", ev.len);
    gx_stack_drop(h.s, ev.id);
    close_host(&h);
}

/* ---- UDP, ICMP ---- */

static void test_udp_session(int v6) {
    struct host h;
    CHECK(open_host(&h, 1, 300, 0) == 0, "open");
    const uint8_t *src = v6 ? CLIENT6 : CLIENT4, *dst = v6 ? REMOTE6 : REMOTE4;
    uint8_t pkt[5000], buf[70000];
    send_pkt(&h, pkt, build_udp(pkt, v6, src, 5000, dst, 53, (const uint8_t *)"query-1", 7), NULL);
    send_pkt(&h, pkt, build_udp(pkt, v6, src, 5000, dst, 53, (const uint8_t *)"query-2", 7), NULL);
    struct gx_stack_event ev;
    CHECK(wait_event(h.s, &ev), "udp event");
    CHECK(ev.type == GX_STACK_EV_UDP && ev.sport == 5000 && ev.dport == 53, "udp event fields");
    CHECK(ev.len == 7 && memcmp(ev.data, "query-1", 7) == 0, "first datagram in the event");
    gx_stack_event_release(&ev);
    CHECK(gx_stack_poll_events(h.s, &ev, 1) == 0, "one event per session");
    int up[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, up);
    CHECK(gx_stack_connect(h.s, ev.id, up[0]) == 0, "connect");
    char got[100];
    struct pollfd pfd = {.fd = up[1], .events = POLLIN};
    CHECK(poll(&pfd, 1, TIMEOUT_MS) == 1 && recv(up[1], got, sizeof(got), 0) == 7 && memcmp(got, "query-1", 7) == 0,
          "queued datagram 1");
    CHECK(poll(&pfd, 1, TIMEOUT_MS) == 1 && recv(up[1], got, sizeof(got), 0) == 7 && memcmp(got, "query-2", 7) == 0,
          "queued datagram 2");
    /* a reply larger than the MTU comes back whole, from the original destination */
    static uint8_t answer[3000];
    for (size_t i = 0; i < sizeof(answer); i++)
        answer[i] = (uint8_t)(i + 1);
    CHECK(send(up[1], answer, sizeof(answer), 0) == (ssize_t)sizeof(answer), "reply");
    struct gx_vnet_hdr vh;
    uint32_t n = recv_pkt(&h, buf, sizeof(buf), &vh);
    uint32_t l3 = v6 ? 40 : 20;
    CHECK(n == l3 + 8 + sizeof(answer), "reply packet length %u", n);
    if (n == l3 + 8 + sizeof(answer)) {
        CHECK(memcmp(buf + (v6 ? 8 : 12), dst, v6 ? 16 : 4) == 0 && memcmp(buf + (v6 ? 24 : 16), src, v6 ? 16 : 4) == 0,
              "reply addresses");
        CHECK(get16(buf + l3) == 53 && get16(buf + l3 + 2) == 5000, "reply ports %u -> %u", get16(buf + l3),
              get16(buf + l3 + 2));
        CHECK(l4_valid(buf, n, v6, 17, l3), "reply UDP checksum");
        CHECK(memcmp(buf + l3 + 8, answer, sizeof(answer)) == 0, "reply payload");
    }
    /* idle for longer than the timeout: the session ends, its fd is closed */
    struct gx_stack_stats st;
    for (int i = 0; i < 40; i++) {
        gx_stack_get_stats(h.s, &st);
        if (st.udp_expired == 1 && st.udp_active == 0) /* two counters, updated one after the other */
            break;
        usleep(100000);
    }
    CHECK(st.udp_expired == 1 && st.udp_active == 0 && st.udp_up_pkts == 2 && st.udp_down_pkts == 1,
          "expired %lu active %lu up %lu down %lu", (unsigned long)st.udp_expired, (unsigned long)st.udp_active,
          (unsigned long)st.udp_up_pkts, (unsigned long)st.udp_down_pkts);
    /* the expiry is counted just before the fd is closed: give the close a moment (bounded) */
    int closed = 0;
    for (int i = 0; i < 40 && !closed; i++) {
        closed = send(up[1], "late", 4, MSG_DONTWAIT) < 0;
        if (!closed)
            usleep(50000);
    }
    CHECK(closed, "the session's fd is closed");
    /* the same pair again is a new session */
    send_pkt(&h, pkt, build_udp(pkt, v6, src, 5000, dst, 53, (const uint8_t *)"again", 5), NULL);
    CHECK(wait_event(h.s, &ev), "a new session after the expiry");
    gx_stack_event_release(&ev);
    gx_stack_drop(h.s, ev.id);
    close(up[1]);
    close_host(&h);
}

static void test_icmp_echo(int v6) {
    struct host h;
    CHECK(open_host(&h, 1, 30000, 0) == 0, "open");
    uint8_t pkt[200], buf[70000];
    const uint8_t *dst = v6 ? REMOTE6 : REMOTE4, *src = v6 ? CLIENT6 : CLIENT4;
    uint32_t n = build_echo(pkt, v6, src, dst, 0x1234, 7);
    send_pkt(&h, pkt, n, NULL);
    struct gx_vnet_hdr vh;
    uint32_t m = 0;
    for (int i = 0; i < 5; i++) { /* IPv6: skip anything but the echo reply */
        m = recv_pkt(&h, buf, sizeof(buf), &vh);
        if (m == 0 || !v6 || buf[6] == 58)
            break;
    }
    uint32_t l3 = v6 ? 40 : 20;
    CHECK(m == n, "echo reply length %u", m);
    if (m == n) {
        CHECK(buf[l3] == (v6 ? 129 : 0), "echo reply type %u", buf[l3]);
        CHECK(memcmp(buf + (v6 ? 8 : 12), dst, v6 ? 16 : 4) == 0, "reply from the address pinged");
        CHECK(get16(buf + l3 + 4) == 0x1234 && get16(buf + l3 + 6) == 7, "id and sequence");
        uint32_t acc = v6 ? ref_pseudo(buf, 1, 58, m - l3) : 0;
        CHECK(ref_fold(ref_sum(buf + l3, m - l3, acc)) == 0xffff, "ICMP checksum");
    }
    close_host(&h);
}

/* Junk from the device never crashes the stack; it still answers afterwards. */
static void test_junk(void) {
    struct host h;
    CHECK(open_host(&h, 1, 30000, 0) == 0, "open");
    uint8_t pkt[2000];
    uint32_t seed = 12345;
    for (int i = 0; i < 2000; i++) {
        uint32_t len = (uint32_t)(i % 97) + (i % 5 == 0 ? 1200u : 0u);
        for (uint32_t k = 0; k < len; k++) {
            seed = seed * 1103515245u + 12345u;
            pkt[k] = (uint8_t)(seed >> 16);
        }
        if (len > 0 && i % 3 == 0)
            pkt[0] = (uint8_t)(i % 2 ? 0x45 : 0x60); /* looks like IP */
        if (len > 20 && i % 3 == 0)
            pkt[9] = (uint8_t)(i % 4 ? 6 : 17);
        struct gx_vnet_hdr vh = {.gso_type = (uint8_t)(i % 7 == 0 ? GX_VNET_GSO_TCPV4 : 0), .gso_size = 100};
        send_pkt(&h, pkt, len, &vh);
    }
    uint8_t buf[70000];
    struct gx_vnet_hdr vh;
    while (recv_pkt_within(&h, buf, sizeof(buf), &vh, 200) > 0) { /* drain what it answered (RSTs, ICMP) */
    }
    struct gx_stack_event ev;
    while (gx_stack_poll_events(h.s, &ev, 1) == 1) {
        gx_stack_event_release(&ev);
        gx_stack_drop(h.s, ev.id);
    }
    uint32_t n = build_echo(pkt, 0, CLIENT4, REMOTE4, 1, 1);
    send_pkt(&h, pkt, n, NULL);
    uint32_t m = 0;
    for (int i = 0; i < 20 && m == 0; i++) {
        uint32_t k = recv_pkt(&h, buf, sizeof(buf), &vh);
        if (k == 0)
            break;
        if (k == n && buf[9] == 1 && buf[20] == 0)
            m = k;
    }
    CHECK(m == n, "the stack still answers after junk");
    close_host(&h);
}

/* Many flows at once: the flow table and the session table grow; every flow gets its one event. */
static void test_many_flows(void) {
    struct host h;
    CHECK(open_host(&h, 0, 30000, 0) == 0, "open");
    uint8_t pkt[200], buf[70000];
    enum { TCP_N = 300, UDP_N = 700 };
    for (int i = 0; i < TCP_N; i++) {
        struct tcpseg syn = {0, CLIENT4, REMOTE4, (uint16_t)(20000 + i), 443, (uint32_t)i * 1000u, 0, SYN, 65535, NULL,
                             0, 1360};
        send_pkt(&h, pkt, build_tcp(pkt, &syn), NULL);
    }
    int acked = 0;
    struct seen o;
    while (acked < TCP_N && next_tcp(&h, 0, buf, &o)) { /* complete each handshake from its SYN-ACK */
        if (o.flags != (SYN | ACK))
            continue;
        struct tcpseg ack = {0, CLIENT4, REMOTE4, o.dport, 443, o.ack, o.seq + 1, ACK, 65535, NULL, 0, 0};
        send_pkt(&h, pkt, build_tcp(pkt, &ack), NULL);
        acked++;
    }
    CHECK(acked == TCP_N, "SYN-ACKs %d", acked);
    for (int i = 0; i < UDP_N; i++)
        send_pkt(&h, pkt, build_udp(pkt, 0, CLIENT4, (uint16_t)(30000 + i), REMOTE4, 53, (const uint8_t *)"q", 1), NULL);
    int tcp_events = 0, udp_events = 0;
    struct gx_stack_event ev[64];
    for (int tries = 0; tries < 100 && tcp_events + udp_events < TCP_N + UDP_N; tries++) {
        int n = gx_stack_poll_events(h.s, ev, 64);
        for (int i = 0; i < n; i++) {
            if (ev[i].type == GX_STACK_EV_TCP)
                tcp_events++;
            else
                udp_events++;
            gx_stack_event_release(&ev[i]);
            gx_stack_drop(h.s, ev[i].id);
        }
        if (n == 0)
            usleep(20000);
    }
    CHECK(tcp_events == TCP_N && udp_events == UDP_N, "events: %d tcp, %d udp", tcp_events, udp_events);
    struct gx_stack_stats st;
    for (int i = 0; i < 50; i++) {
        gx_stack_get_stats(h.s, &st);
        if (st.tcp_active == 0 && st.udp_active == 0)
            break;
        usleep(20000);
    }
    CHECK(st.tcp_flows == TCP_N && st.tcp_refused == TCP_N && st.tcp_active == 0, "tcp %lu/%lu/%lu",
          (unsigned long)st.tcp_flows, (unsigned long)st.tcp_refused, (unsigned long)st.tcp_active);
    CHECK(st.udp_sessions == UDP_N && st.udp_active == 0, "udp %lu/%lu", (unsigned long)st.udp_sessions,
          (unsigned long)st.udp_active);
    close_host(&h);
}

/* The device going away (here: EOF) stops the stack from polling it; it does not spin. */
static void test_device_gone(void) {
    struct host h;
    CHECK(open_host(&h, 0, 30000, 0) == 0, "open");
    close(h.fd);
    h.fd = -1;
    struct gx_stack_stats st = {0};
    for (int i = 0; i < 40 && st.tun_rx_errors == 0; i++) {
        usleep(50000);
        gx_stack_get_stats(h.s, &st);
    }
    CHECK(st.tun_rx_errors == 1, "device errors %lu", (unsigned long)st.tun_rx_errors);
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    usleep(300000);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    double busy = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    CHECK(busy < 0.1, "the stack thread spins: %.3f s of CPU in 0.3 s", busy);
    gx_stack_free(h.s);
    close(h.tun);
}

static void test_api_errors(void) {
    struct gx_stack *s = NULL;
    struct gx_stack_cfg bad = {.tun_fd = -1, .mtu = 1400};
    CHECK(gx_stack_new(&s, &bad) == -EINVAL, "bad fd");
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv);
    struct gx_stack_cfg small = {.tun_fd = sv[0], .mtu = 100};
    CHECK(gx_stack_new(&s, &small) == -EINVAL, "mtu too small");
    struct gx_stack_cfg sniff = {.tun_fd = sv[0], .mtu = 1400, .sniff_bytes = GX_STACK_SNIFF_MAX + 1};
    CHECK(gx_stack_new(&s, &sniff) == -EINVAL, "sniff too large");
    struct gx_stack_cfg ok = {.tun_fd = sv[0], .mtu = 1400};
    CHECK(gx_stack_new(&s, &ok) == 0, "first stack");
    struct gx_stack *second = NULL;
    CHECK(gx_stack_new(&second, &ok) == -EBUSY, "one stack per process");
    CHECK(gx_stack_connect(s, 1, -1) == -EINVAL, "connect needs an fd");
    gx_stack_free(s); /* never started */
    CHECK(gx_stack_new(&s, &ok) == 0, "a new stack after the first is freed");
    CHECK(gx_stack_start(s) == 0 && gx_stack_stop(s) == 0 && gx_stack_stop(s) == 0, "start, stop twice");
    CHECK(gx_stack_drop(s, 5) == -ESHUTDOWN, "no decisions after stop");
    gx_stack_free(s);
    close(sv[0]);
    close(sv[1]);
}

/* Every input of tests/fuzz/corpus/stack/ through the fuzz target's code (an unstarted stack driven
 * packet by packet). The regress-lwip-* inputs made lwIP 2.1.3 read past the packet (ASan
 * heap-buffer-overflow in ip6_input: an IPv6 extension header's length byte read before the check
 * that the header is there; in tcp_get_next_optbyte: a TCP option's length byte past the options),
 * fixed by third_party/lwip/patches/0003-input-bounds-checks.patch; the ASan build
 * (asan-test_stack) fails on them without it. */
static void test_fuzz_corpus(void) {
    int regress = 0;
    int n = replay_corpus("stack", fuzz_stack_one, "regress-lwip-", &regress);
    CHECK(regress >= 7, "%d regress-lwip-* inputs in tests/fuzz/corpus/stack", regress);
    printf("fuzz corpus: %d inputs replayed (%d regress-lwip-*)\n", n, regress);
}

int main(void) {
    test_fuzz_corpus();
    test_api_errors();
    for (int vnet = 0; vnet <= 1; vnet++)
        for (int v6 = 0; v6 <= 1; v6++)
            test_tcp_flow(vnet, v6);
    test_tcp_drop_resets();
    test_time_wait_port_reuse();
    test_tcp_window_follows_upstream();
    test_offloads();
    test_sniff_bytes();
    test_udp_session(0);
    test_udp_session(1);
    test_icmp_echo(0);
    test_icmp_echo(1);
    test_junk();
    test_many_flows();
    test_device_gone();
    TEST_DONE();
}
