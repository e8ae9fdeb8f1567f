/* AES-GCM for one packet with its own key, in 256-bit registers: VAES and VPCLMULQDQ without AVX-512
 * (AMD Zen 3, Intel client cores since Alder Lake). The method is gcm.c's (NIST SP 800-38D; GHASH in
 * the byte-reflected domain, shift-by-one reduction, Karatsuba with the folded halves of the powers
 * precomputed): key expansion with AES-NI, H^1..H^16 two at a time, then per chunk of 16 blocks the
 * CTR keystream of eight registers (the next chunk's issued before this chunk's GHASH) and one
 * reduction. AVX2 has no byte-masked loads: the last, partial register of a packet goes through a
 * 32-byte buffer on the stack. */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "gx/base.h"
#include "gcm_avx2.h"
#include "gx/crypto.h"

#if GX_SIMD
#include "gcm_aesni.h"

#define Y_TARGET __attribute__((target("aes,pclmul,avx2,vaes,vpclmulqdq")))
#define Y_INLINE inline __attribute__((always_inline))

#define CHUNK 16                  /* blocks a GHASH reduction: the powers H^1..H^16 */
#define UNITS 8                   /* registers of two blocks a chunk */

struct ykeys {
    int rounds;
    __m256i rk[GX_AES_MAX_ROUNDS + 1];   /* each round key in both lanes */
};

/* pw: H^16, H^15, .., H^1, then two zero blocks, so that the window of a chunk of k blocks
 * (from H^k on) can be read 32 bytes at a time; fold: the same with hi ^ lo in the low qword. */
struct ypowers {
    _Alignas(32) uint8_t pw[(CHUNK + 2) * 16];
    _Alignas(32) uint8_t fold[(CHUNK + 2) * 16];
};

struct ystate {
    struct ykeys k;
    struct ypowers p;
    __m128i ek_j0;                /* E_K(J0), masks the tag */
    __m128i nonce_block;          /* nonce || 0 */
};

/* x[0..7] through the cipher, rounds interleaved: unrolled (GCC -O2 would not), with the blocks in
 * registers (through the pointer it would store and reload them around every round: x may alias k). */
Y_TARGET static Y_INLINE void aes_units(const struct ykeys *k, int rounds, __m256i x[UNITS]) {
    __m256i v[UNITS], key = k->rk[0];
#pragma GCC unroll 8
    for (int i = 0; i < UNITS; i++)
        v[i] = _mm256_xor_si256(x[i], key);
#pragma GCC unroll 14
    for (int r = 1; r < rounds; r++) {
        key = k->rk[r];
#pragma GCC unroll 8
        for (int i = 0; i < UNITS; i++)
            v[i] = _mm256_aesenc_epi128(v[i], key);
    }
    key = k->rk[rounds];
#pragma GCC unroll 8
    for (int i = 0; i < UNITS; i++)
        x[i] = _mm256_aesenclast_epi128(v[i], key);
}

/* ---- GHASH ---------------------------------------------------------------------------------- */

Y_TARGET static inline __m256i bswap_y(__m256i v) {
    return _mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(
                                      _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)));
}

/* hi:lo (per lane) shifted left by one bit and reduced modulo x^128 + x^7 + x^2 + x + 1. */
Y_TARGET static inline __m256i reduce_y(__m256i lo, __m256i hi) {
    __m256i c_lo = _mm256_srli_epi32(lo, 31), c_hi = _mm256_srli_epi32(hi, 31);
    lo = _mm256_slli_epi32(lo, 1);
    hi = _mm256_slli_epi32(hi, 1);
    hi = _mm256_or_si256(hi, _mm256_or_si256(_mm256_bslli_epi128(c_hi, 4), _mm256_bsrli_epi128(c_lo, 12)));
    lo = _mm256_or_si256(lo, _mm256_bslli_epi128(c_lo, 4));
    __m256i t = _mm256_xor_si256(_mm256_xor_si256(_mm256_slli_epi32(lo, 31), _mm256_slli_epi32(lo, 30)),
                                 _mm256_slli_epi32(lo, 25));
    __m256i t_hi = _mm256_bsrli_epi128(t, 4);
    lo = _mm256_xor_si256(lo, _mm256_bslli_epi128(t, 12));
    __m256i u = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi32(lo, 1), _mm256_srli_epi32(lo, 2)),
                                 _mm256_srli_epi32(lo, 7));
    lo = _mm256_xor_si256(lo, _mm256_xor_si256(u, t_hi));
    return _mm256_xor_si256(hi, lo);
}

