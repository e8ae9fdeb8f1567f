/* HKDF-SHA1 for Shadowsocks-AEAD subkeys, up to GX_HKDF_LANES salts at a time (see gx/crypto.h).
 *
 * With AVX-512 sixteen derivations run at once, one per vector lane, all eight (or ten) SHA-1
 * compressions of each chained in registers (derive16). Below four lanes one block after the other
 * (OpenSSL's SHA1_Transform) is as fast, so fewer salts take the block path. The blocks' words stay in
 * registers from the salt to the subkey: gathering them from memory between the steps cost most of
 * the time (the figures: bench/README.md, "Figures behind design choices").
 */
#define OPENSSL_SUPPRESS_DEPRECATED     /* SHA1_Transform, the fallback block function */

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "gx/base.h"
#include "gx/crypto.h"
#include "sha1_shani.h"

#if GX_SIMD
#define GX_HAVE_AVX512 1
#include <immintrin.h>
#else
#define GX_HAVE_AVX512 0
#endif

static const uint32_t SHA1_IV[5] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u, 0xc3d2e1f0u};
static const uint32_t K4[4] = {0x5a827999u, 0x6ed9eba1u, 0x8f1bbcdcu, 0xca62c1d6u};   /* K of rounds 0, 20, 40, 60 */
static const char INFO[] = "ss-subkey";
#define INFO_LEN 9

/* ---- SHA-1 block operations --------------------------------------------------------------------- */

static void blocks_openssl(const struct gx_sha1_job *j, int n) {
    SHA_CTX c;
    for (int i = 0; i < n; i++) {
        memset(&c, 0, sizeof(c));
        c.h0 = j[i].h[0];
        c.h1 = j[i].h[1];
        c.h2 = j[i].h[2];
        c.h3 = j[i].h[3];
        c.h4 = j[i].h[4];
        SHA1_Transform(&c, j[i].blk);
        j[i].h[0] = c.h0;
        j[i].h[1] = c.h1;
        j[i].h[2] = c.h2;
        j[i].h[3] = c.h3;
        j[i].h[4] = c.h4;
    }
    OPENSSL_cleanse(&c, sizeof(c));
}

#if GX_HAVE_AVX512
#define AVX512_TARGET __attribute__((target("avx512f,avx512bw")))
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ---- sixteen derivations at once, in registers ----------------------------------------------------
 * One derivation per 32-bit lane of the zmm registers. Every block the derivation hashes is known word
 * by word: the salt (xor a pad) or an earlier digest in the first words, constants after them. So the
 * message words are built straight from the lanes' state vectors (a digest's words are the next
 * block's words, no bytes in between) and the chain of eight (or ten) compressions never leaves the
 * registers; the salts go in and the subkeys come out through one small transpose each. The two
 * blocks that are equal in every lane (key || pad, "ss-subkey" 1 || pad) have their whole message
 * schedule, K added, precomputed per key (gx_hkdf_key_init). SHA-1 rounds per FIPS 180-4 6.1.2 with
 * vector adds, rotates and ternary logic for f (0xca = Ch, 0x96 = parity, 0xe8 = Maj). */

/* st += compression of (st, w[0..15]); w is used as the schedule's ring buffer. */
AVX512_TARGET __attribute__((noinline)) static void compress_msg(__m512i st[5], __m512i w[16]) {
    __m512i a = st[0], b = st[1], c = st[2], d = st[3], e = st[4];
#define ROUND_MSG(t, F)                                                                                \
    do {                                                                                               \
        __m512i wt = w[(t) & 15];                                                                      \
        if ((t) >= 16) {                                                                               \
            wt = _mm512_ternarylogic_epi32(w[((t) - 3) & 15], w[((t) - 8) & 15], w[((t) - 14) & 15], 0x96); \
            wt = _mm512_rol_epi32(_mm512_xor_si512(wt, w[(t) & 15]), 1);                               \
            w[(t) & 15] = wt;                                                                          \
        }                                                                                              \
        __m512i f = _mm512_ternarylogic_epi32(b, c, d, F);                                             \
        __m512i sum = _mm512_add_epi32(_mm512_add_epi32(_mm512_rol_epi32(a, 5), f),                    \
                                       _mm512_add_epi32(_mm512_add_epi32(e, _mm512_set1_epi32((int)K4[(t) / 20])), wt)); \
        e = d;                                                                                         \
        d = c;                                                                                         \
        c = _mm512_rol_epi32(b, 30);                                                                   \
        b = a;                                                                                         \
        a = sum;                                                                                       \
    } while (0)
    _Pragma("GCC unroll 20") for (int t = 0; t < 20; t++) ROUND_MSG(t, 0xca);
    _Pragma("GCC unroll 20") for (int t = 20; t < 40; t++) ROUND_MSG(t, 0x96);
    _Pragma("GCC unroll 20") for (int t = 40; t < 60; t++) ROUND_MSG(t, 0xe8);
    _Pragma("GCC unroll 20") for (int t = 60; t < 80; t++) ROUND_MSG(t, 0x96);
#undef ROUND_MSG
    st[0] = _mm512_add_epi32(st[0], a);
    st[1] = _mm512_add_epi32(st[1], b);
    st[2] = _mm512_add_epi32(st[2], c);
    st[3] = _mm512_add_epi32(st[3], d);
    st[4] = _mm512_add_epi32(st[4], e);
}

