/* AES-GCM, one packet per call with its own key (gx/crypto.h): the 512-bit (AVX-512) build, and the
 * choice between it, the 256-bit build (gcm_avx2.c) and OpenSSL. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "gx/base.h"
#include "gcm_avx2.h"
#include "gx/crypto.h"

#if GX_SIMD
#define GX_HAVE_VAES 1
#include "gcm_aesni.h"
#else
#define GX_HAVE_VAES 0
#endif

#if GX_HAVE_VAES
#define VAES_TARGET __attribute__((target("aes,pclmul,avx512f,avx512bw,avx512vl,vaes,vpclmulqdq")))

#define MAX_ROUNDS GX_AES_MAX_ROUNDS

struct keys {
    int rounds;
    __m512i rk[MAX_ROUNDS + 1];   /* each round key in all four lanes */
};

/* Four zmm of counter blocks (16 AES blocks) through the cipher, rounds interleaved. */
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* `rounds` is a constant at every call (10 or 14), so the loop unrolls with the keys in registers. */
VAES_TARGET static ALWAYS_INLINE void encrypt4(const struct keys *k, int rounds, __m512i *a, __m512i *b, __m512i *c,
                                               __m512i *d) {
    __m512i x0 = _mm512_xor_si512(*a, k->rk[0]), x1 = _mm512_xor_si512(*b, k->rk[0]);
    __m512i x2 = _mm512_xor_si512(*c, k->rk[0]), x3 = _mm512_xor_si512(*d, k->rk[0]);
    for (int r = 1; r < rounds; r++) {
        x0 = _mm512_aesenc_epi128(x0, k->rk[r]);
        x1 = _mm512_aesenc_epi128(x1, k->rk[r]);
        x2 = _mm512_aesenc_epi128(x2, k->rk[r]);
        x3 = _mm512_aesenc_epi128(x3, k->rk[r]);
    }
    *a = _mm512_aesenclast_epi128(x0, k->rk[rounds]);
    *b = _mm512_aesenclast_epi128(x1, k->rk[rounds]);
    *c = _mm512_aesenclast_epi128(x2, k->rk[rounds]);
    *d = _mm512_aesenclast_epi128(x3, k->rk[rounds]);
}

/* ---- GHASH in GF(2^128), byte-reflected domain ------------------------------------------------- */

VAES_TARGET static inline __m512i bswap_lanes(__m512i v) {
    const __m512i rev = _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    return _mm512_shuffle_epi8(v, rev);
}

/* The 256-bit carry-less product hi:lo (per 128-bit lane) of two byte-reflected operands, shifted
 * left by one bit (the reflection) and reduced modulo x^128 + x^7 + x^2 + x + 1. */
VAES_TARGET static inline __m512i reduce(__m512i lo, __m512i hi) {
    __m512i c_lo = _mm512_srli_epi32(lo, 31), c_hi = _mm512_srli_epi32(hi, 31);
    lo = _mm512_slli_epi32(lo, 1);
    hi = _mm512_slli_epi32(hi, 1);
    __m512i carry_out = _mm512_bsrli_epi128(c_lo, 12);      /* lo's top bit moves into hi */
    lo = _mm512_or_si512(lo, _mm512_bslli_epi128(c_lo, 4));
    hi = _mm512_or_si512(hi, _mm512_or_si512(_mm512_bslli_epi128(c_hi, 4), carry_out));
    /* first phase */
    __m512i t = _mm512_xor_si512(_mm512_xor_si512(_mm512_slli_epi32(lo, 31), _mm512_slli_epi32(lo, 30)),
                                 _mm512_slli_epi32(lo, 25));
    __m512i t_hi = _mm512_bsrli_epi128(t, 4);
    lo = _mm512_xor_si512(lo, _mm512_bslli_epi128(t, 12));
    /* second phase */
    __m512i u = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi32(lo, 1), _mm512_srli_epi32(lo, 2)),
                                 _mm512_srli_epi32(lo, 7));
    u = _mm512_xor_si512(u, t_hi);
    lo = _mm512_xor_si512(lo, u);
    return _mm512_xor_si512(hi, lo);
}

struct acc {
    __m512i lo, hi, mid;
};

VAES_TARGET static inline void mul_acc(struct acc *s, __m512i a, __m512i b) {
    s->lo = _mm512_xor_si512(s->lo, _mm512_clmulepi64_epi128(a, b, 0x00));
    s->hi = _mm512_xor_si512(s->hi, _mm512_clmulepi64_epi128(a, b, 0x11));
    s->mid = _mm512_xor_si512(s->mid, _mm512_xor_si512(_mm512_clmulepi64_epi128(a, b, 0x01),
                                                       _mm512_clmulepi64_epi128(a, b, 0x10)));
}

