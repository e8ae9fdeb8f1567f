# Counters of process-wide C parts that no service object owns, read once per scrape (gostx/metrics).

from libc.stdint cimport uint64_t

cdef extern from "gx/resolve.h" nogil:
    struct gx_resolve_stats:
        uint64_t lookups
        uint64_t misses
        uint64_t resolved
        uint64_t failed
        uint64_t queue_full
    void gx_resolve_get_stats(gx_resolve_stats *out)


def resolve_stats() -> dict:
    """The data plane's name resolver (csrc/resolve.c): lookups, cache misses, names resolved, failed,
    lookups refused because the queue was full."""
    cdef gx_resolve_stats st
    gx_resolve_get_stats(&st)
    return {"lookups": st.lookups, "misses": st.misses, "resolved": st.resolved, "failed": st.failed,
            "queue_full": st.queue_full}
