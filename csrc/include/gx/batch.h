/* A batch of packets in one preallocated buffer: the unit that every data-plane call moves.
 *
 * Each slot is slot_size bytes: [headroom | packet ... | tailroom]. pkt[i].data points into slot i
 * (normally slot + headroom), so sealing can grow a packet in place at both ends (salt in front,
 * tag behind) and opening can shrink it without copying. A packet whose len is 0 is "dropped": the
 * writers skip it and the rest of the batch is untouched.
 */
#ifndef GX_BATCH_H
#define GX_BATCH_H

#include <stddef.h>
#include <stdint.h>
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

#endif
