/* GRO for TUN/TAP writes (csrc/tun/tun_gro.c): a batch of packets that came off the tunnel (any peer's bytes)
 * coalesced into GSO super-packets.
 *
 * Input: byte 0: bit 0 eth (TAP frames); then records (fuzz.h), one packet each (up to a slot's room).
 * Checks: gx_tun_gro_next and gx_tun_gro_next_iov describe the same writes; every non-empty packet is
 * covered exactly once, in order; a write of one packet carries it unchanged behind a plain header; a
 * super-packet splits back (gx_tun_gso_split_at, the read side) into as many segments as it covered, each
 * as long as its original with the same TCP payload. */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "fuzz.h"
#include "gx/tun.h"

static struct gx_batch batch, back;
static uint8_t out[GX_VNET_HDR_LEN + 14 + 65535 + 64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (gx_batch_init(&batch, GX_BATCH_MAX, GX_SLOT_SIZE, GX_HEADROOM) != 0 ||
        gx_batch_init(&back, GX_BATCH_MAX, GX_SLOT_SIZE, GX_HEADROOM) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz f = {data, size};
    int eth = fz_u8(&f) & 1;
    gx_batch_reset(&batch);
    size_t len;
    const uint8_t *rec;
    while (batch.n < batch.cap && (rec = fz_record(&f, &len)) != NULL) {
        if (len > gx_batch_room(&batch))
            len = gx_batch_room(&batch);
        memcpy(batch.pkt[batch.n].data, rec, len);
        batch.pkt[batch.n++].len = (uint32_t)len;
    }
    uint32_t i = 0, j = 0, total = 0, nonempty = 0;
    for (uint32_t k = 0; k < batch.n; k++)
        nonempty += batch.pkt[k].len > 0;
    for (int writes = 0;; writes++) {
        FZ_CHECK(writes <= GX_BATCH_MAX, "more writes than packets");
        uint8_t hdr[GX_GRO_HDR_MAX];
        struct iovec iov[1 + GX_BATCH_MAX];
        uint32_t cov_iov = 0, bytes = 0, cov = 0, start;
        int niov = gx_tun_gro_next_iov(&batch, eth, &j, hdr, iov, &cov_iov, &bytes);
        uint32_t n = gx_tun_gro_next(&batch, eth, &i, out, &cov);
        FZ_CHECK(i == j && cov == cov_iov && n == bytes, "copy and iov versions differ");
        if (niov == 0) {
            FZ_CHECK(n == 0, "no iov but %u bytes", n);
            break;
        }
        FZ_CHECK(niov >= 2 && niov <= 1 + GX_BATCH_MAX && cov >= 1, "niov %d covered %u", niov, cov);
        size_t off = 0;
        for (int k = 0; k < niov; k++) {
            FZ_CHECK(off + iov[k].iov_len <= n, "iov past the write");
            FZ_CHECK(memcmp(out + off, iov[k].iov_base, iov[k].iov_len) == 0, "iov %d differs from the copy", k);
            off += iov[k].iov_len;
        }
        FZ_CHECK(off == n, "iov bytes %zu != %u", off, n);
        /* the packets this write covered: the next cov non-empty ones from where the last write ended */
        start = total;
        total += cov;
        FZ_CHECK(total <= nonempty, "covered %u of %u packets", total, nonempty);
        const struct gx_pkt *orig[GX_BATCH_MAX];
        uint32_t m = 0, seen = 0;
        for (uint32_t k = 0; k < batch.n && m < cov; k++) {
            if (batch.pkt[k].len == 0)
                continue;
            if (seen++ >= start)
                orig[m++] = &batch.pkt[k];
        }
        struct gx_vnet_hdr h;
        gx_vnet_hdr_decode(out, &h);
        if (h.gso_type == GX_VNET_GSO_NONE) {
            FZ_CHECK(cov == 1 && n == GX_VNET_HDR_LEN + orig[0]->len &&
                         memcmp(out + GX_VNET_HDR_LEN, orig[0]->data, orig[0]->len) == 0,
                     "a single packet's write is not the packet");
            continue;
        }
        uint32_t l3off = eth ? 14 : 0;
        gx_batch_reset(&back);
        int rc = gx_tun_gso_split_at(out + GX_VNET_HDR_LEN, n - GX_VNET_HDR_LEN, &h, l3off, &back);
        FZ_CHECK(rc == (int)cov, "a super-packet of %u segments splits into %d (gso_type %u size %u hdr %u)", cov, rc,
                 h.gso_type, h.gso_size, h.hdr_len);
        for (uint32_t k = 0; k < cov; k++) {
            const uint8_t *ip = orig[k]->data + l3off;
            uint32_t hl = l3off + (ip[0] >> 4 == 6 ? 40u : 20u);
            hl += (uint32_t)(orig[k]->data[hl + 12] >> 4) * 4u;
            FZ_CHECK(back.pkt[k].len == orig[k]->len, "segment %u: %u bytes, the original %u", k, back.pkt[k].len,
                     orig[k]->len);
            FZ_CHECK(memcmp(back.pkt[k].data + hl, orig[k]->data + hl, orig[k]->len - hl) == 0,
                     "segment %u: payload differs", k);
        }
    }
    FZ_CHECK(total == nonempty, "covered %u of %u packets", total, nonempty);
    return 0;
}
