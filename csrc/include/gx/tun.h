/* TUN/TAP devices on Linux: open, batched non-blocking read and write.
 *
 * Contract (like wireguard-go's tun.Device batch calls): a read call fills up to b->cap packets,
 * looping on read() until EAGAIN or the batch is full, and returns how many it read (also b->n).
 * A write call writes every packet of the batch whose len > 0. Both return a count, or -errno
 * (-EAGAIN when a read found nothing at all). Packets are IP packets (TUN, IFF_NO_PI) or Ethernet
 * frames (TAP). With IFF_VNET_HDR each packet on the fd carries a struct virtio_net_hdr in front;
 * the read calls strip it (finishing checksums, splitting GSO super-packets) and the write calls
 * add a plain one (no GSO), so callers always see bare packets with valid checksums.
 *
 * Offloads (IFF_VNET_HDR), what this module chose:
 *  - GX_TUN_VNET_HDR alone enables TUN_F_CSUM only. The kernel then hands us packets whose
 *    TCP/UDP checksum is partial (VIRTIO_NET_HDR_F_NEEDS_CSUM + csum_start/csum_offset); the read
 *    call completes them in software, so callers always get packets with valid checksums. The
 *    kernel never sends GSO packets in this mode.
 *  - GX_TUN_VNET_HDR | GX_TUN_GSO additionally probes TSO4|TSO6|USO4|USO6, falling back
 *    to TSO4|TSO6 and then to CSUM alone (the kernel refuses bits it does not know). The kernel may
 *    then hand us one 64 KiB "super-packet" per read; the read call splits it into MTU-sized
 *    TCP/UDP segments (one batch slot each: IPv4 total length, id and header checksum, IPv6
 *    payload length, TCP seq and FIN/PSH/CWR, UDP length and every L4 checksum redone). If a
 *    super-packet has more segments than the batch has free slots, the segments that do not fit
 *    are dropped; to make that rare, a read in mode GX_TUN_VNET_GSO stops reading once fewer than
 *    GX_TUN_GSO_RESERVE slots are free (after the first packet). A TAP device does the same for
 *    Ethernet frames (mode GX_TUN_VNET_GSO_ETH): each segment gets the frame's Ethernet header
 *    (untagged or one VLAN tag); a super-frame of another ethertype is dropped.
 *  - Writes send gso_type NONE with flags 0 (packets must carry complete checksums), except the GRO
 *    writes below.
 *  - The header is little-endian (TUNSETVNETLE); every field is bounds-checked, and a packet
 *    whose header does not fit is dropped (not returned), like one too large for a slot.
 */
#ifndef GX_TUN_H
#define GX_TUN_H

#include <stdint.h>
#include <sys/uio.h>
#include "gx/base.h"

#define GX_TUN_TAP         0x1u   /* IFF_TAP instead of IFF_TUN */
#define GX_TUN_MULTI_QUEUE 0x2u   /* IFF_MULTI_QUEUE: nqueues fds on one device */
#define GX_TUN_VNET_HDR    0x4u   /* IFF_VNET_HDR + TUNSETOFFLOAD probing (TUN_F_CSUM) */
#define GX_TUN_GSO         0x8u   /* with GX_TUN_VNET_HDR: also TSO/USO, reads split them */

#define GX_TUN_MAX_QUEUES  256    /* the kernel's MAX_TAP_QUEUES */

/* Offload bits that gx_tun_open reports as enabled (the kernel's TUN_F_* values). */
#define GX_TUN_F_CSUM 0x01u
#define GX_TUN_F_TSO4 0x02u
#define GX_TUN_F_TSO6 0x04u
#define GX_TUN_F_USO4 0x20u
#define GX_TUN_F_USO6 0x40u
#define GX_TUN_F_GSO_ANY (GX_TUN_F_TSO4 | GX_TUN_F_TSO6 | GX_TUN_F_USO4 | GX_TUN_F_USO6)

