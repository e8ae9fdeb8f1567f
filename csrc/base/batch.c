/* Batch buffers: one allocation, cap slots of slot_size bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gx/base.h"

int gx_batch_init(struct gx_batch *b, uint32_t cap, uint32_t slot_size, uint32_t headroom) {
    memset(b, 0, sizeof(*b));
    if (cap == 0 || cap > GX_BATCH_MAX || slot_size <= headroom + GX_TAILROOM)
        return -EINVAL;
    b->mem = aligned_alloc(64, (size_t)cap * slot_size);
    if (b->mem == NULL)
        return -ENOMEM;
    b->cap = cap;
    b->slot_size = slot_size;
    b->headroom = headroom;
    gx_batch_reset(b);
    return 0;
}

void gx_batch_free(struct gx_batch *b) {
    free(b->mem);
    b->mem = NULL;
    b->cap = b->n = 0;
}

void gx_batch_reset(struct gx_batch *b) {
    for (uint32_t i = 0; i < b->cap; i++) {
        b->pkt[i].data = gx_batch_slot(b, i) + b->headroom;
        b->pkt[i].len = 0;
        b->pkt[i].flags = 0;
    }
    b->n = 0;
}
