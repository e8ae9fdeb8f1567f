/* The lwIP netif over the TUN device.
 *
 * Input: packets are read straight into pbufs and handed to lwIP. Output: lwIP's packets are queued (a
 * reference, no copy) and written to the device in a batch at the end of each loop iteration, or when
 * the queue is full.
 *
 * With a virtio_net_hdr on the fd (cfg.vnet_hdr, the default from Python) the stack uses the kernel's
 * offloads both ways, as the fast userspace stacks do:
 *  - TSO from the kernel (TUNSETOFFLOAD TSO4|TSO6): the host's TCP hands us super-packets of up to
 *    64 KiB; lwIP takes each as one segment (its length fields are set to the real size; checksums are
 *    not checked on this side).
 *  - TCP out: lwIP computes no TCP checksum (CHECKSUM_GEN_TCP 0); every TCP packet is written with
 *    VIRTIO_NET_HDR_F_NEEDS_CSUM and the pseudo-header sum, which the kernel accepts as checksummed
 *    (or completes if it forwards the packet). Segments larger than the MTU's payload (the TCP flows
 *    send up to 64 KiB per segment, see tcp.c) go out as GSO super-packets with gso_size = the
 *    payload that fits the device MTU.
 * Without the header (plain mode) packets are plain, TCP checksums are computed here, and segments stay
 * within the MTU. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/if_tun.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip4.h"
#include "lwip/ip6.h"
#include "lwip/netif.h"

#include "gx/tun.h"
#include "stack_int.h"

#define READS_PER_WAKEUP 64
#define IOV_PER_PACKET 16
#define RX_BIG 65535u                  /* a read buffer: the largest IP packet (TSO super-packet) */
#define RX_COPY_BELOW 32768u           /* packets shorter than this are copied into a right-sized pbuf */
#define IPPROTO_TCP_ 6

/* ---- checksums (RFC 1071 sums over big-endian 16-bit words) ---- */

static uint32_t sum_bytes(const uint8_t *p, size_t len, uint32_t acc, bool *odd) {
    size_t i = 0;
    if (*odd && len > 0) {
        acc += p[0];
        i = 1;
        *odd = false;
    }
    for (; i + 1 < len; i += 2)
        acc += (uint32_t)p[i] << 8 | p[i + 1];
    if (i < len) {
        acc += (uint32_t)p[i] << 8;
        *odd = true;
    }
    return acc;
}

static uint16_t fold(uint32_t acc) {
    while (acc >> 16)
        acc = (acc & 0xffffu) + (acc >> 16);
    return (uint16_t)acc;
}

/* The TCP pseudo-header sum (not complemented) for a packet whose L4 part is l4_len bytes. */
static uint32_t pseudo_sum(const uint8_t *ip, bool v6, uint32_t l4_len) {
    bool odd = false;
    uint32_t acc = v6 ? sum_bytes(ip + 8, 32, 0, &odd) : sum_bytes(ip + 12, 8, 0, &odd);
    return acc + IPPROTO_TCP_ + (l4_len >> 16) + (l4_len & 0xffffu);
}

/* ---- output ---- */

struct tcp_out_info {
    bool tcp;
    bool split;             /* TCP, but its headers are not all in the first pbuf */
    bool v6;
    uint32_t l3_len;        /* IP header length (offset of the TCP header) */
    uint32_t l4_hdr_len;    /* TCP header length */
    uint32_t payload;       /* TCP payload bytes */
};

/* Parse what lwIP sent (the headers are in the first pbuf: lwIP builds them there). */
static struct tcp_out_info out_info(const struct pbuf *p) {
    struct tcp_out_info o = {0};
    const uint8_t *ip = p->payload;
    if (p->len < 20)
        return o;
    uint32_t total = p->tot_len;
    if ((ip[0] >> 4) == 4) {
        o.l3_len = (uint32_t)(ip[0] & 0x0f) * 4u;
        bool fragment = ((ip[6] & 0x3f) | ip[7]) != 0; /* MF or an offset */
        o.tcp = ip[9] == IPPROTO_TCP_ && !fragment;
    } else if ((ip[0] >> 4) == 6 && p->len >= 40) {
        o.v6 = true;
        o.l3_len = 40;
        o.tcp = ip[6] == IPPROTO_TCP_;
    }
    if (!o.tcp)
        return o;
    if (p->len < o.l3_len + 20) {
        o.tcp = false;
        o.split = total >= o.l3_len + 20;
        return o;
    }
    o.l4_hdr_len = (uint32_t)(ip[o.l3_len + 12] >> 4) * 4u;
    if (o.l4_hdr_len < 20 || total < o.l3_len + o.l4_hdr_len) {
        o.tcp = false;
        return o;
    }
    if (p->len < o.l3_len + o.l4_hdr_len) {
        o.tcp = false;
        o.split = true;
        return o;
    }
    o.payload = total - o.l3_len - o.l4_hdr_len;
    return o;
}

/* Fill in the TCP checksum field: the pseudo-header sum (vnet: the kernel completes or trusts it), or the
 * whole checksum (plain mode). */
