/* virtio_net_hdr offloads for TUN reads: finish partial checksums, split GSO super-packets.
 *
 * Pure functions over byte buffers (no syscalls), so tests/c/test_tun_offload.c can drive them with
 * table cases and random input. Every offset taken from a header or from the packet is checked
 * against the packet length before it is used.
 *
 * Checksums are summed over native-endian words (RFC 1071 section 2(B): the one's complement sum
 * does not depend on byte order) and stored back natively, so no byte swapping is needed.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>

#include "gx/base.h"
#include "gx/tun.h"

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define TCP_FIN 0x01u
#define TCP_PSH 0x08u
#define TCP_CWR 0x80u

/* One's complement sum of p[0..n) as native 16-bit words, added to acc (not folded). */
static uint64_t csum_add_scalar(const uint8_t *p, size_t n, uint64_t acc) {
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        acc += (w & 0xffffffffu) + (w >> 32);
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        acc += w;
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        acc += w;
        p += 2;
        n -= 2;
    }
    if (n) {
        uint16_t w = 0;          /* the odd byte is the high-order byte of a zero-padded word */
        memcpy(&w, p, 1);
        acc += w;
    }
    return acc;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The same sum 64 bytes at a time: each 32-bit lane adds the two 16-bit words of its dword (a
 * one's complement sum does not care how the words are grouped once the carries are folded back).
 * A lane gains at most 2 x 0xffff per round, so the lanes are spilled into acc every 16 Ki rounds,
 * long before they could overflow. */
/* The sum of the last n (< 64) bytes, from one masked load: the bytes past the end read as zero,
 * which is the RFC's zero padding of an odd byte too. */
__attribute__((target("avx512f,avx512bw"))) static uint64_t csum_tail_avx512(const uint8_t *p, size_t n) {
    const __m512i low16 = _mm512_set1_epi32(0xffff);
    __m512i v = _mm512_maskz_loadu_epi8((((__mmask64)1) << n) - 1, p);
    __m512i lanes = _mm512_add_epi32(_mm512_and_si512(v, low16), _mm512_srli_epi32(v, 16));
    return (uint64_t)_mm512_reduce_add_epi32(lanes);     /* at most 16 x 2 x 0xffff: no overflow */
}

__attribute__((target("avx512f,avx512bw"))) static uint64_t csum_add_avx512(const uint8_t *p, size_t n,
                                                                            uint64_t acc) {
    const __m512i low16 = _mm512_set1_epi32(0xffff);
    while (n >= 64) {
        __m512i lanes = _mm512_setzero_si512();
        for (size_t rounds = 0; n >= 64 && rounds < 16384; rounds++, p += 64, n -= 64) {
            __m512i v = _mm512_loadu_si512((const void *)p);
            lanes = _mm512_add_epi32(lanes, _mm512_add_epi32(_mm512_and_si512(v, low16), _mm512_srli_epi32(v, 16)));
        }
        __m512i wide = _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(lanes)),
                                        _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(lanes, 1)));
        acc += (uint64_t)_mm512_reduce_add_epi64(wide);
    }
    return n ? acc + csum_tail_avx512(p, n) : acc;
}

/* Copy n bytes and add their sum to acc (one pass over the payload instead of a copy and a sum). */
__attribute__((target("avx512f,avx512bw"))) static uint64_t csum_copy_avx512(uint8_t *dst, const uint8_t *src,
                                                                              size_t n, uint64_t acc) {
    const __m512i low16 = _mm512_set1_epi32(0xffff);
    while (n >= 64) {
        __m512i lanes = _mm512_setzero_si512();
        for (size_t rounds = 0; n >= 64 && rounds < 16384; rounds++, src += 64, dst += 64, n -= 64) {
            __m512i v = _mm512_loadu_si512((const void *)src);
            _mm512_storeu_si512((void *)dst, v);
            lanes = _mm512_add_epi32(lanes, _mm512_add_epi32(_mm512_and_si512(v, low16), _mm512_srli_epi32(v, 16)));
        }
        __m512i wide = _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(lanes)),
                                        _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(lanes, 1)));
        acc += (uint64_t)_mm512_reduce_add_epi64(wide);
    }
    if (n == 0)
        return acc;
    __mmask64 m = (((__mmask64)1) << n) - 1;
    _mm512_mask_storeu_epi8(dst, m, _mm512_maskz_loadu_epi8(m, src));
    return acc + csum_tail_avx512(src, n);
}

