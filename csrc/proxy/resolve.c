/* Non-blocking name lookups for the relay engine (gx/proxy.h): a direct-mapped cache under one mutex
 * and one resolver thread that calls getaddrinfo outside any event loop. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "gx/proxy.h"

enum { SLOT_EMPTY, SLOT_PENDING, SLOT_OK, SLOT_FAIL };

struct slot {
    uint8_t state;
    bool v4only;
    uint8_t len;
    char name[256];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t expires;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started;
    struct slot slot[GX_RESOLVE_SLOTS];
    uint32_t queue[GX_RESOLVE_QUEUE];
    uint32_t q_head, q_count;
    _Atomic uint64_t stats[5];
} R = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

enum { ST_LOOKUPS, ST_MISSES, ST_RESOLVED, ST_FAILED, ST_QUEUE_FULL };

static void count(int i) { atomic_fetch_add_explicit(&R.stats[i], 1, memory_order_relaxed); }

static int64_t now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static uint32_t hash(const uint8_t *name, size_t len, bool v4only) {
    uint32_t h = 2166136261u ^ (v4only ? 0x5bd1e995u : 0u);
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = name[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (uint8_t)(ch + 32); /* names are case-insensitive */
        h = (h ^ ch) * 16777619u;
    }
    return h % GX_RESOLVE_SLOTS;
}

static bool same(const struct slot *s, const uint8_t *name, size_t len, bool v4only) {
    return s->len == len && s->v4only == v4only && strncasecmp(s->name, (const char *)name, len) == 0;
}

static void *resolver_main(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&R.lock);
        while (R.q_count == 0)
            pthread_cond_wait(&R.cond, &R.lock);
        uint32_t idx = R.queue[R.q_head];
        R.q_head = (R.q_head + 1) % GX_RESOLVE_QUEUE;
        R.q_count--;
        struct slot *s = &R.slot[idx];
        char name[256];
        memcpy(name, s->name, s->len);
        name[s->len] = 0;
        uint8_t len = s->len;
        bool v4only = s->v4only;
        pthread_mutex_unlock(&R.lock);

        struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_family = v4only ? AF_INET : AF_UNSPEC};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(name, NULL, &hints, &res);
        bool ok = rc == 0 && res != NULL && res->ai_addrlen <= sizeof(struct sockaddr_storage);

        pthread_mutex_lock(&R.lock);
        if (s->state == SLOT_PENDING && same(s, (const uint8_t *)name, len, v4only)) {
            s->state = ok ? SLOT_OK : SLOT_FAIL;
            s->expires = now_s() + (ok ? GX_RESOLVE_TTL_OK : GX_RESOLVE_TTL_FAIL);
            if (ok) {
                memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
                s->addrlen = res->ai_addrlen;
            }
        }
        pthread_mutex_unlock(&R.lock);
        if (res)
            freeaddrinfo(res);
        count(ok ? ST_RESOLVED : ST_FAILED);
        gx_relay_kick_all();
    }
    return NULL;
}

int gx_resolve_lookup(const uint8_t *name, size_t name_len, bool v4only, struct sockaddr_storage *out,
                      socklen_t *out_len) {
    if (name_len == 0 || name_len > 255 || memchr(name, 0, name_len) != NULL)
        return GX_RESOLVE_FAIL;
    count(ST_LOOKUPS);
    uint32_t idx = hash(name, name_len, v4only);
    int result = GX_RESOLVE_FAIL;
    pthread_mutex_lock(&R.lock);
    struct slot *s = &R.slot[idx];
    int64_t now = now_s();
    if (s->state != SLOT_EMPTY && same(s, name, name_len, v4only)) {
        if (s->state == SLOT_PENDING) {
            result = GX_RESOLVE_PENDING;
            goto out;
        }
        if (now < s->expires) {
            if (s->state == SLOT_OK) {
                memcpy(out, &s->addr, s->addrlen);
                *out_len = s->addrlen;
                result = GX_RESOLVE_OK;
            }
            goto out;
        }
    } else if (s->state == SLOT_PENDING) {
        goto out; /* the slot is busy with another name: drop rather than wait */
    }
    count(ST_MISSES);
    if (R.q_count == GX_RESOLVE_QUEUE) {
        count(ST_QUEUE_FULL);
        goto out;
    }
    if (!R.started) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&tid, &attr, resolver_main, NULL);
        pthread_attr_destroy(&attr);
        if (rc != 0)
            goto out;
        R.started = true;
    }
    s->state = SLOT_PENDING;
    s->v4only = v4only;
    s->len = (uint8_t)name_len;
    memcpy(s->name, name, name_len);
    R.queue[(R.q_head + R.q_count) % GX_RESOLVE_QUEUE] = idx;
    R.q_count++;
    pthread_cond_signal(&R.cond);
    result = GX_RESOLVE_PENDING;
out:
    pthread_mutex_unlock(&R.lock);
    return result;
}

void gx_resolve_get_stats(struct gx_resolve_stats *out) {
    uint64_t *o = (uint64_t *)out;
    for (int i = 0; i < 5; i++)
        o[i] = atomic_load_explicit(&R.stats[i], memory_order_relaxed);
}