static void tcp_checksum(const struct gx_stack *s, struct pbuf *p, const struct tcp_out_info *o) {
    uint8_t *ip = p->payload;
    uint8_t *field = ip + o->l3_len + 16;
    uint32_t l4_len = o->l4_hdr_len + o->payload;
    uint32_t acc = pseudo_sum(ip, o->v6, l4_len);
    if (s->cfg.vnet_hdr) {
        uint16_t v = fold(acc);
        field[0] = (uint8_t)(v >> 8);
        field[1] = (uint8_t)v;
        return;
    }
    field[0] = field[1] = 0;
    bool odd = false;
    uint32_t skip = o->l3_len;
    for (const struct pbuf *q = p; q != NULL; q = q->next) {
        const uint8_t *d = q->payload;
        size_t len = q->len;
        if (skip >= len) {
            skip -= (uint32_t)len;
            continue;
        }
        acc = sum_bytes(d + skip, len - skip, acc, &odd);
        skip = 0;
        acc = (acc & 0xffffu) + (acc >> 16); /* keep it from overflowing on long chains */
    }
    uint16_t v = (uint16_t)~fold(acc);
    field[0] = (uint8_t)(v >> 8);
    field[1] = (uint8_t)v;
}

static void vnet_header(const struct gx_stack *s, const struct tcp_out_info *o, uint8_t raw[GX_VNET_HDR_LEN]) {
    struct gx_vnet_hdr h = {0};
    if (o->tcp) {
        h.flags = GX_VNET_F_NEEDS_CSUM;
        h.csum_start = (uint16_t)o->l3_len;
        h.csum_offset = 16;
        uint32_t fits = s->cfg.mtu > o->l3_len + o->l4_hdr_len ? s->cfg.mtu - o->l3_len - o->l4_hdr_len : 0;
        if (fits > 0 && o->payload > fits) {
            h.gso_type = o->v6 ? GX_VNET_GSO_TCPV6 : GX_VNET_GSO_TCPV4;
            h.gso_size = (uint16_t)fits;
            h.hdr_len = (uint16_t)(o->l3_len + o->l4_hdr_len);
        }
    }
    gx_vnet_hdr_encode(&h, raw);
}

static void write_one(struct gx_stack *s, struct pbuf *p) {
    struct iovec iov[IOV_PER_PACKET + 1];
    uint8_t raw[GX_VNET_HDR_LEN];
    int n = 0;
    size_t expect = p->tot_len;
    if (s->cfg.vnet_hdr) {
        struct tcp_out_info o = out_info(p);
        if (o.tcp)
            tcp_checksum(s, p, &o);
        vnet_header(s, &o, raw);
        iov[n].iov_base = raw;
        iov[n].iov_len = sizeof(raw);
        n++;
        expect += sizeof(raw);
    } else {
        struct tcp_out_info o = out_info(p);
        if (o.tcp)
            tcp_checksum(s, p, &o);
    }
    for (struct pbuf *q = p; q != NULL && n < IOV_PER_PACKET + 1; q = q->next) {
        if (q->len == 0)
            continue;
        iov[n].iov_base = q->payload;
        iov[n].iov_len = q->len;
        n++;
    }
    ssize_t w = writev(s->cfg.tun_fd, iov, n);
    if (w == (ssize_t)expect) {
        STAT_ADD(s, tun_tx_pkts, 1);
        STAT_ADD(s, tun_tx_bytes, p->tot_len);
    } else {
        STAT_ADD(s, tun_tx_drops, 1);
    }
}

void tun_flush(struct gx_stack *s) {
    for (uint32_t i = 0; i < s->out.n; i++) {
        write_one(s, s->out.p[i]);
        pbuf_free(s->out.p[i]);
        s->out.p[i] = NULL;
    }
    s->out.n = 0;
}

static err_t queue_packet(struct netif *netif, struct pbuf *p) {
    struct gx_stack *s = netif->state;
    if (p->tot_len == 0)
        return ERR_OK;
    if (s->out.n == sizeof(s->out.p) / sizeof(s->out.p[0]))
        tun_flush(s);
    /* a long chain, or TCP headers split over pbufs (we edit the checksum in the first): a flat copy */
    if (pbuf_clen(p) > IOV_PER_PACKET || out_info(p).split) {
        struct pbuf *flat = pbuf_clone(PBUF_RAW, PBUF_RAM, p);
        if (flat == NULL) {
            STAT_ADD(s, tun_tx_drops, 1);
            return ERR_MEM;
        }
        s->out.p[s->out.n++] = flat;
        return ERR_OK;
    }
    pbuf_ref(p);
    s->out.p[s->out.n++] = p;
    return ERR_OK;
}

static err_t output4(struct netif *netif, struct pbuf *p, const ip4_addr_t *dst) {
    (void)dst;
    return queue_packet(netif, p);
}

static err_t output6(struct netif *netif, struct pbuf *p, const ip6_addr_t *dst) {
    (void)dst;
    return queue_packet(netif, p);
}

