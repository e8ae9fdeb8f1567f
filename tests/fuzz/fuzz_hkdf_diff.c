/* Differential HKDF-SHA1 (csrc/crypto/hkdf.c, csrc/crypto/sha1_shani.c): every SHA-1 block implementation the CPU runs
 * (OpenSSL's SHA1_Transform, SHA-NI, AVX-512 lanes) against OpenSSL's EVP_KDF "HKDF" with SHA1, for
 * random keys, salts, lengths and lane counts.
 *
 * Input: byte 0: key length (1..32), byte 1: salt length (1..32), byte 2: salts (1..16); then the key,
 * then the salts (zeros past the end of the input). */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "fuzz.h"
#include "gx/crypto.h"

static int impls[3], n_impls;
static EVP_KDF *kdf;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const int want[] = {GX_HKDF_OPENSSL, GX_HKDF_SHANI, GX_HKDF_AVX512};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (gx_hkdf_set_impl(want[i]) == want[i])
            impls[n_impls++] = want[i];
    fprintf(stderr, "hkdf_diff: %d SHA-1 block implementations run on this CPU\n", n_impls);
    kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    if (kdf == NULL)
        abort();
    return 0;
}

static void ref_hkdf(const uint8_t *key, size_t kl, const uint8_t *salt, size_t sl, uint8_t *out) {
    EVP_KDF_CTX *c = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM p[5] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, kl),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, sl),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)"ss-subkey", 9),
        OSSL_PARAM_construct_end(),
    };
    FZ_CHECK(c != NULL && EVP_KDF_derive(c, out, kl, p) == 1, "EVP_KDF_derive");
    EVP_KDF_CTX_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz f = {data, size};
    size_t kl = fz_u8(&f) % 32 + 1, sl = fz_u8(&f) % 32 + 1;
    int n = fz_u8(&f) % GX_HKDF_LANES + 1;
    uint8_t key[32], salt[GX_HKDF_LANES][32], ref[GX_HKDF_LANES][32], got[GX_HKDF_LANES][32 + 8];
    fz_fill(&f, key, kl);
    for (int i = 0; i < n; i++) {
        fz_fill(&f, salt[i], sl);
        ref_hkdf(key, kl, salt[i], sl, ref[i]);
    }
    static struct gx_hkdf_key k;
    static struct gx_hkdf_work w;
    FZ_CHECK(gx_hkdf_key_init(&k, key, kl, sl) == 0, "key_init %zu %zu", kl, sl);
    gx_hkdf_work_init(&w);
    const uint8_t *sp[GX_HKDF_LANES];
    uint8_t *op[GX_HKDF_LANES];
    for (int i = 0; i < n; i++) {
        sp[i] = salt[i];
        op[i] = got[i];
    }
    for (int m = 0; m < n_impls; m++) {
        FZ_CHECK(gx_hkdf_set_impl(impls[m]) == impls[m], "set impl");
        memset(got, 0xa5, sizeof(got));
        gx_hkdf_derive(&k, &w, sp, op, n);
        for (int i = 0; i < n; i++) {
            FZ_CHECK(memcmp(got[i], ref[i], kl) == 0, "impl %d key %zu salt %zu lanes %d: lane %d != EVP", impls[m], kl,
                     sl, n, i);
            for (size_t j = kl; j < sizeof(got[i]); j++)
                FZ_CHECK(got[i][j] == 0xa5, "impl %d: lane %d wrote past %zu bytes", impls[m], i, kl);
        }
    }
    return 0;
}
