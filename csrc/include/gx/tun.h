/* TUN/TAP devices on Linux: open, batched non-blocking read and write.
 *
 * Contract (like wireguard-go's tun.Device batch calls): a read call fills up to b->cap packets,
 * looping on read() until EAGAIN or the batch is full, and returns how many it read (also b->n).
 * A write call writes every packet of the batch whose len > 0. Both return a count, or -errno
 * (-EAGAIN when a read found nothing at all). Packets are IP packets (TUN, IFF_NO_PI) or Ethernet
 * frames (TAP). With IFF_VNET_HDR each packet on the fd carries a struct virtio_net_hdr in front;
 * the read/write calls strip/add a plain header (no GSO) so callers always see bare packets.
 */
#ifndef GX_TUN_H
#define GX_TUN_H

#include <stdint.h>
#include "gx/batch.h"

#define GX_TUN_TAP         0x1u   /* IFF_TAP instead of IFF_TUN */
#define GX_TUN_MULTI_QUEUE 0x2u   /* IFF_MULTI_QUEUE: nqueues fds on one device */
#define GX_TUN_VNET_HDR    0x4u   /* IFF_VNET_HDR + TUNSETOFFLOAD probing */

/* Offload bits that gx_tun_open reports as enabled (the kernel's TUN_F_* values). */
#define GX_TUN_F_CSUM 0x01u
#define GX_TUN_F_TSO4 0x02u
#define GX_TUN_F_TSO6 0x04u
#define GX_TUN_F_USO4 0x20u
#define GX_TUN_F_USO6 0x40u

struct gx_tun_info {
    char name[16];                /* the interface name the kernel gave (IFNAMSIZ) */
    unsigned offloads;            /* GX_TUN_F_* actually enabled (0 without VNET_HDR) */
    int vnet_hdr;                 /* 1 when fds carry a virtio_net_hdr */
};

/* Open /dev/net/tun nqueues times (1 unless GX_TUN_MULTI_QUEUE) as device `name` (NULL or "" = the
 * kernel picks tunN/tapN), non-blocking, close-on-exec. fds[0..nqueues-1] get the fds. Returns 0 or
 * -errno: -EBUSY when the name is in use by another device, -EPERM without CAP_NET_ADMIN. */
int gx_tun_open(const char *name, unsigned flags, int nqueues, int *fds, struct gx_tun_info *info);
int gx_tun_read_batch(int fd, int vnet_hdr, struct gx_batch *b);
int gx_tun_write_batch(int fd, int vnet_hdr, const struct gx_batch *b);

#endif
