/* WebSocket framing (gx/proxy.h): the helpers against the examples of RFC 6455 section 5.7, the mask at every
 * key offset and length against a bytewise reference; the encoder; the incremental reader fed every split
 * of multi-frame streams (1 byte at a time, every 2-way split, tiny output buffers, in place), a round
 * trip of random frames, and every protocol error with its close code. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gx/proxy.h"
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
    uint8_t src[1100], dst[1100], ref[1100]; /* past 128 bytes: the AVX2 rounds and their tails */
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


static void test_encode(void) {
    uint8_t buf[200];
    const uint8_t key[4] = {1, 2, 3, 4};
    CHECK(gx_ws_header_len(0, 0) == 2 && gx_ws_header_len(125, 0) == 2 && gx_ws_header_len(126, 0) == 4 &&
              gx_ws_header_len(65535, 1) == 8 && gx_ws_header_len(65536, 0) == 10 &&
              gx_ws_header_len(UINT64_MAX >> 1, 1) == 14,
          "header lengths");
    long n = gx_ws_encode(buf, sizeof buf, GX_WS_OP_TEXT, 1, (const uint8_t *)"Hello", 5, key);
    CHECK(n == 11 && buf[0] == 0x81 && buf[1] == 0x85 && memcmp(buf + 2, key, 4) == 0 &&
              (buf[6] ^ 1) == 'H' && (buf[10] ^ 1) == 'o',
          "masked text frame: %ld", n);
    CHECK(gx_ws_encode(buf, 10, GX_WS_OP_TEXT, 1, (const uint8_t *)"Hello", 5, key) == -ENOSPC, "no room");
    CHECK(gx_ws_encode(buf, 1, GX_WS_OP_BINARY, 1, NULL, 0, NULL) == -ENOSPC, "no room for a header");
    CHECK(gx_ws_encode(buf, sizeof buf, GX_WS_OP_BINARY, 1, NULL, 0, NULL) == 2, "empty frame");
    CHECK(gx_ws_encode(buf, sizeof buf, GX_WS_OP_PING, 0, NULL, 0, NULL) == -EINVAL, "fragmented ping");
    uint8_t big[126] = {0};
    CHECK(gx_ws_encode(buf, sizeof buf, GX_WS_OP_PONG, 1, big, 126, NULL) == -EINVAL, "126-byte pong");
    CHECK(gx_ws_encode(buf, sizeof buf, 0x10, 1, NULL, 0, NULL) == -EINVAL, "opcode 16");
    uint8_t cp[GX_WS_CONTROL_MAX];
    CHECK(gx_ws_close_payload(cp, 0, "x", 1) == 0, "close without a code");
    CHECK(gx_ws_close_payload(cp, 1000, "bye", 3) == 5 && cp[0] == 0x03 && cp[1] == 0xE8 && memcmp(cp + 2, "bye", 3) == 0,
          "close 1000 bye");
    char longr[300];
    memset(longr, 'r', sizeof longr);
    CHECK(gx_ws_close_payload(cp, 1001, longr, sizeof longr) == GX_WS_CONTROL_MAX, "long reason cut at 123");
}

/* What a reader made of a stream: the data bytes, and the events as text ("P:abc C:1000:bye E:1002"). */
struct outcome {
    uint8_t data[70000];
    size_t data_len;
    char events[512];
    size_t ev_len;
    int calls;
    int bad; /* contract violations seen while feeding */
};

