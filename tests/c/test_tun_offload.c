/* virtio_net_hdr offload helpers: header layout, checksum completion, GSO splitting (table cases
 * checked against a byte-wise reference checksum), and a random-input run for the sanitizers. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "gx/base.h"
#include "gx/tun.h"
#include "gxtest.h"
#include "pktref.h"

/* ---- packet builders ---- */

static uint8_t payload_byte(uint32_t i) { return (uint8_t)(i * 7 + (i >> 8) + 1); }

/* An IPv4 (ihl words) or IPv6 header + TCP (thlen bytes) or UDP header + payload; L4 checksum
 * field holds the folded pseudo-header sum (as the kernel leaves it for CHECKSUM_PARTIAL). */
static uint32_t build(uint8_t *pkt, int v6, uint8_t proto, uint32_t ihl, uint32_t thlen, uint32_t payload,
                      uint32_t *l4off_out) {
    uint32_t l3 = v6 ? 40 : ihl * 4;
    uint32_t l4h = proto == 6 ? thlen : 8;
    uint32_t total = l3 + l4h + payload;
    memset(pkt, 0, l3 + l4h);
    if (v6) {
        pkt[0] = 0x60;
        put16(pkt + 4, total - 40);
        pkt[6] = proto;
        pkt[7] = 64;
        for (int i = 0; i < 16; i++) {
            pkt[8 + i] = (uint8_t)(0xfd + i);
            pkt[24 + i] = (uint8_t)(0x20 + i);
        }
    } else {
        pkt[0] = (uint8_t)(0x40 | ihl);
        put16(pkt + 2, total);
        put16(pkt + 4, 0xfffe);                 /* id wraps during the split */
        pkt[6] = 0x40;                          /* DF */
        pkt[8] = 64;
        pkt[9] = proto;
        memcpy(pkt + 12, "\x0a\x4d\x00\x01\x0a\x4e\x00\x05", 8);
        for (uint32_t i = 20; i < l3; i++)
            pkt[i] = 1;                         /* NOP options */
    }
    uint8_t *l4 = pkt + l3;
    put16(l4, 40000);
    put16(l4 + 2, 9999);
    if (proto == 6) {
        put32(l4 + 4, 0xfffff000u);             /* seq wraps during the split */
        put32(l4 + 8, 12345);
        l4[12] = (uint8_t)((thlen / 4) << 4);
        l4[13] = 0x80 | 0x10 | 0x08 | 0x01;     /* CWR ACK PSH FIN */
        put16(l4 + 14, 65535);
        for (uint32_t i = 20; i < thlen; i++)
            l4[i] = 1;
    } else {
        put16(l4 + 4, l4h + payload);
    }
    for (uint32_t i = 0; i < payload; i++)
        l4[l4h + i] = payload_byte(i);
    uint32_t field = proto == 6 ? 16 : 6;
    put16(l4 + field, ref_fold(ref_pseudo(pkt, v6, proto, l4h + payload)));
    *l4off_out = l3;
    return total;
}

static uint8_t big[70000];

static void test_header_layout(void) {
    struct gx_vnet_hdr h = {GX_VNET_F_NEEDS_CSUM, GX_VNET_GSO_TCPV4, 0x0102, 0x0304, 0x0506, 0x0708}, d;
    uint8_t raw[GX_VNET_HDR_LEN];
    gx_vnet_hdr_encode(&h, raw);
    static const uint8_t want[GX_VNET_HDR_LEN] = {1, 1, 2, 1, 4, 3, 6, 5, 8, 7};
    CHECK(memcmp(raw, want, sizeof(want)) == 0, "little-endian layout");
    gx_vnet_hdr_decode(raw, &d);
    CHECK(memcmp(&h, &d, sizeof(h)) == 0, "decode(encode(h)) == h");
}

