/* Name lookups for data-plane event loops, which must never block in getaddrinfo.
 *
 * gx_resolve_lookup answers from a small shared cache (GX_RESOLVE_SLOTS entries, direct-mapped by a hash
 * of the name; answers kept GX_RESOLVE_TTL_OK seconds, failures GX_RESOLVE_TTL_FAIL seconds). A miss queues
 * the name for ONE resolver thread (started on first use; at most GX_RESOLVE_QUEUE names waiting) and
 * returns GX_RESOLVE_PENDING; when the answer is in, gx_relay_kick_all() wakes the relays that wait for it
 * (gx/relay.h). A full queue, or a slot held by another name still being resolved, answers
 * GX_RESOLVE_FAIL: the caller drops the datagram and counts it.
 */
#ifndef GX_RESOLVE_H
#define GX_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GX_RESOLVE_SLOTS 512
#define GX_RESOLVE_QUEUE 64
#define GX_RESOLVE_TTL_OK 60
#define GX_RESOLVE_TTL_FAIL 10

enum { GX_RESOLVE_OK = 0, GX_RESOLVE_PENDING = 1, GX_RESOLVE_FAIL = 2 };

/* name: name_len bytes (1..255, not NUL-terminated). v4only: an IPv4-only socket asks (AF_INET answers
 * only), else the first answer of any family. On GX_RESOLVE_OK *out holds the address, port 0. */
int gx_resolve_lookup(const uint8_t *name, size_t name_len, bool v4only, struct sockaddr_storage *out,
                      socklen_t *out_len);

struct gx_resolve_stats {
    uint64_t lookups, misses, resolved, failed, queue_full;
};
void gx_resolve_get_stats(struct gx_resolve_stats *out);

#endif
