/* Shared helpers of the libFuzzer targets (tests/fuzz/README.md): a reader that takes bytes from the
 * fuzz input (zeros once it runs out, so every input is valid), and a check that aborts with a message
 * (libFuzzer records the input as a crash). */
#ifndef GX_FUZZ_H
#define GX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fz {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fz_u8(struct fz *f) {
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint16_t fz_u16(struct fz *f) {
    uint16_t hi = fz_u8(f);
    return (uint16_t)(hi << 8 | fz_u8(f));
}

/* Copy n bytes (zeros past the end of the input). */
static inline void fz_fill(struct fz *f, uint8_t *dst, size_t n) {
    size_t k = n < f->n ? n : f->n;
    memcpy(dst, f->p, k);
    memset(dst + k, 0, n - k);
    f->p += k;
    f->n -= k;
}

/* The next record: a 2-byte big-endian length, then that many bytes (fewer at the end of the input).
 * *len gets the record's length; returns a pointer into the input, or NULL when the input is used up. */
static inline const uint8_t *fz_record(struct fz *f, size_t *len) {
    if (f->n < 2) {
        f->n = 0;
        return NULL;
    }
    size_t want = fz_u16(f);
    size_t k = want < f->n ? want : f->n;
    const uint8_t *p = f->p;
    f->p += k;
    f->n -= k;
    *len = k;
    return p;
}

#define FZ_CHECK(cond, ...)                                                                                  \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#endif