/* The vnet_hdr modes that the read/write calls take (info->vnet_hdr after open). */
#define GX_TUN_VNET_NONE 0        /* bare packets on the fd */
#define GX_TUN_VNET_CSUM 1        /* a virtio_net_hdr in front; no GSO expected */
#define GX_TUN_VNET_GSO  2        /* a virtio_net_hdr in front; super-packets are split on read */
#define GX_TUN_VNET_GSO_ETH 3     /* the same for a TAP device: Ethernet frames around them */

#define GX_TUN_GSO_RESERVE 64     /* free slots a GSO-mode read keeps for a super-packet */
#define GX_TUN_GSO_MAX (65535 + 18)   /* the largest packet a GSO-mode read accepts: 64 KiB of IP
                                        behind an Ethernet header with a VLAN tag */

struct gx_tun_info {
    char name[16];                /* the interface name the kernel gave (IFNAMSIZ) */
    unsigned offloads;            /* GX_TUN_F_* actually enabled (0 without VNET_HDR) */
    int vnet_hdr;                 /* GX_TUN_VNET_*: pass it to the read/write calls */
};

/* Open /dev/net/tun nqueues times (1 unless GX_TUN_MULTI_QUEUE) as device `name` (NULL or "" = the
 * kernel picks tunN/tapN; a "%d" in the name is filled in by the kernel), non-blocking,
 * close-on-exec. fds[0..nqueues-1] get the fds. The device is not persistent: it disappears when
 * the last fd is closed. Returns 0 or -errno: -EBUSY when the name is in use by another device
 * (another TUN/TAP in use, one with other flags, or a device that is not a TUN/TAP at all),
 * -EPERM without CAP_NET_ADMIN, -ENOENT/-ENODEV without /dev/net/tun, -ENAMETOOLONG for a name
 * of 16 bytes or more, -EINVAL for bad flags or queue counts. On failure no fd stays open. */
int gx_tun_open(const char *name, unsigned flags, int nqueues, int *fds, struct gx_tun_info *info);

/* Read packets into b->pkt[0..] (each pkt[i].data is reset to its slot + headroom; room is
 * gx_batch_room(b)) until EAGAIN or the batch is full. Packets too large for a slot are dropped.
 * Returns the count (= b->n), -EAGAIN when there was nothing, or -errno of a read error that came
 * before any packet (a later error ends the batch; the next call sees it). */
int gx_tun_read_batch(int fd, int vnet_hdr, struct gx_batch *b);

/* Write every pkt[i] (i < b->n) whose len > 0. A packet the kernel refuses (EAGAIN: queue full;
 * EIO/EINVAL/EMSGSIZE/ENOBUFS/ENOMEM/EFAULT: a bad packet) is dropped and the rest still written.
 * Returns the number written, or -errno of a device error (e.g. -EBADF, -EBADFD) when nothing
 * was written. */
int gx_tun_write_batch(int fd, int vnet_hdr, const struct gx_batch *b);

/* ---- virtio_net_hdr offload helpers (pure functions, csrc/tun/tun_offload.c) ---- */

#define GX_VNET_HDR_LEN 10                 /* sizeof(struct virtio_net_hdr) */
#define GX_VNET_F_NEEDS_CSUM 0x01u
#define GX_VNET_GSO_NONE  0u
#define GX_VNET_GSO_TCPV4 1u
#define GX_VNET_GSO_TCPV6 4u
#define GX_VNET_GSO_UDP_L4 5u
#define GX_VNET_GSO_ECN   0x80u

/* A decoded virtio_net_hdr (host byte order). */
struct gx_vnet_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
};

/* Decode/encode the 10 little-endian header bytes. */
void gx_vnet_hdr_decode(const uint8_t raw[GX_VNET_HDR_LEN], struct gx_vnet_hdr *h);
void gx_vnet_hdr_encode(const struct gx_vnet_hdr *h, uint8_t raw[GX_VNET_HDR_LEN]);

/* Complete a partial checksum in place (VIRTIO_NET_HDR_F_NEEDS_CSUM): the 16-bit field at
 * csum_start + csum_offset holds the pseudo-header sum; it becomes the checksum of
 * pkt[csum_start..len). 0, or -EINVAL when the offsets do not fit in len. */
