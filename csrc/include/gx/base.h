/* gx/base.h: the public interface of csrc/base/ (one header per csrc folder).
 * Sections: bytes, batch, cpu. */
#ifndef GX_BASE_H
#define GX_BASE_H

/* Reading and writing integers at any byte position of a packet, in network (big-endian) or
 * little-endian (virtio_net_hdr) order. */

#include <stdint.h>

static inline uint16_t rd16be(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32be(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16be(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint64_t rd64be(const uint8_t *p) { return (uint64_t)rd32be(p) << 32 | rd32be(p + 4); }
static inline void wr64be(uint8_t *p, uint64_t v) { wr32be(p, (uint32_t)(v >> 32)); wr32be(p + 4, (uint32_t)v); }
static inline uint16_t rd16le(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void wr16le(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* A batch of packets in one preallocated buffer: the unit that every data-plane call moves.
 *
 * Each slot is slot_size bytes: [headroom | packet ... | tailroom]. pkt[i].data points into slot i
 * (normally slot + headroom), so sealing can grow a packet in place at both ends (salt in front,
 * tag behind) and opening can shrink it without copying. A packet whose len is 0 is "dropped": the
 * writers skip it and the rest of the batch is untouched.
 */

#include <stddef.h>
#include <sys/socket.h>

#define GX_BATCH_MAX 128          /* the most packets one call moves */
#define GX_HEADROOM 64            /* room in front of a packet: salt (<= 32) and stream framing */
#define GX_TAILROOM 32            /* room behind a packet: the AEAD tag (16) */
#define GX_SLOT_SIZE 2048         /* default slot: MTU up to 2048 - head - tail */

struct gx_pkt {
    uint8_t *data;                /* first byte of the packet, inside its slot */
    uint32_t len;                 /* bytes; 0 = dropped / empty */
    uint32_t flags;               /* per-packet marks a stage may set (GX_PKT_*) */
};

#define GX_PKT_CONTROL 0x1u       /* a tunnel control message, not a data packet */
#define GX_PKT_GSO_HEAD 0x2u      /* the first segment of a super-packet split on read */

struct gx_batch {
    uint32_t n;                   /* packets present */
    uint32_t cap;                 /* slots (<= GX_BATCH_MAX) */
    uint32_t slot_size;
    uint32_t headroom;
    uint8_t *mem;                 /* cap * slot_size bytes */
    struct gx_pkt pkt[GX_BATCH_MAX];
    struct sockaddr_storage addr[GX_BATCH_MAX]; /* peer of each packet, where a stage needs one */
    socklen_t addrlen[GX_BATCH_MAX];
};

/* Allocate a batch of cap slots of slot_size bytes with the given headroom. 0 or -errno. */
int gx_batch_init(struct gx_batch *b, uint32_t cap, uint32_t slot_size, uint32_t headroom);
void gx_batch_free(struct gx_batch *b);
/* Point every pkt at its slot + headroom, len 0, n = 0. */
void gx_batch_reset(struct gx_batch *b);
/* Bytes a packet in slot i may occupy from pkt[i].data to the end of the slot, minus the tailroom. */
static inline uint32_t gx_batch_room(const struct gx_batch *b) {
    return b->slot_size - b->headroom - GX_TAILROOM;
}
static inline uint8_t *gx_batch_slot(const struct gx_batch *b, uint32_t i) {
    return b->mem + (size_t)i * b->slot_size;
}

/* A CPU feature probe run once per process and remembered (internal to csrc/). */

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

#endif /* GX_BASE_H */