/* st += compression of (st, the block whose W[t] + K[t] are wk[t] in every lane). */
AVX512_TARGET __attribute__((noinline)) static void compress_sched(__m512i st[5], const uint32_t wk[80]) {
    __m512i a = st[0], b = st[1], c = st[2], d = st[3], e = st[4];
#define ROUND_WK(t, F)                                                                                 \
    do {                                                                                               \
        __m512i f = _mm512_ternarylogic_epi32(b, c, d, F);                                             \
        __m512i sum = _mm512_add_epi32(_mm512_add_epi32(_mm512_rol_epi32(a, 5), f),                    \
                                       _mm512_add_epi32(e, _mm512_set1_epi32((int)wk[t])));            \
        e = d;                                                                                         \
        d = c;                                                                                         \
        c = _mm512_rol_epi32(b, 30);                                                                   \
        b = a;                                                                                         \
        a = sum;                                                                                       \
    } while (0)
    _Pragma("GCC unroll 20") for (int t = 0; t < 20; t++) ROUND_WK(t, 0xca);
    _Pragma("GCC unroll 20") for (int t = 20; t < 40; t++) ROUND_WK(t, 0x96);
    _Pragma("GCC unroll 20") for (int t = 40; t < 60; t++) ROUND_WK(t, 0xe8);
    _Pragma("GCC unroll 20") for (int t = 60; t < 80; t++) ROUND_WK(t, 0x96);
#undef ROUND_WK
    st[0] = _mm512_add_epi32(st[0], a);
    st[1] = _mm512_add_epi32(st[1], b);
    st[2] = _mm512_add_epi32(st[2], c);
    st[3] = _mm512_add_epi32(st[3], d);
    st[4] = _mm512_add_epi32(st[4], e);
}

AVX512_TARGET static ALWAYS_INLINE void set_iv(__m512i st[5]) {
    for (int i = 0; i < 5; i++)
        st[i] = _mm512_set1_epi32((int)SHA1_IV[i]);
}

/* st = IV, then the block: words[0..nw) ^ pad, pad after them (an HMAC key block, key <= 32 bytes).
 * w: the caller's scratch (it holds key material afterwards: the caller wipes it). */
AVX512_TARGET static ALWAYS_INLINE void hash_pad_block(__m512i st[5], const __m512i *words, int nw, uint32_t pad,
                                                       __m512i w[16]) {
    const __m512i p = _mm512_set1_epi32((int)pad);
    for (int i = 0; i < 16; i++)
        w[i] = i < nw ? _mm512_xor_si512(words[i], p) : p;
    set_iv(st);
    compress_msg(st, w);
}

/* st += the block: a 20-byte digest (five words), `tail` words after it (the message's end and its
 * 0x80 byte), zeros, the bit length. */
AVX512_TARGET static ALWAYS_INLINE void hash_digest_block(__m512i st[5], const __m512i dg[5], const uint32_t *tail,
                                                          int ntail, uint32_t bitlen, __m512i w[16]) {
    for (int i = 0; i < 5; i++)
        w[i] = dg[i];
    for (int i = 5; i < 15; i++)
        w[i] = _mm512_setzero_si512();
    for (int i = 0; i < ntail; i++)
        w[5 + i] = _mm512_set1_epi32((int)tail[i]);
    w[15] = _mm512_set1_epi32((int)bitlen);
    compress_msg(st, w);
}