static void test_csum_complete(void) {
    static const struct { int v6; uint8_t proto; uint32_t payload; } cases[] = {
        {0, 17, 0}, {0, 17, 1}, {0, 17, 1001}, {0, 6, 1400}, {1, 17, 7}, {1, 6, 1333}, {0, 6, 0},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint8_t pkt[2048];
        uint32_t l4off;
        uint32_t len = build(pkt, cases[c].v6, cases[c].proto, 5, 20, cases[c].payload, &l4off);
        uint16_t off = cases[c].proto == 6 ? 16 : 6;
        CHECK(!l4_valid(pkt, len, cases[c].v6, cases[c].proto, l4off) || cases[c].payload == 0,
              "case %zu starts partial", c);
        CHECK(gx_tun_csum_complete(pkt, len, (uint16_t)l4off, off) == 0, "case %zu completes", c);
        CHECK(l4_valid(pkt, len, cases[c].v6, cases[c].proto, l4off), "case %zu checksum valid", c);
        CHECK(get16(pkt + l4off + off) != 0, "case %zu: zero is sent as 0xffff", c);
    }
    uint8_t pkt[64] = {0};
    CHECK(gx_tun_csum_complete(pkt, 64, 64, 0) == -EINVAL, "csum_start at the end");
    CHECK(gx_tun_csum_complete(pkt, 64, 60, 3) == -EINVAL, "field past the end");
    CHECK(gx_tun_csum_complete(pkt, 64, 0xffff, 0xffff) == -EINVAL, "huge offsets");
    CHECK(gx_tun_csum_complete(pkt, 64, 60, 2) == 0, "field in the last two bytes");
    CHECK(gx_tun_csum_complete(NULL, 64, 0, 0) == -EINVAL, "NULL packet");
}

/* Split a super-packet and check every segment against the original. */
static void check_split(const char *what, int v6, uint8_t proto, uint32_t ihl, uint32_t thlen, uint32_t payload,
                        uint16_t gso) {
    struct gx_batch b;
    if (gx_batch_init(&b, GX_BATCH_MAX, GX_SLOT_SIZE, GX_HEADROOM) < 0) {
        CHECK(0, "batch init");
        return;
    }
    uint32_t l4off;
    uint32_t len = build(big, v6, proto, ihl, thlen, payload, &l4off);
    uint32_t hlen = l4off + (proto == 6 ? thlen : 8);
    struct gx_vnet_hdr h = {GX_VNET_F_NEEDS_CSUM,
                            (uint8_t)(proto == 17 ? GX_VNET_GSO_UDP_L4 : v6 ? GX_VNET_GSO_TCPV6 : GX_VNET_GSO_TCPV4),
                            (uint16_t)hlen, gso, (uint16_t)l4off, (uint16_t)(proto == 6 ? 16 : 6)};
    b.n = 1;   /* a packet already in the batch stays untouched */
    b.pkt[0].len = 3;
    uint32_t want = (payload + gso - 1) / gso;
    int rc = gx_tun_gso_split(big, len, &h, &b);
    CHECK(rc == (int)want, "%s: %d segments, want %u", what, rc, want);
    CHECK(b.n == 1 + want && b.pkt[0].len == 3, "%s: appended after the existing packet", what);
    uint32_t done = 0;
    for (uint32_t i = 0; rc > 0 && i < (uint32_t)rc; i++) {
        const struct gx_pkt *p = &b.pkt[1 + i];
        uint32_t seg = payload - done < gso ? payload - done : gso;
        const uint8_t *s = p->data;
        CHECK(p->data == gx_batch_slot(&b, 1 + i) + GX_HEADROOM, "%s seg %u: data at its slot", what, i);
        CHECK(p->len == hlen + seg, "%s seg %u: len %u want %u", what, i, p->len, hlen + seg);
        if (v6) {
            CHECK(get16(s + 4) == p->len - 40, "%s seg %u: ipv6 payload length", what, i);
        } else {
            CHECK(get16(s + 2) == p->len, "%s seg %u: ipv4 total length", what, i);
            CHECK(get16(s + 4) == (uint16_t)(0xfffe + i), "%s seg %u: ipv4 id", what, i);
            CHECK(ip4_valid(s), "%s seg %u: ipv4 header checksum", what, i);
            CHECK(memcmp(s + 12, big + 12, 8) == 0 && memcmp(s + 20, big + 20, l4off - 20) == 0,
                  "%s seg %u: addresses and options", what, i);
        }
        const uint8_t *l4 = s + l4off;
        if (proto == 6) {
            CHECK(get32(l4 + 4) == 0xfffff000u + done, "%s seg %u: seq", what, i);
            uint8_t flags = l4[13];
            int last = i + 1 == want;
            CHECK(!!(flags & 0x01) == last && !!(flags & 0x08) == last, "%s seg %u: FIN/PSH only last", what, i);
            CHECK(!!(flags & 0x80) == (i == 0), "%s seg %u: CWR only first", what, i);
            CHECK(flags & 0x10, "%s seg %u: ACK kept", what, i);
            CHECK(memcmp(l4 + 20, big + l4off + 20, thlen - 20) == 0, "%s seg %u: tcp options", what, i);
        } else {
            CHECK(get16(l4 + 4) == 8 + seg, "%s seg %u: udp length", what, i);
        }
        CHECK(l4_valid(s, p->len, v6, proto, l4off), "%s seg %u: l4 checksum", what, i);
        CHECK(memcmp(s + hlen, big + hlen + done, seg) == 0, "%s seg %u: payload", what, i);
        done += seg;
    }
    CHECK(done == payload, "%s: all payload delivered (%u of %u)", what, done, payload);
    gx_batch_free(&b);
}