/* a * b by Karatsuba: 3 multiplications; b_fold holds b's (hi ^ lo) in its low qword. The middle
 * term still has lo and hi in it: finish_karatsuba takes them out once per chunk. */
VAES_TARGET static inline void mul_acc_k(struct acc *s, __m512i a, __m512i b, __m512i b_fold) {
    __m512i a_fold = _mm512_xor_si512(a, _mm512_shuffle_epi32(a, (_MM_PERM_ENUM)0x4e));
    s->lo = _mm512_xor_si512(s->lo, _mm512_clmulepi64_epi128(a, b, 0x00));
    s->hi = _mm512_xor_si512(s->hi, _mm512_clmulepi64_epi128(a, b, 0x11));
    s->mid = _mm512_xor_si512(s->mid, _mm512_clmulepi64_epi128(a_fold, b_fold, 0x00));
}

VAES_TARGET static inline __m512i finish(struct acc s) {
    return reduce(_mm512_xor_si512(s.lo, _mm512_bslli_epi128(s.mid, 8)),
                  _mm512_xor_si512(s.hi, _mm512_bsrli_epi128(s.mid, 8)));
}

/* a * b, lane by lane. */
VAES_TARGET static inline __m512i gfmul(__m512i a, __m512i b) {
    struct acc s = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    mul_acc(&s, a, b);
    return finish(s);
}

