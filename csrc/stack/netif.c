/* The lwIP netif over the TUN device: packets read from the device go straight into pbufs and into
 * lwIP; packets lwIP sends are queued (a reference, no copy) and written to the device in a batch at
 * the end of each loop iteration, or when the queue is full. */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip4.h"
#include "lwip/ip6.h"
#include "lwip/netif.h"

#include "stack_int.h"

#define READS_PER_WAKEUP 64
#define IOV_PER_PACKET 16

static void write_one(struct gx_stack *s, struct pbuf *p) {
    struct iovec iov[IOV_PER_PACKET];
    int n = 0;
    for (struct pbuf *q = p; q != NULL && n < IOV_PER_PACKET; q = q->next) {
        if (q->len == 0)
            continue;
        iov[n].iov_base = q->payload;
        iov[n].iov_len = q->len;
        n++;
    }
    ssize_t w = writev(s->cfg.tun_fd, iov, n);
    if (w == (ssize_t)p->tot_len) {
        STAT_ADD(s, tun_tx_pkts, 1);
        STAT_ADD(s, tun_tx_bytes, w);
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
    if (pbuf_clen(p) > IOV_PER_PACKET) { /* a long chain: send a flat copy */
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
    netif->mtu = (u16_t)s->cfg.mtu;
#if LWIP_ND6_ALLOW_RA_UPDATES
    netif->mtu6 = (u16_t)s->cfg.mtu;
#endif
    netif->output = output4;
    netif->output_ip6 = output6;
    netif->flags = NETIF_FLAG_LINK_UP | NETIF_FLAG_ANY_DST;
    return ERR_OK;
}

int tun_netif_add(struct gx_stack *s) {
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
}

void tun_read_packets(struct gx_stack *s) {
    uint32_t cap = s->cfg.mtu;
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)cap, PBUF_RAM);
        if (p == NULL)
            return;
        ssize_t n = read(s->cfg.tun_fd, p->payload, cap);
        if (n <= 0) {
            pbuf_free(p);
            return; /* EAGAIN (drained), or an error epoll reports again */
        }
        STAT_ADD(s, tun_rx_pkts, 1);
        STAT_ADD(s, tun_rx_bytes, n);
        pbuf_realloc(p, (u16_t)n);
        if (s->netif.input(p, &s->netif) != ERR_OK)
            pbuf_free(p);
    }
}
