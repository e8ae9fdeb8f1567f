/* GRO for TUN writes: coalesce consecutive TCP segments of one flow into one GSO super-packet, so the
 * kernel takes up to 64 KiB per write and runs its TCP receive path once for all of them. The rules
 * are the conservative ones (as wireguard-go's tcpGRO): only plain ACK segments with data, PSH allowed
 * on the last one; equal IP and TCP headers apart from lengths, ids, checksums and seq; contiguous
 * sequence numbers; every segment but the last exactly gso_size bytes. Anything else goes as it is. */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gx/base.h"
#include "gx/tun.h"

#define TCP_FIN 0x01u
#define TCP_SYN 0x02u
#define TCP_RST 0x04u
#define TCP_PSH 0x08u
#define TCP_ACK 0x10u
#define TCP_URG 0x20u
#define MAX_IP_LEN 65535u

/* A TCP segment that may take part: where its headers end and what it carries. */
struct seg {
    const uint8_t *pkt;
    uint32_t len;
    int v6;
    uint32_t ip_len;   /* IP header bytes */
    uint32_t hdr_len;  /* IP + TCP header bytes */
    uint32_t payload;  /* TCP payload bytes */
    uint32_t seq;
    uint8_t flags;
};

/* Parse a candidate: IPv4 without options or fragments, or IPv6 whose next header is TCP; a TCP
 * segment with data and only ACK (and PSH). 0 = not a candidate. */
static int parse_seg(const uint8_t *p, uint32_t len, struct seg *s) {
    if (len < 1)
        return 0;
    s->pkt = p;
    s->len = len;
    if (p[0] >> 4 == 4) {
        if (len < 20 || (p[0] & 0x0f) != 5 || p[9] != 6 || rd16be(p + 2) != len)
            return 0;
        if (rd16be(p + 6) & 0x3fffu) /* MF or a fragment offset */
            return 0;
        s->v6 = 0;
        s->ip_len = 20;
    } else if (p[0] >> 4 == 6) {
        if (len < 40 || p[6] != 6 || (uint32_t)rd16be(p + 4) + 40u != len)
            return 0;
        s->v6 = 1;
        s->ip_len = 40;
    } else {
        return 0;
    }
    if (len < s->ip_len + 20)
        return 0;
    const uint8_t *tcp = p + s->ip_len;
    uint32_t tcp_len = (uint32_t)(tcp[12] >> 4) * 4u;
    if (tcp_len < 20 || s->ip_len + tcp_len > len)
        return 0;
    s->hdr_len = s->ip_len + tcp_len;
    s->payload = len - s->hdr_len;
    s->flags = tcp[13];
    s->seq = rd32be(tcp + 4);
    if (s->payload == 0 || (s->flags & ~(uint8_t)TCP_PSH) != TCP_ACK)
        return 0;
    return 1;
}

/* May b follow a (the segments so far end at next_seq, gso_size each)? */
static int can_follow(const struct seg *a, const struct seg *b, uint32_t next_seq, uint32_t gso_size,
                      uint32_t total) {
    if (a->v6 != b->v6 || a->hdr_len != b->hdr_len || b->seq != next_seq || b->payload > gso_size)
        return 0;
    if (total + b->payload > MAX_IP_LEN)
        return 0;
    const uint8_t *x = a->pkt, *y = b->pkt;
    if (a->v6) {
        /* version/class/flow label, next header, hop limit, addresses */
        if (memcmp(x, y, 4) != 0 || x[6] != y[6] || x[7] != y[7] || memcmp(x + 8, y + 8, 32) != 0)
            return 0;
    } else {
        /* TOS, flags (DF), TTL, protocol, addresses */
        if (x[1] != y[1] || (x[6] & 0xe0) != (y[6] & 0xe0) || x[8] != y[8] || memcmp(x + 12, y + 12, 8) != 0)
            return 0;
    }
    const uint8_t *tx = x + a->ip_len, *ty = y + b->ip_len;
    /* ports, ack, data offset, window, urgent pointer and options equal; flags ACK (PSH only on b) */
    if (memcmp(tx, ty, 4) != 0 || memcmp(tx + 8, ty + 8, 5) != 0 || memcmp(tx + 14, ty + 14, 2) != 0 ||
        memcmp(tx + 18, ty + 18, a->hdr_len - a->ip_len - 18) != 0)
        return 0;
    return 1;
}

static void plain_header(uint8_t *out) { memset(out, 0, GX_VNET_HDR_LEN); }

/* Ethernet header length of a frame that may take part (untagged IPv4/IPv6), 0 for a TUN packet, -1
 * for a frame that goes alone. */
static int l2_len(const struct gx_pkt *p, int eth) {
    if (!eth)
        return 0;
    return gx_eth_l3_offset(p->data, p->len) == 14 ? 14 : -1;
}

