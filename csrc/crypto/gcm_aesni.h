/* AES key expansion and one-block encryption with AES-NI, shared by the two VAES implementations of
 * AES-GCM (gcm.c: 512-bit registers, gcm_avx2.c: 256-bit). Internal to csrc/. */
#ifndef GX_GCM_AESNI_H
#define GX_GCM_AESNI_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cpuid.h>
#include <immintrin.h>

#define GX_AES_MAX_ROUNDS 14

/* VAES in CPUID leaf 7 (ECX bit 9). Read here rather than with __builtin_cpu_supports("vaes"),
 * which clang does not know; callers also require avx2/avx512f from __builtin_cpu_supports, which
 * checks that the OS saves the vector registers (as gcc's "vaes" check does). */
static inline int gx_cpu_has_vaes(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 9));
}
#define AESNI_TARGET __attribute__((target("aes,ssse3")))

/* ---- AES key expansion (FIPS 197 section 5.2) ---------------------------------------------------
 * SubWord(RotWord(w)) ^ Rcon comes from AESENCLAST on w broadcast (rotated) into all four columns:
 * with equal columns ShiftRows changes nothing, so AESENCLAST is SubBytes then the XOR with a round
 * key of Rcon in every column. It has a shorter latency than AESKEYGENASSIST, and the expansion is
 * one dependent chain. */

/* w[i..i+3] from w[i-4..i-1] (prev) and t = the transformed word in every column. */
AESNI_TARGET static inline __m128i gx_aes_expand_step(__m128i prev, __m128i t) {
    prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 4));
    prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 8));
    return _mm_xor_si128(prev, t);
}

AESNI_TARGET static inline __m128i gx_aes_rot_sub(__m128i w, int rcon) {     /* SubWord(RotWord(w3)) ^ rcon */
    const __m128i rot3 = _mm_set_epi8(12, 15, 14, 13, 12, 15, 14, 13, 12, 15, 14, 13, 12, 15, 14, 13);
    return _mm_aesenclast_si128(_mm_shuffle_epi8(w, rot3), _mm_set1_epi32(rcon));
}

AESNI_TARGET static inline __m128i gx_aes_sub(__m128i w) {                   /* SubWord(w3) */
    const __m128i bcast3 = _mm_set_epi8(15, 14, 13, 12, 15, 14, 13, 12, 15, 14, 13, 12, 15, 14, 13, 12);
    return _mm_aesenclast_si128(_mm_shuffle_epi8(w, bcast3), _mm_setzero_si128());
}

/* The round keys of a 16- or 32-byte key into rk[0..rounds]: the number of rounds (10 or 14), or
 * -EINVAL for another key length. */
AESNI_TARGET static inline int gx_aes_expand(const uint8_t *key, size_t key_len, __m128i rk[GX_AES_MAX_ROUNDS + 1]) {
    static const int rcon[10] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36};
    if (key_len == 16) {
        rk[0] = _mm_loadu_si128((const __m128i *)key);
        for (int i = 1; i <= 10; i++)
            rk[i] = gx_aes_expand_step(rk[i - 1], gx_aes_rot_sub(rk[i - 1], rcon[i - 1]));
        return 10;
    }
    if (key_len == 32) {
        rk[0] = _mm_loadu_si128((const __m128i *)key);
        rk[1] = _mm_loadu_si128((const __m128i *)(key + 16));
        for (int i = 2; i <= 14; i += 2) {
            rk[i] = gx_aes_expand_step(rk[i - 2], gx_aes_rot_sub(rk[i - 1], rcon[i / 2 - 1]));
            if (i < 14)
                rk[i + 1] = gx_aes_expand_step(rk[i - 1], gx_aes_sub(rk[i]));
        }
        return 14;
    }
    return -EINVAL;
}

AESNI_TARGET static inline __m128i gx_aes_encrypt1(const __m128i rk[GX_AES_MAX_ROUNDS + 1], int rounds, __m128i x) {
    x = _mm_xor_si128(x, rk[0]);
    for (int r = 1; r < rounds; r++)
        x = _mm_aesenc_si128(x, rk[r]);
    return _mm_aesenclast_si128(x, rk[rounds]);
}

/* Byte order reversed within the 16 bytes (GHASH works on byte-reflected blocks). */
AESNI_TARGET static inline __m128i gx_bswap128(__m128i x) {
    return _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

/* The width-independent part of a packet's GCM setup (SP 800-38D 7.1, 96-bit IV): the round keys
 * into rk, nonce || 0 (the counter blocks' base), E_K(J0) (masks the tag) and the hash key H
 * byte-reflected. The number of rounds, or -EINVAL for a key length other than 16 or 32. The caller
 * wipes rk. */
struct gx_gcm_base {
    __m128i nonce_block, ek_j0, h_reflected;
};

AESNI_TARGET static inline int gx_gcm_base(const uint8_t *key, size_t key_len, const uint8_t nonce[12],
                                           __m128i rk[GX_AES_MAX_ROUNDS + 1], struct gx_gcm_base *out) {
    int rounds = gx_aes_expand(key, key_len, rk);
    if (rounds < 0)
        return rounds;
    uint8_t nb[16] = {0};
    memcpy(nb, nonce, 12);
    out->nonce_block = _mm_loadu_si128((const __m128i *)nb);
    nb[15] = 1;
    out->ek_j0 = gx_aes_encrypt1(rk, rounds, _mm_loadu_si128((const __m128i *)nb));
    out->h_reflected = gx_bswap128(gx_aes_encrypt1(rk, rounds, _mm_setzero_si128()));
    return rounds;
}

/* GHASH's last block for a message of len bytes and no additional data: [0]64 || [8 len]64. */
AESNI_TARGET static inline __m128i gx_gcm_len_block(size_t len) {
    return _mm_set_epi64x((long long)__builtin_bswap64((uint64_t)len * 8), 0);
}

#endif
