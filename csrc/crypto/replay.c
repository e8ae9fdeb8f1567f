/* Salt replay filter: two generations of a bucketed fingerprint table (see gx/crypto.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/rand.h>

#include "gx/crypto.h"

#define BUCKET_SLOTS 16                  /* 16 x 4-byte fingerprints = one 64-byte cache line */
#define FILL_NUM 3                       /* a generation is filled to at most 3/4 of its slots */
#define FILL_DEN 4
#define HUGE_PAGE ((size_t)2 << 20)

struct bucket {
    uint32_t fp[BUCKET_SLOTS];           /* 0 = empty */
};

/* Bucket i of both generations side by side: one lookup touches one 128-byte pair on one page. */
struct pair {
    struct bucket gen[2];
};

struct gx_replay {
    pthread_mutex_t lock;
    size_t salt_len;
    size_t gen_cap;                      /* salts per generation before it rotates */
    size_t nbuckets;                     /* per generation */
    size_t count[2];
    int cur;                             /* generation that takes new salts */
    int lock_ready;
    struct pair *t;                      /* nbuckets pairs */
    size_t t_bytes;
    uint64_t hkey[6];                    /* random hash key */
};

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* 64x64 -> 128-bit multiply, halves folded: a fast mixing step (keyed by the caller's inputs). */
static inline uint64_t mul_fold(uint64_t a, uint64_t b) {
    unsigned __int128 p = (unsigned __int128)a * b;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
}

/* Every bit of the salt counts: each 16 bytes are two key-masked words multiplied together (a factor
 * is 0 only when a salt word equals a secret key word, probability 2^-64 a word). No bit may be
 * forced (an earlier `b | 1` made salts that differ only in that bit collide, for any key). */
static inline uint64_t salt_hash(const struct gx_replay *r, const uint8_t *salt) {
    uint64_t h = r->hkey[4];
    for (size_t i = 0; i < r->salt_len; i += 16) {
        uint64_t a = load64(salt + i) ^ r->hkey[(i / 8) & 3];
        uint64_t b = (i + 8 < r->salt_len ? load64(salt + i + 8) : 0) ^ r->hkey[(i / 8 + 1) & 3];
        h = mul_fold(a ^ h, b);
    }
    return mul_fold(h ^ r->hkey[5], 0x9e3779b97f4a7c15ull);
}

static inline uint32_t fingerprint(uint64_t h) {
    uint32_t fp = (uint32_t)h;
    return fp ? fp : 1;
}

static inline size_t bucket_index(const struct gx_replay *r, uint64_t h) {
    return (size_t)(((h >> 32) * (uint64_t)r->nbuckets) >> 32);   /* uniform in [0, nbuckets) */
}

/* Scan a bucket for fp: bit 0 of the result = found, bit 1 = the bucket has an empty slot.
 * Branch-free over all 16 slots so that the compiler can use vector compares. */
static inline unsigned bucket_scan(const struct bucket *bk, uint32_t fp) {
    unsigned hit = 0, empty = 0;
    for (int s = 0; s < BUCKET_SLOTS; s++) {
        hit |= bk->fp[s] == fp;
        empty |= bk->fp[s] == 0;
    }
    return hit | empty << 1;
}

/* 1 if fp is in generation g. The table is never full and never loses entries, so the probe chain
 * of fp ends at the first bucket that has an empty slot. */
static int gen_has(const struct gx_replay *r, int g, size_t idx, uint32_t fp) {
    for (size_t n = 0; n < r->nbuckets; n++) {
        unsigned m = bucket_scan(&r->t[idx].gen[g], fp);
        if (m)
            return (int)(m & 1);
        idx = idx + 1 == r->nbuckets ? 0 : idx + 1;
    }
    return 0;
}

static void gen_put(struct gx_replay *r, int g, size_t idx, uint32_t fp) {
    for (size_t n = 0; n < r->nbuckets; n++) {
        struct bucket *bk = &r->t[idx].gen[g];
        for (int s = 0; s < BUCKET_SLOTS; s++) {
            if (bk->fp[s] == 0) {
                bk->fp[s] = fp;
                r->count[g]++;
                return;
            }
        }
        idx = idx + 1 == r->nbuckets ? 0 : idx + 1;
    }
}

int gx_replay_new(struct gx_replay **out, size_t capacity, size_t salt_len) {
    *out = NULL;
    if (capacity == 0 || salt_len < 8 || salt_len > 32 || salt_len % 8 != 0)
        return -EINVAL;
    /* buckets so that capacity salts fill at most FILL_NUM/FILL_DEN of the slots */
    size_t per_bucket = BUCKET_SLOTS * FILL_NUM / FILL_DEN;
    if (capacity > ((size_t)UINT32_MAX - per_bucket) / 2)
        return -EINVAL;
    struct gx_replay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->salt_len = salt_len;
    r->gen_cap = capacity;
    r->nbuckets = (capacity + per_bucket - 1) / per_bucket + 1;
    /* Anonymous memory: zero pages committed as they are touched. Marked for transparent huge
     * pages: lookups land anywhere in the table, so with 4 KiB pages nearly each is a TLB miss. */
    r->t_bytes = r->nbuckets * sizeof(struct pair);
    void *t = mmap(NULL, r->t_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) {
        gx_replay_free(r);
        return -ENOMEM;
    }
    r->t = t;
    if (r->t_bytes >= 2 * HUGE_PAGE)
        (void)madvise(r->t, r->t_bytes, MADV_HUGEPAGE);   /* a hint; fine if refused */
    if (RAND_bytes((unsigned char *)r->hkey, sizeof(r->hkey)) != 1) {
        gx_replay_free(r);
        return -EIO;
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        gx_replay_free(r);
        return -ENOMEM;
    }
    r->lock_ready = 1;
    *out = r;
    return 0;
}

void gx_replay_free(struct gx_replay *r) {
    if (r == NULL)
        return;
    if (r->lock_ready)
        pthread_mutex_destroy(&r->lock);
    if (r->t != NULL)
        munmap(r->t, r->t_bytes);
    free(r);
}

void gx_replay_lock(struct gx_replay *r) {
    pthread_mutex_lock(&r->lock);
}

void gx_replay_unlock(struct gx_replay *r) {
    pthread_mutex_unlock(&r->lock);
}

void gx_replay_prefetch(const struct gx_replay *r, const uint8_t *salt) {
    size_t idx = bucket_index(r, salt_hash(r, salt));
    __builtin_prefetch(&r->t[idx].gen[0]);
    __builtin_prefetch(&r->t[idx].gen[1]);
}

int gx_replay_check(const struct gx_replay *r, const uint8_t *salt) {
    uint64_t h = salt_hash(r, salt);
    size_t idx = bucket_index(r, h);
    uint32_t fp = fingerprint(h);
    return gen_has(r, r->cur, idx, fp) || gen_has(r, !r->cur, idx, fp);
}

int gx_replay_add(struct gx_replay *r, const uint8_t *salt) {
    uint64_t h = salt_hash(r, salt);
    size_t idx = bucket_index(r, h);
    uint32_t fp = fingerprint(h);
    if (gen_has(r, r->cur, idx, fp) || gen_has(r, !r->cur, idx, fp))
        return 0;
    if (r->count[r->cur] >= r->gen_cap) {           /* rotate: forget the older generation */
        r->cur = !r->cur;
        for (size_t i = 0; i < r->nbuckets; i++)
            memset(&r->t[i].gen[r->cur], 0, sizeof(struct bucket));
        r->count[r->cur] = 0;
    }
    gen_put(r, r->cur, idx, fp);
    return 1;
}

size_t gx_replay_count(const struct gx_replay *r) {
    return r->count[0] + r->count[1];
}
