/* The event ring (data-plane thread -> caller): new flows, with an eventfd that the caller's event loop
 * watches. A full ring refuses the event; the flow is then refused too (the caller cannot decide on
 * what it never heard of). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stack_int.h"

int events_init(struct gx_stack *s, uint32_t cap) {
    s->ev_ring = calloc(cap, sizeof(*s->ev_ring));
    if (s->ev_ring == NULL)
        return -ENOMEM;
    s->ev_cap = cap;
    s->ev_head = 0;
    s->ev_count = 0;
    return -pthread_mutex_init(&s->ev_lock, NULL);
}

void events_free(struct gx_stack *s) {
    if (s->ev_ring == NULL)
        return;
    for (uint32_t k = 0; k < s->ev_count; k++)
        free(s->ev_ring[(s->ev_head + k) % s->ev_cap].data);
    free(s->ev_ring);
    s->ev_ring = NULL;
    pthread_mutex_destroy(&s->ev_lock);
}

int events_push(struct gx_stack *s, struct gx_stack_event *ev) {
    pthread_mutex_lock(&s->ev_lock);
    if (s->ev_count == s->ev_cap) {
        pthread_mutex_unlock(&s->ev_lock);
        free(ev->data);
        ev->data = NULL;
        STAT_ADD(s, event_overflows, 1);
        return -ENOBUFS;
    }
    bool was_empty = s->ev_count == 0;
    s->ev_ring[(s->ev_head + s->ev_count) % s->ev_cap] = *ev;
    s->ev_count++;
    pthread_mutex_unlock(&s->ev_lock);
    ev->data = NULL;
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(s->ev_efd, &one, sizeof(one));
        (void)w; /* EAGAIN only when the counter is huge: the caller is woken anyway */
    }
    return 0;
}

int gx_stack_poll_events(struct gx_stack *s, struct gx_stack_event *ev, int max) {
    if (max <= 0)
        return -EINVAL;
    uint64_t drained;
    ssize_t r = read(s->ev_efd, &drained, sizeof(drained));
    (void)r; /* EAGAIN: nothing was signalled; still look */
    pthread_mutex_lock(&s->ev_lock);
    int n = 0;
    while (n < max && s->ev_count > 0) {
        ev[n++] = s->ev_ring[s->ev_head];
        memset(&s->ev_ring[s->ev_head], 0, sizeof(s->ev_ring[0]));
        s->ev_head = (s->ev_head + 1) % s->ev_cap;
        s->ev_count--;
    }
    bool more = s->ev_count > 0;
    pthread_mutex_unlock(&s->ev_lock);
    if (more) { /* keep the caller's reader woken for the rest */
        uint64_t one = 1;
        ssize_t w = write(s->ev_efd, &one, sizeof(one));
        (void)w;
    }
    return n;
}

void gx_stack_event_release(struct gx_stack_event *ev) {
    free(ev->data);
    ev->data = NULL;
    ev->len = 0;
}

void event_fill_addrs(struct gx_stack_event *ev, const ip_addr_t *src, uint16_t sport, const ip_addr_t *dst,
                      uint16_t dport) {
    memset(ev->src, 0, sizeof(ev->src));
    memset(ev->dst, 0, sizeof(ev->dst));
    if (IP_IS_V6(src)) {
        ev->family = 6;
        memcpy(ev->src, ip_2_ip6(src)->addr, 16);
        memcpy(ev->dst, ip_2_ip6(dst)->addr, 16);
    } else {
        ev->family = 4;
        memcpy(ev->src, &ip_2_ip4(src)->addr, 4);
        memcpy(ev->dst, &ip_2_ip4(dst)->addr, 4);
    }
    ev->sport = sport;
    ev->dport = dport;
}
