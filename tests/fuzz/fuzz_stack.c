/* The tungo netstack's input path (csrc/stack/, lwIP): IP packets from the TUN device, any host's bytes.
 *
 * One stack per input, never started: this target plays its data-plane thread itself through the
 * stack's internal calls (stack_int.h), so every packet is processed before the next one, repeatably.
 * The device is a SOCK_SEQPACKET socketpair as in tests/c/test_stack.c; what the stack writes back is
 * read and thrown away. New flows (events) get the decision the input asks for: none yet, drop, or
 * connect to an upstream socketpair (TCP: a stream, UDP: datagrams), optionally with bytes and EOF
 * coming back from upstream.
 *
 * Input: byte 0: bit 0 the device has IFF_VNET_HDR (then every packet starts with a 10-byte
 * virtio_net_hdr), bit 1 sniffing (sniff_bytes 16); then records (fuzz.h), each [flag][packet]:
 * flag bits 0-1 the decision for flows reported after this packet (0 none, 1 drop, 2 connect,
 * 3 connect, upstream sends 64 bytes then EOF), bit 2 run lwIP's TCP timer after it.
 *
 * Known bug, filtered (tests/fuzz/README.md, "Findings"): lwIP 2.1.3's ip6_input reads an extension
 * header's next-header and length bytes before it checks that 8 bytes of it are there, so an IPv6
 * packet that ends inside (or right at) a Hop-by-Hop, Destination Options, Routing or Fragment header
 * is read past its end (tests/fuzz/known/stack-lwip-ip6-exthdr-overread). Such packets are not sent
 * unless FUZZ_STACK_KNOWN=1 is in the environment, so the target keeps looking for other bugs.
 * The same for lwIP's tcp_parseopt, which reads an option's length byte before it checks that the byte
 * is inside the options (tests/fuzz/known/stack-lwip-tcp-option-length-overread): a TCP header whose
 * last option byte is the kind of an option with a length is not sent either. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "lwip/priv/tcp_priv.h"
#include "gx/tun.h"
#include "stack_int.h"

#define MAXUP 32

static int ups[MAXUP], n_ups;
static int let_known;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *k = getenv("FUZZ_STACK_KNOWN");
    let_known = k != NULL && strcmp(k, "1") == 0;
    return 0;
}

/* The known lwIP over-read: an IPv6 extension header (0 Hop-by-Hop, 60 Destination Options, 43 Routing,
 * 44 Fragment) with fewer than 8 of its bytes inside the packet (as lwIP trims it to the payload
 * length, or to its size for a GSO packet). Longer chains are followed while their lengths fit. */
static int lwip_known_overread(const uint8_t *ip, size_t len, int gso) {
    if (len < 40 || ip[0] >> 4 != 6)
        return 0;
    /* a GSO packet's length field is set from its size first (netif.c, fix_ip_length) */
    size_t end = gso ? len : 40 + ((size_t)ip[4] << 8 | ip[5]);
    if (end > len)
        return 0;   /* lwIP drops it: shorter than its payload length */
    uint8_t next = ip[6];
    size_t off = 40;
    for (int i = 0; i < 16; i++) {
        if (next != 0 && next != 60 && next != 43 && next != 44)
            return 0;
        if (end - off < 8)
            return 1;
        size_t hlen = next == 44 ? 8 : 8 * (1 + (size_t)ip[off + 1]);
        if (hlen > end - off)
            return 0;
        next = ip[off];
        off += hlen;
    }
    return 0;
}

static void drain(int fd) {
    static uint8_t junk[70000];
    while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) >= 0) {
    }
}

