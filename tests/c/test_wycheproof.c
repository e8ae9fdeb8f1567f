/* The Wycheproof vectors (tests/vectors/wycheproof/, as lines made by wycheproof_to_txt.py) against every
 * crypto implementation of the engine on every code path this CPU runs:
 *   - AES-GCM through gx_aead_seal_raw/open_raw (the packets' code: ours or EVP) with each choice of
 *     gx_gcm_set_impl: OpenSSL, VAES 512-bit (AVX-512), VAES 256-bit (AVX2); ours also two packets at
 *     once (gx_gcm_seal2/open2). AES-192 and ChaCha20-Poly1305 always take EVP.
 *   - HKDF-SHA1 (gx_hkdf_key_init_ex + gx_hkdf_derive) with each gx_hkdf_set_impl: OpenSSL's block
 *     function, SHA-NI, the AVX-512 lanes (1, 2, 5 and 16 salts at once).
 * A path the CPU (or a GX_NO_SIMD build) cannot run is skipped with its reason printed.
 *
 * valid vectors must encrypt to the listed bytes and decrypt back; invalid ones must be refused. Every
 * valid vector is also opened with a forged tag (one bit flipped, in each tag byte in turn) and must be
 * refused with no plaintext left behind. Vectors our API cannot express are counted, never
 * silently dropped: sizes it does not take (IVs other than 96 bits, tags other than 128 bits, HKDF
 * outputs over 32 bytes, inputs over 32 bytes, info over 34 bytes) must be refused with -EINVAL; vectors
 * with additional data are skipped (the Shadowsocks packets have none and our API takes none). An empty
 * HKDF salt is the RFC 5869 default: HashLen (20) zero bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gx/crypto.h"
#include "gxtest.h"

#define MAX_FIELD 8192              /* bytes; the longest vector field is far below */
#define DEFAULT_FILE "tests/c/bin/wycheproof.txt"

struct vec {
    char kind[8], alg[24], result[16];
    int tcid;
    uint8_t *f[6];                  /* aead: key iv aad msg ct tag; hkdf: ikm salt info - okm - */
    size_t n[6];
    long size;                      /* hkdf output size */
};

static struct vec *vecs;
static int nvecs;

static size_t unhex_field(const char *h, uint8_t **out) {
    size_t len = strcmp(h, "-") == 0 ? 0 : strlen(h) / 2;
    *out = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        (*out)[i] = (uint8_t)v;
    }
    return len;
}

static int load(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    static char line[6 * 2 * MAX_FIELD + 256];
    int cap = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (nvecs == cap) {
            cap = cap ? 2 * cap : 256;
            vecs = realloc(vecs, (size_t)cap * sizeof(*vecs));
        }
        struct vec *v = &vecs[nvecs];
        memset(v, 0, sizeof(*v));
        char *tok[10];
        int nt = 0;
        for (char *p = strtok(line, " \n"); p != NULL && nt < 10; p = strtok(NULL, " \n"))
            tok[nt++] = p;
        if (nt < 9)
            continue;
        snprintf(v->kind, sizeof(v->kind), "%s", tok[0]);
        snprintf(v->alg, sizeof(v->alg), "%s", tok[1]);
        v->tcid = atoi(tok[2]);
        snprintf(v->result, sizeof(v->result), "%s", tok[3]);
        if (strcmp(v->kind, "aead") == 0 && nt == 10) {
            for (int i = 0; i < 6; i++)
                v->n[i] = unhex_field(tok[4 + i], &v->f[i]);
        } else if (strcmp(v->kind, "hkdf") == 0) {
            v->n[0] = unhex_field(tok[4], &v->f[0]);
            v->n[1] = unhex_field(tok[5], &v->f[1]);
            v->n[2] = unhex_field(tok[6], &v->f[2]);
            v->size = atol(tok[7]);
            v->n[4] = unhex_field(tok[8], &v->f[4]);
        } else {
            continue;
        }
        nvecs++;
    }
    fclose(f);
    return 0;
}

static int valid(const struct vec *v) {
    return strcmp(v->result, "valid") == 0;
}

/* ---- AEAD ------------------------------------------------------------------------------------ */

struct counts {
    int passed, refused_size, skipped_aad, forged_refused;
};

static int cipher_of(const struct vec *v) {
    if (strcmp(v->alg, "chacha20-poly1305") == 0)
        return v->n[0] == 32 ? GX_CIPHER_CHACHA20_POLY1305 : -1;
    return v->n[0] == 16 ? GX_CIPHER_AES_128_GCM : v->n[0] == 24 ? GX_CIPHER_AES_192_GCM
         : v->n[0] == 32 ? GX_CIPHER_AES_256_GCM : -1;
}