static const uint32_t END_80 = 0x80000000u;          /* the padding's first byte right after a digest */

/* The sixteen subkeys out[l] = HKDF-SHA1(key, salts[l], info), out_len bytes each. */
AVX512_TARGET static void derive16(const struct gx_hkdf_key *k, const uint8_t *const salts[16], uint8_t *const out[16]) {
    uint32_t tw[8][16] __attribute__((aligned(64)));      /* salt word i of lane l, zero-padded */
    int nsw = (int)(k->salt_len + 3) / 4;
    for (int l = 0; l < 16; l++) {
        if (k->salt_len % 4 == 0) {               /* every real cipher: whole words */
            for (int i = 0; i < nsw; i++) {
                uint32_t v;
                memcpy(&v, salts[l] + 4 * i, 4);
                tw[i][l] = __builtin_bswap32(v);
            }
            continue;
        }
        uint8_t s[32] = {0};
        memcpy(s, salts[l], k->salt_len);
        for (int i = 0; i < nsw; i++) {
            uint32_t v;
            memcpy(&v, s + 4 * i, 4);
            tw[i][l] = __builtin_bswap32(v);
        }
    }
    /* every state and block below is key material: all in these arrays, wiped at the end */
    __m512i sw[8], si[5], so[5], dg[5], pi[5], po[5], t1[5], t2[5], w[16];
    for (int i = 0; i < nsw; i++)
        sw[i] = _mm512_load_si512(tw[i]);
    /* extract: PRK = HMAC(salt, key) */
    hash_pad_block(si, sw, nsw, 0x36363636u, w);
    hash_pad_block(so, sw, nsw, 0x5c5c5c5cu, w);
    for (int i = 0; i < 5; i++)
        dg[i] = si[i];
    compress_sched(dg, k->ext_wk);
    hash_digest_block(so, dg, &END_80, 1, (64 + 20) * 8, w);   /* so = PRK */
    /* expand: T1 = HMAC(PRK, info || 1), T2 = HMAC(PRK, T1 || info || 2) */
    hash_pad_block(pi, so, 5, 0x36363636u, w);
    hash_pad_block(po, so, 5, 0x5c5c5c5cu, w);
    for (int i = 0; i < 5; i++) {
        dg[i] = pi[i];
        t1[i] = po[i];
    }
    compress_sched(dg, k->t1_wk);
    hash_digest_block(t1, dg, &END_80, 1, (64 + 20) * 8, w);
    uint32_t res[10][16] __attribute__((aligned(64)));
    for (int i = 0; i < 5; i++)
        _mm512_store_si512(res[i], t1[i]);
    if (k->out_len > 20) {
        for (int i = 0; i < 5; i++) {
            dg[i] = pi[i];
            t2[i] = po[i];
        }
        hash_digest_block(dg, t1, k->t2_tail, k->t2_ntail, rd32be(k->t2_inner + 60), w);
        hash_digest_block(t2, dg, &END_80, 1, (64 + 20) * 8, w);
        for (int i = 0; i < 5; i++)
            _mm512_store_si512(res[5 + i], t2[i]);
    }
    size_t words = k->out_len / 4, tail = k->out_len % 4;
    for (int l = 0; l < 16; l++) {
        for (size_t j = 0; j < words; j++) {
            uint32_t v = __builtin_bswap32(res[j][l]);
            memcpy(out[l] + 4 * j, &v, 4);
        }
        for (size_t j = 0; j < tail; j++)
            out[l][4 * words + j] = (uint8_t)(res[words][l] >> (24 - 8 * j));
    }
    OPENSSL_cleanse(res, sizeof(res));     /* the salts in tw and sw are public; the rest is not */
    OPENSSL_cleanse(si, sizeof(si));
    OPENSSL_cleanse(so, sizeof(so));
    OPENSSL_cleanse(dg, sizeof(dg));
    OPENSSL_cleanse(pi, sizeof(pi));
    OPENSSL_cleanse(po, sizeof(po));
    OPENSSL_cleanse(t1, sizeof(t1));
    OPENSSL_cleanse(t2, sizeof(t2));
    OPENSSL_cleanse(w, sizeof(w));
}

