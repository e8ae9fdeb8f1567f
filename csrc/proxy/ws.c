/* WebSocket framing helpers (gx/ws.h). */
#include <errno.h>
#include <string.h>

#include "gx/ws.h"

void gx_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4], size_t offset) {
    uint8_t k[8];
    for (size_t i = 0; i < 8; i++)
        k[i] = key[(offset + i) & 3];
    size_t i = 0;
    /* The key repeats every 4 bytes, so k[0..7] lines up with every 8-byte word starting at a multiple
     * of 8 (memcpy: no alignment assumptions). */
    uint64_t kw;
    memcpy(&kw, k, 8);
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