/* No plaintext left: buf (len bytes) is the ciphertext again or all zeros. */
static int no_plaintext(const uint8_t *buf, const uint8_t *ct, size_t len) {
    if (len == 0 || memcmp(buf, ct, len) == 0)
        return 1;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != 0)
            return 0;
    return 1;
}

static void aead_vector(const struct vec *v, const char *impl, struct counts *c) {
    const uint8_t *key = v->f[0], *iv = v->f[1], *msg = v->f[3], *ct = v->f[4], *tag = v->f[5];
    size_t klen = v->n[0], ivlen = v->n[1], len = v->n[3], tlen = v->n[5];
    int cipher = cipher_of(v);
    if (v->n[2] > 0) {              /* additional data: our API takes none */
        c->skipped_aad++;
        return;
    }
    uint8_t *buf = malloc(len + v->n[4] + 1), out_tag[GX_AEAD_TAG_LEN];
    CHECK(cipher > 0, "%s %s tc %d: key of %zu bytes", impl, v->alg, v->tcid, klen);
    if (cipher <= 0) {
        free(buf);
        return;
    }
    if (ivlen != GX_GCM_NONCE_LEN || tlen != GX_AEAD_TAG_LEN) {
        /* a size the packets never have: both directions refuse it, nothing is touched */
        memcpy(buf, msg, len);
        int rs = gx_aead_seal_raw(cipher, key, klen, iv, ivlen, buf, len, out_tag, tlen);
        int ro = gx_aead_open_raw(cipher, key, klen, iv, ivlen, buf, len, tag, tlen);
        CHECK(rs == -EINVAL && ro == -EINVAL && (len == 0 || memcmp(buf, msg, len) == 0),
              "%s %s tc %d: iv %zu / tag %zu bytes not refused (%d, %d)", impl, v->alg, v->tcid, ivlen, tlen, rs, ro);
        c->refused_size += rs == -EINVAL && ro == -EINVAL;
        free(buf);
        return;
    }
    if (valid(v)) {
        memcpy(buf, msg, len);
        int rs = gx_aead_seal_raw(cipher, key, klen, iv, ivlen, buf, len, out_tag, tlen);
        int ok = rs == 0 && memcmp(buf, ct, len) == 0 && memcmp(out_tag, tag, tlen) == 0;
        CHECK(ok, "%s %s tc %d: seal (rc %d)", impl, v->alg, v->tcid, rs);
        memcpy(buf, ct, len);
        int ro = gx_aead_open_raw(cipher, key, klen, iv, ivlen, buf, len, tag, tlen);
        CHECK(ro == 0 && memcmp(buf, msg, len) == 0, "%s %s tc %d: open (rc %d)", impl, v->alg, v->tcid, ro);
        c->passed += ok && ro == 0;
        /* forged: one bit of each tag byte flipped in turn */
        for (size_t b = 0; b < tlen; b++) {
            uint8_t bad[GX_AEAD_TAG_LEN];
            memcpy(bad, tag, tlen);
            bad[b] ^= (uint8_t)(1u << (b % 8));
            memcpy(buf, ct, len);
            int rf = gx_aead_open_raw(cipher, key, klen, iv, ivlen, buf, len, bad, tlen);
            CHECK(rf == -EBADMSG && no_plaintext(buf, ct, len), "%s %s tc %d: tag byte %zu flipped: rc %d",
                  impl, v->alg, v->tcid, b, rf);
            c->forged_refused += rf == -EBADMSG;
        }
        free(buf);
        return;
    }
    /* invalid (a modified tag or ciphertext): refused, no plaintext left */
    memcpy(buf, ct, len);
    int ro = gx_aead_open_raw(cipher, key, klen, iv, ivlen, buf, len, tag, tlen);
    CHECK(ro == -EBADMSG && no_plaintext(buf, ct, len), "%s %s tc %d: invalid vector opened (rc %d)", impl, v->alg,
          v->tcid, ro);
    c->passed += ro == -EBADMSG;
    free(buf);
}