static int cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}
#else
static void derive16(const struct gx_hkdf_key *k, const uint8_t *const salts[16], uint8_t *const out[16]) {
    (void)k, (void)salts, (void)out;
}

static int cpu_has_avx512(void) {
    return 0;
}
#endif

static _Atomic int g_impl = GX_HKDF_AUTO;      /* resolved on first use */
static _Atomic int g_shani = -1;               /* gx_sha1_shani_cpu(), once */

static int shani_ok(void) {
    return gx_probe_once(&g_shani, gx_sha1_shani_cpu);
}

int gx_hkdf_set_impl(int impl) {
    if (impl == GX_HKDF_AUTO)
        impl = gx_crypto_env_openssl() ? GX_HKDF_OPENSSL
               : cpu_has_avx512()     ? GX_HKDF_AVX512
               : shani_ok()           ? GX_HKDF_SHANI
                                      : GX_HKDF_OPENSSL;
    else if ((impl == GX_HKDF_AVX512 && !cpu_has_avx512()) || (impl == GX_HKDF_SHANI && !shani_ok()))
        return -ENOTSUP;
    else if (impl != GX_HKDF_OPENSSL && impl != GX_HKDF_AVX512 && impl != GX_HKDF_SHANI)
        return -EINVAL;
    atomic_store_explicit(&g_impl, impl, memory_order_relaxed);
    return impl;
}

int gx_hkdf_impl(void) {
    int impl = atomic_load_explicit(&g_impl, memory_order_relaxed);
    return impl == GX_HKDF_AUTO ? gx_hkdf_set_impl(GX_HKDF_AUTO) : impl;
}

typedef void (*blocks_fn)(const struct gx_sha1_job *j, int n);

/* The block path's SHA-1: ours with SHA-NI unless OpenSSL was chosen (or the CPU has no SHA-NI).
 * Chosen once per derivation, not per step. */
static blocks_fn block_function(void) {
    return gx_hkdf_impl() != GX_HKDF_OPENSSL && shani_ok() ? gx_sha1_shani_blocks : blocks_openssl;
}

/* ---- HKDF over prebuilt blocks ------------------------------------------------------------------ */

/* A final padded block: msg (len < 56) || 0x80 || zeros || bit length of (64 + len). */
static void final_block(uint8_t blk[64], const uint8_t *msg, size_t len) {
    memset(blk, 0, 64);
    if (msg != NULL)
        memcpy(blk, msg, len);
    blk[len] = 0x80;
    wr64be(blk + 56, (uint64_t)(64 + len) * 8);
}

static void digest(const uint32_t h[5], uint8_t out[20]) {
    for (int i = 0; i < 5; i++)
        wr32be(out + 4 * i, h[i]);
}

static uint32_t rol32(uint32_t x, int r) {
    return x << r | x >> (32 - r);
}

/* wk[t] = W[t] + K[t] for the block (the message schedule of FIPS 180-4 6.1.2 step 1). */
static void schedule(const uint8_t blk[64], uint32_t wk[80]) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)blk[4 * t] << 24 | (uint32_t)blk[4 * t + 1] << 16 | (uint32_t)blk[4 * t + 2] << 8 | blk[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    for (int t = 0; t < 80; t++)
        wk[t] = w[t] + K4[t / 20];
    OPENSSL_cleanse(w, sizeof(w));
}

int gx_hkdf_key_init_ex(struct gx_hkdf_key *k, const uint8_t *key, size_t key_len, size_t salt_len,
                        const uint8_t *info, size_t info_len, size_t out_len) {
    if (key == NULL || key_len == 0 || key_len > GX_HKDF_MAX_KEY || salt_len == 0 || salt_len > GX_HKDF_MAX_SALT ||
        info_len > GX_HKDF_MAX_INFO || (info == NULL && info_len > 0) || out_len == 0 || out_len > GX_HKDF_MAX_KEY)
        return -EINVAL;
    memset(k, 0, sizeof(*k));
    k->key_len = key_len;
    k->salt_len = salt_len;
    k->out_len = out_len;
    final_block(k->ext_inner, key, key_len);
    uint8_t t[20 + GX_HKDF_MAX_INFO + 1] = {0};
    if (info_len > 0)
        memcpy(t, info, info_len);
    t[info_len] = 1;
    final_block(k->t1_inner, t, info_len + 1);             /* info || 1 */
    memset(t, 0, sizeof(t));
    if (info_len > 0)
        memcpy(t + 20, info, info_len);
    t[20 + info_len] = 2;
    final_block(k->t2_inner, t, 20 + info_len + 1);        /* (T1) || info || 2 */
    k->t2_ntail = (int)(info_len + 2 + 3) / 4;             /* info, 2 and 0x80, in whole words */
    for (int i = 0; i < k->t2_ntail; i++)
        k->t2_tail[i] = rd32be(k->t2_inner + 20 + 4 * i);
    schedule(k->ext_inner, k->ext_wk);
    schedule(k->t1_inner, k->t1_wk);
    return 0;
}