static void note(struct outcome *o, const char *fmt, const uint8_t *p, size_t n, unsigned code) {
    char tmp[160];
    int k = snprintf(tmp, sizeof tmp, fmt, code);
    if (k < 0)
        return;
    size_t kk = (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1;
    for (size_t i = 0; i < n && kk + 1 < sizeof tmp; i++)
        tmp[kk++] = (char)p[i];
    if (o->ev_len + kk + 1 < sizeof o->events) {
        memcpy(o->events + o->ev_len, tmp, kk);
        o->ev_len += kk;
        o->events[o->ev_len++] = ' ';
        o->events[o->ev_len] = 0;
    }
}

/* Feed stream in pieces: cuts[] are the piece ends (ascending, last = len); out_cap bytes of output per
 * call; in_place: decode in a copy of the piece, out = in. */
static void feed(struct outcome *o, const uint8_t *s, size_t len, const size_t *cuts, size_t ncuts, int role,
                 uint64_t max_frame, size_t out_cap, int in_place) {
    memset(o, 0, sizeof *o);
    if (ncuts == 0 || cuts[ncuts - 1] != len)
        o->bad++;
    struct gx_ws_reader r;
    gx_ws_reader_init(&r, role, max_frame);
    size_t start = 0;
    int finished = 0;
    static uint8_t tmp[70000], piece[70000];
    for (size_t c = 0; c < ncuts && !finished; c++) {
        size_t end = cuts[c];
        memcpy(piece, s + start, end - start);
        size_t pos = 0, plen = end - start;
        for (int guard = 0; guard < 200000; guard++) {
            struct gx_ws_event ev;
            uint8_t *out = in_place ? piece + pos : tmp;
            size_t cap = in_place ? plen - pos : out_cap;
            long k = gx_ws_read(&r, piece + pos, plen - pos, out, cap, &ev);
            o->calls++;
            if (k < 0 || (size_t)k > plen - pos || ev.out_len > cap) {
                o->bad++;
                finished = 1;
                break;
            }
            if (o->data_len + ev.out_len <= sizeof o->data)
                memcpy(o->data + o->data_len, out, ev.out_len);
            o->data_len += ev.out_len;
            pos += (size_t)k;
            if (ev.type == GX_WS_EV_PING)
                note(o, "P:", ev.payload, ev.payload_len, 0);
            else if (ev.type == GX_WS_EV_CLOSE)
                note(o, "C:%u:", ev.payload, ev.payload_len, ev.code);
            else if (ev.type == GX_WS_EV_ERROR)
                note(o, "E:%u", NULL, 0, ev.code);
            if (ev.type == GX_WS_EV_CLOSE || ev.type == GX_WS_EV_ERROR) {
                struct gx_ws_event ev2;
                if (gx_ws_read(&r, piece, plen, tmp, out_cap, &ev2) != -EPIPE)
                    o->bad++;
                finished = 1;
                break;
            }
            if (ev.type == GX_WS_EV_NONE) {
                /* the contract: input used up, or out full */
                if (pos != plen && ev.out_len != cap)
                    o->bad++;
                if (pos == plen)
                    break;
                if (k == 0 && ev.out_len == 0) { /* no progress at all */
                    o->bad++;
                    break;
                }
            }
        }
        start = end;
    }
}

static int same(const struct outcome *a, const struct outcome *b) {
    return a->data_len == b->data_len && memcmp(a->data, b->data, a->data_len) == 0 && a->ev_len == b->ev_len &&
           memcmp(a->events, b->events, a->ev_len) == 0 && a->bad == 0 && b->bad == 0;
}

static size_t put(uint8_t *s, size_t at, uint8_t op, int fin, const void *p, size_t n, const uint8_t *key) {
    long k = gx_ws_encode(s + at, 100000, op, fin, p, n, key);
    return k > 0 ? at + (size_t)k : at;
}

static struct outcome whole, part;

/* The stream fed whole, then 1 byte at a time, then split in two at every point, with several output
 * sizes and in place: always the same data and events. */
static void check_splits(const char *name, const uint8_t *s, size_t len, int role, uint64_t max_frame,
                         const char *want_events, const uint8_t *want_data, size_t want_len) {
    size_t cut1[1] = {len};
    feed(&whole, s, len, cut1, 1, role, max_frame, 70000, 0);
    CHECK(whole.bad == 0 && strcmp(whole.events, want_events) == 0, "%s: events '%s' want '%s'", name,
          whole.events, want_events);
    CHECK(whole.data_len == want_len && (want_len == 0 || memcmp(whole.data, want_data, want_len) == 0), "%s: data (%zu bytes, want %zu)",
          name, whole.data_len, want_len);
    static size_t cuts[70000];
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    feed(&part, s, len, cuts, len, role, max_frame, 70000, 0);
    CHECK(same(&whole, &part), "%s: 1 byte at a time differs", name);
    feed(&part, s, len, cut1, 1, role, max_frame, 1, 0);
    CHECK(same(&whole, &part), "%s: 1-byte output differs", name);
    feed(&part, s, len, cut1, 1, role, max_frame, 3, 0);
    CHECK(same(&whole, &part), "%s: 3-byte output differs", name);
    feed(&part, s, len, cut1, 1, role, max_frame, 0, 1);
    CHECK(same(&whole, &part), "%s: in place differs", name);
    int bad = 0;
    for (size_t a = 0; a <= len; a++) {
        size_t two[2] = {a, len};
        feed(&part, s, len, two, 2, role, max_frame, 70000, 0);
        bad += !same(&whole, &part);
        feed(&part, s, len, two, 2, role, max_frame, 7, a & 1);
        bad += !same(&whole, &part);
    }
    CHECK(bad == 0, "%s: %d two-way splits differ", name, bad);
}

static void test_reader_streams(void) {
    static uint8_t s[70000];
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d}, key2[4] = {0, 0xff, 0x80, 0x01};
    /* RFC 5.7 fragmented text with a ping in between, a 300-byte binary (16-bit length), an empty frame,
     * a pong (dropped), a close 1000 "bye" */
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 13);
    uint8_t cp[GX_WS_CONTROL_MAX];
    size_t cpl = gx_ws_close_payload(cp, 1000, "bye", 3);
    static uint8_t want[1000];
    size_t wl = 0;
    for (int role = 0; role < 2; role++) {
        const uint8_t *k1 = role == GX_WS_ROLE_SERVER ? key : NULL, *k2 = role == GX_WS_ROLE_SERVER ? key2 : NULL;
        size_t n = 0;
        wl = 0;
        n = put(s, n, GX_WS_OP_TEXT, 0, "Hel", 3, k1);
        n = put(s, n, GX_WS_OP_PING, 1, "png", 3, k2);
        n = put(s, n, GX_WS_OP_CONT, 0, "", 0, k1);
        n = put(s, n, GX_WS_OP_CONT, 1, "lo", 2, k2);
        memcpy(want, "Hello", 5);
        wl = 5;
        n = put(s, n, GX_WS_OP_BINARY, 1, bin, sizeof bin, k1);
        memcpy(want + wl, bin, sizeof bin);
        wl += sizeof bin;
        n = put(s, n, GX_WS_OP_BINARY, 1, NULL, 0, k2);
        n = put(s, n, GX_WS_OP_PONG, 1, "x", 1, k1);
        n = put(s, n, GX_WS_OP_PING, 1, NULL, 0, k1);
        n = put(s, n, GX_WS_OP_BINARY, 1, "!", 1, k2);
        want[wl++] = '!';
        n = put(s, n, GX_WS_OP_CLOSE, 1, cp, cpl, k1);
        size_t before_trailer = n;
        n = put(s, n, GX_WS_OP_BINARY, 1, "after close", 11, k1); /* never read */
        check_splits(role ? "server stream" : "client stream", s, n, role, 0, "P:png P: C:1000:bye ", want, wl);
        (void)before_trailer;
    }
    /* non-minimal lengths (accepted): 5 bytes in a 16-bit and a 64-bit length field, unmasked to a client */
    static const uint8_t nonmin[] = {0x82, 126, 0, 5, 'a', 'b', 'c', 'd', 'e', 0x82, 127, 0, 0, 0, 0, 0, 0, 0, 2, 'f', 'g'};
    check_splits("non-minimal lengths", nonmin, sizeof nonmin, GX_WS_ROLE_CLIENT, 0, "", (const uint8_t *)"abcdefg", 7);
    /* a 65536-byte frame (64-bit length), masked, and the stats */
    static uint8_t big[65536];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i ^ (i >> 8));
    size_t n = put(s, 0, GX_WS_OP_BINARY, 1, big, sizeof big, key);
    n = put(s, n, GX_WS_OP_CLOSE, 1, NULL, 0, key);
    size_t cut1[1] = {n};
    feed(&whole, s, n, cut1, 1, GX_WS_ROLE_SERVER, 0, 4096, 0);
    CHECK(whole.bad == 0 && whole.data_len == sizeof big && memcmp(whole.data, big, sizeof big) == 0 &&
              strcmp(whole.events, "C:1005: ") == 0 && whole.calls == 16,
          "64 KiB frame in 4 KiB outputs: %zu bytes, '%s', %d calls", whole.data_len, whole.events, whole.calls);
    struct gx_ws_reader r;
    gx_ws_reader_init(&r, GX_WS_ROLE_SERVER, 0);
    struct gx_ws_event ev;
    static uint8_t outb[70000];
    long k = gx_ws_read(&r, s, n, outb, sizeof outb, &ev);
    CHECK(k == (long)n && ev.type == GX_WS_EV_CLOSE && r.stats.frames == 2 && r.stats.data_bytes == sizeof big,
          "stats: %ld frames %llu", k, (unsigned long long)r.stats.frames);
}

