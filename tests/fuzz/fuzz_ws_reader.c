/* The incremental WebSocket reader (csrc/ws.c gx_ws_read) on a stream from a hostile peer.
 *
 * Input: byte 0: bit 0 the role (1 = server: frames must be masked), bit 1 decode in place, bit 2 in place
 * frame by frame (out_cap capped at gx_ws_reader_payload_left, as xstream reads); byte 1: the
 * input piece size (0 = the whole rest, else 1..255); byte 2: the output buffer size (0 = 64 KiB, else
 * 1..255); byte 3: max_frame (0 = no cap, else the value * 37); the rest: the stream.
 * The stream is read once whole into a large buffer and once in the pieces and output sizes the input
 * picks. Checks: every call keeps the contract (consumed <= offered, out_len <= the buffer, a NONE event
 * only when the input is used up or the output is full, some progress on every call), events are well
 * formed (ping payload <= 125, close codes a peer may send, errors carry 1002/1007/1009 and a text), both
 * readings give the same data bytes and the same events, a finished reader returns -EPIPE, and the data
 * re-framed with gx_ws_encode reads back to the same bytes. Frame by frame, unmasked payload stays where
 * it lies in the input; gx_ws_reader_payload_left > 0 only inside a frame (gx_ws_reader_mid_frame), both
 * 0 once finished. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "gx/proxy.h"

#define BIG (1u << 16)

struct result {
    uint8_t data[1u << 17];
    size_t data_len;
    uint8_t ev[4096]; /* event records: type, code (2), payload length, payload */
    size_t ev_len;
    int finished;
};

static struct result whole_r, split_r;
static uint8_t piece[BIG + 256], outbuf[BIG];

static void record_event(struct result *res, const struct gx_ws_event *ev) {
    FZ_CHECK(ev->payload_len <= GX_WS_CONTROL_MAX, "payload %zu", ev->payload_len);
    if (ev->type == GX_WS_EV_CLOSE)
        FZ_CHECK(ev->code == GX_WS_CLOSE_NO_STATUS || (ev->code >= 1000 && ev->code <= 1014 && ev->code != 1004 &&
                                                        ev->code != 1005 && ev->code != 1006) ||
                     (ev->code >= 3000 && ev->code <= 4999),
                 "close code %u", ev->code);
    if (ev->type == GX_WS_EV_ERROR)
        FZ_CHECK((ev->code == 1002 || ev->code == 1007 || ev->code == 1009) && ev->error, "error code %u", ev->code);
    if (res->ev_len + 4 + ev->payload_len > sizeof res->ev)
        return;
    res->ev[res->ev_len++] = (uint8_t)ev->type;
    res->ev[res->ev_len++] = (uint8_t)(ev->code >> 8);
    res->ev[res->ev_len++] = (uint8_t)ev->code;
    res->ev[res->ev_len++] = (uint8_t)ev->payload_len;
    if (ev->payload_len)
        memcpy(res->ev + res->ev_len, ev->payload, ev->payload_len);
    res->ev_len += ev->payload_len;
}

