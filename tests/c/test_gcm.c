/* Tests of the one-packet AES-GCM (csrc/crypto/gcm.c).
 *
 * Known answers: the AES-128 and AES-256 test cases of McGrew and Viega's GCM specification (the
 * ones without additional data), then a cross-check against OpenSSL's EVP AES-GCM for random keys,
 * nonces and every length from 0 to 600 bytes plus random lengths up to 9000 (every tail shape of
 * the 64-byte units and of the 16-block GHASH chunks), and tampering of every byte.
 */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "gx/crypto.h"
#include "gxtest.h"

static const struct {
    const char *key, *iv, *pt, *ct, *tag;
} KNOWN[] = {
    {"00000000000000000000000000000000", "000000000000000000000000", "", "", "58e2fccefa7e3061367f1d57a4e7455a"},
    {"00000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000",
     "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"},
    {"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "",
     "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
};

static void test_known_answers(void) {
    for (size_t v = 0; v < sizeof(KNOWN) / sizeof(KNOWN[0]); v++) {
        uint8_t key[32], iv[12], pt[64], ct[64], tag[16], buf[64], got[16];
        size_t kl = gxt_unhex(KNOWN[v].key, key);
        gxt_unhex(KNOWN[v].iv, iv);
        size_t n = gxt_unhex(KNOWN[v].pt, pt);
        gxt_unhex(KNOWN[v].ct, ct);
        gxt_unhex(KNOWN[v].tag, tag);
        memcpy(buf, pt, n);
        CHECK(gx_gcm_seal(key, kl, iv, buf, n, got) == 0, "case %zu: seal", v);
        CHECK(memcmp(buf, ct, n) == 0, "case %zu: ciphertext", v);
        CHECK(memcmp(got, tag, 16) == 0, "case %zu: tag", v);
        CHECK(gx_gcm_open(key, kl, iv, buf, n, tag) == 0 && memcmp(buf, pt, n) == 0, "case %zu: open", v);
    }
}

static void evp_seal(size_t kl, const uint8_t *key, const uint8_t *iv, uint8_t *buf, size_t n, uint8_t *tag) {
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int ol = 0, fl = 0;
    CHECK(EVP_EncryptInit_ex(x, kl == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(), NULL, key, iv) == 1, "evp init");
    if (n > 0)
        CHECK(EVP_EncryptUpdate(x, buf, &ol, buf, (int)n) == 1, "evp update");
    CHECK(EVP_EncryptFinal_ex(x, buf + ol, &fl) == 1, "evp final");
    CHECK(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1, "evp tag");
    EVP_CIPHER_CTX_free(x);
}

#define MAXLEN 9000

static void one_against_openssl(size_t kl, size_t n) {
    static uint8_t pt[MAXLEN + 64], mine[MAXLEN + 64], ref[MAXLEN + 64];
    uint8_t key[32], iv[12], tag_mine[16], tag_ref[16];
    RAND_bytes(key, sizeof(key));
    RAND_bytes(iv, sizeof(iv));
    RAND_bytes(pt, (int)(n + 64));
    memcpy(mine, pt, n + 64);         /* the 64 bytes after the packet must stay as they are */
    memcpy(ref, pt, n + 64);
    evp_seal(kl, key, iv, ref, n, tag_ref);
    CHECK(gx_gcm_seal(key, kl, iv, mine, n, tag_mine) == 0, "seal kl=%zu n=%zu", kl, n);
    CHECK(memcmp(mine, ref, n + 64) == 0, "ciphertext kl=%zu n=%zu", kl, n);
    CHECK(memcmp(tag_mine, tag_ref, 16) == 0, "tag kl=%zu n=%zu", kl, n);
    CHECK(gx_gcm_open(key, kl, iv, mine, n, tag_mine) == 0, "open kl=%zu n=%zu", kl, n);
    CHECK(memcmp(mine, pt, n + 64) == 0, "plaintext back kl=%zu n=%zu", kl, n);
}

static void test_against_openssl(void) {
    int before = gxt_failed;
    for (size_t kl = 16; kl <= 32; kl += 16) {
        for (size_t n = 0; n <= 600 && gxt_failed == before; n++)
            one_against_openssl(kl, n);
        for (int i = 0; i < 300 && gxt_failed == before; i++) {
            uint16_t r;
            RAND_bytes((uint8_t *)&r, sizeof(r));
            one_against_openssl(kl, r % (MAXLEN + 1));
        }
    }
}

/* Two packets at once (gx_gcm_seal2/open2) equal two single calls: lengths of both drawn at random
 * (also unequal, so one runs out of chunks before the other), against EVP; a tampered packet of the
 * pair fails alone and is left as it was, the other opens. */
static void test_pairs(void) {
    static uint8_t pt[2][MAXLEN + 64], mine[2][MAXLEN + 64], ref[2][MAXLEN + 64];
    int before = gxt_failed;
    for (int round = 0; round < 400 && gxt_failed == before; round++) {
        size_t kl = round % 2 ? 32 : 16, len[2];
        uint8_t key[2][32], iv[12], tag_ref[2][16], tag[2][16];
        RAND_bytes(&key[0][0], sizeof(key));
        RAND_bytes(iv, sizeof(iv));
        for (int i = 0; i < 2; i++) {
            uint16_t r;
            RAND_bytes((uint8_t *)&r, sizeof(r));
            len[i] = round < 100 ? (size_t)(r % 700) : r % (MAXLEN + 1);
            RAND_bytes(pt[i], (int)(len[i] + 64));
            memcpy(mine[i], pt[i], len[i] + 64);
            memcpy(ref[i], pt[i], len[i] + 64);
            evp_seal(kl, key[i], iv, ref[i], len[i], tag_ref[i]);
        }
        const uint8_t *k2[2] = {key[0], key[1]};
        uint8_t *b2[2] = {mine[0], mine[1]}, *t2[2] = {tag[0], tag[1]};
        CHECK(gx_gcm_seal2(k2, kl, iv, b2, len, t2) == 0, "seal2");
        for (int i = 0; i < 2; i++)
            CHECK(memcmp(mine[i], ref[i], len[i] + 64) == 0 && memcmp(tag[i], tag_ref[i], 16) == 0,
                  "seal2 packet %d = EVP (kl %zu, lengths %zu %zu)", i, kl, len[0], len[1]);
        int bad = round % 3;              /* 0: none tampered, 1: the first, 2: the second */
        if (bad)
            tag[bad - 1][round % 16] ^= 0x40;
        const uint8_t *ct2[2] = {tag[0], tag[1]};
        int rc = gx_gcm_open2(k2, kl, iv, b2, len, ct2);
        CHECK(rc == (bad ? 1 << (bad - 1) : 0), "open2 mask %d, tampered %d", rc, bad);
        for (int i = 0; i < 2; i++) {
            const uint8_t *want = bad == i + 1 ? ref[i] : pt[i];
            CHECK(memcmp(mine[i], want, len[i] + 64) == 0, "open2 packet %d: %s", i,
                  bad == i + 1 ? "left as it was" : "plaintext back");
        }
    }
    uint8_t key[16] = {0}, iv[12] = {0}, tag[16];
    const uint8_t *k2[2] = {key, key};
    uint8_t *b2[2] = {NULL, NULL}, *t2[2] = {tag, tag};
    size_t len[2] = {0, 0};
    CHECK(gx_gcm_seal2(k2, 16, iv, b2, len, t2) == 0, "seal2 of two empty packets");
    CHECK(gx_gcm_seal2(k2, 24, iv, b2, len, t2) == -EINVAL, "seal2: AES-192 is not done here");
}

static void test_tamper(void) {
    uint8_t key[16], iv[12], pt[300], buf[300], tag[16];
    RAND_bytes(key, sizeof(key));
    RAND_bytes(iv, sizeof(iv));
    RAND_bytes(pt, sizeof(pt));
    memcpy(buf, pt, sizeof(pt));
    CHECK(gx_gcm_seal(key, 16, iv, buf, sizeof(buf), tag) == 0, "seal");
    uint8_t ct[300];
    memcpy(ct, buf, sizeof(ct));
    int caught = 0, intact = 1;
    for (size_t i = 0; i < sizeof(buf) + sizeof(tag); i++) {
        uint8_t *p = i < sizeof(buf) ? &buf[i] : &tag[i - sizeof(buf)];
        *p ^= 0x01;
        caught += gx_gcm_open(key, 16, iv, buf, sizeof(buf), tag) == -EBADMSG;
        *p ^= 0x01;
        intact &= memcmp(buf, ct, sizeof(ct)) == 0;     /* a failed open leaves the bytes alone */
    }
    CHECK(caught == (int)(sizeof(buf) + sizeof(tag)), "every flipped bit caught (%d)", caught);
    CHECK(intact, "failed opens do not touch the buffer");
    iv[0] ^= 1;
    CHECK(gx_gcm_open(key, 16, iv, buf, sizeof(buf), tag) == -EBADMSG, "wrong nonce");
    iv[0] ^= 1;
    key[15] ^= 1;
    CHECK(gx_gcm_open(key, 16, iv, buf, sizeof(buf), tag) == -EBADMSG, "wrong key");
    key[15] ^= 1;
    CHECK(gx_gcm_open(key, 16, iv, buf, sizeof(buf), tag) == 0 && memcmp(buf, pt, sizeof(pt)) == 0, "right key");
    CHECK(gx_gcm_seal(key, 24, iv, buf, sizeof(buf), tag) == -EINVAL, "AES-192 is not done here");
}

int main(void) {
    CHECK(gx_gcm_set_impl(99) == -EINVAL, "unknown impl");
    CHECK(gx_gcm_set_impl(GX_GCM_OPENSSL) == GX_GCM_OPENSSL && gx_gcm_impl() == GX_GCM_OPENSSL, "openssl");
    /* every one of ours the CPU runs: the 512-bit build and the 256-bit one */
    const struct {
        int impl;
        const char *name;
    } own[] = {{GX_GCM_VAES, "VAES, 512-bit (AVX-512)"}, {GX_GCM_VAES_AVX2, "VAES, 256-bit (AVX2)"}};
    int ran = 0;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        if (gx_gcm_set_impl(own[i].impl) != own[i].impl) {
            printf("note: this CPU cannot run %s: not tested here\n", own[i].name);
            continue;
        }
        printf("testing %s\n", own[i].name);
        CHECK(gx_gcm_impl() == own[i].impl, "%s chosen", own[i].name);
        test_known_answers();
        test_against_openssl();
        test_tamper();
        test_pairs();
        ran++;
    }
    if (ran == 0) {
        uint8_t key[16] = {0}, iv[12] = {0}, tag[16];
        gx_gcm_set_impl(GX_GCM_OPENSSL);
        CHECK(gx_gcm_seal(key, 16, iv, NULL, 0, tag) == -EINVAL, "no VAES: refused");
        printf("note: no VAES/VPCLMULQDQ on this CPU; only the refusal is tested\n");
    }
    TEST_DONE();
}
