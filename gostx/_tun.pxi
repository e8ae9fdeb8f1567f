# TUN/TAP devices (csrc/tun/tun_linux.c, csrc/tun/tun_offload.c): open, and batch read/write for tests and
# tools. The tunnel data path calls the C functions directly; these wrappers copy packets into
# Python bytes and are not meant for traffic.

TUN_F_CSUM = GX_TUN_F_CSUM
TUN_F_TSO4 = GX_TUN_F_TSO4
TUN_F_TSO6 = GX_TUN_F_TSO6
TUN_F_USO4 = GX_TUN_F_USO4
TUN_F_USO6 = GX_TUN_F_USO6
TUN_VNET_NONE = GX_TUN_VNET_NONE
TUN_VNET_CSUM = GX_TUN_VNET_CSUM
TUN_VNET_GSO = GX_TUN_VNET_GSO
TUN_VNET_GSO_ETH = GX_TUN_VNET_GSO_ETH
TUN_MAX_QUEUES = GX_TUN_MAX_QUEUES


def tun_vnet_mode(bint vnet_hdr, unsigned offloads, bint tap=False):
    """The vnet_hdr value the read/write calls need for a device opened with these results."""
    if not vnet_hdr:
        return GX_TUN_VNET_NONE
    if not offloads & GX_TUN_F_GSO_ANY:
        return GX_TUN_VNET_CSUM
    return GX_TUN_VNET_GSO_ETH if tap else GX_TUN_VNET_GSO


def tun_open(str name, bint tap, int queues=1, bint vnet_hdr=False, bint gso=False):
    """Create (or attach to) TUN/TAP device `name` ("" = the kernel picks tunN/tapN).

    Returns (name, fds, offloads). queues > 1 makes a multi-queue device with one fd per queue.
    Raises OSError with the errno (EBUSY: name in use, EPERM: no CAP_NET_ADMIN, ENOENT: no
    /dev/net/tun) and the device name as filename.
    """
    cdef bytes raw = name.encode()
    cdef const char *cname = raw
    cdef unsigned flags = 0
    cdef gx_tun_info info
    cdef int rc
    cdef int nq = queues
    if queues < 1 or queues > GX_TUN_MAX_QUEUES:
        raise ValueError(f"queues must be 1..{GX_TUN_MAX_QUEUES}, not {queues}")
    if tap:
        flags |= GX_TUN_TAP
    if queues > 1:
        flags |= GX_TUN_MULTI_QUEUE
    if vnet_hdr:
        flags |= GX_TUN_VNET_HDR
    if gso:
        flags |= GX_TUN_GSO
    cdef int *fds = <int *>PyMem_Malloc(nq * sizeof(int))
    if fds == NULL:
        raise MemoryError()
    try:
        with nogil:
            rc = gx_tun_open(cname, flags, nq, fds, &info)
        if rc < 0:
            raise OSError(-rc, strerror(-rc).decode(), name)
        return info.name.decode(), [fds[i] for i in range(nq)], info.offloads
    finally:
        PyMem_Free(fds)


cdef gx_batch *_new_batch(uint32_t cap, uint32_t slot_size) except NULL:
    cdef gx_batch *b = <gx_batch *>PyMem_Malloc(sizeof(gx_batch))
    if b == NULL:
        raise MemoryError()
    cdef int rc = gx_batch_init(b, cap, slot_size, GX_HEADROOM)
    if rc < 0:
        PyMem_Free(b)
        raise OSError(-rc, strerror(-rc).decode())
    return b


cdef void _free_batch(gx_batch *b) noexcept:
    gx_batch_free(b)
    PyMem_Free(b)


def tun_read_batch(int fd, int vnet_hdr=0, int max=GX_BATCH_MAX, int slot_size=GX_SLOT_SIZE):
    """Read up to `max` packets in one C call; [] when none are waiting (the fd is non-blocking).

    vnet_hdr: 0, or the device's vnet mode (True/1: header, 2: header and GSO splitting; see
    tun_vnet_mode). Packets larger than slot_size - 96 bytes are dropped.
    """
    if max < 1 or max > GX_BATCH_MAX:
        raise ValueError(f"max must be 1..{GX_BATCH_MAX}, not {max}")
    if slot_size <= GX_HEADROOM + GX_TAILROOM or slot_size > (1 << 20):
        raise ValueError(f"slot_size {slot_size} is out of range")
    cdef gx_batch *b = _new_batch(max, slot_size)
    cdef int rc
    try:
        with nogil:
            rc = gx_tun_read_batch(fd, vnet_hdr, b)
        if rc == -EAGAIN:
            return []
        if rc < 0:
            raise OSError(-rc, strerror(-rc).decode())
        return [PyBytes_FromStringAndSize(<char *>b.pkt[i].data, b.pkt[i].len) for i in range(rc)]
    finally:
        _free_batch(b)


def tun_write_batch(int fd, list packets, int vnet_hdr=0):
    """Write the packets in C batches of up to 128; empty ones are skipped. Returns how many the
    kernel took (a packet it refuses, or one that finds the queue full, is dropped)."""
    cdef Py_ssize_t total = len(packets)
    cdef Py_ssize_t start, i, count
    cdef uint32_t longest = 0
    cdef bytes pkt
    cdef int rc
    cdef int written = 0
    for p in packets:
        if not isinstance(p, bytes):
            raise TypeError(f"packets must be bytes, not {type(p).__name__}")
        if <uint32_t>len(p) > longest:
            longest = <uint32_t>len(p)
    if total == 0:
        return 0
    cdef uint32_t slot_size = longest + <uint32_t>(GX_HEADROOM + GX_TAILROOM)
    if slot_size < <uint32_t>GX_SLOT_SIZE:
        slot_size = GX_SLOT_SIZE
    cdef gx_batch *b = _new_batch(GX_BATCH_MAX, slot_size)
    try:
        for start in range(0, total, GX_BATCH_MAX):
            count = min(GX_BATCH_MAX, total - start)
            for i in range(count):
                pkt = packets[start + i]
                b.pkt[i].data = b.mem + i * b.slot_size + b.headroom
                b.pkt[i].len = <uint32_t>len(pkt)
                b.pkt[i].flags = 0
                if len(pkt):
                    memcpy(b.pkt[i].data, <const char *>pkt, len(pkt))
            b.n = <uint32_t>count
            with nogil:
                rc = gx_tun_write_batch(fd, vnet_hdr, b)
            if rc < 0:
                raise OSError(-rc, strerror(-rc).decode())
            written += rc
        return written
    finally:
        _free_batch(b)
