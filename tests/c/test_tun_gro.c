/* GRO for TUN writes: coalesced super-packets, split again with the read path's GSO splitter, give
 * back exactly the segments that went in; anything that must not coalesce goes alone. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx/tun.h"
#include "gxtest.h"
#include "pktref.h"

/* A TCP segment v4/v6 with valid checksums: seq, payload bytes derived from seq, flags, options len. */
static uint32_t make_seg(uint8_t *p, int v6, uint32_t seq, uint32_t payload, uint8_t flags, uint16_t ipid,
                         uint32_t optlen) {
    uint32_t ip = v6 ? 40 : 20, tcp = 20 + optlen, len = ip + tcp + payload;
    memset(p, 0, len);
    if (v6) {
        p[0] = 0x60;
        put16(p + 4, tcp + payload);
        p[6] = 6;
        p[7] = 64;
        p[8] = 0xfd;
        p[23] = 1;
        p[24] = 0xfd;
        p[39] = 2;
    } else {
        p[0] = 0x45;
        put16(p + 2, len);
        put16(p + 4, ipid);
        p[6] = 0x40; /* DF */
        p[8] = 64;
        p[9] = 6;
        p[12] = 10, p[15] = 1;
        p[16] = 10, p[19] = 2;
        put16(p + 10, (uint16_t)~ref_fold(ref_sum(p, 20, 0)));
    }
    uint8_t *t = p + ip;
    put16(t, 40000);
    put16(t + 2, 5201);
    put32(t + 4, seq);
    put32(t + 8, 777);
    t[12] = (uint8_t)((tcp / 4) << 4);
    t[13] = flags;
    put16(t + 14, 501);
    for (uint32_t k = 0; k < optlen; k++)
        t[20 + k] = k == 0 ? 1 : 1; /* NOPs */
    for (uint32_t k = 0; k < payload; k++)
        t[tcp + k] = (uint8_t)(seq + k);
    put16(t + 16, (uint16_t)~ref_fold(ref_sum(t, tcp + payload, ref_pseudo(p, v6, 6, tcp + payload))));
    return len;
}

static uint8_t segs[64][2048];
static uint8_t out[GX_VNET_HDR_LEN + 65535];

static void fill(struct gx_batch *b, int n) {
    gx_batch_reset(b);
    for (int i = 0; i < n; i++) {
        b->pkt[i].data = segs[i];
    }
    b->n = (uint32_t)n;
}

/* Coalesce n segments, split the result, compare with the originals byte for byte. */
static void roundtrip(int v6, int n, uint32_t mss, uint32_t last, int psh_last, const char *label) {
    struct gx_batch b, split;
    gx_batch_init(&b, 64, 2048, 0);
    gx_batch_init(&split, 64, 2048, GX_HEADROOM);
    uint32_t seq = 1000;
    for (int i = 0; i < n; i++) {
        uint32_t pl = i == n - 1 ? last : mss;
        uint8_t flags = (uint8_t)(0x10 | (psh_last && i == n - 1 ? 0x08 : 0));
        b.pkt[i].len = make_seg(segs[i], v6, seq, pl, flags, (uint16_t)(100 + i), 12);
        seq += pl;
    }
    fill(&b, n);
    for (int i = 0; i < n; i++)
        b.pkt[i].len = (v6 ? 40u : 20u) + 32u + (i == n - 1 ? last : mss);
    uint32_t i = 0, covered = 0;
    uint32_t len = gx_tun_gro_next(&b, 0, &i, out, &covered);
    CHECK(covered == (uint32_t)n && i == (uint32_t)n, "%s: one super-packet covers all %d (covered %u)", label, n,
          covered);
    struct gx_vnet_hdr h;
    gx_vnet_hdr_decode(out, &h);
    CHECK(h.gso_type == (v6 ? GX_VNET_GSO_TCPV6 : GX_VNET_GSO_TCPV4) && h.gso_size == mss &&
              h.flags == GX_VNET_F_NEEDS_CSUM && h.csum_start == (v6 ? 40 : 20) && h.csum_offset == 16,
          "%s: header type %u size %u", label, h.gso_type, h.gso_size);
    CHECK(len == GX_VNET_HDR_LEN + (v6 ? 40u : 20u) + 32u + mss * (uint32_t)(n - 1) + last, "%s: length %u", label,
          len);
    /* the splitter expects a packet whose checksum field holds the pseudo-header sum, as here */
    gx_batch_reset(&split);
    int got = gx_tun_gso_split(out + GX_VNET_HDR_LEN, len - GX_VNET_HDR_LEN, &h, &split);
    CHECK(got == n, "%s: split into %d", label, got);
    for (int k = 0; k < got && k < n; k++) {
        uint32_t want = b.pkt[k].len;
        CHECK(split.pkt[k].len == want && memcmp(split.pkt[k].data, segs[k], want) == 0,
              "%s: segment %d differs (len %u vs %u)", label, k, split.pkt[k].len, want);
    }
    gx_batch_free(&b);
    gx_batch_free(&split);
}