int gx_hkdf_key_init(struct gx_hkdf_key *k, const uint8_t *key, size_t key_len, size_t salt_len) {
    return gx_hkdf_key_init_ex(k, key, key_len, salt_len, (const uint8_t *)INFO, INFO_LEN, key_len);
}

void gx_hkdf_key_wipe(struct gx_hkdf_key *k) {
    OPENSSL_cleanse(k, sizeof(*k));
}

void gx_hkdf_work_init(struct gx_hkdf_work *w) {
    for (int l = 0; l < GX_HKDF_LANES; l++) {
        struct gx_hkdf_lane *ln = &w->lane[l];
        memset(ln->salt_ipad, 0x36, 64);
        memset(ln->salt_opad, 0x5c, 64);
        memset(ln->prk_ipad, 0x36, 64);
        memset(ln->prk_opad, 0x5c, 64);
        final_block(ln->outer, NULL, 20);
        uint8_t t2[20 + INFO_LEN + 1] = {0};
        memcpy(t2 + 20, INFO, INFO_LEN);
        t2[20 + INFO_LEN] = 2;
        final_block(ln->t2_inner, t2, sizeof(t2));
    }
}

/* extract: PRK = HMAC(salt, key); expand: T1 = HMAC(PRK, info || 1), T2 = HMAC(PRK, T1 || info || 2).
 * Each HMAC = H(pad ^ 0x36 block, message block) then H(pad ^ 0x5c block, inner hash block); the
 * steps below run the same step of every lane together: with SHA-NI two lanes' blocks interleaved
 * (sha1_shani.c), else one OpenSSL SHA1_Transform after the other. */