static void run(struct result *res, const uint8_t *s, size_t len, int role, uint64_t max_frame, size_t piece_sz,
                size_t out_cap, int in_place, int by_frame) {
    res->data_len = res->ev_len = 0;
    res->finished = 0;
    struct gx_ws_reader r;
    gx_ws_reader_init(&r, role, max_frame);
    size_t start = 0;
    while (start < len && !res->finished) {
        size_t plen = len - start < piece_sz ? len - start : piece_sz;
        memcpy(piece, s + start, plen);
        size_t pos = 0;
        while (pos < plen) {
            struct gx_ws_event ev;
            uint8_t *out = in_place || by_frame ? piece + pos : outbuf;
            size_t cap = in_place || by_frame ? plen - pos : out_cap;
            if (by_frame && gx_ws_reader_payload_left(&r) < cap)
                cap = (size_t)gx_ws_reader_payload_left(&r);
            long k = gx_ws_read(&r, piece + pos, plen - pos, out, cap, &ev);
            FZ_CHECK(k >= 0 && (size_t)k <= plen - pos && ev.out_len <= cap, "read %ld of %zu, out %zu of %zu", k,
                     plen - pos, ev.out_len, cap);
            FZ_CHECK(k > 0 || ev.out_len > 0 || ev.type != GX_WS_EV_NONE || plen == pos, "no progress");
            FZ_CHECK(res->data_len + ev.out_len <= sizeof res->data, "more data than input");
            FZ_CHECK(!gx_ws_reader_payload_left(&r) || gx_ws_reader_mid_frame(&r), "payload left between frames");
            if (by_frame && role == GX_WS_ROLE_CLIENT)
                FZ_CHECK(memcmp(out, s + start + pos, ev.out_len) == 0, "unmasked payload moved");
            memcpy(res->data + res->data_len, out, ev.out_len);
            res->data_len += ev.out_len;
            pos += (size_t)k;
            if (ev.type == GX_WS_EV_NONE) {
                FZ_CHECK(pos == plen || ev.out_len == cap, "stopped early: %zu of %zu, out %zu of %zu", pos, plen,
                         ev.out_len, cap);
                continue;
            }
            record_event(res, &ev);
            if (ev.type == GX_WS_EV_CLOSE || ev.type == GX_WS_EV_ERROR) {
                struct gx_ws_event ev2;
                FZ_CHECK(gx_ws_read(&r, piece, plen, outbuf, out_cap, &ev2) == -EPIPE, "finished reader read on");
                FZ_CHECK(!gx_ws_reader_mid_frame(&r) && !gx_ws_reader_payload_left(&r), "finished inside a frame");
                res->finished = 1;
                break;
            }
        }
        start += plen;
    }
    FZ_CHECK(r.stats.data_bytes == res->data_len && r.stats.data_frames + r.stats.pings + r.stats.pongs <= r.stats.frames,
             "stats %llu != %zu", (unsigned long long)r.stats.data_bytes, res->data_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz f = {data, size};
    uint8_t opts = fz_u8(&f), psz = fz_u8(&f), osz = fz_u8(&f), mf = fz_u8(&f);
    if (f.n > BIG)
        f.n = BIG;
    int role = opts & 1 ? GX_WS_ROLE_SERVER : GX_WS_ROLE_CLIENT;
    uint64_t max_frame = (uint64_t)mf * 37;
    run(&whole_r, f.p, f.n, role, max_frame, BIG, BIG, 0, 0);
    run(&split_r, f.p, f.n, role, max_frame, psz ? psz : BIG, osz ? osz : BIG, (opts >> 1) & 1, (opts >> 2) & 1);
    FZ_CHECK(whole_r.data_len == split_r.data_len && memcmp(whole_r.data, split_r.data, whole_r.data_len) == 0,
             "data differs: %zu vs %zu bytes", whole_r.data_len, split_r.data_len);
    FZ_CHECK(whole_r.ev_len == split_r.ev_len && memcmp(whole_r.ev, split_r.ev, whole_r.ev_len) == 0,
             "events differ");
    /* the data re-framed (as our encoder frames it, in up to 3 frames) reads back the same */
    if (whole_r.data_len <= BIG / 2) {
        static uint8_t framed[BIG + 64];
        static const uint8_t key[4] = {9, 8, 7, 6};
        const uint8_t *k = role == GX_WS_ROLE_SERVER ? key : NULL;
        size_t n = 0, a = whole_r.data_len / 3, b = whole_r.data_len - a;
        long w = gx_ws_encode(framed, sizeof framed, GX_WS_OP_BINARY, 0, whole_r.data, a, k);
        FZ_CHECK(w > 0, "encode %ld", w);
        n += (size_t)w;
        w = gx_ws_encode(framed + n, sizeof framed - n, GX_WS_OP_PING, 1, whole_r.data, a < 125 ? a : 125, k);
        FZ_CHECK(w > 0, "encode ping %ld", w);
        n += (size_t)w;
        w = gx_ws_encode(framed + n, sizeof framed - n, GX_WS_OP_CONT, 1, whole_r.data + a, b, k);
        FZ_CHECK(w > 0, "encode %ld", w);
        n += (size_t)w;
        run(&split_r, framed, n, role, 0, psz ? psz : BIG, osz ? osz : BIG, 0, (opts >> 2) & 1);
        FZ_CHECK(split_r.data_len == whole_r.data_len && memcmp(split_r.data, whole_r.data, whole_r.data_len) == 0 &&
                     !split_r.finished && split_r.ev_len == 4 + (a < 125 ? a : 125),
                 "re-framed data reads back differently");
    }
    return 0;
}
