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
 * Inputs that found lwIP bugs (tests/fuzz/README.md, "Findings"; fixed by
 * third_party/lwip/patches/0003-input-bounds-checks.patch) are kept as corpus/stack/regress-lwip-*;
 * tests/c/test_stack.c replays them through this code under ASan. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "lwip/ip4_frag.h"
#include "lwip/ip6_frag.h"
#include "lwip/priv/tcp_priv.h"
#include "gx/tun.h"
#include "stack_int.h"

#define MAXUP 32

static int ups[MAXUP], n_ups;
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
    /* Fragments waiting for reassembly live in lwIP's globals, not in the stack: time them out (as the
     * stack's slow tick would), so that no input leaves state behind for the next one. LeakSanitizer
     * otherwise reports them as leaked once an input ends: lwIP links queued IPv6 fragments through a
     * packed helper 4 bytes before the fragment header (IPV6_FRAG_COPYHEADER on 64-bit), a pointer
     * at an unaligned address, which LSan does not scan by default. */
    for (int i = 0; i <= IP_REASS_MAXAGE || i <= IPV6_REASS_MAXAGE; i++) {
        ip_reass_tmr();
        ip6_reass_tmr();
    }
    tun_flush(s);
    drain(sv[1]);
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
