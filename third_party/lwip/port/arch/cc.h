/* lwIP architecture glue for gostx (Linux, gcc/clang, glibc). */
#ifndef GX_LWIP_ARCH_CC_H
#define GX_LWIP_ARCH_CC_H

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>

/* BYTE_ORDER, LITTLE_ENDIAN and BIG_ENDIAN come from <endian.h>. */
#if BYTE_ORDER == LITTLE_ENDIAN
#define lwip_htons(x) ((u16_t)__builtin_bswap16((u16_t)(x)))
#define lwip_htonl(x) ((u32_t)__builtin_bswap32((u32_t)(x)))
#endif

#define LWIP_TIMEVAL_PRIVATE 0
#define LWIP_NO_CTYPE_H 0

/* Random numbers: TCP port seeds and initial sequence numbers (csrc/stack/port.c). */
unsigned int gx_lwip_rand(void);
#define LWIP_RAND() ((u32_t)gx_lwip_rand())

#define LWIP_PLATFORM_DIAG(x) do { printf x; } while (0)
/* An lwIP assertion is a bug in lwIP or in our glue: say where, and stop. */
#define LWIP_PLATFORM_ASSERT(x) do { \
        fprintf(stderr, "gostx: lwIP assertion \"%s\" failed at %s:%d\n", x, __FILE__, __LINE__); \
        fflush(stderr); abort(); } while (0)

#endif