int gx_tun_gro_next_iov(const struct gx_batch *b, int eth, uint32_t *i, uint8_t hdr[GX_GRO_HDR_MAX],
                        struct iovec *iov, uint32_t *covered, uint32_t *bytes) {
    uint32_t n = b->n <= b->cap ? b->n : b->cap;
    while (*i < n && b->pkt[*i].len == 0)
        (*i)++;
    *covered = 0;
    *bytes = 0;
    if (*i >= n)
        return 0;
    const struct gx_pkt *first = &b->pkt[*i];
    struct seg head;
    int l2 = l2_len(first, eth);
    uint32_t max_len = MAX_IP_LEN + (eth ? 14u : 0u);
    plain_header(hdr);
    iov[0] = (struct iovec){hdr, GX_VNET_HDR_LEN};
    if (first->len > max_len || l2 < 0 || !parse_seg(first->data + l2, first->len - (uint32_t)l2, &head) ||
        head.flags & TCP_PSH || (uint32_t)l2 + head.hdr_len > GX_GRO_HDR_MAX - GX_VNET_HDR_LEN) {
        uint32_t len = first->len > max_len ? max_len : first->len;
        iov[1] = (struct iovec){first->data, len};
        (*i)++;
        *covered = 1;
        *bytes = GX_VNET_HDR_LEN + len;
        return 2;
    }
    uint32_t total = first->len - (uint32_t)l2, gso_size = head.payload, next_seq = head.seq + head.payload;
    uint32_t count = 1, j = *i + 1, niov = 2;
    uint8_t last_flags = head.flags;
    iov[1] = (struct iovec){first->data + l2 + head.hdr_len, head.payload};
    while (j < n) {
        const struct gx_pkt *p = &b->pkt[j];
        if (p->len == 0) {
            j++;
            continue;
        }
        struct seg s;
        if (l2_len(p, eth) != l2 || (l2 > 0 && memcmp(p->data, first->data, (size_t)l2) != 0) ||
            !parse_seg(p->data + l2, p->len - (uint32_t)l2, &s) || !can_follow(&head, &s, next_seq, gso_size, total))
            break;
        iov[niov++] = (struct iovec){p->data + l2 + s.hdr_len, s.payload};
        total += s.payload;
        next_seq += s.payload;
        last_flags = s.flags;
        count++;
        j++;
        if (s.payload < gso_size || s.flags & TCP_PSH)
            break; /* a short or pushed segment ends the super-packet */
    }
    *i = j;
    *covered = count;
    *bytes = GX_VNET_HDR_LEN + (uint32_t)l2 + total;
    if (count == 1) {
        iov[1] = (struct iovec){first->data, first->len};
        return 2;
    }
    /* the super-packet's headers: the first segment's, with lengths, flags and checksums fixed */
    memcpy(hdr + GX_VNET_HDR_LEN, first->data, (size_t)l2 + head.hdr_len);
    uint8_t *pkt = hdr + GX_VNET_HDR_LEN + l2;
    iov[0].iov_len = GX_VNET_HDR_LEN + (size_t)l2 + head.hdr_len;
    uint32_t tcp_total = total - head.ip_len;
    uint64_t acc;
    if (head.v6) {
        wr16be(pkt + 4, tcp_total);
        acc = gx_csum_add(pkt + 8, 32, 0);
    } else {
        wr16be(pkt + 2, total);
        pkt[10] = pkt[11] = 0;
        uint16_t ipsum = (uint16_t)~gx_csum_fold(gx_csum_add(pkt, 20, 0));
        memcpy(pkt + 10, &ipsum, 2);
        acc = gx_csum_add(pkt + 12, 8, 0);
    }
    uint8_t *tcp = pkt + head.ip_len;
    tcp[13] = last_flags; /* PSH of the last segment */
    uint8_t pseudo[4] = {0, 6, (uint8_t)(tcp_total >> 8), (uint8_t)tcp_total};
    acc = gx_csum_add(pseudo, 4, acc);
    uint16_t partial = gx_csum_fold(acc); /* NEEDS_CSUM: the field holds the pseudo-header sum */
    memcpy(tcp + 16, &partial, 2);
    struct gx_vnet_hdr h = {
        .flags = GX_VNET_F_NEEDS_CSUM,
        .gso_type = (uint8_t)(head.v6 ? GX_VNET_GSO_TCPV6 : GX_VNET_GSO_TCPV4),
        .hdr_len = (uint16_t)((uint32_t)l2 + head.hdr_len),
        .gso_size = (uint16_t)gso_size,
        .csum_start = (uint16_t)((uint32_t)l2 + head.ip_len),
        .csum_offset = 16,
    };
    gx_vnet_hdr_encode(&h, hdr);
    return (int)niov;
}

uint32_t gx_tun_gro_next(const struct gx_batch *b, int eth, uint32_t *i, uint8_t *out, uint32_t *covered) {
    uint8_t hdr[GX_GRO_HDR_MAX];
    struct iovec iov[1 + GX_BATCH_MAX];
    uint32_t bytes, at = 0;
    int n = gx_tun_gro_next_iov(b, eth, i, hdr, iov, covered, &bytes);
    for (int k = 0; k < n; k++) {
        memcpy(out + at, iov[k].iov_base, iov[k].iov_len);
        at += (uint32_t)iov[k].iov_len;
    }
    return at;
}

int gx_tun_write_batch_gro(int fd, const struct gx_batch *b, int eth, uint64_t *supers) {
    if (b == NULL)
        return -EINVAL;
    int written = 0, niov;
    uint32_t i = 0, covered, bytes;
    uint8_t hdr[GX_GRO_HDR_MAX];
    struct iovec iov[1 + GX_BATCH_MAX];
    while ((niov = gx_tun_gro_next_iov(b, eth, &i, hdr, iov, &covered, &bytes)) > 0) {
        ssize_t r;
        do {
            r = writev(fd, iov, niov);
        } while (r < 0 && errno == EINTR);
        if (r >= 0) {
            written += (int)covered;
            if (covered > 1 && supers != NULL)
                (*supers)++;
            continue;
        }
        if (errno == EAGAIN || errno == EIO || errno == EINVAL || errno == EMSGSIZE || errno == ENOBUFS ||
            errno == ENOMEM || errno == EFAULT)
            continue; /* this write is dropped; the rest of the batch goes on */
        if (written == 0)
            return -errno;
        break;
    }
    return written;
}