/* TAP frames: segments behind equal Ethernet headers coalesce into one super-frame that keeps the
 * header (the vnet header's offsets count it), and splitting it at L3 offset 14 gives the frames
 * back; a frame with another source MAC or a VLAN tag ends a run. */
static uint8_t frames[64][2048];

static void test_ethernet(void) {
    struct gx_batch b, split;
    gx_batch_init(&b, 64, 2048, 0);
    gx_batch_init(&split, 64, 2048, GX_HEADROOM);
    for (int v6 = 0; v6 <= 1; v6++) {
        const int n = 9;
        const uint32_t mss = 1300, last = 77;
        uint32_t seq = 5000;
        gx_batch_reset(&b);
        for (int i = 0; i < n; i++) {
            uint32_t pl = i == n - 1 ? last : mss;
            uint32_t ipl = make_seg(frames[i] + 14, v6, seq, pl, (uint8_t)(0x10 | (i == n - 1 ? 0x08 : 0)),
                                    (uint16_t)(7 + i), 12);
            memcpy(frames[i], "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02", 12);
            put16(frames[i] + 12, v6 ? 0x86dd : 0x0800);
            b.pkt[i].data = frames[i];
            b.pkt[i].len = 14 + ipl;
            seq += pl;
        }
        b.n = (uint32_t)n;
        uint32_t i = 0, covered = 0;
        uint32_t len = gx_tun_gro_next(&b, 1, &i, out, &covered);
        CHECK(covered == (uint32_t)n, "eth v6=%d: one super-frame covers %u of %d", v6, covered, n);
        struct gx_vnet_hdr h;
        gx_vnet_hdr_decode(out, &h);
        uint32_t iph = v6 ? 40u : 20u;
        CHECK(h.gso_size == mss && h.csum_start == 14 + iph && h.hdr_len == 14 + iph + 32 &&
                  memcmp(out + GX_VNET_HDR_LEN, frames[0], 14) == 0,
              "eth v6=%d: vnet header counts the Ethernet header (start %u, hdr_len %u)", v6, h.csum_start, h.hdr_len);
        gx_batch_reset(&split);
        int got = gx_tun_gso_split_at(out + GX_VNET_HDR_LEN, len - GX_VNET_HDR_LEN, &h, 14, &split);
        int same = 0;
        for (int k = 0; k < got && k < n; k++)
            same += split.pkt[k].len == b.pkt[k].len && memcmp(split.pkt[k].data, frames[k], b.pkt[k].len) == 0;
        CHECK(got == n && same == n, "eth v6=%d: split gives the %d frames back (%d, %d equal)", v6, n, got, same);
        /* as a TUN packet (eth = 0) the same frames do not coalesce */
        i = 0;
        gx_tun_gro_next(&b, 0, &i, out, &covered);
        CHECK(covered == 1, "eth v6=%d: frames are not IP packets", v6);
        /* another source MAC ends a run (and, different from its successor too, goes alone); a tagged
     * frame goes alone: runs 0-2, 3, 4-5, 6, 7-8 */
        frames[3][11] = 0x03;
        put16(frames[6] + 12, 0x8100);
        i = 0;
        uint32_t runs[9], nr = 0;
        while (gx_tun_gro_next(&b, 1, &i, out, &covered) > 0 && nr < 9)
            runs[nr++] = covered;
        CHECK(nr == 5 && runs[0] == 3 && runs[1] == 1 && runs[2] == 2 && runs[3] == 1 && runs[4] == 2,
              "eth v6=%d: runs split at the other MAC and the tag: %u runs (%u %u %u)", v6, nr, runs[0], runs[1],
              nr > 2 ? runs[2] : 0);
    }
    gx_batch_free(&b);
    gx_batch_free(&split);
}