struct yacc {
    __m256i lo, hi, mid;
};

/* a * b added in, Karatsuba: b_fold holds b's hi ^ lo in its low qword; the middle term keeps lo and
 * hi in it until the chunk ends. */
Y_TARGET static inline void yacc_add(struct yacc *s, __m256i a, __m256i b, __m256i b_fold) {
    __m256i a_fold = _mm256_xor_si256(a, _mm256_shuffle_epi32(a, 0x4e));
    s->lo = _mm256_xor_si256(s->lo, _mm256_clmulepi64_epi128(a, b, 0x00));
    s->hi = _mm256_xor_si256(s->hi, _mm256_clmulepi64_epi128(a, b, 0x11));
    s->mid = _mm256_xor_si256(s->mid, _mm256_clmulepi64_epi128(a_fold, b_fold, 0x00));
}

/* The accumulated products reduced; lane_sum: add the two lanes first (the result in lane 0). */
Y_TARGET static inline __m256i yacc_finish(struct yacc s, int lane_sum) {
    if (lane_sum) {
        s.lo = _mm256_xor_si256(s.lo, _mm256_permute2x128_si256(s.lo, s.lo, 0x81));
        s.hi = _mm256_xor_si256(s.hi, _mm256_permute2x128_si256(s.hi, s.hi, 0x81));
        s.mid = _mm256_xor_si256(s.mid, _mm256_permute2x128_si256(s.mid, s.mid, 0x81));
        s.lo = _mm256_permute2x128_si256(s.lo, s.lo, 0x80);     /* lane 1 cleared */
        s.hi = _mm256_permute2x128_si256(s.hi, s.hi, 0x80);
        s.mid = _mm256_permute2x128_si256(s.mid, s.mid, 0x80);
    }
    s.mid = _mm256_xor_si256(s.mid, _mm256_xor_si256(s.lo, s.hi));
    return reduce_y(_mm256_xor_si256(s.lo, _mm256_bslli_epi128(s.mid, 8)),
                    _mm256_xor_si256(s.hi, _mm256_bsrli_epi128(s.mid, 8)));
}

Y_TARGET static inline __m256i gfmul_y(__m256i a, __m256i b) {            /* lane by lane */
    struct yacc s = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    yacc_add(&s, a, b, _mm256_xor_si256(b, _mm256_shuffle_epi32(b, 0x4e)));
    return yacc_finish(s, 0);
}

Y_TARGET static inline __m256i swap_lanes(__m256i v) {
    return _mm256_permute2x128_si256(v, v, 0x01);
}

Y_TARGET static void make_powers_y(__m128i h, struct ypowers *p) {
    __m256i h1 = _mm256_broadcastsi128_si256(h);
    __m256i h2 = gfmul_y(h1, h1);
    __m256i q[8];                                            /* q[i] = [H^(2i+1), H^(2i+2)] */
    q[0] = _mm256_blend_epi32(h1, h2, 0xf0);
    q[1] = gfmul_y(q[0], h2);
    __m256i h4 = _mm256_permute2x128_si256(q[1], q[1], 0x11);
    q[2] = gfmul_y(q[0], h4);
    q[3] = gfmul_y(q[1], h4);
    __m256i h8 = _mm256_permute2x128_si256(q[3], q[3], 0x11);
    for (int i = 0; i < 4; i++)
        q[4 + i] = gfmul_y(q[i], h8);
    for (int i = 0; i < 8; i++) {                            /* H^16 first */
        __m256i v = swap_lanes(q[7 - i]);
        _mm256_store_si256((__m256i *)(p->pw + 32 * i), v);
        _mm256_store_si256((__m256i *)(p->fold + 32 * i), _mm256_xor_si256(v, _mm256_shuffle_epi32(v, 0x4e)));
    }
    _mm256_store_si256((__m256i *)(p->pw + 32 * 8), _mm256_setzero_si256());
    _mm256_store_si256((__m256i *)(p->fold + 32 * 8), _mm256_setzero_si256());
}