VAES_TARGET static inline __m512i xor_lanes(__m512i v) {     /* lane 0 = the XOR of all four */
    __m256i y = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    __m128i x = _mm_xor_si128(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
    return _mm512_zextsi128_si512(x);
}

#define POWERS 16

/* pw[i] = H^(16 - i) for i < 16 (H^16 first, H^1 last), then four zero blocks, so that the
 * 16 - k .. 15 window for a chunk of k blocks can be read 64 bytes at a time. */
struct powers {
    _Alignas(64) uint8_t pw[(POWERS + 4) * 16];
    _Alignas(64) uint8_t fold[(POWERS + 4) * 16];   /* low qword: hi ^ lo of the same power (Karatsuba) */
};

VAES_TARGET static void make_powers(__m128i h, struct powers *p) {
    __m512i h1 = _mm512_broadcast_i32x4(h);
    __m512i h2 = gfmul(h1, h1);
    /* q = [H, H^2, H^3, H^4] */
    __m512i h12 = _mm512_mask_blend_epi64(0xcc, h1, h2);                 /* [H, H^2, H, H^2] */
    __m512i h34 = gfmul(h12, h2);                                        /* [H^3, H^4, ..] */
    __m512i q = _mm512_shuffle_i64x2(h12, h34, 0x44);                    /* lanes 0,1 of each */
    __m512i h4 = _mm512_shuffle_i64x2(q, q, 0xff);
    __m512i q2 = gfmul(q, h4);                                           /* H^5..H^8 */
    __m512i h8 = _mm512_shuffle_i64x2(q2, q2, 0xff);
    __m512i q3 = gfmul(q, h8);                                           /* H^9..H^12 */
    __m512i q4 = gfmul(q2, h8);                                          /* H^13..H^16 */
    enum { rev = 0x1b };                                                 /* lanes 3,2,1,0 (a constant for clang) */
    _mm512_store_si512((__m512i *)p->pw, _mm512_shuffle_i64x2(q4, q4, rev));
    _mm512_store_si512((__m512i *)(p->pw + 64), _mm512_shuffle_i64x2(q3, q3, rev));
    _mm512_store_si512((__m512i *)(p->pw + 128), _mm512_shuffle_i64x2(q2, q2, rev));
    _mm512_store_si512((__m512i *)(p->pw + 192), _mm512_shuffle_i64x2(q, q, rev));
    _mm512_store_si512((__m512i *)(p->pw + 256), _mm512_setzero_si512());
    for (int i = 0; i < POWERS + 4; i += 4) {
        __m512i v = _mm512_load_si512((const void *)(p->pw + 16 * i));
        _mm512_store_si512((__m512i *)(p->fold + 16 * i), _mm512_xor_si512(v, _mm512_shuffle_epi32(v, (_MM_PERM_ENUM)0x4e)));
    }
}

static inline __mmask64 byte_mask(size_t start, size_t len) {   /* bytes [start, start+64) below len */
    if (start >= len)
        return 0;
    size_t n = len - start;
    return n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
}

/* ---- CTR and GHASH in one pass ----------------------------------------------------------------- */

struct state {
    struct keys k;
    struct powers p;
    __m128i ek_j0;                /* E_K(J0), masks the tag */
    __m128i nonce_block;          /* nonce || 0 */
};

/* Each lane: the nonce in bytes 0..11, the big-endian counter in bytes 12..15. */
VAES_TARGET static inline __m512i counter_block(__m512i base, __m512i n) {
    const __m512i to_be = _mm512_broadcast_i32x4(
        _mm_set_epi8(12, 13, 14, 15, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128));
    return _mm512_or_si512(base, _mm512_shuffle_epi8(n, to_be));
}

#define FIRST_COUNTERS _mm512_set_epi32(5, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0)
#define COUNTER_STEP _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0)

struct stream {                   /* one packet's CTR + GHASH pass in progress */
    const struct state *st;
    uint8_t *buf;
    size_t len, nb, total;        /* bytes; data blocks (last zero-padded); with the length block */
    __m128i len_block;
    __m512i base, n, x;
    __m512i nk[4];                /* the keystream of the next chunk, computed ahead */
};

VAES_TARGET static ALWAYS_INLINE void stream_start(struct stream *z, const struct state *st, int rounds, uint8_t *buf,
                                                   size_t len) {
    z->st = st;
    z->buf = buf;
    z->len = len;
    z->nb = (len + 15) / 16;
    z->total = z->nb + 1;
    z->len_block = gx_gcm_len_block(len);
    z->base = _mm512_broadcast_i32x4(st->nonce_block);
    z->n = FIRST_COUNTERS;
    z->x = _mm512_setzero_si512();
    for (int i = 0; i < 4; i++) {
        z->nk[i] = counter_block(z->base, z->n);
        z->n = _mm512_add_epi32(z->n, COUNTER_STEP);
    }
    if (len > 0)
        encrypt4(&st->k, rounds, &z->nk[0], &z->nk[1], &z->nk[2], &z->nk[3]);
}

/* The chunk of blocks s .. s + 15 (s < z->total). */
VAES_TARGET static ALWAYS_INLINE void stream_chunk(struct stream *z, int rounds, size_t s, int seal) {
    size_t k = z->total - s < POWERS ? z->total - s : POWERS;
    const uint8_t *pw = z->st->p.pw + (POWERS - k) * 16, *fold = z->st->p.fold + (POWERS - k) * 16;
    __m512i ks[4] = {z->nk[0], z->nk[1], z->nk[2], z->nk[3]};
    if ((s + POWERS) * 16 < z->len) {              /* start the next chunk's AES before this GHASH */
        for (int i = 0; i < 4; i++) {
            z->nk[i] = counter_block(z->base, z->n);
            z->n = _mm512_add_epi32(z->n, COUNTER_STEP);
        }
        encrypt4(&z->st->k, rounds, &z->nk[0], &z->nk[1], &z->nk[2], &z->nk[3]);
    }
    struct acc a = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    for (size_t u = 0; 4 * u < k; u++) {
        size_t first = s + 4 * u;                  /* block index of lane 0 */
        __mmask64 m = byte_mask(first * 16, z->len);
        __m512i c = _mm512_setzero_si512();
        if (m != 0) {
            uint8_t *q = z->buf + first * 16;
            __m512i d = _mm512_maskz_loadu_epi8(m, q);
            __m512i out = _mm512_xor_si512(d, ks[u]);
            _mm512_mask_storeu_epi8(q, m, out);
            c = seal ? _mm512_maskz_mov_epi8(m, out) : d;
        }
        if (z->nb >= first && z->nb < first + 4)   /* the length block is in this unit */
            c = _mm512_xor_si512(c, _mm512_maskz_broadcast_i32x4((__mmask16)(0xf << (4 * (z->nb - first))),
                                                                 z->len_block));
        c = bswap_lanes(c);
        if (u == 0)
            c = _mm512_xor_si512(c, z->x);
        mul_acc_k(&a, c, _mm512_loadu_si512((const void *)(pw + 64 * u)),
                  _mm512_loadu_si512((const void *)(fold + 64 * u)));
    }
    a.lo = xor_lanes(a.lo);
    a.hi = xor_lanes(a.hi);
    a.mid = _mm512_xor_si512(xor_lanes(a.mid), _mm512_xor_si512(a.lo, a.hi));
    z->x = finish(a);                              /* lane 0; the other lanes stay zero */
}

VAES_TARGET static ALWAYS_INLINE __m128i stream_tag(const struct stream *z) {
    return _mm_xor_si128(gx_bswap128(_mm512_castsi512_si128(z->x)), z->st->ek_j0);
}

/* Two packets (two keys of one size) chunk by chunk in turn: the work of one fills the other's waits
 * (less time a packet than one after the other: bench/README.md). tag[i] as crypt_and_hash. */
VAES_TARGET static ALWAYS_INLINE void crypt_and_hash2_r(const struct state *st0, const struct state *st1, int rounds,
                                                        uint8_t *const buf[2], const size_t len[2], int seal,
                                                        __m128i tag[2]) {
    struct stream z0, z1;
    stream_start(&z0, st0, rounds, buf[0], len[0]);
    stream_start(&z1, st1, rounds, buf[1], len[1]);
    size_t total = z0.total > z1.total ? z0.total : z1.total;
    for (size_t s = 0; s < total; s += POWERS) {
        if (s < z0.total)
            stream_chunk(&z0, rounds, s, seal);
        if (s < z1.total)
            stream_chunk(&z1, rounds, s, seal);
    }
    tag[0] = stream_tag(&z0);
    tag[1] = stream_tag(&z1);
}

VAES_TARGET static void crypt_and_hash2(const struct state *st0, const struct state *st1, uint8_t *const buf[2],
                                        const size_t len[2], int seal, __m128i tag[2]) {
    if (st0->k.rounds == 10)
        crypt_and_hash2_r(st0, st1, 10, buf, len, seal, tag);
    else
        crypt_and_hash2_r(st0, st1, 14, buf, len, seal, tag);
}

/* buf ^= the keystream of counters 2, 3, ... (inc32 of J0 = nonce || 1), and return the tag over
 * the ciphertext: GHASH_H(C || 0-pad || [0]64 || [8 len]64) ^ E_K(J0). seal = 1: buf is plaintext
 * (hash what is written); seal = 0: buf is ciphertext (hash what is read). Both run chunk by chunk
 * of 16 blocks (4 x 4 lanes); the AES rounds of the next chunk are issued before the GHASH of this
 * one, so that the two (different execution ports) overlap, rather than AES and GHASH of the same
 * chunk one after the other. */
VAES_TARGET static ALWAYS_INLINE __m128i crypt_and_hash_r(const struct state *st, int rounds, uint8_t *buf, size_t len,
                                                           int seal) {
    struct stream z;
    stream_start(&z, st, rounds, buf, len);
    for (size_t s = 0; s < z.total; s += POWERS)
        stream_chunk(&z, rounds, s, seal);
    return stream_tag(&z);
}

VAES_TARGET static __m128i crypt_and_hash(const struct state *st, uint8_t *buf, size_t len, int seal) {
    return st->k.rounds == 10 ? crypt_and_hash_r(st, 10, buf, len, seal) : crypt_and_hash_r(st, 14, buf, len, seal);
}

/* buf ^= the keystream alone (undoes a decryption whose tag did not match). */
VAES_TARGET static void ctr_only(const struct state *st, uint8_t *buf, size_t len) {
    const int rounds = st->k.rounds;
    const __m512i base = _mm512_broadcast_i32x4(st->nonce_block);
    __m512i n = FIRST_COUNTERS;
    for (size_t off = 0; off < len; off += 256) {
        __m512i c[4];
        for (int i = 0; i < 4; i++) {
            c[i] = counter_block(base, n);
            n = _mm512_add_epi32(n, COUNTER_STEP);
        }
        encrypt4(&st->k, rounds, &c[0], &c[1], &c[2], &c[3]);
        for (size_t i = 0; i < 4 && off + 64 * i < len; i++) {
            __mmask64 m = byte_mask(off + 64 * i, len);
            uint8_t *q = buf + off + 64 * i;
            _mm512_mask_storeu_epi8(q, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, q), c[i]));
        }
    }
}