/* Without AVX-512: 32 bytes a round in the 256-bit registers of AVX2, the same lanes as above; the
 * last (< 32) bytes by the scalar loop. dst == NULL: sum only; else copy as well. */
__attribute__((target("avx2"))) static uint64_t csum_avx2(uint8_t *dst, const uint8_t *src, size_t n, uint64_t acc) {
    const __m256i low16 = _mm256_set1_epi32(0xffff);
    while (n >= 32) {
        __m256i lanes = _mm256_setzero_si256();
        for (size_t rounds = 0; n >= 32 && rounds < 16384; rounds++, src += 32, n -= 32) {
            __m256i v = _mm256_loadu_si256((const __m256i *)src);
            if (dst != NULL) {
                _mm256_storeu_si256((__m256i *)dst, v);
                dst += 32;
            }
            lanes = _mm256_add_epi32(lanes, _mm256_add_epi32(_mm256_and_si256(v, low16), _mm256_srli_epi32(v, 16)));
        }
        __m256i wide = _mm256_add_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(lanes)),
                                        _mm256_cvtepu32_epi64(_mm256_extracti128_si256(lanes, 1)));
        __m128i half = _mm_add_epi64(_mm256_castsi256_si128(wide), _mm256_extracti128_si256(wide, 1));
        acc += (uint64_t)_mm_cvtsi128_si64(half) + (uint64_t)_mm_extract_epi64(half, 1);
    }
    if (dst != NULL)
        memcpy(dst, src, n);
    return csum_add_scalar(src, n, acc);
}

enum { CSUM_SCALAR, CSUM_AVX2, CSUM_AVX512 };

static int csum_probe(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? CSUM_AVX512
           : __builtin_cpu_supports("avx2")                                          ? CSUM_AVX2
                                                                                      : CSUM_SCALAR;
}

static int csum_wide(void) {
    static _Atomic int have = -1;
    return gx_probe_once(&have, csum_probe);
}

static uint64_t csum_add(const uint8_t *p, size_t n, uint64_t acc) {
    if (n < 128)
        return csum_add_scalar(p, n, acc);
    switch (csum_wide()) {
    case CSUM_AVX512:
        return csum_add_avx512(p, n, acc);
    case CSUM_AVX2:
        return csum_avx2(NULL, p, n, acc);
    default:
        return csum_add_scalar(p, n, acc);
    }
}

static uint64_t csum_copy(uint8_t *dst, const uint8_t *src, size_t n, uint64_t acc) {
    switch (n >= 128 ? csum_wide() : CSUM_SCALAR) {
    case CSUM_AVX512:
        return csum_copy_avx512(dst, src, n, acc);
    case CSUM_AVX2:
        return csum_avx2(dst, src, n, acc);
    default:
        break;
    }
    memcpy(dst, src, n);
    return csum_add_scalar(src, n, acc);
}
#else
static uint64_t csum_add(const uint8_t *p, size_t n, uint64_t acc) {
    return csum_add_scalar(p, n, acc);
}

static uint64_t csum_copy(uint8_t *dst, const uint8_t *src, size_t n, uint64_t acc) {
    memcpy(dst, src, n);
    return csum_add_scalar(src, n, acc);
}
#endif

static uint16_t csum_fold(uint64_t acc) {
    while (acc >> 16)
        acc = (acc & 0xffffu) + (acc >> 16);
    return (uint16_t)acc;
}

/* Store ~fold(acc) natively at p; a zero result is sent as 0xffff (the same value in one's
 * complement, and the only form UDP allows). */
static void csum_store(uint8_t *p, uint64_t acc) {
    uint16_t c = (uint16_t)~csum_fold(acc);
    if (c == 0)
        c = 0xffffu;
    memcpy(p, &c, 2);
}

uint64_t gx_csum_add(const uint8_t *p, size_t n, uint64_t acc) { return csum_add(p, n, acc); }
uint16_t gx_csum_fold(uint64_t acc) { return csum_fold(acc); }