static void test_split_cases(void) {
    check_split("tcp4", 0, 6, 5, 20, 5000, 1400);
    check_split("tcp4 options", 0, 6, 6, 32, 4200, 1400);   /* exact multiple */
    check_split("tcp4 one byte tail", 0, 6, 5, 20, 2801, 1400);
    check_split("tcp4 64k", 0, 6, 5, 32, 65535 - 52, 1388);
    check_split("tcp6", 1, 6, 0, 32, 9000, 1220);
    check_split("udp4", 0, 17, 5, 0, 12000, 1200);
    check_split("udp6", 1, 17, 0, 0, 3333, 1000);
    check_split("udp4 single", 0, 17, 5, 0, 100, 1200);
}

static void test_split_limits(void) {
    struct gx_batch b;
    if (gx_batch_init(&b, 4, GX_SLOT_SIZE, GX_HEADROOM) < 0) {
        CHECK(0, "batch init");
        return;
    }
    uint32_t l4off;
    uint32_t len = build(big, 0, 6, 5, 20, 10000, &l4off);
    struct gx_vnet_hdr ok = {1, GX_VNET_GSO_TCPV4, 40, 1000, 20, 16}, h;
    b.n = 1;
    CHECK(gx_tun_gso_split(big, len, &ok, &b) == 3 && b.n == 4, "only the free slots are filled");
    CHECK(gx_tun_gso_split(big, len, &ok, &b) == 0 && b.n == 4, "a full batch takes nothing");

    b.n = 0;
    h = ok; h.gso_size = 0;
    CHECK(gx_tun_gso_split(big, len, &h, &b) == -EINVAL, "gso_size 0");
    h = ok; h.gso_size = 1950;
    CHECK(gx_tun_gso_split(big, len, &h, &b) == -EMSGSIZE, "segment larger than a slot");
    h = ok; h.gso_type = GX_VNET_GSO_TCPV6;
    CHECK(gx_tun_gso_split(big, len, &h, &b) == -EINVAL, "TCPV6 on an IPv4 packet");
    h = ok; h.gso_type = 3;   /* UFO */
    CHECK(gx_tun_gso_split(big, len, &h, &b) == -EPROTONOSUPPORT, "UFO is not supported");
    h = ok; h.csum_start = 24;
    CHECK(gx_tun_gso_split(big, len, &h, &b) == -EINVAL, "csum_start != IPv4 header length");
    h = ok; h.csum_offset = 6;
    CHECK(gx_tun_gso_split(big, len, &h, &b) == -EINVAL, "UDP checksum offset on TCP");
    h = ok; h.gso_type = GX_VNET_GSO_UDP_L4; h.csum_offset = 6;
    CHECK(gx_tun_gso_split(big, len, &h, &b) == -EINVAL, "UDP_L4 on a TCP packet");
    CHECK(gx_tun_gso_split(big, 40, &ok, &b) == -EINVAL, "headers only, no payload");
    CHECK(gx_tun_gso_split(big, 30, &ok, &b) == -EINVAL, "truncated TCP header");
    CHECK(gx_tun_gso_split(big, 0, &ok, &b) == -EINVAL, "empty");
    CHECK(gx_tun_gso_split(big, GX_TUN_GSO_MAX + 1, &ok, &b) == -EINVAL, "larger than 64 KiB");
    uint8_t saved = big[32];
    big[32] = 0x40;   /* TCP data offset 4 words */
    CHECK(gx_tun_gso_split(big, len, &ok, &b) == -EINVAL, "TCP header shorter than 20");
    big[32] = 0xf0;   /* 60 bytes of TCP header */
    CHECK(gx_tun_gso_split(big, 70, &ok, &b) == -EINVAL, "TCP header past the end");
    big[32] = saved;
    CHECK(b.n == 0, "no packet added by a refused split");
    gx_batch_free(&b);
}