/* ---- the packet's bytes, 32 at a time --------------------------------------------------------- */

Y_TARGET static inline __m256i load_upto(const uint8_t *p, size_t n) {      /* n < 32; zeros after */
    _Alignas(32) uint8_t t[32] = {0};
    memcpy(t, p, n);
    return _mm256_load_si256((const __m256i *)t);
}

Y_TARGET static inline void store_upto(uint8_t *p, __m256i v, size_t n) {
    _Alignas(32) uint8_t t[32];
    _mm256_store_si256((__m256i *)t, v);
    memcpy(p, t, n);
}

Y_TARGET static inline __m256i first_bytes(__m256i v, size_t n) {           /* bytes >= n zeroed */
    const __m256i iota = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                                          20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
    return _mm256_and_si256(v, _mm256_cmpgt_epi8(_mm256_set1_epi8((char)n), iota));
}

/* Each lane: the nonce in bytes 0..11, the big-endian counter in bytes 12..15. */
Y_TARGET static inline __m256i counter_y(__m256i base, __m256i n) {
    const __m256i to_be = _mm256_broadcastsi128_si256(
        _mm_set_epi8(12, 13, 14, 15, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128));
    return _mm256_or_si256(base, _mm256_shuffle_epi8(n, to_be));
}

#define FIRST_PAIR _mm256_set_epi32(3, 0, 0, 0, 2, 0, 0, 0)     /* counters 2 and 3 (J0 + 1, + 2) */
#define PAIR_STEP _mm256_set_epi32(2, 0, 0, 0, 2, 0, 0, 0)

struct ystream {                  /* one packet's CTR + GHASH pass in progress */
    const struct ystate *st;
    uint8_t *buf;
    size_t len, nb, total;        /* bytes; data blocks (last zero-padded); with the length block */
    __m128i len_block;
    __m256i base, n, x;
    __m256i nk[UNITS];            /* the keystream of the next chunk, computed ahead */
};

Y_TARGET static Y_INLINE void next_keystream(struct ystream *z, int rounds) {
#pragma GCC unroll 8
    for (int i = 0; i < UNITS; i++) {
        z->nk[i] = counter_y(z->base, z->n);
        z->n = _mm256_add_epi32(z->n, PAIR_STEP);
    }
    aes_units(&z->st->k, rounds, z->nk);
}

Y_TARGET static Y_INLINE void ystream_start(struct ystream *z, const struct ystate *st, int rounds, uint8_t *buf,
                                            size_t len) {
    z->st = st;
    z->buf = buf;
    z->len = len;
    z->nb = (len + 15) / 16;
    z->total = z->nb + 1;
    z->len_block = gx_gcm_len_block(len);
    z->base = _mm256_broadcastsi128_si256(st->nonce_block);
    z->n = FIRST_PAIR;
    z->x = _mm256_setzero_si256();
    if (len > 0)
        next_keystream(z, rounds);
    else
        memset(z->nk, 0, sizeof(z->nk));
}