/* ---- one packet ------------------------------------------------------------------------------ */

VAES_TARGET static int setup(struct state *st, const uint8_t *key, size_t key_len, const uint8_t *nonce) {
    __m128i rk[MAX_ROUNDS + 1];
    struct gx_gcm_base base;
    st->k.rounds = gx_gcm_base(key, key_len, nonce, rk, &base);
    if (st->k.rounds < 0)
        return -EINVAL;
    for (int r = 0; r <= st->k.rounds; r++)
        st->k.rk[r] = _mm512_broadcast_i32x4(rk[r]);
    st->nonce_block = base.nonce_block;
    st->ek_j0 = base.ek_j0;
    make_powers(base.h_reflected, &st->p);
    explicit_bzero(rk, sizeof(rk));
    return 0;
}

VAES_TARGET static int seal_vaes(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                                 uint8_t *tag) {
    struct state st;
    if (setup(&st, key, key_len, nonce) != 0)
        return -EINVAL;
    _mm_storeu_si128((__m128i *)tag, crypt_and_hash(&st, buf, len, 1));
    explicit_bzero(&st, sizeof(st));
    return 0;
}

VAES_TARGET static int open_vaes(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                                 const uint8_t *tag) {
    struct state st;
    if (setup(&st, key, key_len, nonce) != 0)
        return -EINVAL;
    uint8_t want[GX_GCM_TAG_LEN];
    _mm_storeu_si128((__m128i *)want, crypt_and_hash(&st, buf, len, 0));
    int rc = CRYPTO_memcmp(want, tag, GX_GCM_TAG_LEN) == 0 ? 0 : -EBADMSG;
    if (rc != 0)
        ctr_only(&st, buf, len);    /* the ciphertext back: no unauthenticated plaintext out */
    explicit_bzero(&st, sizeof(st));
    return rc;
}

