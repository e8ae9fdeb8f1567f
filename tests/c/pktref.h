/* Reference packet checks for the C tests: the Internet checksum summed one byte pair at a time
 * (big-endian words, RFC 1071), independent of the optimised code under test. */
#ifndef GX_PKTREF_H
#define GX_PKTREF_H
#include <stddef.h>
#include <stdint.h>

static inline uint32_t ref_sum(const uint8_t *p, size_t n, uint32_t acc) {
    for (size_t i = 0; i + 1 < n; i += 2)
        acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        acc += (uint32_t)p[n - 1] << 8;
    return acc;
}
static inline uint16_t ref_fold(uint32_t acc) {
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)acc;
}
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v); }

/* The pseudo-header sum for an L4 segment of l4len bytes. */
static inline uint32_t ref_pseudo(const uint8_t *ip, int v6, uint8_t proto, uint32_t l4len) {
    uint32_t acc = v6 ? ref_sum(ip + 8, 32, 0) : ref_sum(ip + 12, 8, 0);
    return acc + proto + l4len;
}
/* A TCP/UDP segment at ip[l4off..len) has a valid checksum. */
static inline int l4_valid(const uint8_t *ip, uint32_t len, int v6, uint8_t proto, uint32_t l4off) {
    uint32_t acc = ref_pseudo(ip, v6, proto, len - l4off);
    return ref_fold(ref_sum(ip + l4off, len - l4off, acc)) == 0xffff;
}
static inline int ip4_valid(const uint8_t *ip) {
    return ref_fold(ref_sum(ip, (ip[0] & 0xf) * 4u, 0)) == 0xffff;
}

#endif
