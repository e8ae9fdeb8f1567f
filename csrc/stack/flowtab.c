/* The flow table: flow ids -> TCP flows and UDP sessions, for the caller's decisions.
 *
 * An id is (generation << 32 | slot). A slot's generation changes whenever its flow leaves, so a late
 * decision for a finished flow never reaches the next flow in the same slot. Slots come from a free
 * list and the arrays double when full, up to max_flows. */
#include <errno.h>
#include <stdlib.h>

#include "stack_int.h"

#define NO_SLOT UINT32_MAX

static int grow(struct gx_stack *s) {
    uint32_t old = s->n_slots, cap = old ? old * 2 : 256;
    if (cap > s->cfg.max_flows)
        cap = s->cfg.max_flows;
    if (cap <= old)
        return -ENOSPC;
    struct flow **slots = realloc(s->slots, cap * sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    s->slots = slots;
    uint32_t *gens = realloc(s->gens, cap * sizeof(*gens));
    if (gens == NULL)
        return -ENOMEM;
    s->gens = gens;
    uint32_t *next = realloc(s->free_next, cap * sizeof(*next));
    if (next == NULL)
        return -ENOMEM;
    s->free_next = next;
    for (uint32_t i = old; i < cap; i++) {
        s->slots[i] = NULL;
        s->gens[i] = 1;
        s->free_next[i] = (i + 1 < cap) ? i + 1 : s->free_head;
    }
    s->free_head = old;
    s->n_slots = cap;
    return 0;
}

int flowtab_init(struct gx_stack *s) {
    s->slots = NULL;
    s->gens = NULL;
    s->free_next = NULL;
    s->n_slots = 0;
    s->n_flows = 0;
    s->free_head = NO_SLOT;
    return grow(s);
}

void flowtab_free(struct gx_stack *s) {
    free(s->slots);
    free(s->gens);
    free(s->free_next);
    s->slots = NULL;
    s->gens = NULL;
    s->free_next = NULL;
    s->n_slots = 0;
}

int flowtab_add(struct gx_stack *s, struct flow *f) {
    if (s->free_head == NO_SLOT) {
        int rc = grow(s);
        if (rc < 0)
            return rc;
    }
    uint32_t i = s->free_head;
    s->free_head = s->free_next[i];
    s->slots[i] = f;
    s->n_flows++;
    f->slot = i;
    f->id = ((uint64_t)s->gens[i] << 32) | i;
    return 0;
}

struct flow *flowtab_get(struct gx_stack *s, uint64_t id) {
    uint32_t i = (uint32_t)id;
    if (i >= s->n_slots || s->slots[i] == NULL || s->gens[i] != (uint32_t)(id >> 32))
        return NULL;
    return s->slots[i];
}

void flowtab_remove(struct gx_stack *s, struct flow *f) {
    uint32_t i = f->slot;
    if (i >= s->n_slots || s->slots[i] != f)
        return;
    s->slots[i] = NULL;
    s->gens[i]++;
    if (s->gens[i] == 0)
        s->gens[i] = 1;
    s->free_next[i] = s->free_head;
    s->free_head = i;
    s->n_flows--;
    f->slot = NO_SLOT;
}
