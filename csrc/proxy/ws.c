/* WebSocket framing (gx/proxy.h): mask, headers, frame encoder, and the incremental reader. */
#include <errno.h>
#include <string.h>

#include <immintrin.h>

#include "gx/base.h"
#include "gx/proxy.h"

/* 128 bytes a round in AVX2 registers (the pattern kw repeats every 8 bytes, so every 32-byte lane
 * starts on it): about 3x the 64-bit loop on a buffer in cache, as a client masks every byte it sends.
 * Returns how many bytes it did (a multiple of 128). */
__attribute__((target("avx2"))) static size_t mask_avx2(uint8_t *dst, const uint8_t *src, size_t len, uint64_t kw) {
    const __m256i k = _mm256_set1_epi64x((long long)kw);
    size_t i = 0;
    for (; i + 128 <= len; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    return i;
}

static int avx2_probe(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

static int have_avx2(void) {
    static _Atomic int have = -1;
    return gx_probe_once(&have, avx2_probe);
}

void gx_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4], size_t offset) {
    uint8_t k[8];
    for (size_t i = 0; i < 8; i++)
        k[i] = key[(offset + i) & 3];
    size_t i = 0;
    /* The key repeats every 4 bytes, so k[0..7] lines up with every 8-byte word starting at a multiple
     * of 8 (memcpy: no alignment assumptions). */
    uint64_t kw;
    memcpy(&kw, k, 8);
    if (len >= 128 && have_avx2())
        i = mask_avx2(dst, src, len, kw);
    for (; i + 32 <= len; i += 32) {
        uint64_t w[4];
        memcpy(w, src + i, 32);
        w[0] ^= kw;
        w[1] ^= kw;
        w[2] ^= kw;
        w[3] ^= kw;
        memcpy(dst + i, w, 32);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= kw;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ k[i & 7];
}

int gx_ws_header(uint8_t out[GX_WS_HEADER_MAX], uint8_t opcode, int fin, uint64_t payload_len,
                 const uint8_t *key) {
    if (opcode > 0xF)
        return -EINVAL;
    int n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0x00) | opcode);
    uint8_t mask_bit = key ? 0x80 : 0x00;
    if (payload_len < 126) {
        out[n++] = (uint8_t)(mask_bit | payload_len);
    } else if (payload_len <= 0xFFFF) {
        out[n++] = (uint8_t)(mask_bit | 126);
        out[n++] = (uint8_t)(payload_len >> 8);
        out[n++] = (uint8_t)payload_len;
    } else {
        out[n++] = (uint8_t)(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)(payload_len >> shift);
    }
    if (key) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    return n;
}

int gx_ws_parse_header(const uint8_t *buf, size_t avail, struct gx_ws_frame *f) {
    if (avail < 2)
        return 0;
    f->fin = (buf[0] >> 7) & 1;
    f->rsv = (buf[0] >> 4) & 7;
    f->opcode = buf[0] & 0x0F;
    f->masked = (buf[1] >> 7) & 1;
    uint64_t len = buf[1] & 0x7F;
    size_t need = 2;
    if (len == 126) {
        need += 2;
        if (avail < need)
            return 0;
        len = ((uint64_t)buf[2] << 8) | buf[3];
    } else if (len == 127) {
        need += 8;
        if (avail < need)
            return 0;
        if (buf[2] & 0x80)
            return -EPROTO;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | buf[2 + i];
    }
    if (f->masked) {
        if (avail < need + 4)
            return 0;
        memcpy(f->key, buf + need, 4);
        need += 4;
    } else {
        memset(f->key, 0, 4);
    }
    f->payload_len = len;
    f->header_len = (uint32_t)need;
    return (int)need;
}

size_t gx_ws_header_len(uint64_t payload_len, int masked) {
    size_t n = payload_len < 126 ? 2 : payload_len <= 0xFFFF ? 4 : 10;
    return n + (masked ? 4 : 0);
}

long gx_ws_encode(uint8_t *out, size_t cap, uint8_t opcode, int fin, const uint8_t *payload, size_t len,
                  const uint8_t *key) {
    if (opcode > 0xF || ((opcode & 0x8) && (!fin || len > GX_WS_CONTROL_MAX)))
        return -EINVAL;
    size_t hl = gx_ws_header_len(len, key != NULL);
    if (cap < hl || cap - hl < len)
        return -ENOSPC;
    uint8_t h[GX_WS_HEADER_MAX];
    int n = gx_ws_header(h, opcode, fin, len, key);
    if (n < 0 || (size_t)n != hl)
        return -EINVAL;
    memcpy(out, h, hl);
    if (len) {
        if (key)
            gx_ws_mask_copy(out + hl, payload, len, key, 0);
        else
            memcpy(out + hl, payload, len);
    }
    return (long)(hl + len);
}