static void decide(struct gx_stack *s, int how) {
    struct gx_stack_event ev[16];
    int n;
    while ((n = gx_stack_poll_events(s, ev, 16)) > 0) {
        for (int i = 0; i < n; i++) {
            FZ_CHECK(ev[i].type == GX_STACK_EV_TCP || ev[i].type == GX_STACK_EV_UDP, "event type %u", ev[i].type);
            FZ_CHECK(ev[i].family == 4 || ev[i].family == 6, "event family %u", ev[i].family);
            FZ_CHECK(ev[i].len == 0 || ev[i].data != NULL, "event with %u bytes and no data", ev[i].len);
            struct flow *f = flowtab_get(s, ev[i].id);
            uint32_t type = ev[i].type;
            gx_stack_event_release(&ev[i]);
            if (f == NULL || how == 0)
                continue;
            int fd = -1;
            if (how >= 2 && n_ups < MAXUP) {
                int sp[2];
                if (socketpair(AF_UNIX, (type == GX_STACK_EV_TCP ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK, 0, sp) ==
                    0) {
                    fd = sp[0];
                    ups[n_ups++] = sp[1];
                    if (how == 3) {
                        static const uint8_t hello[64] = "upstream says hello";
                        ssize_t w = write(sp[1], hello, sizeof(hello));
                        (void)w;
                        if (type == GX_STACK_EV_TCP)
                            shutdown(sp[1], SHUT_WR);
                    }
                }
            }
            if (f->tag.kind == EP_TCP) {
                tcp_flow_decide(s, (struct tcp_flow *)f, fd);
                if (fd >= 0 && f->state == FLOW_CONNECTED)
                    tcp_flow_on_fd(s, (struct tcp_flow *)f, EPOLLIN | EPOLLOUT);
            } else {
                udp_sess_decide(s, (struct udp_sess *)f, fd);
                if (fd >= 0 && f->state == FLOW_CONNECTED)
                    udp_sess_on_fd(s, (struct udp_sess *)f, EPOLLIN);
            }
        }
    }
}

/* The known lwIP tcp_parseopt over-read: a TCP segment (right behind the IPv4 or IPv6 header) whose
 * options end with the kind byte of an option that has a length byte. */
static int lwip_known_tcp_opt(const uint8_t *ip, size_t len) {
    size_t l4;
    if (len >= 20 && ip[0] >> 4 == 4 && ip[9] == 6)
        l4 = (size_t)(ip[0] & 15) * 4;
    else if (len >= 40 && ip[0] >> 4 == 6 && ip[6] == 6)
        l4 = 40;
    else
        return 0;
    if (l4 < 20 || l4 + 20 > len)
        return 0;
    size_t hl = (size_t)(ip[l4 + 12] >> 4) * 4;
    if (hl <= 20)
        return 0;
    const uint8_t *opt = ip + l4 + 20;
    size_t n = hl - 20, avail = len - l4 - 20;
    for (size_t i = 0; i < n;) {
        if (i >= avail)
            return 1;
        if (opt[i] == 0)
            return 0;
        if (opt[i] == 1) {
            i++;
            continue;
        }
        if (i + 1 >= n || i + 1 >= avail)
            return 1;
        if (opt[i + 1] < 2)
            return 0;
        i += opt[i + 1];
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz in = {data, size};
    uint8_t b0 = fz_u8(&in);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    struct gx_stack_cfg cfg = {.tun_fd = sv[0], .vnet_hdr = b0 & 1, .mtu = 1500, .sniff_bytes = (b0 & 2) ? 16 : 0,
                               .sniff_timeout_ms = 1000, .max_flows = 16};
    struct gx_stack *s;
    int rc = gx_stack_new(&s, &cfg);
    FZ_CHECK(rc == 0, "stack_new: %d", rc);
    s->now_ms = gx_stack_now_ms();
    n_ups = 0;
    size_t len;
    const uint8_t *rec;
    int packets = 0;
    while ((rec = fz_record(&in, &len)) != NULL && packets < 512) {
        struct fz r = {rec, len};
        uint8_t flag = fz_u8(&r);
        if (r.n == 0)
            continue;
        size_t l3 = (b0 & 1) ? GX_VNET_HDR_LEN : 0;
        int gso = l3 && r.n > l3 && (r.p[1] & (uint8_t)~GX_VNET_GSO_ECN) != GX_VNET_GSO_NONE;
        if (!let_known && r.n > l3 &&
            (lwip_known_overread(r.p + l3, r.n - l3, gso) || lwip_known_tcp_opt(r.p + l3, r.n - l3)))
            continue;
        if (send(sv[1], r.p, r.n, MSG_DONTWAIT) != (ssize_t)r.n)
            continue;
        packets++;
        tun_read_packets(s);
        decide(s, flag & 3);
        if (flag & 4) {
            tcp_tmr();
            tcp_flows_tick(s);
        }
        tcp_flows_flush(s);
        tun_flush(s);
        drain(sv[1]);
    }
    struct gx_stack_stats st;
    gx_stack_get_stats(s, &st);
    FZ_CHECK(st.tun_rx_pkts <= (uint64_t)packets, "%llu packets counted, %d sent", (unsigned long long)st.tun_rx_pkts,
             packets);
    gx_stack_free(s);
    for (int i = 0; i < n_ups; i++)
        close(ups[i]);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
