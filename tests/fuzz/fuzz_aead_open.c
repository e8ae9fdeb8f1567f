/* AEAD open (csrc/crypto/aead.c): gx_aead_open_one and gx_aead_open_batch on datagrams from a peer.
 *
 * Input: byte 0 picks the cipher (low 3 bits: aes-128/192/256-gcm, chacha20-poly1305, none) and the
 * mode (bits 3-4); the keys are the ones of the password "s3cret" (the test vectors' password, so the
 * vectors' datagrams in the corpus open).
 *   mode 0: the rest is one datagram, opened as it is (forged/short/authentic paths).
 *   mode 1: the rest is [salt][k][k x (pos16, xor8)][plaintext]: the plaintext is sealed under the salt,
 *           k (0..3) bytes are flipped, then opened: unmodified it must open to the plaintext (and a
 *           second open must be a replay), modified it must fail.
 *   mode 2/3: a batch: records (fuzz.h), each [flag][body]; flag bit 0: seal the body as in mode 1
 *           (flag bits 1-2: a byte flipped at the position of the next byte; bit 3: the same sealed
 *           datagram again as the next packet, a replay within the batch), else the body is a raw
 *           datagram. open_batch must give every sealed unmodified packet its plaintext, fail the
 *           modified ones, and count every packet it dropped.
 * The opener is made per input with a small replay filter (so runs are repeatable); the sealer is
 * another context with the same key (a context drops datagrams carrying salts it made itself). */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "gx/crypto.h"
#include "gx/base.h"

#define NCIPH 5
static const int CIPHERS[NCIPH] = {GX_CIPHER_AES_128_GCM, GX_CIPHER_AES_192_GCM, GX_CIPHER_AES_256_GCM,
                                   GX_CIPHER_CHACHA20_POLY1305, GX_CIPHER_NONE};
static struct gx_aead *sealer[NCIPH];
static uint8_t keys[NCIPH][GX_AEAD_MAX_KEY];
static struct gx_batch batch;

#define MAXPKT 1900   /* fits a batch slot (gx_batch_room: 2048 - 64 - 32) with salt + tag */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    for (int i = 0; i < NCIPH; i++) {
        if (CIPHERS[i] != GX_CIPHER_NONE &&
            gx_aead_derive_key(CIPHERS[i], (const uint8_t *)"s3cret", 6, keys[i]) != 0)
            abort();
        if (gx_aead_new_ex(&sealer[i], CIPHERS[i], CIPHERS[i] == GX_CIPHER_NONE ? NULL : keys[i], 0) != 0)
            abort();
    }
    if (gx_batch_init(&batch, 64, GX_SLOT_SIZE, GX_HEADROOM) != 0)
        abort();
    return 0;
}

struct sealed {
    uint8_t dg[MAXPKT + GX_AEAD_MAX_SALT + GX_AEAD_TAG_LEN];
    size_t dg_len;
    const uint8_t *pt;
    size_t pt_len;
};

/* Seal pt under salt into s (returns 0, or -1 when it does not fit). */
static int seal(int c, const uint8_t *salt, const uint8_t *pt, size_t len, struct sealed *s) {
    if (len > MAXPKT)
        len = MAXPKT;
    int n = gx_aead_seal_one(sealer[c], CIPHERS[c] == GX_CIPHER_NONE ? NULL : salt, pt, len, s->dg);
    FZ_CHECK(n >= 0 && (size_t)n == len + gx_aead_overhead(sealer[c]), "seal_one returned %d for %zu bytes", n, len);
    s->dg_len = (size_t)n;
    s->pt = pt;
    s->pt_len = len;
    return 0;
}

static void mode_one(struct gx_aead *op, int c, struct fz *f) {
    uint8_t salt[GX_AEAD_MAX_SALT], out[MAXPKT + 64];
    static struct sealed s;
    fz_fill(f, salt, sizeof(salt));
    int k = fz_u8(f) % 4;
    struct { uint16_t pos; uint8_t x; } mut[3];
    for (int i = 0; i < k; i++) {
        mut[i].pos = fz_u16(f);
        mut[i].x = fz_u8(f);
    }
    seal(c, salt, f->p, f->n, &s);
    uint8_t orig[sizeof(s.dg)];
    memcpy(orig, s.dg, s.dg_len);
    for (int i = 0; i < k && s.dg_len > 0; i++)
        s.dg[mut[i].pos % s.dg_len] ^= mut[i].x;
    int changed = memcmp(orig, s.dg, s.dg_len) != 0;
    int n = gx_aead_open_one(op, s.dg, s.dg_len, out);
    if (CIPHERS[c] == GX_CIPHER_NONE) {
        FZ_CHECK(n == (int)s.dg_len && memcmp(out, s.dg, s.dg_len) == 0, "none: open_one %d", n);
        return;
    }
    if (changed) {
        FZ_CHECK(n == -EBADMSG, "a modified datagram opened: %d", n);
        return;
    }
    FZ_CHECK(n == (int)s.pt_len && memcmp(out, s.pt, s.pt_len) == 0, "authentic datagram: open_one %d (want %zu)", n,
             s.pt_len);
    n = gx_aead_open_one(op, s.dg, s.dg_len, out);
    FZ_CHECK(n == -EALREADY, "the same datagram again: %d, not a replay", n);
}

