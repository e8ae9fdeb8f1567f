# cython: language_level=3
"""gostx._engine: the one extension module. A thin binding over the C data plane in csrc/.

Every loop that moves packets runs in C with the GIL released. Each data-plane area has its own
include file (gostx/_<area>.pxi) for its Python bindings; every C declaration is in gostx/_engine.pxd
(read before this file). C errors come back as -errno and are raised as OSError here.
"""

ENGINE_ABI = 1


cdef inline int _check(int rc) except -1:
    """Map a C return code (-errno on failure) to OSError."""
    if rc < 0:
        raise OSError(-rc, strerror(-rc).decode())
    return rc


include "_tun.pxi"
include "_aead.pxi"
include "_tunnel.pxi"
include "_stack.pxi"
include "_socks.pxi"
include "_faketcp.pxi"
include "_ws.pxi"
include "_xstream.pxi"
include "_splice.pxi"
include "_metrics.pxi"
include "_udp.pxi"