size_t gx_ws_close_payload(uint8_t out[GX_WS_CONTROL_MAX], uint16_t code, const char *reason, size_t reason_len) {
    if (code == 0)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (!reason)
        reason_len = 0;
    if (reason_len > GX_WS_CONTROL_MAX - 2)
        reason_len = GX_WS_CONTROL_MAX - 2;
    if (reason_len)
        memcpy(out + 2, reason, reason_len);
    return 2 + reason_len;
}

/* ---- reader ---------------------------------------------------------------------------------------- */

enum { ST_HEADER, ST_DATA, ST_CONTROL, ST_DONE };

void gx_ws_reader_init(struct gx_ws_reader *r, int role, uint64_t max_frame) {
    memset(r, 0, sizeof *r);
    r->role = role == GX_WS_ROLE_SERVER ? GX_WS_ROLE_SERVER : GX_WS_ROLE_CLIENT;
    r->max_frame = max_frame ? max_frame : (UINT64_MAX >> 1);
    r->state = ST_HEADER;
}

/* Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t more;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < more)
            return 0;
        for (size_t k = 1; k <= more; k++) {
            uint8_t b = s[i + k];
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
                return 0;
        }
        i += more + 1;
    }
    return 1;
}

/* Status codes a peer may put in a close frame (RFC 6455 7.4.1/7.4.2 and the IANA registry). */
static int close_code_ok(unsigned code) {
    if (code >= 3000 && code <= 4999)
        return 1;
    return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

static long fail(struct gx_ws_reader *r, struct gx_ws_event *ev, size_t consumed, uint16_t code, const char *why) {
    r->state = ST_DONE;
    ev->type = GX_WS_EV_ERROR;
    ev->code = code;
    ev->error = why;
    return (long)consumed;
}

/* The checks that need only the first two header bytes. NULL when fine. */
static const char *check_start(const struct gx_ws_reader *r, uint8_t b0, uint8_t b1) {
    uint8_t op = b0 & 0x0F;
    if (b0 & 0x70)
        return "RSV bits set";
    if ((op >= 0x3 && op <= 0x7) || op >= 0xB)
        return "reserved opcode";
    if (op & 0x8) {
        if (!(b0 & 0x80))
            return "fragmented control frame";
        if ((b1 & 0x7F) > GX_WS_CONTROL_MAX)
            return "control frame over 125 bytes";
    } else if (op == GX_WS_OP_CONT && !r->in_message) {
        return "continuation without a message";
    } else if (op != GX_WS_OP_CONT && r->in_message) {
        return "new data frame inside a fragmented message";
    }
    int masked = (b1 & 0x80) != 0;
    if (r->role == GX_WS_ROLE_SERVER && !masked)
        return "unmasked frame from a client";
    if (r->role == GX_WS_ROLE_CLIENT && masked)
        return "masked frame from a server";
    return NULL;
}

/* The header bytes needed in total, knowing the first two. */
static size_t header_need(const uint8_t *h) {
    size_t n = 2;
    uint8_t l = h[1] & 0x7F;
    if (l == 126)
        n += 2;
    else if (l == 127)
        n += 8;
    if (h[1] & 0x80)
        n += 4;
    return n;
}

/* A whole control frame is in r->ctl: fill *ev, or 0 when there is nothing to report (pong). */
static int control_done(struct gx_ws_reader *r, struct gx_ws_event *ev) {
    r->stats.frames++;
    r->state = ST_HEADER;
    switch (r->frame.opcode) {
    case GX_WS_OP_PING:
        r->stats.pings++;
        ev->type = GX_WS_EV_PING;
        ev->payload = r->ctl;
        ev->payload_len = r->ctl_len;
        return 1;
    case GX_WS_OP_PONG:
        r->stats.pongs++;
        return 0;
    default: /* close */
        r->state = ST_DONE;
        if (r->ctl_len == 1) {
            ev->type = GX_WS_EV_ERROR;
            ev->code = GX_WS_CLOSE_PROTOCOL;
            ev->error = "close frame of 1 byte";
            return 1;
        }
        if (r->ctl_len == 0) {
            ev->type = GX_WS_EV_CLOSE;
            ev->code = GX_WS_CLOSE_NO_STATUS;
            return 1;
        }
        unsigned code = ((unsigned)r->ctl[0] << 8) | r->ctl[1];
        if (!close_code_ok(code)) {
            ev->type = GX_WS_EV_ERROR;
            ev->code = GX_WS_CLOSE_PROTOCOL;
            ev->error = "close code that may not be sent";
            return 1;
        }
        if (!utf8_ok(r->ctl + 2, r->ctl_len - 2u)) {
            ev->type = GX_WS_EV_ERROR;
            ev->code = GX_WS_CLOSE_BAD_DATA;
            ev->error = "close reason not UTF-8";
            return 1;
        }
        ev->type = GX_WS_EV_CLOSE;
        ev->code = (uint16_t)code;
        ev->payload = r->ctl + 2;
        ev->payload_len = r->ctl_len - 2u;
        return 1;
    }
}

long gx_ws_read(struct gx_ws_reader *r, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
                struct gx_ws_event *ev) {
    memset(ev, 0, sizeof *ev);
    if (r->state == ST_DONE)
        return -EPIPE;
    if (in_len == 0) /* nothing can move (in may be NULL) */
        return 0;
    size_t i = 0, o = 0;
    for (;;) {
        if (r->state == ST_HEADER) {
            /* Gather the header: first 2 bytes (checked at once), then the rest they announce. */
            size_t need = r->hdr_len < 2 ? 2 : header_need(r->hdr);
            size_t take = need - r->hdr_len;
            if (take > in_len - i)
                take = in_len - i;
            if (take)
                memcpy(r->hdr + r->hdr_len, in + i, take);
            r->hdr_len = (uint8_t)(r->hdr_len + take);
            i += take;
            if (r->hdr_len < need)
                break; /* input used up */
            if (need == 2) {
                const char *why = check_start(r, r->hdr[0], r->hdr[1]);
                if (why) {
                    ev->out_len = o;
                    return fail(r, ev, i, GX_WS_CLOSE_PROTOCOL, why);
                }
                if (header_need(r->hdr) > 2)
                    continue; /* the extended length / key follow */
            }
            struct gx_ws_frame *f = &r->frame;
            int rc = gx_ws_parse_header(r->hdr, r->hdr_len, f);
            r->hdr_len = 0;
            if (rc < 0) {
                ev->out_len = o;
                return fail(r, ev, i, GX_WS_CLOSE_PROTOCOL, "64-bit length with the top bit set");
            }
            r->remaining = f->payload_len;
            r->key_off = 0;
            if (f->opcode & 0x8) {
                r->ctl_len = 0;
                r->state = ST_CONTROL;
            } else {
                if (f->payload_len > r->max_frame) {
                    ev->out_len = o;
                    return fail(r, ev, i, GX_WS_CLOSE_TOO_BIG, "data frame over the size cap");
                }
                r->in_message = !f->fin;
                r->state = ST_DATA;
            }
        }
        if (r->state == ST_DATA) {
            size_t n = in_len - i;
            if (n > out_cap - o)
                n = out_cap - o;
            if ((uint64_t)n > r->remaining)
                n = (size_t)r->remaining;
            if (n) {
                if (r->frame.masked)
                    gx_ws_mask_copy(out + o, in + i, n, r->frame.key, (size_t)(r->key_off & 3));
                else if (out + o != in + i) /* in place and not moved down: nothing to copy */
                    memmove(out + o, in + i, n);
                o += n;
                i += n;
                r->remaining -= n;
                r->key_off += n;
                r->stats.data_bytes += n;
            }
            if (r->remaining == 0) {
                r->stats.frames++;
                r->stats.data_frames++;
                r->state = ST_HEADER;
                continue;
            }
            break; /* input used up or out full */
        }
        if (r->state == ST_CONTROL) {
            size_t n = in_len - i;
            if ((uint64_t)n > r->remaining)
                n = (size_t)r->remaining;
            if (n) {
                /* remaining <= 125 - ctl_len: the header check capped the length at 125 */
                if (r->frame.masked)
                    gx_ws_mask_copy(r->ctl + r->ctl_len, in + i, n, r->frame.key, r->ctl_len);
                else
                    memcpy(r->ctl + r->ctl_len, in + i, n);
                r->ctl_len = (uint8_t)(r->ctl_len + n);
                i += n;
                r->remaining -= n;
            }
            if (r->remaining)
                break; /* input used up */
            if (control_done(r, ev)) {
                ev->out_len = o;
                return (long)i;
            }
            continue;
        }
    }
    ev->type = GX_WS_EV_NONE;
    ev->out_len = o;
    return (long)i;
}

uint64_t gx_ws_reader_payload_left(const struct gx_ws_reader *r) { return r->state == ST_DATA ? r->remaining : 0; }

int gx_ws_reader_mid_frame(const struct gx_ws_reader *r) {
    return r->state == ST_DATA || r->state == ST_CONTROL || (r->state == ST_HEADER && r->hdr_len > 0);
}