/* The chunk of blocks s .. s + 15 (s < z->total). */
Y_TARGET static Y_INLINE void ystream_chunk(struct ystream *z, int rounds, size_t s, int seal) {
    size_t k = z->total - s < CHUNK ? z->total - s : CHUNK;
    const uint8_t *pw = z->st->p.pw + (CHUNK - k) * 16, *fold = z->st->p.fold + (CHUNK - k) * 16;
    __m256i ks[UNITS];
    memcpy(ks, z->nk, sizeof(ks));
    if ((s + CHUNK) * 16 < z->len)                 /* the next chunk's AES before this GHASH */
        next_keystream(z, rounds);
    struct yacc a = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 8
    for (size_t u = 0; 2 * u < k; u++) {
        size_t first = s + 2 * u;                  /* block index of lane 0 */
        __m256i c = _mm256_setzero_si256();
        if (first * 16 < z->len) {
            uint8_t *q = z->buf + first * 16;
            size_t n = z->len - first * 16;
            if (n >= 32) {
                __m256i d = _mm256_loadu_si256((const __m256i *)q), out = _mm256_xor_si256(d, ks[u]);
                _mm256_storeu_si256((__m256i *)q, out);
                c = seal ? out : d;
            } else {
                __m256i d = load_upto(q, n), out = _mm256_xor_si256(d, ks[u]);
                store_upto(q, out, n);
                c = seal ? first_bytes(out, n) : d;
            }
        }
        if (z->nb == first)                        /* the length block is in this register */
            c = _mm256_xor_si256(c, _mm256_zextsi128_si256(z->len_block));
        else if (z->nb == first + 1)
            c = _mm256_xor_si256(c, _mm256_inserti128_si256(_mm256_setzero_si256(), z->len_block, 1));
        c = bswap_y(c);
        if (u == 0)
            c = _mm256_xor_si256(c, z->x);
        yacc_add(&a, c, _mm256_loadu_si256((const __m256i *)(pw + 32 * u)),
                 _mm256_loadu_si256((const __m256i *)(fold + 32 * u)));
    }
    z->x = yacc_finish(a, 1);                      /* lane 0; lane 1 stays zero */
}

Y_TARGET static Y_INLINE __m128i ystream_tag(const struct ystream *z) {
    return _mm_xor_si128(gx_bswap128(_mm256_castsi256_si128(z->x)), z->st->ek_j0);
}

/* buf ^= the keystream of counters 2, 3, ..; the tag over the ciphertext (seal: buf is plaintext,
 * hash what is written; open: hash what is read). n packets (1 or 2) chunk by chunk in turn. */
Y_TARGET static Y_INLINE void crypt_and_hash_r(const struct ystate *st, int n, int rounds, uint8_t *const buf[],
                                               const size_t len[], int seal, __m128i tag[]) {
    struct ystream z[2];
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        ystream_start(&z[i], &st[i], rounds, buf[i], len[i]);
        total = z[i].total > total ? z[i].total : total;
    }
    for (size_t s = 0; s < total; s += CHUNK)
        for (int i = 0; i < n; i++)
            if (s < z[i].total)
                ystream_chunk(&z[i], rounds, s, seal);
    for (int i = 0; i < n; i++)
        tag[i] = ystream_tag(&z[i]);
}

Y_TARGET static void crypt_and_hash(const struct ystate *st, int n, uint8_t *const buf[], const size_t len[], int seal,
                                    __m128i tag[]) {
    if (n == 1 && st[0].k.rounds == 10)
        crypt_and_hash_r(st, 1, 10, buf, len, seal, tag);
    else if (n == 1)
        crypt_and_hash_r(st, 1, 14, buf, len, seal, tag);
    else if (st[0].k.rounds == 10)
        crypt_and_hash_r(st, 2, 10, buf, len, seal, tag);
    else
        crypt_and_hash_r(st, 2, 14, buf, len, seal, tag);
}

/* buf ^= the keystream alone (undoes a decryption whose tag did not match). */
Y_TARGET static void ctr_only(const struct ystate *st, uint8_t *buf, size_t len) {
    const __m256i base = _mm256_broadcastsi128_si256(st->nonce_block);
    __m256i n = FIRST_PAIR;
    for (size_t off = 0; off < len; off += 32 * UNITS) {
        __m256i ks[UNITS];
        for (int i = 0; i < UNITS; i++) {
            ks[i] = counter_y(base, n);
            n = _mm256_add_epi32(n, PAIR_STEP);
        }
        aes_units(&st->k, st->k.rounds, ks);
        for (size_t i = 0; i < UNITS && off + 32 * i < len; i++) {
            uint8_t *q = buf + off + 32 * i;
            size_t left = len - off - 32 * i;
            if (left >= 32)
                _mm256_storeu_si256((__m256i *)q, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)q), ks[i]));
            else
                store_upto(q, _mm256_xor_si256(load_upto(q, left), ks[i]), left);
        }
    }
}