/* TAP: a super-packet behind an Ethernet header (untagged, and with a VLAN tag) splits into the
 * same segments as the bare IP packet, each with the frame's L2 header in front. */
static void test_split_ethernet(void) {
    static uint8_t frame[70000 + 18];
    static const struct { int v6; uint8_t proto; uint32_t payload; uint16_t gso; } cases[] = {
        {0, 6, 20000, 1310}, {1, 6, 9000, 1290}, {0, 17, 5000, 1300}, {1, 17, 3001, 1000}, {0, 6, 65000, 1448},
    };
    struct gx_batch ip, eth;
    if (gx_batch_init(&ip, GX_BATCH_MAX, GX_SLOT_SIZE, GX_HEADROOM) < 0 ||
        gx_batch_init(&eth, GX_BATCH_MAX, GX_SLOT_SIZE, GX_HEADROOM) < 0) {
        CHECK(0, "batch init");
        return;
    }
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (uint32_t l2 = 14; l2 <= 18; l2 += 4) {
            uint32_t l4off;
            uint32_t len = build(big, cases[c].v6, cases[c].proto, 5, 32, cases[c].payload, &l4off);
            uint32_t hlen = l4off + (cases[c].proto == 6 ? 32 : 8);
            uint8_t type = (uint8_t)(cases[c].proto == 17 ? GX_VNET_GSO_UDP_L4
                                     : cases[c].v6 ? GX_VNET_GSO_TCPV6 : GX_VNET_GSO_TCPV4);
            uint16_t csoff = cases[c].proto == 6 ? 16 : 6;
            struct gx_vnet_hdr h = {GX_VNET_F_NEEDS_CSUM, type, (uint16_t)hlen, cases[c].gso, (uint16_t)l4off, csoff};
            struct gx_vnet_hdr he = {GX_VNET_F_NEEDS_CSUM, type, (uint16_t)(l2 + hlen), cases[c].gso,
                                     (uint16_t)(l2 + l4off), csoff};
            for (uint32_t k = 0; k < 12; k++)
                frame[k] = (uint8_t)(0x10 + k);                   /* destination and source MAC */
            uint16_t ethertype = cases[c].v6 ? 0x86dd : 0x0800;
            if (l2 == 18) {
                put16(frame + 12, 0x8100);
                put16(frame + 14, 42);                           /* VLAN 42 */
            }
            put16(frame + l2 - 2, ethertype);
            memcpy(frame + l2, big, len);
            CHECK(gx_eth_l3_offset(frame, l2 + len) == (int)l2, "case %zu: L3 at %u", c, l2);
            gx_batch_reset(&ip);
            gx_batch_reset(&eth);
            int n = gx_tun_gso_split(big, len, &h, &ip);
            int m = gx_tun_gso_split_at(frame, l2 + len, &he, l2, &eth);
            CHECK(n > 1 && m == n, "case %zu l2 %u: %d frames, %d packets", c, l2, m, n);
            int same = 0;
            for (int i = 0; i < n && i < m; i++)
                same += eth.pkt[i].len == l2 + ip.pkt[i].len && memcmp(eth.pkt[i].data, frame, l2) == 0 &&
                        memcmp(eth.pkt[i].data + l2, ip.pkt[i].data, ip.pkt[i].len) == 0;
            CHECK(same == n, "case %zu l2 %u: %d of %d frames = L2 header + the IP split's segment", c, l2, same, n);
        }
    }
    uint8_t f[64] = {0};
    put16(f + 12, 0x0806);
    CHECK(gx_eth_l3_offset(f, 64) == -EPROTONOSUPPORT, "ARP is not IP");
    put16(f + 12, 0x8100);
    put16(f + 16, 0x0806);
    CHECK(gx_eth_l3_offset(f, 64) == -EPROTONOSUPPORT, "tagged ARP is not IP");
    put16(f + 16, 0x0800);
    CHECK(gx_eth_l3_offset(f, 17) == -EPROTONOSUPPORT && gx_eth_l3_offset(f, 18) == 18, "a tag needs 18 bytes");
    CHECK(gx_eth_l3_offset(f, 13) == -EINVAL, "shorter than a header");
    struct gx_vnet_hdr h = {GX_VNET_F_NEEDS_CSUM, GX_VNET_GSO_TCPV4, 0, 1000, 34, 16};
    CHECK(gx_tun_gso_split_at(frame, 100, &h, 19, &eth) == -EINVAL, "L3 offset past a tagged header");
    gx_batch_free(&ip);
    gx_batch_free(&eth);
}