/* Ours two packets at once: each valid vector with itself (the second copy once with a forged tag). */
static void gcm_pairs(const struct vec *v, const char *impl, int *done) {
    size_t klen = v->n[0], len = v->n[3];
    if (!valid(v) || v->n[2] > 0 || v->n[1] != GX_GCM_NONCE_LEN || v->n[5] != GX_GCM_TAG_LEN ||
        (klen != 16 && klen != 32))
        return;
    const uint8_t *keys[2] = {v->f[0], v->f[0]};
    uint8_t *b0 = malloc(len + 1), *b1 = malloc(len + 1), t0[16], t1[16];
    uint8_t *bufs[2] = {b0, b1}, *tags[2] = {t0, t1};
    size_t lens[2] = {len, len};
    memcpy(b0, v->f[3], len);
    memcpy(b1, v->f[3], len);
    int rs = gx_gcm_seal2(keys, klen, v->f[1], bufs, lens, tags);
    CHECK(rs == 0 && memcmp(b0, v->f[4], len) == 0 && memcmp(b1, v->f[4], len) == 0 && memcmp(t0, v->f[5], 16) == 0 &&
              memcmp(t1, v->f[5], 16) == 0,
          "%s seal2 tc %d (rc %d)", impl, v->tcid, rs);
    uint8_t bad[16];
    memcpy(bad, v->f[5], 16);
    bad[15] ^= 0x80;
    const uint8_t *ctags[2] = {v->f[5], bad};
    int ro = gx_gcm_open2(keys, klen, v->f[1], bufs, lens, ctags);
    CHECK(ro == 2 && memcmp(b0, v->f[3], len) == 0 && memcmp(b1, v->f[4], len) == 0,
          "%s open2 tc %d: mask %d (want 2: the second forged, left as ciphertext)", impl, v->tcid, ro);
    *done += rs == 0 && ro == 2;
    free(b0);
    free(b1);
}

static void test_aead(void) {
    static const struct {
        int impl;
        const char *name;
    } GCM[] = {{GX_GCM_OPENSSL, "openssl"}, {GX_GCM_VAES, "vaes-avx512"}, {GX_GCM_VAES_AVX2, "vaes-avx2"}};
    for (size_t m = 0; m < sizeof(GCM) / sizeof(GCM[0]); m++) {
        int rc = gx_gcm_set_impl(GCM[m].impl);
        if (rc != GCM[m].impl) {
#ifdef GX_NO_SIMD
            printf("skip: AES-GCM %s: built with GX_NO_SIMD (rc %d)\n", GCM[m].name, rc);
#else
            printf("skip: AES-GCM %s: this CPU cannot run it (rc %d)\n", GCM[m].name, rc);
#endif
            continue;
        }
        struct counts c = {0, 0, 0, 0};
        int total = 0, pairs = 0;
        for (int i = 0; i < nvecs; i++) {
            if (strcmp(vecs[i].kind, "aead") != 0 || strcmp(vecs[i].alg, "aes-gcm") != 0)
                continue;
            total++;
            aead_vector(&vecs[i], GCM[m].name, &c);
            if (GCM[m].impl != GX_GCM_OPENSSL)
                gcm_pairs(&vecs[i], GCM[m].name, &pairs);
        }
        printf("AES-GCM %s: %d vectors: %d passed, %d refused for their IV/tag size, %d skipped (additional "
               "data); %d forged tags refused (AES-192 takes EVP whatever the choice)\n",
               GCM[m].name, total, c.passed, c.refused_size, c.skipped_aad, c.forged_refused);
        if (GCM[m].impl != GX_GCM_OPENSSL)
            printf("AES-GCM %s: %d valid vectors passed two at a time (seal2/open2)\n", GCM[m].name, pairs);
        CHECK(c.passed + c.refused_size + c.skipped_aad == total, "AES-GCM %s: every vector accounted for",
              GCM[m].name);
    }
    gx_gcm_set_impl(GX_GCM_AUTO);
    struct counts c = {0, 0, 0, 0};
    int total = 0;
    for (int i = 0; i < nvecs; i++) {
        if (strcmp(vecs[i].kind, "aead") != 0 || strcmp(vecs[i].alg, "chacha20-poly1305") != 0)
            continue;
        total++;
        aead_vector(&vecs[i], "evp", &c);
    }
    printf("ChaCha20-Poly1305 (EVP, its only implementation): %d vectors: %d passed, %d refused for their "
           "nonce/tag size, %d skipped (additional data); %d forged tags refused\n",
           total, c.passed, c.refused_size, c.skipped_aad, c.forged_refused);
    CHECK(c.passed + c.refused_size + c.skipped_aad == total, "ChaCha20-Poly1305: every vector accounted for");
    CHECK(total > 300, "the vector file has the ChaCha20-Poly1305 vectors (%d)", total);
}

/* ---- HKDF-SHA1 ---------------------------------------------------------------------------------- */

