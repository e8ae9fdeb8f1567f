/* SHA-1 compression with the x86 SHA extensions (SHA-NI), several independent blocks interleaved.
 * Internal to csrc/ (hkdf.c's block path). */
#ifndef GX_SHA1_SHANI_H
#define GX_SHA1_SHANI_H

#include <stdint.h>

struct gx_sha1_job {              /* h = SHA-1 compression of (h, blk): h[5] in host order, blk 64 bytes */
    uint32_t *h;
    const uint8_t *blk;
};

/* 1 if the CPU has SHA-NI (and SSE4.1), else 0. */
int gx_sha1_shani_cpu(void);

/* Every job of j[0..n-1]; call only when gx_sha1_shani_cpu(). */
void gx_sha1_shani_blocks(const struct gx_sha1_job *j, int n);

#endif
