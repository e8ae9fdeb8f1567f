/* WebSocket framing helpers (gx/ws.h) against the examples of RFC 6455 section 5.7, plus the mask at every
 * key offset and length against a bytewise reference. */
#include <errno.h>
#include <string.h>

#include "gx/ws.h"
#include "gxtest.h"

static void test_rfc_examples(void) {
    /* "A single-frame unmasked text message": 0x81 0x05 "Hello" */
    uint8_t h[GX_WS_HEADER_MAX];
    int n = gx_ws_header(h, GX_WS_OP_TEXT, 1, 5, NULL);
    CHECK(n == 2 && h[0] == 0x81 && h[1] == 0x05, "unmasked text header: n=%d %02x %02x", n, h[0], h[1]);

    /* "A single-frame masked text message": 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58 */
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    n = gx_ws_header(h, GX_WS_OP_TEXT, 1, 5, key);
    CHECK(n == 6 && memcmp(h, masked, 6) == 0, "masked text header");
    uint8_t payload[5];
    gx_ws_mask_copy(payload, (const uint8_t *)"Hello", 5, key, 0);
    CHECK(memcmp(payload, masked + 6, 5) == 0, "masked payload");

    struct gx_ws_frame f;
    CHECK(gx_ws_parse_header(masked, sizeof masked, &f) == 6, "parse masked");
    CHECK(f.fin == 1 && f.opcode == GX_WS_OP_TEXT && f.masked && f.payload_len == 5, "masked fields");
    CHECK(memcmp(f.key, key, 4) == 0, "masked key");
    uint8_t plain[5];
    gx_ws_mask_copy(plain, masked + 6, 5, f.key, 0);
    CHECK(memcmp(plain, "Hello", 5) == 0, "unmask");

    /* "Unmasked Ping request": 0x89 0x05 "Hello" */
    static const uint8_t ping[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
    CHECK(gx_ws_parse_header(ping, sizeof ping, &f) == 2 && f.opcode == GX_WS_OP_PING && !f.masked,
          "ping");
    /* "A fragmented unmasked text message": 0x01 0x03 "Hel", then 0x80 0x02 "lo" */
    static const uint8_t frag1[] = {0x01, 0x03, 'H', 'e', 'l'}, frag2[] = {0x80, 0x02, 'l', 'o'};
    CHECK(gx_ws_parse_header(frag1, sizeof frag1, &f) == 2 && !f.fin && f.opcode == GX_WS_OP_TEXT, "frag1");
    CHECK(gx_ws_parse_header(frag2, sizeof frag2, &f) == 2 && f.fin && f.opcode == GX_WS_OP_CONT, "frag2");

    /* "256 bytes binary message in a single unmasked frame": 0x82 0x7E 0x0100 */
    n = gx_ws_header(h, GX_WS_OP_BINARY, 1, 256, NULL);
    CHECK(n == 4 && h[0] == 0x82 && h[1] == 0x7E && h[2] == 0x01 && h[3] == 0x00, "256-byte header");
    CHECK(gx_ws_parse_header(h, 4, &f) == 4 && f.payload_len == 256, "parse 256");
    /* "64KiB binary message in a single unmasked frame": 0x82 0x7F 0x0000000000010000 */
    n = gx_ws_header(h, GX_WS_OP_BINARY, 1, 65536, NULL);
    static const uint8_t h64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(n == 10 && memcmp(h, h64, 10) == 0, "64KiB header");
    CHECK(gx_ws_parse_header(h, 10, &f) == 10 && f.payload_len == 65536, "parse 64KiB");
    CHECK(gx_ws_header(h, GX_WS_OP_BINARY, 1, 65535, NULL) == 4 && h[2] == 0xFF && h[3] == 0xFF, "65535");
    CHECK(gx_ws_header(h, 16, 1, 1, NULL) == -EINVAL, "bad opcode");
}

static void test_incomplete_and_bad(void) {
    struct gx_ws_frame f;
    static const uint8_t one[] = {0x82};
    CHECK(gx_ws_parse_header(one, 1, &f) == 0, "1 byte");
    static const uint8_t short16[] = {0x82, 0x7E, 0x01};
    CHECK(gx_ws_parse_header(short16, 3, &f) == 0, "short 16-bit length");
    static const uint8_t short64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 1};
    CHECK(gx_ws_parse_header(short64, 9, &f) == 0, "short 64-bit length");
    static const uint8_t shortkey[] = {0x82, 0x81, 1, 2, 3};
    CHECK(gx_ws_parse_header(shortkey, 5, &f) == 0, "short key");
    static const uint8_t top[] = {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1};
    CHECK(gx_ws_parse_header(top, 10, &f) == -EPROTO, "64-bit length with the top bit set");
    static const uint8_t rsv[] = {0xF2, 0x00};
    CHECK(gx_ws_parse_header(rsv, 2, &f) == 2 && f.rsv == 7, "rsv bits reported");
}

static void test_mask_offsets(void) {
    uint8_t src[300], dst[300], ref[300];
    const uint8_t key[4] = {0xA1, 0x5C, 0x00, 0xFF};
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    int bad = 0;
    for (size_t offset = 0; offset < 8; offset++) {
        for (size_t len = 0; len <= sizeof src; len += (len < 40 ? 1 : 37)) {
            for (size_t i = 0; i < len; i++)
                ref[i] = src[i] ^ key[(offset + i) & 3];
            memset(dst, 0, sizeof dst);
            gx_ws_mask_copy(dst, src, len, key, offset);
            bad += memcmp(dst, ref, len) != 0;
        }
    }
    CHECK(bad == 0, "%d mask mismatches", bad);
    memcpy(dst, src, sizeof src); /* in place */
    gx_ws_mask_copy(dst, dst, sizeof dst, key, 1);
    gx_ws_mask_copy(dst, dst, sizeof dst, key, 1);
    CHECK(memcmp(dst, src, sizeof src) == 0, "in-place mask twice is the identity");
}

int main(void) {
    test_rfc_examples();
    test_incomplete_and_bad();
    test_mask_offsets();
    TEST_DONE();
}