/* Random headers over random and half-valid packets: only the sanitizers judge the memory
 * accesses; the checks here are the invariants. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void test_random(void) {
    struct gx_batch b;
    if (gx_batch_init(&b, 16, GX_SLOT_SIZE, GX_HEADROOM) < 0) {
        CHECK(0, "batch init");
        return;
    }
    static uint8_t pkt[4096];
    int bad = 0;
    for (int it = 0; it < 200000; it++) {
        uint32_t len = rnd() % sizeof(pkt);
        for (uint32_t i = 0; i < len; i++)
            pkt[i] = (uint8_t)rnd();
        if (len && (rnd() & 1)) {
            uint32_t l4off;
            len = build(pkt, rnd() & 1, (rnd() & 1) ? 6 : 17, 5 + rnd() % 3, 20 + 4 * (rnd() % 5),
                        rnd() % 3000, &l4off);
            pkt[rnd() % 60] ^= (uint8_t)(rnd() & 0xff);   /* and break something */
        }
        struct gx_vnet_hdr h = {(uint8_t)rnd(), (uint8_t)(rnd() % 8), (uint16_t)(rnd() % 128),
                                (uint16_t)(rnd() % 2200), (uint16_t)(rnd() % 80), (uint16_t)(rnd() % 20)};
        if (rnd() & 1)
            h.csum_start = (uint16_t)((pkt[0] >> 4) == 6 ? 40 : (pkt[0] & 0xf) * 4);
        if (rnd() & 1)
            h.csum_offset = (rnd() & 1) ? 16 : 6;
        b.n = rnd() % 17;
        uint32_t before = b.n;
        uint32_t l3 = (rnd() & 3) == 0 ? 14 : 0;   /* sometimes as a TAP frame */
        int rc = gx_tun_gso_split_at(pkt, len, &h, l3, &b);
        if (rc < 0 ? b.n != before : b.n != before + (uint32_t)rc || b.n > b.cap)
            bad++;
        for (uint32_t i = before; i < b.n; i++)
            if (b.pkt[i].len > gx_batch_room(&b) || b.pkt[i].len == 0)
                bad++;
        (void)gx_tun_csum_complete(pkt, len, h.csum_start, h.csum_offset);
    }
    CHECK(bad == 0, "%d random inputs broke an invariant", bad);
    gx_batch_free(&b);
}

/* gx_csum_add (64 bytes at a time where the CPU allows) against RFC 1071's definition computed
 * byte pair by byte pair, for every length up to 300, long lengths and odd start addresses. */
static void test_csum_sum(void) {
    static uint8_t buf[70000 + 8];
    uint32_t seed = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
    memset(buf + 1000, 0xff, 4000);               /* long runs of 0xffff words: the carries */
    size_t lens[340];
    size_t nl = 0;
    for (size_t n = 0; n <= 300; n++)
        lens[nl++] = n;
    const size_t big[] = {1350, 1400, 1500, 4095, 9000, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
        lens[nl++] = big[i];
    int bad = 0;
    for (size_t off = 0; off < 3; off++) {
        for (size_t i = 0; i < nl; i++) {
            size_t n = lens[i] + off > 70000 ? 70000 - off : lens[i];
            const uint8_t *p = buf + off;
            uint64_t ref = 0;                         /* big-endian words, then compared byte-swapped */
            for (size_t j = 0; j + 1 < n; j += 2)
                ref += (uint32_t)(p[j] << 8 | p[j + 1]);
            if (n & 1)
                ref += (uint32_t)p[n - 1] << 8;
            while (ref >> 16)
                ref = (ref & 0xffff) + (ref >> 16);
            uint16_t mine = gx_csum_fold(gx_csum_add(p, n, 7));     /* with a carried-in 7 */
            uint16_t want_native;
            uint8_t be[2] = {(uint8_t)(ref >> 8), (uint8_t)ref};
            memcpy(&want_native, be, 2);
            uint64_t w = (uint64_t)want_native + 7;
            while (w >> 16)
                w = (w & 0xffff) + (w >> 16);
            bad += (uint16_t)w != mine && !((uint16_t)w == 0xffff && mine == 0) && !((uint16_t)w == 0 && mine == 0xffff);
        }
    }
    CHECK(bad == 0, "%d sums differ from RFC 1071", bad);
}

int main(void) {
    test_header_layout();
    test_csum_sum();
    test_csum_complete();
    test_split_cases();
    test_split_limits();
    test_split_ethernet();
    test_random();
    TEST_DONE();
}