/* A 16-bit value in network order, as a native word for csum_add arithmetic. */
static inline uint64_t csum_word(uint16_t host_value) { return htons(host_value); }

void gx_vnet_hdr_decode(const uint8_t raw[GX_VNET_HDR_LEN], struct gx_vnet_hdr *h) {
    h->flags = raw[0];
    h->gso_type = raw[1];
    h->hdr_len = rd16le(raw + 2);
    h->gso_size = rd16le(raw + 4);
    h->csum_start = rd16le(raw + 6);
    h->csum_offset = rd16le(raw + 8);
}

void gx_vnet_hdr_encode(const struct gx_vnet_hdr *h, uint8_t raw[GX_VNET_HDR_LEN]) {
    raw[0] = h->flags;
    raw[1] = h->gso_type;
    wr16le(raw + 2, h->hdr_len);
    wr16le(raw + 4, h->gso_size);
    wr16le(raw + 6, h->csum_start);
    wr16le(raw + 8, h->csum_offset);
}

int gx_tun_csum_complete(uint8_t *pkt, uint32_t len, uint16_t csum_start, uint16_t csum_offset) {
    uint32_t at = (uint32_t)csum_start + csum_offset;
    if (pkt == NULL || csum_start >= len || at + 2 > len)
        return -EINVAL;
    uint64_t acc = csum_add(pkt + csum_start, len - csum_start, 0);
    csum_store(pkt + at, acc);
    return 0;
}

/* What a super-packet looks like, found and checked once before the segments are cut. Offsets are
 * from the start of the packet, which is the IP header (TUN) or an Ethernet header before it (TAP:
 * l3off 14, or 18 with a VLAN tag). */
struct gso_layout {
    int v6;
    uint8_t proto;
    uint32_t l3off;       /* where the IP header begins */
    uint32_t l3len;       /* IPv4 header length (IHL * 4); 40 for IPv6 */
    uint32_t l4off;       /* csum_start: where the TCP/UDP header begins */
    uint32_t hlen;        /* all headers: l4off + TCP header length or + 8 */
    uint32_t csum_at;     /* the L4 checksum field */
};

static int gso_parse(const uint8_t *in, uint32_t len, const struct gx_vnet_hdr *h, uint32_t l3off,
                     struct gso_layout *g) {
    uint8_t type = h->gso_type & (uint8_t)~GX_VNET_GSO_ECN;
    if (len < l3off + 1)
        return -EINVAL;
    const uint8_t *ip = in + l3off;
    unsigned version = ip[0] >> 4;
    switch (type) {
    case GX_VNET_GSO_TCPV4:
        if (version != 4)
            return -EINVAL;
        g->proto = IPPROTO_TCP_;
        break;
    case GX_VNET_GSO_TCPV6:
        if (version != 6)
            return -EINVAL;
        g->proto = IPPROTO_TCP_;
        break;
    case GX_VNET_GSO_UDP_L4:
        if (version != 4 && version != 6)
            return -EINVAL;
        g->proto = IPPROTO_UDP_;
        break;
    default:
        return -EPROTONOSUPPORT;
    }
    g->v6 = version == 6;
    g->l3off = l3off;
    g->l4off = h->csum_start;
    if (g->v6) {
        g->l3len = 40;
        if (len < l3off + 40 || g->l4off < l3off + 40)
            return -EINVAL;
        /* Extension headers between the fixed header and csum_start are copied as they are. A
         * packet whose fixed header says TCP/UDP must have no extension header. */
        if ((ip[6] == IPPROTO_TCP_ || ip[6] == IPPROTO_UDP_) && (ip[6] != g->proto || g->l4off != l3off + 40))
            return -EINVAL;
    } else {
        g->l3len = (ip[0] & 0x0fu) * 4u;
        if (len < l3off + 20 || g->l3len < 20 || g->l4off != l3off + g->l3len || ip[9] != g->proto)
            return -EINVAL;
    }
    if (g->proto == IPPROTO_TCP_) {
        if (g->l4off + 20 > len || h->csum_offset != 16)
            return -EINVAL;
        uint32_t thlen = (in[g->l4off + 12] >> 4) * 4u;
        if (thlen < 20)
            return -EINVAL;
        g->hlen = g->l4off + thlen;
    } else {
        if (h->csum_offset != 6)
            return -EINVAL;
        g->hlen = g->l4off + 8;
    }
    if (g->hlen >= len || h->gso_size == 0)
        return -EINVAL;      /* no payload to cut, or no segment size */
    g->csum_at = g->l4off + h->csum_offset;
    return 0;
}