int gx_tun_csum_complete(uint8_t *pkt, uint32_t len, uint16_t csum_start, uint16_t csum_offset);

/* One's complement sums (the native-order accumulation RFC 1071 allows): add n bytes to acc; fold to
 * 16 bits (not inverted). */
uint64_t gx_csum_add(const uint8_t *p, size_t n, uint64_t acc);
uint16_t gx_csum_fold(uint64_t acc);

/* GRO for writes (csrc/tun/tun_gro.c), on a GX_TUN_VNET_GSO device: consecutive TCP segments of one flow
 * (same addresses, ports, ack, options, flags ACK[/PSH on the last], contiguous seq, equal sizes but
 * the last) become one GSO super-packet with a virtio_net_hdr (NEEDS_CSUM, gso_size = the segment
 * size), so the kernel takes up to 64 KiB in one write and one pass through its TCP stack. eth: the
 * packets are Ethernet frames (a GX_TUN_VNET_GSO_ETH TAP device); frames coalesce when their
 * 14-byte Ethernet headers are equal (IPv4 or IPv6, no VLAN tag) and the super-frame keeps it.
 * gx_tun_gro_next_iov describes the next write from b->pkt[*i..] without copying the payloads:
 * iov[0] is hdr, which gets [virtio_net_hdr][the headers of the super-packet] (or [virtio_net_hdr]
 * alone before one packet written as it is), iov[1..] point into the batch (the payloads, or the one
 * packet). *i moves past the packets it covers (skipping empty ones), *covered counts them and *bytes
 * is the write's length. Returns the iovec count (at most 1 + GX_BATCH_MAX), 0 when no packet is left.
 * gx_tun_gro_next is the same write copied into out (GX_VNET_HDR_LEN + 14 + 65535 bytes); returns its
 * length. */
#define GX_GRO_HDR_MAX (GX_VNET_HDR_LEN + 14 + 40 + 60)   /* vnet, Ethernet, IPv6 and longest TCP headers */
int gx_tun_gro_next_iov(const struct gx_batch *b, int eth, uint32_t *i, uint8_t hdr[GX_GRO_HDR_MAX],
                        struct iovec *iov, uint32_t *covered, uint32_t *bytes);
uint32_t gx_tun_gro_next(const struct gx_batch *b, int eth, uint32_t *i, uint8_t *out, uint32_t *covered);
/* Write the batch through gx_tun_gro_next_iov (one writev each); returns packets written (as
 * gx_tun_write_batch). */
int gx_tun_write_batch_gro(int fd, const struct gx_batch *b, int eth, uint64_t *supers);

/* Split the GSO super-packet in[0..len) (an IP packet, described by h) into segments appended to
 * the batch at b->pkt[b->n..] (data reset to slot + headroom), b->n advanced. Returns the number
 * of segments written (segments beyond b->cap are dropped), -EINVAL for a malformed packet or
 * header, -EMSGSIZE when one segment does not fit a slot, -EPROTONOSUPPORT for a gso_type other
 * than TCPV4/TCPV6/UDP_L4. in must not overlap the batch. */
int gx_tun_gso_split(const uint8_t *in, uint32_t len, const struct gx_vnet_hdr *h, struct gx_batch *b);
/* The same for a packet whose IP header starts at l3off (<= 18: an Ethernet frame), which every
 * segment keeps in front (csum_start in h counts from the frame's start, as a TAP device gives it). */
int gx_tun_gso_split_at(const uint8_t *in, uint32_t len, const struct gx_vnet_hdr *h, uint32_t l3off,
                        struct gx_batch *b);
/* Where the IP header of an Ethernet frame starts: 14, 18 behind one VLAN tag; -EPROTONOSUPPORT when
 * it is not IPv4/IPv6, -EINVAL when shorter than the header. */
int gx_eth_l3_offset(const uint8_t *frame, uint32_t len);

#endif