enum { RAW = 0, GOOD, BAD, REPLAY };

static void mode_batch(struct gx_aead *op, int c, struct fz *f) {
    static struct sealed s[64];
    int expect[64];
    gx_batch_reset(&batch);
    uint32_t n = 0, nonempty = 0;
    size_t len;
    const uint8_t *rec;
    while (n < batch.cap && (rec = fz_record(f, &len)) != NULL) {
        struct fz r = {rec, len};
        uint8_t flag = fz_u8(&r);
        uint8_t *dst = batch.pkt[n].data;
        if (flag & 1) {
            uint8_t salt[GX_AEAD_MAX_SALT];
            fz_fill(&r, salt, sizeof(salt));
            uint16_t pos = fz_u16(&r);
            seal(c, salt, r.p, r.n, &s[n]);
            int bad = (flag >> 1) & 3;
            memcpy(dst, s[n].dg, s[n].dg_len);
            if (bad && s[n].dg_len > 0)
                dst[pos % s[n].dg_len] ^= (uint8_t)(1u << (flag >> 5));
            batch.pkt[n].len = (uint32_t)s[n].dg_len;
            expect[n] = memcmp(dst, s[n].dg, s[n].dg_len) ? BAD : GOOD;
            if ((flag & 8) && n + 1 < batch.cap) {   /* the same datagram again */
                n++;
                s[n] = s[n - 1];
                memcpy(batch.pkt[n].data, dst, s[n].dg_len);
                batch.pkt[n].len = (uint32_t)s[n].dg_len;
                expect[n] = expect[n - 1] == GOOD ? REPLAY : BAD;
            }
        } else {
            size_t k = r.n < MAXPKT ? r.n : MAXPKT;
            memcpy(dst, r.p, k);
            batch.pkt[n].len = (uint32_t)k;
            expect[n] = RAW;
        }
        n++;
    }
    batch.n = n;
    for (uint32_t i = 0; i < n; i++)
        nonempty += batch.pkt[i].len > 0;
    struct gx_aead_drops d = {0, 0, 0};
    int rc = gx_aead_open_batch(op, &batch, &d);
    FZ_CHECK(rc >= 0, "open_batch: %d", rc);
    if (CIPHERS[c] == GX_CIPHER_NONE) {
        FZ_CHECK((uint32_t)rc == nonempty, "none: %d of %u", rc, nonempty);
        return;
    }
    FZ_CHECK((uint64_t)rc + d.short_pkt + d.auth + d.replay == nonempty, "opened %d + dropped %llu != %u", rc,
             (unsigned long long)(d.short_pkt + d.auth + d.replay), nonempty);
    /* a salt that an earlier packet of the batch opened with makes an authentic packet a replay */
    size_t sl = gx_aead_salt_len(op);
    for (uint32_t i = 0; i < n; i++) {
        int opened = batch.pkt[i].data != gx_batch_slot(&batch, i) + batch.headroom;
        FZ_CHECK(opened || batch.pkt[i].len == 0, "packet %u: len %u but data not moved", i, batch.pkt[i].len);
        int dup = 0;
        for (uint32_t j = 0; j < i && !dup && expect[i] == GOOD; j++)
            dup = batch.pkt[j].data != gx_batch_slot(&batch, j) + batch.headroom &&
                  memcmp(batch.pkt[j].data - sl, s[i].dg, sl) == 0;
        if (expect[i] == GOOD && !dup)
            FZ_CHECK(opened && batch.pkt[i].len == s[i].pt_len && memcmp(batch.pkt[i].data, s[i].pt, s[i].pt_len) == 0,
                     "packet %u: authentic, opened to %u bytes (want %zu)", i, batch.pkt[i].len, s[i].pt_len);
        else if (expect[i] != RAW)
            FZ_CHECK(!opened, "packet %u (%s) not dropped", i,
                     expect[i] == BAD ? "modified" : "replay");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz f = {data, size};
    uint8_t b0 = fz_u8(&f);
    int c = (b0 & 7) % NCIPH;
    int mode = (b0 >> 3) & 3;
    struct gx_aead *op;
    if (gx_aead_new_ex(&op, CIPHERS[c], CIPHERS[c] == GX_CIPHER_NONE ? NULL : keys[c], 64) != 0)
        abort();
    if (mode == 0) {
        static uint8_t out[70000];
        int n = gx_aead_open_one(op, f.p, f.n, out);
        FZ_CHECK(n == -EBADMSG || n == -EMSGSIZE || (n >= 0 && (size_t)n + gx_aead_overhead(op) == f.n),
                 "open_one: %d for %zu bytes", n, f.n);
        if (n >= 0 && CIPHERS[c] != GX_CIPHER_NONE) {
            n = gx_aead_open_one(op, f.p, f.n, out);
            FZ_CHECK(n == -EALREADY, "replayed datagram: %d", n);
        }
    } else if (mode == 1) {
        mode_one(op, c, &f);
    } else {
        mode_batch(op, c, &f);
    }
    gx_aead_free(op);
    return 0;
}