static void test_hkdf(void) {
    static const struct {
        int impl;
        const char *name;
    } H[] = {{GX_HKDF_OPENSSL, "openssl"}, {GX_HKDF_SHANI, "sha-ni"}, {GX_HKDF_AVX512, "avx512"}};
    for (size_t m = 0; m < sizeof(H) / sizeof(H[0]); m++) {
        int rc = gx_hkdf_set_impl(H[m].impl);
        if (rc != H[m].impl) {
#ifdef GX_NO_SIMD
            printf("skip: HKDF-SHA1 %s: built with GX_NO_SIMD (rc %d)\n", H[m].name, rc);
#else
            printf("skip: HKDF-SHA1 %s: this CPU cannot run it (rc %d)\n", H[m].name, rc);
#endif
            continue;
        }
        int total = 0, passed = 0, refused = 0;
        static struct gx_hkdf_work w;
        for (int i = 0; i < nvecs; i++) {
            const struct vec *v = &vecs[i];
            if (strcmp(v->kind, "hkdf") != 0)
                continue;
            total++;
            static const uint8_t zero20[20];
            const uint8_t *salt = v->n[1] ? v->f[1] : zero20;   /* RFC 5869 2.2: no salt = HashLen zeros */
            size_t salt_len = v->n[1] ? v->n[1] : sizeof(zero20);
            struct gx_hkdf_key k;
            rc = gx_hkdf_key_init_ex(&k, v->f[0], v->n[0], salt_len, v->f[2], v->n[2],
                                     v->size > 0 && v->size < 1 << 20 ? (size_t)v->size : 0);
            if (rc != 0) {
                /* outside the sizes our HKDF takes (or an impossible output size): refused */
                CHECK(rc == -EINVAL, "hkdf %s tc %d: rc %d", H[m].name, v->tcid, rc);
                CHECK(!valid(v) || v->n[0] > GX_HKDF_MAX_KEY || salt_len > GX_HKDF_MAX_SALT ||
                          v->n[2] > GX_HKDF_MAX_INFO || v->size > GX_HKDF_MAX_KEY,
                      "hkdf %s tc %d: a vector of sizes we take was refused", H[m].name, v->tcid);
                refused++;
                continue;
            }
            CHECK(valid(v), "hkdf %s tc %d: an invalid vector was taken", H[m].name, v->tcid);
            gx_hkdf_work_init(&w);
            int ok = 1;
            static const int counts[] = {1, 2, 5, 16};
            for (size_t q = 0; q < sizeof(counts) / sizeof(counts[0]); q++) {
                int n = counts[q];
                const uint8_t *salts[GX_HKDF_LANES];
                uint8_t okm[GX_HKDF_LANES][GX_HKDF_MAX_KEY], *out[GX_HKDF_LANES];
                memset(okm, 0xee, sizeof(okm));
                for (int l = 0; l < n; l++) {
                    salts[l] = salt;
                    out[l] = okm[l];
                }
                gx_hkdf_derive(&k, &w, salts, out, n);
                for (int l = 0; l < n; l++)
                    ok &= memcmp(okm[l], v->f[4], (size_t)v->size) == 0 &&
                          (v->size == GX_HKDF_MAX_KEY || okm[l][v->size] == 0xee);   /* nothing written past */
            }
            CHECK(ok, "hkdf %s tc %d: okm", H[m].name, v->tcid);
            passed += ok;
            gx_hkdf_key_wipe(&k);
        }
        printf("HKDF-SHA1 %s: %d vectors: %d passed (1, 2, 5 and 16 salts at once), %d refused (sizes outside "
               "ours: input or salt over 32 bytes, info over %d, output over 32; or invalid)\n",
               H[m].name, total, passed, refused, GX_HKDF_MAX_INFO);
        CHECK(passed + refused == total && passed >= 20, "hkdf %s: every vector accounted for", H[m].name);
    }
    gx_hkdf_set_impl(GX_HKDF_AUTO);
}

/* ---- GX_CRYPTO=openssl forces OpenSSL for both (read once, any case): in a child process ------------ */

static void test_env_switch(void) {
    static const char *values[] = {"openssl", "OpenSSL", "OPENSSL"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        pid_t pid = fork();
        if (pid == 0) {
            setenv("GX_CRYPTO", values[i], 1);
            int bad = gx_gcm_impl() != GX_GCM_OPENSSL || gx_hkdf_impl() != GX_HKDF_OPENSSL;
            unsetenv("GX_CRYPTO");          /* read once: changing it later changes nothing */
            bad |= gx_gcm_set_impl(GX_GCM_AUTO) != GX_GCM_OPENSSL || gx_hkdf_set_impl(GX_HKDF_AUTO) != GX_HKDF_OPENSSL;
            _exit(bad);
        }
        int st = -1;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "GX_CRYPTO=%s: OpenSSL for AES-GCM and HKDF", values[i]);
    }
}

int main(int argc, char **argv) {
    /* first, before anything reads the environment (GX_CRYPTO is read once per process) */
    test_env_switch();
    const char *path = argc > 1 ? argv[1] : DEFAULT_FILE;
    if (load(path) != 0) {
        fprintf(stderr, "FAIL: cannot read %s (make tests/c/bin/wycheproof.txt writes it)\n", path);
        return 1;
    }
    CHECK(nvecs > 700, "%d vectors read from %s", nvecs, path);
    test_aead();
    test_hkdf();
    for (int i = 0; i < nvecs; i++)
        for (int j = 0; j < 6; j++)
            free(vecs[i].f[j]);
    free(vecs);
    TEST_DONE();
}
