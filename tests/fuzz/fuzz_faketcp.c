/* Fake-TCP segment parsing (csrc/faketcp/faketcp_segment.c): what a raw IPPROTO_TCP socket hands over, any
 * host's bytes (the BPF filter only matches ports).
 *
 * Input: byte 0: bit 0 with an IPv4 header (IPv4 raw sockets) or from the TCP header (IPv6); the rest:
 * the segment. Checks: a parsed segment's headers and payload lie inside the bytes; for IPv4 the
 * checksum check runs; a segment rebuilt with gx_faketcp_build from the parsed fields (no options)
 * parses back to the same fields with a valid checksum. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "gx/faketcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz f = {data, size};
    int ip = fz_u8(&f) & 1;
    uint8_t *pkt = malloc(f.n ? f.n : 1);
    memcpy(pkt, f.p, f.n);
    struct gx_faketcp_seg s;
    int rc = gx_faketcp_parse(pkt, (uint32_t)f.n, ip, &s);
    FZ_CHECK(rc == 0 || rc == -EINVAL, "parse: %d", rc);
    if (rc == 0) {
        FZ_CHECK((uint64_t)s.hdr_len + s.payload_len <= f.n && s.hdr_len >= GX_FAKETCP_HDR, "hdr %u + payload %u > %zu",
                 s.hdr_len, s.payload_len, f.n);
        if (ip) {
            (void)gx_faketcp_csum_ok(pkt, &s);
            /* rebuild: IPv4 header of the original (20 bytes, no options) + our TCP header */
            uint8_t out[20 + GX_FAKETCP_HDR + 1500];
            uint32_t pl = s.payload_len < 1500 ? s.payload_len : 1500;
            memset(out, 0, 20);
            out[0] = 0x45;
            out[2] = (uint8_t)((40 + pl) >> 8);
            out[3] = (uint8_t)(40 + pl);
            out[8] = 64;
            out[9] = 6;
            memcpy(out + 12, s.src + 12, 4);
            memcpy(out + 16, s.dst + 12, 4);
            memcpy(out + 40, pkt + s.hdr_len, pl);
            gx_faketcp_build(out + 20, s.sport, s.dport, s.seq, s.ack, s.flags, 1024, out + 12, out + 16, 0, out + 40,
                             pl);
            struct gx_faketcp_seg t;
            FZ_CHECK(gx_faketcp_parse(out, 40 + pl, 1, &t) == 0, "a built segment does not parse");
            FZ_CHECK(t.sport == s.sport && t.dport == s.dport && t.seq == s.seq && t.ack == s.ack &&
                         t.flags == s.flags && t.payload_len == pl && t.hdr_len == 40 &&
                         memcmp(t.src, s.src, 16) == 0 && memcmp(t.dst, s.dst, 16) == 0,
                     "a built segment parses to other fields");
            FZ_CHECK(gx_faketcp_csum_ok(out, &t), "a built segment's checksum is not valid");
        }
    }
    free(pkt);
    return 0;
}