int gx_eth_l3_offset(const uint8_t *frame, uint32_t len) {
    if (frame == NULL || len < 14)
        return -EINVAL;
    uint16_t type = rd16be(frame + 12);
    if (type == 0x0800u || type == 0x86ddu)
        return 14;
    if (type == 0x8100u && len >= 18 && (rd16be(frame + 16) == 0x0800u || rd16be(frame + 16) == 0x86ddu))
        return 18;
    return -EPROTONOSUPPORT;
}

int gx_tun_gso_split_at(const uint8_t *in, uint32_t len, const struct gx_vnet_hdr *h, uint32_t l3off,
                        struct gx_batch *b) {
    struct gso_layout g;
    if (in == NULL || h == NULL || b == NULL || len > GX_TUN_GSO_MAX || l3off > 18)
        return -EINVAL;
    int rc = gso_parse(in, len, h, l3off, &g);
    if (rc < 0)
        return rc;
    const uint32_t gso = h->gso_size;
    if (g.hlen + gso > gx_batch_room(b))
        return -EMSGSIZE;

    /* The pseudo-header sum without the length, which differs per segment. */
    uint32_t addr_at = l3off + (g.v6 ? 8u : 12u), addr_len = g.v6 ? 32u : 8u;
    uint64_t pseudo = csum_add(in + addr_at, addr_len, csum_word(g.proto));
    uint32_t seq0 = g.proto == IPPROTO_TCP_ ? rd32be(in + g.l4off + 4) : 0;
    uint16_t id0 = g.v6 ? 0 : rd16be(in + l3off + 4);

    uint32_t payload = len - g.hlen;
    uint32_t nseg = (payload + gso - 1) / gso;
    int written = 0;
    for (uint32_t i = 0; i < nseg && b->n < b->cap; i++) {
        uint32_t off = g.hlen + i * gso;
        uint32_t seglen = len - off < gso ? len - off : gso;
        uint32_t total = g.hlen + seglen;
        uint32_t l4len = total - g.l4off;
        struct gx_pkt *p = &b->pkt[b->n];
        uint8_t *out = gx_batch_slot(b, b->n) + b->headroom;
        uint8_t *ip = out + l3off;
        p->data = out;
        p->flags = i == 0 ? GX_PKT_GSO_HEAD : 0;
        memcpy(out, in, g.hlen);
        /* the payload's sum is taken while it is copied; the L4 header's length is even (TCP: 4 x data
         * offset, UDP: 8), so the two sums add up to the segment's */
        uint64_t payload_sum = csum_copy(out + g.hlen, in + off, seglen, 0);

        if (g.v6) {
            wr16be(ip + 4, total - l3off - 40);
        } else {
            wr16be(ip + 2, total - l3off);
            wr16be(ip + 4, (uint16_t)(id0 + i));
            ip[10] = ip[11] = 0;
            csum_store(ip + 10, csum_add(ip, g.l3len, 0));
        }
        if (g.proto == IPPROTO_TCP_) {
            uint8_t *tcp = out + g.l4off;
            wr32be(tcp + 4, seq0 + i * gso);
            if (i + 1 < nseg)
                tcp[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
            if (i > 0)
                tcp[13] &= (uint8_t)~TCP_CWR;
        } else {
            wr16be(out + g.l4off + 4, l4len);
        }
        out[g.csum_at] = out[g.csum_at + 1] = 0;
        csum_store(out + g.csum_at, csum_add(out + g.l4off, g.hlen - g.l4off,
                                             pseudo + csum_word((uint16_t)l4len) + payload_sum));
        p->len = total;
        b->n++;
        written++;
    }
    return written;
}

int gx_tun_gso_split(const uint8_t *in, uint32_t len, const struct gx_vnet_hdr *h, struct gx_batch *b) {
    return gx_tun_gso_split_at(in, len, h, 0, b);
}
