/* Salt replay filter for the Shadowsocks AEAD packet format.
 *
 * An exact set of recently seen salts with bounded memory: two generations of a bucketed hash table
 * of 32-bit fingerprints (16 per 64-byte bucket, filled to at most 75 %). New salts go into the
 * current generation; when it holds `capacity` salts the older generation is cleared and becomes
 * the current one. So the filter remembers at least the last `capacity` salts and at most 2 x that,
 * in about 10.7 bytes per salt of capacity (10.7 MB for the default 1e6, committed lazily).
 *
 * A lookup compares the salt's 32-bit fingerprint with the 16-32 in one or two buckets of each
 * generation: a new salt is taken for a replay with a probability below 1e-8 (go-shadowsocks2's
 * Bloom ring accepts 1e-6). The bucket index and the fingerprint come from a hash keyed with random bytes
 * drawn at creation, so a peer cannot aim salts at one bucket.
 *
 * Locking: gx_replay_check and gx_replay_add must be called with the lock held, so that a caller
 * can take it once for a whole batch.
 */
#ifndef GX_REPLAY_H
#define GX_REPLAY_H

#include <stddef.h>
#include <stdint.h>

struct gx_replay;

/* New filter for salts of salt_len bytes (a multiple of 8, 8..32) that remembers at least the last
 * capacity salts (capacity >= 1). 0 or -errno. */
int gx_replay_new(struct gx_replay **out, size_t capacity, size_t salt_len);
void gx_replay_free(struct gx_replay *r);
void gx_replay_lock(struct gx_replay *r);
void gx_replay_unlock(struct gx_replay *r);
/* Start loading the memory a check/add of this salt will read: call it for a whole batch first,
 * so that the cache misses overlap. Needs no lock (reads only immutable fields). */
void gx_replay_prefetch(const struct gx_replay *r, const uint8_t *salt);
/* 1 if the salt is in the filter, else 0. Lock held. */
int gx_replay_check(const struct gx_replay *r, const uint8_t *salt);
/* Add the salt: 1 if it was new, 0 if it was already there (a replay). Lock held. */
int gx_replay_add(struct gx_replay *r, const uint8_t *salt);
/* Salts the filter remembers now (both generations). Lock held. */
size_t gx_replay_count(const struct gx_replay *r);

#endif