/* ---- two packets at once ------------------------------------------------------------------- */

VAES_TARGET static int seal2_vaes(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce,
                                  uint8_t *const buf[2], const size_t len[2], uint8_t *const tag[2]) {
    struct state st[2];
    int rc = -EINVAL;
    if (setup(&st[0], key[0], key_len, nonce) == 0 && setup(&st[1], key[1], key_len, nonce) == 0) {
        __m128i t[2];
        crypt_and_hash2(&st[0], &st[1], buf, len, 1, t);
        _mm_storeu_si128((__m128i *)tag[0], t[0]);
        _mm_storeu_si128((__m128i *)tag[1], t[1]);
        rc = 0;
    }
    explicit_bzero(st, sizeof(st));
    return rc;
}

VAES_TARGET static int open2_vaes(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce,
                                  uint8_t *const buf[2], const size_t len[2], const uint8_t *const tag[2]) {
    struct state st[2];
    int rc = -EINVAL;
    if (setup(&st[0], key[0], key_len, nonce) == 0 && setup(&st[1], key[1], key_len, nonce) == 0) {
        __m128i t[2];
        uint8_t want[GX_GCM_TAG_LEN];
        crypt_and_hash2(&st[0], &st[1], buf, len, 0, t);
        rc = 0;
        for (int i = 0; i < 2; i++) {
            _mm_storeu_si128((__m128i *)want, t[i]);
            if (CRYPTO_memcmp(want, tag[i], GX_GCM_TAG_LEN) != 0) {
                ctr_only(&st[i], buf[i], len[i]);  /* the ciphertext back */
                rc |= 1 << i;
            }
        }
    }
    explicit_bzero(st, sizeof(st));
    return rc;
}

static int cpu_has_vaes(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && gx_cpu_has_vaes() &&
           __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("aes") &&
           __builtin_cpu_supports("pclmul");
}
#else
static int seal_vaes(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                     uint8_t *tag) {
    (void)key, (void)key_len, (void)nonce, (void)buf, (void)len, (void)tag;
    return -EINVAL;
}

static int open_vaes(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                     const uint8_t *tag) {
    (void)key, (void)key_len, (void)nonce, (void)buf, (void)len, (void)tag;
    return -EINVAL;
}

static int seal2_vaes(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce, uint8_t *const buf[2],
                      const size_t len[2], uint8_t *const tag[2]) {
    (void)key, (void)key_len, (void)nonce, (void)buf, (void)len, (void)tag;
    return -EINVAL;
}

static int open2_vaes(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce, uint8_t *const buf[2],
                      const size_t len[2], const uint8_t *const tag[2]) {
    (void)key, (void)key_len, (void)nonce, (void)buf, (void)len, (void)tag;
    return -EINVAL;
}

static int cpu_has_vaes(void) {
    return 0;
}
#endif

static _Atomic int g_impl = GX_GCM_AUTO;
static _Atomic int g_vaes = -1;           /* cpu_has_vaes(), once */
static _Atomic int g_avx2 = -1;           /* gx_gcm_avx2_cpu(), once */

