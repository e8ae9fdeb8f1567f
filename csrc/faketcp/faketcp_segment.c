/* Fake TCP segments: parse what a raw socket gives, build our 20-byte header with its checksum, and
 * the BPF programs of the raw sockets (see gx/faketcp.h). Pure functions, no I/O. */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "gx/base.h"
#include "gx/faketcp.h"
#include "gx/tun.h"

#define SNAP_ALL 0x40000u            /* BPF "accept": the whole segment */

/* ---------------------------------------------------------------------------------------------- */
/* checksums (RFC 1071, summed as native 16-bit words): the shared gx_csum_add/gx_csum_fold */

/* The pseudo-header sum for a TCP segment of tcp_len bytes. */
static uint64_t pseudo_sum(const uint8_t *src, const uint8_t *dst, int v6, uint32_t tcp_len) {
    uint64_t acc = v6 ? gx_csum_add(src, 16, gx_csum_add(dst, 16, 0)) : gx_csum_add(src, 4, gx_csum_add(dst, 4, 0));
    acc += htons(IPPROTO_TCP);
    acc += htons((uint16_t)(tcp_len >> 16)) + htons((uint16_t)tcp_len);
    return acc;
}

/* ---------------------------------------------------------------------------------------------- */
/* segments: parse, build, filter */

int gx_faketcp_parse(const uint8_t *pkt, uint32_t len, int ip_header, struct gx_faketcp_seg *out) {
    memset(out, 0, sizeof(*out));
    uint32_t ihl = 0;
    if (pkt == NULL)
        return -EINVAL;
    if (ip_header) {
        if (len < 20 || pkt[0] >> 4 != 4)
            return -EINVAL;
        ihl = (uint32_t)(pkt[0] & 0x0f) * 4u;
        uint32_t total = rd16be(pkt + 2);
        if (ihl < 20 || ihl > len || total < ihl || total > len)
            return -EINVAL;
        len = total;                              /* bytes past the IP total length are not ours */
        if ((rd16be(pkt + 6) & 0x3fff) != 0 || pkt[9] != IPPROTO_TCP)
            return -EINVAL;                       /* a fragment, or not TCP */
        memset(out->src, 0, 10);
        out->src[10] = out->src[11] = 0xff;
        memcpy(out->src + 12, pkt + 12, 4);
        memset(out->dst, 0, 10);
        out->dst[10] = out->dst[11] = 0xff;
        memcpy(out->dst + 12, pkt + 16, 4);
    }
    if (len - ihl < 20)
        return -EINVAL;
    const uint8_t *tcp = pkt + ihl;
    uint32_t doff = (uint32_t)(tcp[12] >> 4) * 4u;
    if (doff < 20 || doff > len - ihl)
        return -EINVAL;
    out->sport = rd16be(tcp);
    out->dport = rd16be(tcp + 2);
    out->seq = rd32be(tcp + 4);
    out->ack = rd32be(tcp + 8);
    out->flags = tcp[13];
    out->hdr_len = ihl + doff;
    out->payload_len = len - ihl - doff;
    return 0;
}

int gx_faketcp_csum_ok(const uint8_t *pkt, const struct gx_faketcp_seg *seg) {
    uint32_t ihl = (uint32_t)(pkt[0] & 0x0f) * 4u;
    uint32_t tcp_len = seg->hdr_len - ihl + seg->payload_len;
    uint64_t acc = pseudo_sum(pkt + 12, pkt + 16, 0, tcp_len);
    return gx_csum_fold(gx_csum_add(pkt + ihl, tcp_len, acc)) == 0xffff;
}

int gx_faketcp_csum_partial(const uint8_t *pkt, const struct gx_faketcp_seg *seg) {
    uint32_t ihl = (uint32_t)(pkt[0] & 0x0f) * 4u;
    uint32_t tcp_len = seg->hdr_len - ihl + seg->payload_len;
    /* CHECKSUM_PARTIAL: the sender's stack left the folded pseudo-header sum (not complemented) in the
     * field for the device to finish: __tcp_v4_send_check stores ~tcp_v4_check(len, saddr, daddr, 0) */
    uint16_t field;
    memcpy(&field, pkt + ihl + 16, 2);
    return field == gx_csum_fold(pseudo_sum(pkt + 12, pkt + 16, 0, tcp_len));
}

void gx_faketcp_build(uint8_t hdr[GX_FAKETCP_HDR], uint16_t sport, uint16_t dport, uint32_t seq,
                      uint32_t ack, uint8_t flags, uint16_t window, const uint8_t *src, const uint8_t *dst,
                      int v6, const uint8_t *payload, uint32_t payload_len) {
    wr16be(hdr, sport);
    wr16be(hdr + 2, dport);
    wr32be(hdr + 4, seq);
    wr32be(hdr + 8, ack);
    hdr[12] = (GX_FAKETCP_HDR / 4) << 4;
    hdr[13] = flags;
    wr16be(hdr + 14, window);
    hdr[16] = hdr[17] = 0;
    hdr[18] = hdr[19] = 0;
    if (src == NULL || dst == NULL)
        return;
    uint64_t acc = pseudo_sum(src, dst, v6, GX_FAKETCP_HDR + payload_len);
    acc = gx_csum_add(hdr, GX_FAKETCP_HDR, acc);
    if (payload_len > 0)
        acc = gx_csum_add(payload, payload_len, acc);
    uint16_t c = (uint16_t)~gx_csum_fold(acc);
    memcpy(hdr + 16, &c, 2);
}

static void emit(struct sock_filter *prog, int *n, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k) {
    prog[*n] = (struct sock_filter){code, jt, jf, k};
    (*n)++;
}

int gx_faketcp_bpf(struct sock_filter *prog, int cap, int ip_header, uint16_t sport, uint16_t dport) {
    int need = (ip_header ? 3 : 0) + 2 + (sport ? 2 : 0) + 2;
    if (prog == NULL || cap < need)
        return -EINVAL;
    int n = 0;
    uint16_t mode = ip_header ? BPF_IND : BPF_ABS;
    /* the last instruction drops; a jump at index i reaches it with offset need - i - 2 */
#define TO_DROP ((uint8_t)(need - n - 2))
    if (ip_header) {
        emit(prog, &n, BPF_LD | BPF_H | BPF_ABS, 0, 0, 6);                 /* flags + fragment offset */
        emit(prog, &n, BPF_JMP | BPF_JSET | BPF_K, TO_DROP, 0, 0x1fff);    /* a later fragment */
        emit(prog, &n, BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0);                /* X = IHL * 4 */
    }
    emit(prog, &n, BPF_LD | BPF_H | mode, 0, 0, 2);                        /* destination port */
    emit(prog, &n, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_DROP, dport);
    if (sport) {
        emit(prog, &n, BPF_LD | BPF_H | mode, 0, 0, 0);                    /* source port */
        emit(prog, &n, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_DROP, sport);
    }
#undef TO_DROP
    emit(prog, &n, BPF_RET | BPF_K, 0, 0, SNAP_ALL);
    emit(prog, &n, BPF_RET | BPF_K, 0, 0, 0);
    return n;
}