static err_t tun_netif_init(struct netif *netif) {
    struct gx_stack *s = netif->state;
    netif->name[0] = 't';
    netif->name[1] = 'g';
    /* with offloads the device takes (and gives) 64 KiB packets: lwIP must not fragment its big TCP
     * segments; the MTU still sets the GSO segment size (see vnet_header) */
    netif->mtu = s->cfg.vnet_hdr ? (u16_t)GX_STACK_MTU_MAX : (u16_t)s->cfg.mtu;
#if LWIP_ND6_ALLOW_RA_UPDATES
    netif->mtu6 = netif->mtu;
#endif
    netif->output = output4;
    netif->output_ip6 = output6;
    netif->flags = NETIF_FLAG_LINK_UP | NETIF_FLAG_ANY_DST;
    return ERR_OK;
}

int tun_netif_add(struct gx_stack *s) {
    if (s->cfg.vnet_hdr) {
        /* TSO from the kernel when it can; checksum offload alone otherwise (then no super-packets) */
        if (ioctl(s->cfg.tun_fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) < 0)
            (void)ioctl(s->cfg.tun_fd, TUNSETOFFLOAD, (unsigned long)TUN_F_CSUM);
    }
    /* The netif's own IPv4 address only makes lwIP's routing usable (it is never a flow's address):
     * 192.0.0.8, the IPv4 dummy address (RFC 7600). */
    ip4_addr_t addr, mask, gw;
    IP4_ADDR(&addr, 192, 0, 0, 8);
    IP4_ADDR(&mask, 255, 255, 255, 255);
    ip4_addr_set_zero(&gw);
    if (netif_add(&s->netif, &addr, &mask, &gw, s, tun_netif_init, ip_input) == NULL)
        return -EINVAL;
    netif_set_default(&s->netif);
    netif_set_link_up(&s->netif);
    netif_set_up(&s->netif);
    return 0;
}

void tun_netif_remove(struct gx_stack *s) {
    netif_set_down(&s->netif);
    netif_remove(&s->netif);
    if (s->rx_spare != NULL) {
        pbuf_free(s->rx_spare);
        s->rx_spare = NULL;
    }
}

/* ---- input ---- */

/* Make the IP length field match the packet (a TSO super-packet's may not); false: not IP, or too short. */
static bool fix_ip_length(uint8_t *ip, uint32_t len) {
    if (len < 20)
        return false;
    if ((ip[0] >> 4) == 4) {
        if (len > 0xffff)
            return false;
        ip[2] = (uint8_t)(len >> 8);
        ip[3] = (uint8_t)len;
        return true;
    }
    if ((ip[0] >> 4) == 6 && len >= 40 && len - 40 <= 0xffff) {
        ip[4] = (uint8_t)((len - 40) >> 8);
        ip[5] = (uint8_t)(len - 40);
        return true;
    }
    return false;
}

void tun_read_packets(struct gx_stack *s) {
    uint32_t cap = s->cfg.vnet_hdr ? RX_BIG : s->cfg.mtu;
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        struct pbuf *p = s->rx_spare;
        s->rx_spare = NULL;
        if (p == NULL) {
            p = pbuf_alloc(PBUF_RAW, (u16_t)cap, PBUF_RAM);
            if (p == NULL)
                return;
        }
        uint8_t raw[GX_VNET_HDR_LEN];
        struct iovec iov[2];
        int n_iov = 0;
        if (s->cfg.vnet_hdr) {
            iov[n_iov].iov_base = raw;
            iov[n_iov++].iov_len = sizeof(raw);
        }
        iov[n_iov].iov_base = p->payload;
        iov[n_iov++].iov_len = cap;
        ssize_t n = readv(s->cfg.tun_fd, iov, n_iov);
        if (n <= 0) {
            s->rx_spare = p;
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                /* the device is gone (deleted, fd broken, EOF): stop polling it instead of spinning */
                epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->cfg.tun_fd, NULL);
                STAT_ADD(s, tun_rx_errors, 1);
            }
            return; /* EAGAIN: drained */
        }
        size_t len = (size_t)n;
        if (s->cfg.vnet_hdr) {
            if (len <= GX_VNET_HDR_LEN) {
                s->rx_spare = p;
                continue;
            }
            len -= GX_VNET_HDR_LEN;
            struct gx_vnet_hdr h;
            gx_vnet_hdr_decode(raw, &h);
            /* a super-packet: one big segment for lwIP; a partial checksum: lwIP does not check it */
            if ((h.gso_type & (uint8_t)~GX_VNET_GSO_ECN) != GX_VNET_GSO_NONE &&
                !fix_ip_length(p->payload, (uint32_t)len)) {
                s->rx_spare = p;
                continue;
            }
        }
        STAT_ADD(s, tun_rx_pkts, 1);
        STAT_ADD(s, tun_rx_bytes, len);
        if (cap == RX_BIG && len < RX_COPY_BELOW) { /* keep the big buffer; the packet gets its own */
            struct pbuf *small = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);
            if (small == NULL) {
                s->rx_spare = p;
                continue;
            }
            memcpy(small->payload, p->payload, len);
            s->rx_spare = p;
            p = small;
        } else {
            pbuf_realloc(p, (u16_t)len);
        }
        if (s->netif.input(p, &s->netif) != ERR_OK)
            pbuf_free(p);
    }
}