Y_TARGET static int setup(struct ystate *st, const uint8_t *key, size_t key_len, const uint8_t *nonce) {
    __m128i rk[GX_AES_MAX_ROUNDS + 1];
    struct gx_gcm_base base;
    st->k.rounds = gx_gcm_base(key, key_len, nonce, rk, &base);
    if (st->k.rounds < 0)
        return -EINVAL;
    for (int r = 0; r <= st->k.rounds; r++)
        st->k.rk[r] = _mm256_broadcastsi128_si256(rk[r]);
    st->nonce_block = base.nonce_block;
    st->ek_j0 = base.ek_j0;
    make_powers_y(base.h_reflected, &st->p);
    explicit_bzero(rk, sizeof(rk));
    return 0;
}

/* n packets (1 or 2): seal, or open with the tags checked (a mask of the failed ones, each left as it
 * was). -EINVAL for a key length other than 16 or 32. */
Y_TARGET static int run(const uint8_t *const key[], size_t key_len, const uint8_t *nonce, uint8_t *const buf[],
                        const size_t len[], int n, int seal, uint8_t *const out_tag[], const uint8_t *const in_tag[]) {
    struct ystate st[2];
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = setup(&st[i], key[i], key_len, nonce);
    if (rc == 0) {
        __m128i tag[2];
        crypt_and_hash(st, n, buf, len, seal, tag);
        for (int i = 0; i < n; i++) {
            if (seal) {
                _mm_storeu_si128((__m128i *)out_tag[i], tag[i]);
                continue;
            }
            uint8_t want[GX_GCM_TAG_LEN];
            _mm_storeu_si128((__m128i *)want, tag[i]);
            if (CRYPTO_memcmp(want, in_tag[i], GX_GCM_TAG_LEN) != 0) {
                ctr_only(&st[i], buf[i], len[i]);  /* the ciphertext back: no unauthenticated plaintext */
                rc |= 1 << i;
            }
        }
    }
    explicit_bzero(st, (size_t)n * sizeof(st[0]));
    return rc;
}

int gx_gcm_avx2_cpu(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && gx_cpu_has_vaes() &&
           __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("aes") &&
           __builtin_cpu_supports("pclmul");
}

int gx_gcm_avx2_seal(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                     uint8_t *tag) {
    return run(&key, key_len, nonce, &buf, &len, 1, 1, &tag, NULL);
}

int gx_gcm_avx2_open(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                     const uint8_t *tag) {
    int rc = run(&key, key_len, nonce, &buf, &len, 1, 0, NULL, &tag);
    return rc < 0 ? rc : rc ? -EBADMSG : 0;
}

int gx_gcm_avx2_seal2(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce, uint8_t *const buf[2],
                      const size_t len[2], uint8_t *const tag[2]) {
    return run(key, key_len, nonce, buf, len, 2, 1, tag, NULL);
}

int gx_gcm_avx2_open2(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce, uint8_t *const buf[2],
                      const size_t len[2], const uint8_t *const tag[2]) {
    return run(key, key_len, nonce, buf, len, 2, 0, NULL, tag);
}

#else /* not x86-64 GCC/Clang */
int gx_gcm_avx2_cpu(void) {
    return 0;
}

int gx_gcm_avx2_seal(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                     uint8_t *tag) {
    (void)key, (void)key_len, (void)nonce, (void)buf, (void)len, (void)tag;
    return -EINVAL;
}

int gx_gcm_avx2_open(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                     const uint8_t *tag) {
    (void)key, (void)key_len, (void)nonce, (void)buf, (void)len, (void)tag;
    return -EINVAL;
}

int gx_gcm_avx2_seal2(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce, uint8_t *const buf[2],
                      const size_t len[2], uint8_t *const tag[2]) {
    (void)key, (void)key_len, (void)nonce, (void)buf, (void)len, (void)tag;
    return -EINVAL;
}

int gx_gcm_avx2_open2(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce, uint8_t *const buf[2],
                      const size_t len[2], const uint8_t *const tag[2]) {
    (void)key, (void)key_len, (void)nonce, (void)buf, (void)len, (void)tag;
    return -EINVAL;
}
#endif
