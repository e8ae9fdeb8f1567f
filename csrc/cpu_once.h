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

#endif