static int vaes_ok(void) {
    return gx_probe_once(&g_vaes, cpu_has_vaes);
}

static int avx2_ok(void) {
    return gx_probe_once(&g_avx2, gx_gcm_avx2_cpu);
}

/* The fastest of ours this CPU runs, or 0. */
static int best_own(void) {
    return vaes_ok() ? GX_GCM_VAES : avx2_ok() ? GX_GCM_VAES_AVX2 : 0;
}

static int env_openssl(void) {
    const char *env = getenv("GX_CRYPTO");
    return env != NULL && strcasecmp(env, "openssl") == 0;
}

static _Atomic int g_env = -1;            /* env_openssl(), once */

int gx_crypto_env_openssl(void) {
    return gx_probe_once(&g_env, env_openssl);
}

int gx_crypto_simd(void) {
    return GX_SIMD;
}

int gx_gcm_set_impl(int impl) {
    if (impl == GX_GCM_AUTO) {
        int own = best_own();
        impl = own && !gx_crypto_env_openssl() ? own : GX_GCM_OPENSSL;
    } else if ((impl == GX_GCM_VAES && !vaes_ok()) || (impl == GX_GCM_VAES_AVX2 && !avx2_ok())) {
        return -ENOTSUP;
    } else if (impl != GX_GCM_OPENSSL && impl != GX_GCM_VAES && impl != GX_GCM_VAES_AVX2) {
        return -EINVAL;
    }
    atomic_store_explicit(&g_impl, impl, memory_order_relaxed);
    return impl;
}

int gx_gcm_impl(void) {
    int impl = atomic_load_explicit(&g_impl, memory_order_relaxed);
    return impl == GX_GCM_AUTO ? gx_gcm_set_impl(GX_GCM_AUTO) : impl;
}

/* Which of ours gx_gcm_seal & co. run: the one chosen, else the best the CPU has (0: none). */
static int own_impl(void) {
    int impl = gx_gcm_impl();
    return impl == GX_GCM_OPENSSL ? best_own() : impl;
}

static int args_ok(const uint8_t *buf, size_t len) {
    return !(len > 0 && buf == NULL) && len <= ((size_t)1 << 36);
}

int gx_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t nonce[GX_GCM_NONCE_LEN], uint8_t *buf,
                size_t len, uint8_t tag[GX_GCM_TAG_LEN]) {
    int impl = own_impl();
    if (impl == 0 || !args_ok(buf, len))
        return -EINVAL;
    return impl == GX_GCM_VAES ? seal_vaes(key, key_len, nonce, buf, len, tag)
                               : gx_gcm_avx2_seal(key, key_len, nonce, buf, len, tag);
}

int gx_gcm_open(const uint8_t *key, size_t key_len, const uint8_t nonce[GX_GCM_NONCE_LEN], uint8_t *buf,
                size_t len, const uint8_t tag[GX_GCM_TAG_LEN]) {
    int impl = own_impl();
    if (impl == 0 || !args_ok(buf, len))
        return -EINVAL;
    return impl == GX_GCM_VAES ? open_vaes(key, key_len, nonce, buf, len, tag)
                               : gx_gcm_avx2_open(key, key_len, nonce, buf, len, tag);
}

static int pair_ok(uint8_t *const buf[2], const size_t len[2]) {
    return args_ok(buf[0], len[0]) && args_ok(buf[1], len[1]);
}

int gx_gcm_seal2(const uint8_t *const key[2], size_t key_len, const uint8_t nonce[GX_GCM_NONCE_LEN],
                 uint8_t *const buf[2], const size_t len[2], uint8_t *const tag[2]) {
    int impl = own_impl();
    if (impl == 0 || !pair_ok(buf, len))
        return -EINVAL;
    return impl == GX_GCM_VAES ? seal2_vaes(key, key_len, nonce, buf, len, tag)
                               : gx_gcm_avx2_seal2(key, key_len, nonce, buf, len, tag);
}

int gx_gcm_open2(const uint8_t *const key[2], size_t key_len, const uint8_t nonce[GX_GCM_NONCE_LEN],
                 uint8_t *const buf[2], const size_t len[2], const uint8_t *const tag[2]) {
    int impl = own_impl();
    if (impl == 0 || !pair_ok(buf, len))
        return -EINVAL;
    return impl == GX_GCM_VAES ? open2_vaes(key, key_len, nonce, buf, len, tag)
                               : gx_gcm_avx2_open2(key, key_len, nonce, buf, len, tag);
}