struct bad_case {
    const char *name;
    int role;
    uint64_t max_frame;
    uint8_t bytes[24];
    size_t len;
    unsigned code;
    size_t data; /* data bytes delivered before the error */
};

static void test_reader_errors(void) {
    static const struct bad_case cases[] = {
        {"RSV1", GX_WS_ROLE_CLIENT, 0, {0xC2, 0x00}, 2, 1002, 0},
        {"RSV3 after data", GX_WS_ROLE_CLIENT, 0, {0x82, 0x01, 'a', 0x92, 0x00}, 5, 1002, 1},
        {"opcode 3", GX_WS_ROLE_CLIENT, 0, {0x83, 0x00}, 2, 1002, 0},
        {"opcode 0xB", GX_WS_ROLE_CLIENT, 0, {0x8B, 0x00}, 2, 1002, 0},
        {"opcode 0xF", GX_WS_ROLE_CLIENT, 0, {0x8F, 0x00}, 2, 1002, 0},
        {"fragmented ping", GX_WS_ROLE_CLIENT, 0, {0x09, 0x00}, 2, 1002, 0},
        {"126-byte ping", GX_WS_ROLE_CLIENT, 0, {0x89, 126, 0, 126}, 4, 1002, 0},
        {"close with a 64-bit length", GX_WS_ROLE_CLIENT, 0, {0x88, 127, 0, 0, 0, 0, 0, 0, 0, 2}, 10, 1002, 0},
        {"unmasked to a server", GX_WS_ROLE_SERVER, 0, {0x82, 0x01, 'a'}, 3, 1002, 0},
        {"masked to a client", GX_WS_ROLE_CLIENT, 0, {0x82, 0x81, 1, 2, 3, 4, 'a'}, 7, 1002, 0},
        {"continuation first", GX_WS_ROLE_CLIENT, 0, {0x80, 0x01, 'a'}, 3, 1002, 0},
        {"continuation after a whole message", GX_WS_ROLE_CLIENT, 0, {0x82, 0x01, 'a', 0x00, 0x01, 'b'}, 6, 1002, 1},
        {"new message inside a fragmented one", GX_WS_ROLE_CLIENT, 0, {0x02, 0x01, 'a', 0x82, 0x01, 'b'}, 6, 1002, 1},
        {"64-bit length top bit", GX_WS_ROLE_CLIENT, 0, {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, 10, 1002, 0},
        {"frame over the cap", GX_WS_ROLE_CLIENT, 4, {0x82, 0x04, 'a', 'b', 'c', 'd', 0x82, 0x05}, 8, 1009, 4},
        {"16-bit frame over the cap", GX_WS_ROLE_CLIENT, 200, {0x82, 126, 0, 201}, 4, 1009, 0},
        {"close of 1 byte", GX_WS_ROLE_CLIENT, 0, {0x88, 0x01, 0x03}, 3, 1002, 0},
        {"close code 999", GX_WS_ROLE_CLIENT, 0, {0x88, 0x02, 0x03, 0xE7}, 4, 1002, 0},
        {"close code 1005", GX_WS_ROLE_CLIENT, 0, {0x88, 0x02, 0x03, 0xED}, 4, 1002, 0},
        {"close code 1006", GX_WS_ROLE_CLIENT, 0, {0x88, 0x02, 0x03, 0xEE}, 4, 1002, 0},
        {"close code 1015", GX_WS_ROLE_CLIENT, 0, {0x88, 0x02, 0x03, 0xF7}, 4, 1002, 0},
        {"close code 2999", GX_WS_ROLE_CLIENT, 0, {0x88, 0x02, 0x0B, 0xB7}, 4, 1002, 0},
        {"close code 5000", GX_WS_ROLE_CLIENT, 0, {0x88, 0x02, 0x13, 0x88}, 4, 1002, 0},
        {"close reason bad UTF-8", GX_WS_ROLE_CLIENT, 0, {0x88, 0x03, 0x03, 0xE8, 0xFF}, 5, 1007, 0},
        {"close reason overlong", GX_WS_ROLE_CLIENT, 0, {0x88, 0x04, 0x03, 0xE8, 0xC0, 0x80}, 6, 1007, 0},
        {"close reason surrogate", GX_WS_ROLE_CLIENT, 0, {0x88, 0x05, 0x03, 0xE8, 0xED, 0xA0, 0x80}, 7, 1007, 0},
        {"close reason cut", GX_WS_ROLE_CLIENT, 0, {0x88, 0x04, 0x03, 0xE8, 0xE2, 0x82}, 6, 1007, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct bad_case *b = &cases[c];
        char want[32];
        snprintf(want, sizeof want, "E:%u ", b->code);
        /* every split of the bad stream gives the same error, after the same data */
        static uint8_t wantd[8] = {'a', 'b', 'c', 'd'};
        check_splits(b->name, b->bytes, b->len, b->role, b->max_frame, want, wantd, b->data);
    }
    /* accepted edge cases: close codes 1000, 1014, 3000, 4999 with a UTF-8 reason; U+10FFFF */
    static const uint8_t ok[] = {0x88, 0x06, 0x13, 0x87, 0xF4, 0x8F, 0xBF, 0xBF};
    check_splits("close 4999 U+10FFFF", ok, sizeof ok, GX_WS_ROLE_CLIENT, 0, "C:4999:\xF4\x8F\xBF\xBF ", NULL, 0);
    static const uint8_t ok2[] = {0x88, 0x02, 0x03, 0xF6};
    check_splits("close 1014", ok2, sizeof ok2, GX_WS_ROLE_CLIENT, 0, "C:1014: ", NULL, 0);
    static const uint8_t bad3[] = {0x88, 0x04, 0x03, 0xE8, 0xF4, 0x90};
    check_splits("close reason above U+10FFFF", bad3, sizeof bad3, GX_WS_ROLE_CLIENT, 0, "E:1007 ", NULL, 0);
    /* the error's description is there for the log */
    struct gx_ws_reader r;
    gx_ws_reader_init(&r, GX_WS_ROLE_SERVER, 0);
    struct gx_ws_event ev;
    uint8_t o[4];
    static const uint8_t unm[] = {0x82, 0x00};
    CHECK(gx_ws_read(&r, unm, 2, o, sizeof o, &ev) == 2 && ev.type == GX_WS_EV_ERROR && ev.code == 1002 && ev.error &&
              strstr(ev.error, "unmasked"),
          "error text: %s", ev.error ? ev.error : "(null)");
    CHECK(gx_ws_read(&r, unm, 2, o, sizeof o, &ev) == -EPIPE, "finished reader");
    gx_ws_reader_init(&r, GX_WS_ROLE_CLIENT, 0);
    CHECK(gx_ws_read(&r, NULL, 0, NULL, 0, &ev) == 0 && ev.type == GX_WS_EV_NONE && ev.out_len == 0, "no input");
}

/* gx_ws_reader_payload_left and _mid_frame, the data frame count, and reading in place frame by frame
 * (out_cap capped at the payload left): unmasked payload stays where it lies in the input. */
static void test_reader_position(void) {
    struct gx_ws_reader r;
    struct gx_ws_event ev;
    gx_ws_reader_init(&r, GX_WS_ROLE_CLIENT, 0);
    CHECK(!gx_ws_reader_mid_frame(&r) && gx_ws_reader_payload_left(&r) == 0, "fresh reader");
    uint8_t b[] = {0x82, 5, 'a', 'b', 'c', 'd', 'e', 0x89, 1, 'p', 0x01, 3, 'x', 'y', 'z',
                   0x80, 0, 0x88, 3, 0x03, 0xE9, 'q'};
    long k = gx_ws_read(&r, b, 1, b, 0, &ev);
    CHECK(k == 1 && ev.type == GX_WS_EV_NONE && gx_ws_reader_mid_frame(&r) && gx_ws_reader_payload_left(&r) == 0,
          "1 header byte: inside a frame, no payload yet");
    k = gx_ws_read(&r, b + 1, sizeof b - 1, b + 1, 0, &ev);
    CHECK(k == 1 && ev.out_len == 0 && gx_ws_reader_mid_frame(&r) && gx_ws_reader_payload_left(&r) == 5,
          "whole header, out_cap 0: stops before the payload (%ld)", k);
    k = gx_ws_read(&r, b + 2, sizeof b - 2, b + 2, 5, &ev);
    CHECK(k == 8 && ev.type == GX_WS_EV_PING && ev.out_len == 5 && memcmp(b + 2, "abcde", 5) == 0 &&
              ev.payload_len == 1 && ev.payload[0] == 'p' && !gx_ws_reader_mid_frame(&r),
          "payload in place, then the ping (%ld)", k);
    k = gx_ws_read(&r, b + 10, sizeof b - 10, b + 10, gx_ws_reader_payload_left(&r), &ev);
    CHECK(k == 2 && ev.out_len == 0 && gx_ws_reader_payload_left(&r) == 3, "next header (%ld)", k);
    k = gx_ws_read(&r, b + 12, sizeof b - 12, b + 12, gx_ws_reader_payload_left(&r), &ev);
    CHECK(k == (long)sizeof b - 12 && ev.type == GX_WS_EV_CLOSE && ev.code == 1001 && ev.out_len == 3 &&
              memcmp(b + 12, "xyz", 3) == 0,
          "text in place, an empty continuation, the close (%ld)", k);
    CHECK(!gx_ws_reader_mid_frame(&r) && gx_ws_reader_payload_left(&r) == 0, "finished: not inside a frame");
    CHECK(r.stats.frames == 5 && r.stats.data_frames == 3 && r.stats.pings == 1, "frames %llu, data frames %llu",
          (unsigned long long)r.stats.frames, (unsigned long long)r.stats.data_frames);
    /* inside a control frame, inside a data payload (masked, to a server) */
    const uint8_t cut[] = {0x88, 2, 0x03};
    gx_ws_reader_init(&r, GX_WS_ROLE_CLIENT, 0);
    uint8_t o[8];
    CHECK(gx_ws_read(&r, cut, sizeof cut, o, sizeof o, &ev) == 3 && gx_ws_reader_mid_frame(&r) &&
              gx_ws_reader_payload_left(&r) == 0,
          "a partial close frame");
    const uint8_t part[] = {0x82, 0x84, 1, 2, 3, 4, 'a' ^ 1};
    gx_ws_reader_init(&r, GX_WS_ROLE_SERVER, 0);
    CHECK(gx_ws_read(&r, part, sizeof part, o, sizeof o, &ev) == 7 && ev.out_len == 1 && o[0] == 'a' &&
              gx_ws_reader_mid_frame(&r) && gx_ws_reader_payload_left(&r) == 3,
          "a partial data payload");
}

/* Random frames (data of random opcodes and fragmentation, pings, pongs) encoded, read back in random
 * pieces with random output sizes: the same bytes and pings come out. */
static void test_round_trip(void) {
    static uint8_t s[1 << 20], want[1 << 20], got[1 << 20], payload[70000];
    uint32_t seed = 12345;
#define RND() (seed = seed * 1103515245u + 12345u, (seed >> 8))
    int bad = 0;
    for (int round = 0; round < 40; round++) {
        int role = round & 1;
        size_t n = 0, wl = 0;
        int pings = 0;
        for (int f = 0; f < 30 && n < sizeof s - 80000; f++) {
            uint8_t key[4] = {(uint8_t)RND(), (uint8_t)RND(), (uint8_t)RND(), (uint8_t)RND()};
            const uint8_t *k = role == GX_WS_ROLE_SERVER ? key : NULL;
            uint32_t kind = RND() % 10;
            if (kind == 0) {
                n = put(s, n, GX_WS_OP_PING, 1, "pp", 2, k);
                pings++;
                continue;
            }
            if (kind == 1) {
                n = put(s, n, GX_WS_OP_PONG, 1, "q", 1, k);
                continue;
            }
            int frags = 1 + (int)(RND() % 3);
            for (int g = 0; g < frags; g++) {
                uint32_t sz = RND() % 4;
                size_t len = sz == 0 ? RND() % 126 : sz == 1 ? 126 + RND() % 1000 : sz == 2 ? RND() % 70000 : 0;
                for (size_t i = 0; i < len; i++)
                    payload[i] = (uint8_t)RND();
                uint8_t op = g ? GX_WS_OP_CONT : (RND() & 1) ? GX_WS_OP_BINARY : GX_WS_OP_TEXT;
                n = put(s, n, op, g == frags - 1, payload, len, k);
                memcpy(want + wl, payload, len);
                wl += len;
            }
        }
        struct gx_ws_reader r;
        gx_ws_reader_init(&r, role, 0);
        size_t pos = 0, gl = 0;
        int seen = 0, guard = 0;
        while (pos < n && guard++ < 1000000) {
            size_t piece = 1 + RND() % 20000;
            if (piece > n - pos)
                piece = n - pos;
            size_t cap = 1 + RND() % 9000;
            if (cap > sizeof got - gl)
                cap = sizeof got - gl;
            struct gx_ws_event ev;
            long k = gx_ws_read(&r, s + pos, piece, got + gl, cap, &ev);
            if (k < 0) {
                bad++;
                break;
            }
            pos += (size_t)k;
            gl += ev.out_len;
            if (ev.type == GX_WS_EV_PING)
                seen += ev.payload_len == 2 && memcmp(ev.payload, "pp", 2) == 0;
            else if (ev.type != GX_WS_EV_NONE)
                bad++;
        }
        bad += pos != n || gl != wl || memcmp(got, want, wl) != 0 || seen != pings;
    }
    CHECK(bad == 0, "%d round trips differ", bad);
#undef RND
}

int main(void) {
    test_rfc_examples();
    test_incomplete_and_bad();
    test_mask_offsets();
    test_encode();
    test_reader_streams();
    test_reader_errors();
    test_reader_position();
    test_round_trip();
    TEST_DONE();
}
