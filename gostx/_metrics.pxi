# Counters of process-wide C parts that no service object owns, read once per scrape (gostx/metrics).


def resolve_stats() -> dict:
    """The data plane's name resolver (csrc/proxy/resolve.c): lookups, cache misses, names resolved, failed,
    lookups refused because the queue was full."""
    cdef gx_resolve_stats st
    gx_resolve_get_stats(&st)
    return {"lookups": st.lookups, "misses": st.misses, "resolved": st.resolved, "failed": st.failed,
            "queue_full": st.queue_full}
