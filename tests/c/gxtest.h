/* A minimal C test harness: CHECK(cond, ...) records a failure and goes on; TEST_MAIN prints the
 * closing line "N passed, N failed" and exits non-zero on any failure. */
#ifndef GXTEST_H
#define GXTEST_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gxt_passed, gxt_failed;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (cond) {                                                                   \
            gxt_passed++;                                                             \
        } else {                                                                      \
            gxt_failed++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

#define TEST_DONE()                                                                   \
    do {                                                                              \
        printf("%d passed, %d failed\n", gxt_passed, gxt_failed);                     \
        return gxt_failed ? 1 : 0;                                                    \
    } while (0)
/* Hex text to bytes (test vectors); returns the byte count. */
static inline size_t gxt_unhex(const char *h, uint8_t *out) {
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}
#endif