static void test_not_coalesced(void) {
    struct gx_batch b;
    gx_batch_init(&b, 64, 2048, 0);
    int n = 0;
    uint32_t lens[16];
    lens[n++] = make_seg(segs[0], 0, 1000, 1000, 0x10, 1, 0);
    lens[n++] = make_seg(segs[1], 0, 2000, 1000, 0x10, 2, 0);
    lens[n++] = make_seg(segs[2], 0, 5000, 1000, 0x10, 3, 0);       /* seq gap */
    lens[n++] = make_seg(segs[3], 0, 6000, 0, 0x10, 4, 0);          /* pure ACK */
    lens[n++] = make_seg(segs[4], 0, 6000, 1000, 0x12, 5, 0);       /* SYN|ACK */
    lens[n++] = make_seg(segs[5], 0, 7000, 1000, 0x11, 6, 0);       /* FIN|ACK */
    lens[n++] = make_seg(segs[6], 0, 8000, 1000, 0x18, 7, 0);       /* PSH first: alone */
    lens[n++] = make_seg(segs[7], 0, 9000, 1000, 0x10, 8, 0);
    lens[n++] = make_seg(segs[8], 0, 10000, 1200, 0x10, 9, 0);      /* larger than gso_size */
    segs[9][0] = 0x00;                                              /* not IP */
    lens[n++] = 60;
    fill(&b, n);
    for (int i = 0; i < n; i++)
        b.pkt[i].len = lens[i];
    b.pkt[7].len = 0; /* dropped in the middle: skipped */
    uint32_t i = 0, covered, expect[] = {2, 1, 1, 1, 1, 1, 1, 1};
    int k = 0;
    uint32_t len;
    while ((len = gx_tun_gro_next(&b, 0, &i, out, &covered)) > 0 && k < 8) {
        struct gx_vnet_hdr h;
        gx_vnet_hdr_decode(out, &h);
        CHECK(covered == expect[k], "write %d covers %u, want %u", k, covered, expect[k]);
        if (covered == 1)
            CHECK(h.gso_type == GX_VNET_GSO_NONE && h.flags == 0, "write %d has a plain header", k);
        k++;
    }
    CHECK(k == 8, "8 writes for 10 packets with one dropped (%d)", k);
    gx_batch_free(&b);
}

int main(void) {
    roundtrip(0, 2, 1000, 1000, 0, "v4 two");
    roundtrip(0, 45, 1410, 1410, 0, "v4 45 full");
    roundtrip(0, 30, 1310, 17, 1, "v4 short last with PSH");
    roundtrip(1, 20, 1280, 1280, 0, "v6 20");
    roundtrip(1, 7, 1200, 5, 1, "v6 short last");
    test_not_coalesced();
    test_ethernet();
    /* past 64 KiB a new super-packet starts */
    struct gx_batch b;
    gx_batch_init(&b, 64, 2048, 0);
    for (int i = 0; i < 60; i++)
        make_seg(segs[i], 0, 1000 + (uint32_t)i * 1400, 1400, 0x10, (uint16_t)i, 0);
    fill(&b, 60);
    for (int i = 0; i < 60; i++)
        b.pkt[i].len = 20 + 20 + 1400;
    uint32_t i = 0, covered, total = 0, writes = 0;
    while (gx_tun_gro_next(&b, 0, &i, out, &covered) > 0) {
        total += covered;
        writes++;
    }
    CHECK(total == 60 && writes == 2, "60 x 1400 bytes: %u packets in %u writes", total, writes);
    /* gx_tun_write_batch_gro's writev (iovecs into the batch) sends what gx_tun_gro_next builds, one
     * message per write: through a SOCK_SEQPACKET pair, with a PSH segment that ends a super-packet
     * and a packet that goes alone in between */
    b.pkt[20].data[20 + 13] |= 0x08;
    put16(b.pkt[20].data + 20 + 16, 0);
    put16(b.pkt[20].data + 20 + 16, (uint16_t)~ref_fold(ref_sum(b.pkt[20].data + 20, 20 + 1400,
                                                                   ref_pseudo(b.pkt[20].data, 0, 6, 20 + 1400))));
    b.pkt[40].data[9] = 17;   /* not TCP */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0, "socketpair");
    int bufsz = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
    uint64_t supers = 0;
    CHECK(gx_tun_write_batch_gro(sv[0], &b, 0, &supers) == 60, "writev: all 60 packets written");
    static uint8_t got[GX_VNET_HDR_LEN + 65535];
    uint32_t msgs = 0, same = 0;
    i = 0;
    uint32_t len;
    while ((len = gx_tun_gro_next(&b, 0, &i, out, &covered)) > 0) {
        ssize_t r = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);
        msgs++;
        same += r == (ssize_t)len && memcmp(got, out, len) == 0;
    }
    CHECK(msgs >= 4 && same == msgs && supers >= 3, "writev messages equal the built writes: %u of %u, %llu supers",
          same, msgs, (unsigned long long)supers);
    CHECK(recv(sv[1], got, sizeof(got), MSG_DONTWAIT) < 0, "no extra message");
    close(sv[0]);
    close(sv[1]);
    gx_batch_free(&b);
    TEST_DONE();
}
