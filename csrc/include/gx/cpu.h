/* A CPU feature probe run once per process and remembered (internal to csrc/). */
#ifndef GX_CPU_ONCE_H
#define GX_CPU_ONCE_H

#include <stdatomic.h>

/* *cache starts at -1; the first call runs probe() and keeps its answer (>= 0). Racing first calls
 * both probe, and get the same answer. */
static inline int gx_probe_once(_Atomic int *cache, int (*probe)(void)) {
    int v = atomic_load_explicit(cache, memory_order_relaxed);
    if (v < 0) {
        v = probe();
        atomic_store_explicit(cache, v, memory_order_relaxed);
    }
    return v;
}

/* GX_CRYPTO=openssl in the environment (any case): OpenSSL for AES-GCM and HKDF alike instead of our
 * SIMD code. Read once per process (gcm.c); 1 if set so, else 0. */
int gx_crypto_env_openssl(void);

/* GX_NO_SIMD (a build option: setup.py with GX_NO_SIMD=1, or -DGX_NO_SIMD) compiles our SIMD code
 * (gcm.c, gcm_avx2.c, hkdf.c's AVX-512 lanes, sha1_shani.c) to nothing: OpenSSL does it all. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(GX_NO_SIMD)
#define GX_SIMD 1
#else
#define GX_SIMD 0
#endif

#endif
