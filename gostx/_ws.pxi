# WebSocket framing (csrc/ws.c): the mask applied while copying, so a frame costs one pass over its payload.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef extern from "gx/ws.h" nogil:
    struct gx_ws_frame:
        uint32_t header_len
        uint64_t payload_len
        uint8_t opcode, fin, rsv, masked
        uint8_t key[4]
    void gx_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *key, size_t offset)
    int gx_ws_header(uint8_t *out, uint8_t opcode, int fin, uint64_t payload_len, const uint8_t *key)
    int gx_ws_parse_header(const uint8_t *buf, size_t avail, gx_ws_frame *f)
    long gx_ws_encode(uint8_t *out, size_t cap, uint8_t opcode, int fin, const uint8_t *payload, size_t len,
                      const uint8_t *key)

    enum:
        GX_WS_ROLE_CLIENT
        GX_WS_ROLE_SERVER
        GX_WS_EV_NONE
        GX_WS_EV_PING
        GX_WS_EV_CLOSE
        GX_WS_EV_ERROR
    struct gx_ws_event:
        int type
        size_t out_len
        uint16_t code
        const uint8_t *payload
        size_t payload_len
        const char *error
    struct gx_ws_reader_stats:
        uint64_t frames, data_bytes, pings, pongs
    struct gx_ws_reader:
        gx_ws_reader_stats stats
    void gx_ws_reader_init(gx_ws_reader *r, int role, uint64_t max_frame)
    long gx_ws_read(gx_ws_reader *r, const uint8_t *inp, size_t in_len, uint8_t *out, size_t out_cap,
                    gx_ws_event *ev)

cdef enum:
    _WS_HEADER_MAX = 14


cdef inline const uint8_t *_ws_key(object key) except? NULL:
    if key is None:
        return NULL
    if not isinstance(key, bytes) or len(<bytes>key) != 4:
        raise ValueError("a WebSocket mask key is 4 bytes")
    return <const uint8_t *>PyBytes_AS_STRING(key)


def ws_mask(const unsigned char[::1] data, bytes key, size_t offset=0):
    """data XOR the rotating 4-byte key (starting at key position offset % 4), as new bytes (one copy)."""
    cdef const uint8_t *k = _ws_key(key)
    cdef Py_ssize_t n = data.shape[0]
    out = PyBytes_FromStringAndSize(NULL, n)
    if n:
        gx_ws_mask_copy(<uint8_t *>PyBytes_AS_STRING(out), &data[0], <size_t>n, k, offset)
    return out


def ws_frame(const unsigned char[::1] payload, int opcode=2, bint fin=True, object key=None):
    """One frame: header + payload (masked with key when given), built in one buffer."""
    cdef const uint8_t *k = _ws_key(key)
    cdef uint8_t header[_WS_HEADER_MAX]
    cdef Py_ssize_t n = payload.shape[0]
    if opcode < 0 or opcode > 15:
        raise ValueError(f"WebSocket opcode {opcode} out of range 0..15")
    cdef int hlen = gx_ws_header(header, <uint8_t>opcode, fin, <uint64_t>n, k)
    out = PyBytes_FromStringAndSize(NULL, hlen + n)
    cdef uint8_t *dst = <uint8_t *>PyBytes_AS_STRING(out)
    memcpy(dst, header, hlen)
    if n:
        if k != NULL:
            gx_ws_mask_copy(dst + hlen, &payload[0], <size_t>n, k, 0)
        else:
            memcpy(dst + hlen, &payload[0], <size_t>n)
    return out


def ws_parse_header(const unsigned char[::1] buf, Py_ssize_t offset=0):
    """The frame header at buf[offset:]: (header_len, payload_len, opcode, fin, rsv, key or None), or None
    when incomplete. ValueError for a 64-bit length with its top bit set."""
    cdef gx_ws_frame f
    cdef Py_ssize_t n = buf.shape[0]
    if offset < 0 or offset > n:
        raise ValueError("offset out of range")
    if offset == n:
        return None
    cdef int rc = gx_ws_parse_header(&buf[offset], <size_t>(n - offset), &f)
    if rc == 0:
        return None
    if rc < 0:
        raise ValueError("WebSocket frame length has its top bit set")
    key = PyBytes_FromStringAndSize(<const char *>f.key, 4) if f.masked else None
    return (f.header_len, f.payload_len, f.opcode, bool(f.fin), f.rsv, key)


def ws_read(const unsigned char[::1] stream, bint server, uint64_t max_frame=0, Py_ssize_t piece=0,
            Py_ssize_t out_size=65536):
    """Read a WebSocket byte stream with the C reader (gx_ws_read), piece bytes at a time (0: all at once)
    into an out_size buffer: (data, events), events as ("ping", 0, payload), ("close", code, reason) or
    ("error", code, description); reading stops at a close or an error. For tests (one call per stream)."""
    cdef gx_ws_reader r
    cdef gx_ws_event ev
    cdef Py_ssize_t n = stream.shape[0], pos = 0, end
    cdef long k
    if out_size < 1 or piece < 0:
        raise ValueError("out_size must be >= 1 and piece >= 0")
    gx_ws_reader_init(&r, GX_WS_ROLE_SERVER if server else GX_WS_ROLE_CLIENT, max_frame)
    out = bytearray(out_size)
    cdef unsigned char[::1] ob = out
    data = bytearray()
    events = []
    while pos < n:
        end = n if piece == 0 or n - pos <= piece else pos + piece
        while pos < end:
            k = gx_ws_read(&r, &stream[pos], <size_t>(end - pos), &ob[0], <size_t>out_size, &ev)
            if k < 0:
                raise OSError(-k, "WebSocket reader finished")
            pos += k
            data += ob[:ev.out_len]
            if ev.type == GX_WS_EV_PING:
                events.append(("ping", 0, PyBytes_FromStringAndSize(<const char *>ev.payload, ev.payload_len)))
            elif ev.type == GX_WS_EV_CLOSE:
                events.append(("close", ev.code, PyBytes_FromStringAndSize(<const char *>ev.payload, ev.payload_len)))
                return bytes(data), events
            elif ev.type == GX_WS_EV_ERROR:
                events.append(("error", ev.code, ev.error.decode()))
                return bytes(data), events
    return bytes(data), events