static void derive_blocks(const struct gx_hkdf_key *k, struct gx_hkdf_work *w, const uint8_t *const salts[],
                          uint8_t *const out[], int n) {
    uint32_t si[GX_HKDF_LANES][5], so[GX_HKDF_LANES][5], pi[GX_HKDF_LANES][5], po[GX_HKDF_LANES][5];
    uint32_t t[GX_HKDF_LANES][5];
    struct gx_sha1_job j[2 * GX_HKDF_LANES] = {{0}};
    uint8_t d[20];
    blocks_fn blocks = block_function();

    for (int l = 0; l < n; l++) {               /* salt ^ ipad, salt ^ opad */
        struct gx_hkdf_lane *ln = &w->lane[l];
        for (size_t i = 0; i < k->salt_len; i++) {
            ln->salt_ipad[i] = salts[l][i] ^ 0x36;
            ln->salt_opad[i] = salts[l][i] ^ 0x5c;
        }
        memcpy(si[l], SHA1_IV, sizeof(SHA1_IV));
        memcpy(so[l], SHA1_IV, sizeof(SHA1_IV));
        j[2 * l] = (struct gx_sha1_job){si[l], ln->salt_ipad};
        j[2 * l + 1] = (struct gx_sha1_job){so[l], ln->salt_opad};
    }
    blocks(j, 2 * n);
    for (int l = 0; l < n; l++)                 /* inner hash of the extract */
        j[l] = (struct gx_sha1_job){si[l], k->ext_inner};
    blocks(j, n);
    for (int l = 0; l < n; l++) {               /* PRK */
        digest(si[l], w->lane[l].outer);
        j[l] = (struct gx_sha1_job){so[l], w->lane[l].outer};
    }
    blocks(j, n);
    for (int l = 0; l < n; l++) {               /* PRK ^ ipad, PRK ^ opad */
        struct gx_hkdf_lane *ln = &w->lane[l];
        digest(so[l], d);
        for (int i = 0; i < 20; i++) {
            ln->prk_ipad[i] = d[i] ^ 0x36;
            ln->prk_opad[i] = d[i] ^ 0x5c;
        }
        memcpy(pi[l], SHA1_IV, sizeof(SHA1_IV));
        memcpy(po[l], SHA1_IV, sizeof(SHA1_IV));
        j[2 * l] = (struct gx_sha1_job){pi[l], ln->prk_ipad};
        j[2 * l + 1] = (struct gx_sha1_job){po[l], ln->prk_opad};
    }
    blocks(j, 2 * n);
    for (int l = 0; l < n; l++) {               /* T1 inner */
        memcpy(t[l], pi[l], sizeof(t[l]));
        j[l] = (struct gx_sha1_job){t[l], k->t1_inner};
    }
    blocks(j, n);
    for (int l = 0; l < n; l++) {               /* T1 */
        digest(t[l], w->lane[l].outer);
        memcpy(t[l], po[l], sizeof(t[l]));
        j[l] = (struct gx_sha1_job){t[l], w->lane[l].outer};
    }
    blocks(j, n);
    size_t first = k->out_len < 20 ? k->out_len : 20;
    for (int l = 0; l < n; l++) {
        digest(t[l], w->lane[l].t2_inner);
        memcpy(out[l], w->lane[l].t2_inner, first);
    }
    if (k->out_len > 20) {
        for (int l = 0; l < n; l++) {           /* T2 inner */
            memcpy(w->lane[l].t2_inner + 20, k->t2_inner + 20, 64 - 20);
            memcpy(t[l], pi[l], sizeof(t[l]));
            j[l] = (struct gx_sha1_job){t[l], w->lane[l].t2_inner};
        }
        blocks(j, n);
        for (int l = 0; l < n; l++) {           /* T2 */
            digest(t[l], w->lane[l].outer);
            memcpy(t[l], po[l], sizeof(t[l]));
            j[l] = (struct gx_sha1_job){t[l], w->lane[l].outer};
        }
        blocks(j, n);
        for (int l = 0; l < n; l++) {
            digest(t[l], d);
            memcpy(out[l] + 20, d, k->out_len - 20);
        }
    }
    for (int l = 0; l < n; l++) {               /* the lanes keep no key material: PRK, T1, digests */
        struct gx_hkdf_lane *ln = &w->lane[l];
        OPENSSL_cleanse(ln->prk_ipad, 20);
        OPENSSL_cleanse(ln->prk_opad, 20);
        OPENSSL_cleanse(ln->outer, 20);
        OPENSSL_cleanse(ln->t2_inner, 20);
        memset(ln->prk_ipad, 0x36, 20);         /* the pads again, as gx_hkdf_work_init left them */
        memset(ln->prk_opad, 0x5c, 20);
    }
    OPENSSL_cleanse(d, sizeof(d));
    OPENSSL_cleanse(si, sizeof(si));
    OPENSSL_cleanse(pi, sizeof(pi));
    OPENSSL_cleanse(po, sizeof(po));
    OPENSSL_cleanse(t, sizeof(t));
    OPENSSL_cleanse(so, sizeof(so));
}

/* Below AVX512_MIN_SALTS salts the sixteen lanes cost more than one SHA-NI block after the other. */
#define AVX512_MIN_SALTS 4

void gx_hkdf_derive(const struct gx_hkdf_key *k, struct gx_hkdf_work *w, const uint8_t *const salts[],
                    uint8_t *const out[], int n) {
    if (n <= 0)
        return;
    if (n > GX_HKDF_LANES)
        n = GX_HKDF_LANES;
    if (gx_hkdf_impl() != GX_HKDF_AVX512 || n < AVX512_MIN_SALTS) {
        derive_blocks(k, w, salts, out, n);
        return;
    }
    static const uint8_t zero_salt[GX_HKDF_MAX_SALT];
    uint8_t spare[GX_HKDF_LANES][GX_HKDF_MAX_KEY];         /* the subkeys of the lanes nobody asked for */
    const uint8_t *s[GX_HKDF_LANES];
    uint8_t *o[GX_HKDF_LANES];
    for (int l = 0; l < GX_HKDF_LANES; l++) {
        s[l] = l < n ? salts[l] : zero_salt;
        o[l] = l < n ? out[l] : spare[l];
    }
    derive16(k, s, o);
    if (n < GX_HKDF_LANES)
        OPENSSL_cleanse(spare, sizeof(spare));
}
