/* WebSocket frame headers (csrc/proxy/ws.c) as they arrive from the peer, and the masking copy.
 *
 * Input: byte 0: the number of bytes available to the parser (the rest of the input when larger);
 * bytes 1-4: a mask key, byte 5: a key offset; the rest: the stream. The stream is parsed frame after
 * frame (payload skipped). Checks: the header length is 2..14 and within what was available, more bytes
 * never change a complete parse, 0 (incomplete) only when fewer than 14 bytes were there, and the header
 * rebuilt with gx_ws_header parses back to the same fields. gx_ws_mask_copy matches a byte-wise
 * reference, also in place. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "gx/proxy.h"

static void check_mask(const uint8_t *p, size_t n, const uint8_t key[4], size_t off) {
    static uint8_t a[70000], b[70000];
    if (n > sizeof(a))
        n = sizeof(a);
    gx_ws_mask_copy(a, p, n, key, off);
    memcpy(b, p, n);
    gx_ws_mask_copy(b, b, n, key, off);
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(a[i] == (uint8_t)(p[i] ^ key[(off + i) % 4]) && b[i] == a[i], "mask byte %zu (offset %zu)", i, off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz f = {data, size};
    size_t avail_cap = fz_u8(&f);
    uint8_t key[4];
    fz_fill(&f, key, 4);
    size_t koff = fz_u8(&f);
    check_mask(f.p, f.n, key, koff);
    const uint8_t *p = f.p;
    size_t left = f.n;
    for (int frames = 0; left > 0 && frames < 1000; frames++) {
        size_t avail = left < avail_cap ? left : avail_cap;
        struct gx_ws_frame fr, full;
        int rc = gx_ws_parse_header(p, avail, &fr);
        int rc_full = gx_ws_parse_header(p, left, &full);
        FZ_CHECK(rc == 0 || rc == -EPROTO || (rc >= 2 && rc <= GX_WS_HEADER_MAX && (size_t)rc <= avail),
                 "parse: %d with %zu bytes", rc, avail);
        if (rc == 0)
            FZ_CHECK(avail < GX_WS_HEADER_MAX, "incomplete with %zu bytes", avail);
        if (rc > 0)
            FZ_CHECK(rc_full == rc && full.payload_len == fr.payload_len && full.opcode == fr.opcode &&
                         memcmp(full.key, fr.key, 4) == 0,
                     "more bytes changed a complete parse");
        if (rc_full <= 0)
            break;
        FZ_CHECK(full.header_len == (uint32_t)rc_full && full.payload_len >> 63 == 0, "header_len/payload_len");
        uint8_t hdr[GX_WS_HEADER_MAX];
        int hl = gx_ws_header(hdr, full.opcode, full.fin, full.payload_len, full.masked ? full.key : NULL);
        FZ_CHECK(hl >= 2 && hl <= GX_WS_HEADER_MAX, "header: %d", hl);
        struct gx_ws_frame again;
        FZ_CHECK(gx_ws_parse_header(hdr, (size_t)hl, &again) == hl && again.opcode == full.opcode &&
                     again.fin == full.fin && again.masked == full.masked && again.payload_len == full.payload_len &&
                     again.rsv == 0 && memcmp(again.key, full.key, 4) == 0,
                 "header(parse) does not parse back");
        uint64_t skip = full.header_len + full.payload_len;
        if (skip >= left)
            break;
        if (full.masked)
            check_mask(p + full.header_len, (size_t)full.payload_len, full.key, 0);
        p += skip;
        left -= (size_t)skip;
    }
    return 0;
}
