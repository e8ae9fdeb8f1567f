/* SHA-1 compression with SHA-NI (FIPS 180-4 section 6.1.2 done by the SHA1RNDS4, SHA1NEXTE, SHA1MSG1
 * and SHA1MSG2 instructions), JOBS independent blocks at once. One block alone is a chain of twenty
 * dependent SHA1RNDS4: interleaving independent blocks fills the waits between them (HKDF-SHA1 of
 * Shadowsocks subkeys is eight or ten blocks a salt, the salts independent of each other). */
#include "gx/base.h"
#include "sha1_shani.h"

#if GX_SIMD
#include <cpuid.h>
#include <immintrin.h>

#define SHA_TARGET __attribute__((target("sha,sse4.1")))
#define JOBS 2

struct lanes {
    __m128i abcd[JOBS], e0[JOBS], e1[JOBS], m[JOBS][4];
    __m128i abcd_save[JOBS], e_save[JOBS];
};

/* Rounds 4g .. 4g+3 of every job. The E value for them is E0 (g even) or E1 (g odd); the other one
 * takes ABCD before the rounds. The message words of group g + 1 (SHA1MSG2), g + 2 (XOR) and g + 3
 * (SHA1MSG1) are prepared on the way. */
#define GROUP(s, g)                                                                                    \
    _Pragma("GCC unroll 4") for (int q = 0; q < JOBS; q++) {                                          \
        __m128i *ecur = (g) % 2 ? &(s)->e1[q] : &(s)->e0[q], *enext = (g) % 2 ? &(s)->e0[q] : &(s)->e1[q]; \
        __m128i *m = (s)->m[q];                                                                        \
        if ((g) == 0)                                                                                  \
            *ecur = _mm_add_epi32(*ecur, m[0]);                                                        \
        else                                                                                           \
            *ecur = _mm_sha1nexte_epu32(*ecur, m[(g) % 4]);                                            \
        *enext = (s)->abcd[q];                                                                         \
        if ((g) >= 3 && (g) <= 18)                                                                     \
            m[((g) + 1) % 4] = _mm_sha1msg2_epu32(m[((g) + 1) % 4], m[(g) % 4]);                      \
        (s)->abcd[q] = _mm_sha1rnds4_epu32((s)->abcd[q], *ecur, (g) / 5);                              \
        if ((g) >= 1 && (g) <= 16)                                                                     \
            m[((g) + 3) % 4] = _mm_sha1msg1_epu32(m[((g) + 3) % 4], m[(g) % 4]);                      \
        if ((g) >= 2 && (g) <= 17)                                                                     \
            m[((g) + 2) % 4] = _mm_xor_si128(m[((g) + 2) % 4], m[(g) % 4]);                           \
    }

SHA_TARGET static inline __attribute__((always_inline)) void compress(const struct gx_sha1_job *j) {
    const __m128i bswap = _mm_set_epi64x(0x0001020304050607ll, 0x08090a0b0c0d0e0fll);
    struct lanes s;
#pragma GCC unroll 4
    for (int q = 0; q < JOBS; q++) {
        const uint32_t *h = j[q].h;
        s.abcd[q] = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1b);
        s.e0[q] = _mm_set_epi32((int)h[4], 0, 0, 0);
        s.e1[q] = _mm_setzero_si128();
        s.abcd_save[q] = s.abcd[q];
        s.e_save[q] = s.e0[q];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            s.m[q][i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(j[q].blk + 16 * i)), bswap);
    }
    GROUP(&s, 0) GROUP(&s, 1) GROUP(&s, 2) GROUP(&s, 3) GROUP(&s, 4)
    GROUP(&s, 5) GROUP(&s, 6) GROUP(&s, 7) GROUP(&s, 8) GROUP(&s, 9)
    GROUP(&s, 10) GROUP(&s, 11) GROUP(&s, 12) GROUP(&s, 13) GROUP(&s, 14)
    GROUP(&s, 15) GROUP(&s, 16) GROUP(&s, 17) GROUP(&s, 18) GROUP(&s, 19)
#pragma GCC unroll 4
    for (int q = 0; q < JOBS; q++) {                /* after group 19, E0 holds ABCD of before it */
        __m128i e = _mm_sha1nexte_epu32(s.e0[q], s.e_save[q]);
        __m128i abcd = _mm_shuffle_epi32(_mm_add_epi32(s.abcd[q], s.abcd_save[q]), 0x1b);
        _mm_storeu_si128((__m128i *)j[q].h, abcd);
        j[q].h[4] = (uint32_t)_mm_extract_epi32(e, 3);
    }
}

SHA_TARGET void gx_sha1_shani_blocks(const struct gx_sha1_job *j, int n) {
    static const uint8_t spare_blk[64];
    uint32_t spare_h[JOBS][5] = {{0}};
    while (n >= JOBS) {
        compress(j);
        j += JOBS;
        n -= JOBS;
    }
    if (n > 0) {                                    /* the rest, padded with throwaway jobs */
        struct gx_sha1_job t[JOBS];
        for (int q = 0; q < JOBS; q++)
            t[q] = q < n ? j[q] : (struct gx_sha1_job){spare_h[q], spare_blk};
        compress(t);
    }
}

int gx_sha1_shani_cpu(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 29)))     /* SHA */
        return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("ssse3");
}
#else
int gx_sha1_shani_cpu(void) {
    return 0;
}

void gx_sha1_shani_blocks(const struct gx_sha1_job *j, int n) {
    (void)j, (void)n;
}
#endif
