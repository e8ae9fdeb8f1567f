/* Differential AES-GCM: every build of ours the CPU runs (csrc/crypto/gcm.c 512-bit, csrc/crypto/gcm_avx2.c 256-bit;
 * chosen with gx_gcm_set_impl as tests/c/test_gcm.c does) against OpenSSL's EVP, byte for byte.
 *
 * Input: byte 0: bit 0 key size (16/32), bit 1 one packet or a pair (seal2/open2); then the key(s)
 * (32 bytes each), the nonce (12), a tamper position (2) and xor byte (1), the first packet's length
 * (2, with the pair), then the plaintext(s) (the rest, up to 9000 bytes each). Checks: ciphertext and
 * tag equal EVP's (and the bytes behind the packet untouched), open gives the plaintext back, EVP opens
 * ours, and a tampered ciphertext or tag fails with the buffer left as it was. */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "fuzz.h"
#include "gx/crypto.h"

#define MAXLEN 9000
static int impls[4], n_impls;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const int want[] = {GX_GCM_VAES, GX_GCM_VAES_AVX2};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (gx_gcm_set_impl(want[i]) == want[i])
            impls[n_impls++] = want[i];
    fprintf(stderr, "gcm_diff: %d of our AES-GCM builds run on this CPU\n", n_impls);
    return 0;
}

static int evp(int enc, size_t kl, const uint8_t *key, const uint8_t *iv, uint8_t *buf, size_t n, uint8_t *tag) {
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int ol = 0, fl = 0, ok;
    ok = EVP_CipherInit_ex(x, kl == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(), NULL, key, iv, enc) == 1;
    if (ok && n > 0)
        ok = EVP_CipherUpdate(x, buf, &ol, buf, (int)n) == 1;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1;
    if (ok)
        ok = EVP_CipherFinal_ex(x, buf + ol, &fl) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(x);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t pt[2][MAXLEN + 64], ref[2][MAXLEN + 64], mine[2][MAXLEN + 64], keep[MAXLEN + 64];
    struct fz f = {data, size};
    uint8_t b0 = fz_u8(&f);
    size_t kl = b0 & 1 ? 32 : 16;
    int pair = (b0 >> 1) & 1;
    uint8_t key[2][32], iv[12], tag_ref[2][16], tag[2][16];
    fz_fill(&f, key[0], 32);
    if (pair)
        fz_fill(&f, key[1], 32);
    fz_fill(&f, iv, 12);
    uint16_t tpos = fz_u16(&f);
    uint8_t tx = fz_u8(&f);
    size_t len[2];
    if (pair) {
        size_t l0 = fz_u16(&f);
        len[0] = l0 < f.n ? l0 : f.n;
        len[1] = f.n - len[0];
    } else {
        len[0] = f.n;
        len[1] = 0;
    }
    for (int i = 0; i < 2; i++)
        if (len[i] > MAXLEN)
            len[i] = MAXLEN;
    memcpy(pt[0], f.p, len[0]);
    memcpy(pt[1], f.p + (f.n - len[1]), len[1]);
    for (int i = 0; i < 2; i++) {
        memset(pt[i] + len[i], 0xa5, 64);
        memcpy(ref[i], pt[i], len[i] + 64);
        FZ_CHECK(evp(1, kl, key[i], iv, ref[i], len[i], tag_ref[i]), "EVP seal");
    }
    for (int m = 0; m < n_impls; m++) {
        FZ_CHECK(gx_gcm_set_impl(impls[m]) == impls[m], "set impl %d", impls[m]);
        for (int i = 0; i < 2; i++)
            memcpy(mine[i], pt[i], len[i] + 64);
        if (pair) {
            const uint8_t *k2[2] = {key[0], key[1]};
            uint8_t *b2[2] = {mine[0], mine[1]}, *t2[2] = {tag[0], tag[1]};
            FZ_CHECK(gx_gcm_seal2(k2, kl, iv, b2, len, t2) == 0, "seal2");
        } else {
            FZ_CHECK(gx_gcm_seal(key[0], kl, iv, mine[0], len[0], tag[0]) == 0, "seal");
        }
        for (int i = 0; i <= pair; i++) {
            FZ_CHECK(memcmp(mine[i], ref[i], len[i] + 64) == 0, "impl %d kl %zu len %zu packet %d: ciphertext != EVP",
                     impls[m], kl, len[i], i);
            FZ_CHECK(memcmp(tag[i], tag_ref[i], 16) == 0, "impl %d kl %zu len %zu packet %d: tag != EVP", impls[m], kl,
                     len[i], i);
        }
        /* tamper packet 0: a ciphertext byte (when it has any, and tpos says so) or the tag */
        uint8_t x = tx ? tx : 1;
        int in_ct = len[0] > 0 && (tpos & 0x8000);
        memcpy(keep, mine[0], len[0] + 64);
        if (in_ct)
            mine[0][tpos % len[0]] ^= x;
        else
            tag[0][tpos % 16] ^= x;
        uint8_t tampered[MAXLEN + 64];
        memcpy(tampered, mine[0], len[0] + 64);
        if (pair) {
            const uint8_t *k2[2] = {key[0], key[1]}, *t2[2] = {tag[0], tag[1]};
            uint8_t *b2[2] = {mine[0], mine[1]};
            int rc = gx_gcm_open2(k2, kl, iv, b2, len, t2);
            FZ_CHECK(rc == 1, "open2 with packet 0 tampered: %d", rc);
            FZ_CHECK(memcmp(mine[1], pt[1], len[1] + 64) == 0, "open2: packet 1 plaintext");
        } else {
            FZ_CHECK(gx_gcm_open(key[0], kl, iv, mine[0], len[0], tag[0]) == -EBADMSG, "open of a tampered packet");
        }
        FZ_CHECK(memcmp(mine[0], tampered, len[0] + 64) == 0, "a forged packet's buffer changed");
        memcpy(mine[0], keep, len[0] + 64);
        if (!in_ct)
            tag[0][tpos % 16] ^= x;
        FZ_CHECK(gx_gcm_open(key[0], kl, iv, mine[0], len[0], tag[0]) == 0, "open");
        FZ_CHECK(memcmp(mine[0], pt[0], len[0] + 64) == 0, "open: plaintext back");
    }
    /* EVP opens what EVP sealed (sanity of the reference itself) */
    FZ_CHECK(evp(0, kl, key[0], iv, ref[0], len[0], tag_ref[0]) && memcmp(ref[0], pt[0], len[0]) == 0, "EVP open");
    return 0;
}
