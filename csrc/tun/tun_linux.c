/* TUN/TAP devices on Linux: TUNSETIFF (IFF_NO_PI, IFF_MULTI_QUEUE, IFF_VNET_HDR), offload probing
 * with TUNSETOFFLOAD, and batched non-blocking read/write. See gx/tun.h for the contract. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <endian.h>
#include <linux/if_tun.h>

#include "gx/tun.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

_Static_assert(GX_TUN_F_CSUM == TUN_F_CSUM && GX_TUN_F_TSO4 == TUN_F_TSO4 && GX_TUN_F_TSO6 == TUN_F_TSO6 &&
               GX_TUN_F_USO4 == TUN_F_USO4 && GX_TUN_F_USO6 == TUN_F_USO6, "GX_TUN_F_* are TUN_F_*");

#define TUN_PATH "/dev/net/tun"
#define KNOWN_FLAGS (GX_TUN_TAP | GX_TUN_MULTI_QUEUE | GX_TUN_VNET_HDR | GX_TUN_GSO)
/* At most this many reads per read call, drops included, so a flood of bad packets ends a call. */
#define READS_PER_SLOT 4u

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* TUNSETIFF failed with err for ifr_name `name`: EBUSY means a TUN/TAP of that name is attached
 * already; EINVAL for an existing name means it is not a TUN/TAP or has other flags. */
static int map_setiff_error(int err, const char *name) {
    if (err == EBUSY)
        return -EBUSY;
    if (err == EINVAL && name[0] != '\0' && if_nametoindex(name) != 0)
        return -EBUSY;
    return -err;
}

/* Enable the offloads; the kernel rejects unknown bits with EINVAL, so try smaller sets. */
static unsigned probe_offloads(int fd, int gso) {
    static const unsigned with_gso[] = {
        TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
        TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
        TUN_F_CSUM,
    };
    for (size_t i = gso ? 0 : 2; i < sizeof(with_gso) / sizeof(with_gso[0]); i++) {
        if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)with_gso[i]) == 0)
            return with_gso[i];
    }
    (void)ioctl(fd, TUNSETOFFLOAD, 0ul);
    return 0;
}

static int setup_vnet(int fd, unsigned flags, struct gx_tun_info *info) {
    int size = GX_VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0)
        return -errno;
    int le = 1;
    if (ioctl(fd, TUNSETVNETLE, &le) < 0) {
#if __BYTE_ORDER == __BIG_ENDIAN
        return -errno;   /* without it the header would be big-endian here */
#endif
    }
    info->offloads = probe_offloads(fd, (flags & GX_TUN_GSO) != 0);
    if (!(info->offloads & GX_TUN_F_GSO_ANY))
        info->vnet_hdr = GX_TUN_VNET_CSUM;
    else
        info->vnet_hdr = (flags & GX_TUN_TAP) ? GX_TUN_VNET_GSO_ETH : GX_TUN_VNET_GSO;
    return 0;
}

int gx_tun_open(const char *name, unsigned flags, int nqueues, int *fds, struct gx_tun_info *info) {
    if (fds == NULL || info == NULL)
        return -EINVAL;
    memset(info, 0, sizeof(*info));
    if ((flags & ~KNOWN_FLAGS) || nqueues < 1 || nqueues > GX_TUN_MAX_QUEUES)
        return -EINVAL;
    if (!(flags & GX_TUN_MULTI_QUEUE) && nqueues != 1)
        return -EINVAL;
    if ((flags & GX_TUN_GSO) && !(flags & GX_TUN_VNET_HDR))
        return -EINVAL;
    if (name == NULL)
        name = "";
    if (strlen(name) >= IFNAMSIZ)
        return -ENAMETOOLONG;
    for (int i = 0; i < nqueues; i++)
        fds[i] = -1;

    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name, strlen(name));
    short ifflags = (flags & GX_TUN_TAP) ? IFF_TAP : IFF_TUN;
    ifflags |= IFF_NO_PI;
    if (flags & GX_TUN_MULTI_QUEUE)
        ifflags |= IFF_MULTI_QUEUE;
    if (flags & GX_TUN_VNET_HDR)
        ifflags |= IFF_VNET_HDR;

    int rc = 0;
    for (int q = 0; q < nqueues; q++) {
        int fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            rc = -errno;
            goto fail;
        }
        fds[q] = fd;
        char asked[IFNAMSIZ];
        memcpy(asked, ifr.ifr_name, IFNAMSIZ);
        ifr.ifr_flags = ifflags;
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
            rc = map_setiff_error(errno, asked);
            goto fail;
        }
        ifr.ifr_name[IFNAMSIZ - 1] = '\0';   /* the kernel's name; later queues attach to it */
    }
    memcpy(info->name, ifr.ifr_name, IFNAMSIZ);
    if (flags & GX_TUN_VNET_HDR) {
        rc = setup_vnet(fds[0], flags, info);
        if (rc < 0)
            goto fail;
    }
    return 0;

fail:
    close_all(fds, nqueues);
    memset(info, 0, sizeof(*info));
    return rc;
}

static int is_gso(int vnet_hdr) {
    return vnet_hdr == GX_TUN_VNET_GSO || vnet_hdr == GX_TUN_VNET_GSO_ETH;
}

/* Room for the part of a GSO super-packet that does not fit its slot. Per thread: each data-plane
 * thread reads its own queue. */
static _Thread_local uint8_t gso_scratch[GX_TUN_GSO_MAX + 1];

/* What one read() produced. */
enum read_outcome { READ_PACKETS, READ_DROPPED, READ_STOP };

/* Read one packet into slot b->n (plus the segments of a super-packet into the following slots),
 * advancing b->n. On READ_STOP *err holds the errno that ended the loop (0 for a 0-byte read). */
static enum read_outcome read_one(int fd, int vnet_hdr, struct gx_batch *b, int *err) {
    const uint32_t room = gx_batch_room(b);
    struct gx_pkt *p = &b->pkt[b->n];
    p->data = gx_batch_slot(b, b->n) + b->headroom;
    p->len = 0;
    p->flags = 0;

    uint8_t raw[GX_VNET_HDR_LEN];
    uint8_t overflow[64];
    struct iovec iov[3];
    int iovcnt = 0;
    if (vnet_hdr)
        iov[iovcnt++] = (struct iovec){raw, sizeof(raw)};
    iov[iovcnt++] = (struct iovec){p->data, room};
    /* Bytes past the slot land here: a packet that got any is too large (or a super-packet). */
    if (is_gso(vnet_hdr)) {
        if (room < sizeof(gso_scratch))
            iov[iovcnt++] = (struct iovec){gso_scratch + room, sizeof(gso_scratch) - room};
    } else {
        iov[iovcnt++] = (struct iovec){overflow, sizeof(overflow)};
    }

    ssize_t r;
    do {
        r = readv(fd, iov, iovcnt);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
        *err = r < 0 ? errno : 0;
        return READ_STOP;
    }
    size_t got = (size_t)r;
    if (!vnet_hdr) {
        if (got > room)
            return READ_DROPPED;
        p->len = (uint32_t)got;
        b->n++;
        return READ_PACKETS;
    }
    if (got <= GX_VNET_HDR_LEN)
        return READ_DROPPED;
    size_t len = got - GX_VNET_HDR_LEN;
    struct gx_vnet_hdr h;
    gx_vnet_hdr_decode(raw, &h);

    if ((h.gso_type & (uint8_t)~GX_VNET_GSO_ECN) == GX_VNET_GSO_NONE) {
        if (len > room)
            return READ_DROPPED;
        if ((h.flags & GX_VNET_F_NEEDS_CSUM) &&
            gx_tun_csum_complete(p->data, (uint32_t)len, h.csum_start, h.csum_offset) < 0)
            return READ_DROPPED;
        p->len = (uint32_t)len;
        b->n++;
        return READ_PACKETS;
    }
    if (!is_gso(vnet_hdr) || len > GX_TUN_GSO_MAX)
        return READ_DROPPED;      /* truncated: this mode has no room for super-packets */
    /* Make the super-packet contiguous in the scratch buffer, then cut it into the slots. */
    memcpy(gso_scratch, p->data, len < room ? len : room);
    int l3off = vnet_hdr == GX_TUN_VNET_GSO_ETH ? gx_eth_l3_offset(gso_scratch, (uint32_t)len) : 0;
    if (l3off < 0)
        return READ_DROPPED;
    return gx_tun_gso_split_at(gso_scratch, (uint32_t)len, &h, (uint32_t)l3off, b) > 0 ? READ_PACKETS
                                                                                      : READ_DROPPED;
}

int gx_tun_read_batch(int fd, int vnet_hdr, struct gx_batch *b) {
    if (b == NULL || b->mem == NULL || b->cap == 0)
        return -EINVAL;
    b->n = 0;
    int err = EAGAIN;
    uint32_t reads = 0;
    while (b->n < b->cap && reads < READS_PER_SLOT * b->cap) {
        if (is_gso(vnet_hdr) && b->n > 0 && b->cap - b->n < GX_TUN_GSO_RESERVE)
            break;
        reads++;
        if (read_one(fd, vnet_hdr, b, &err) == READ_STOP)
            break;
    }
    if (b->n == 0)
        return -(err ? err : EAGAIN);
    return (int)b->n;
}

/* Errors that drop one packet; anything else is the device's problem. */
static int is_packet_error(int err) {
    return err == EAGAIN || err == EWOULDBLOCK || err == EIO || err == EINVAL || err == EMSGSIZE ||
           err == ENOBUFS || err == ENOMEM || err == EFAULT;
}

int gx_tun_write_batch(int fd, int vnet_hdr, const struct gx_batch *b) {
    static const uint8_t plain_hdr[GX_VNET_HDR_LEN];   /* flags 0, gso_type NONE */
    if (b == NULL)
        return -EINVAL;
    int written = 0;
    uint32_t n = b->n <= b->cap ? b->n : b->cap;
    for (uint32_t i = 0; i < n; i++) {
        const struct gx_pkt *p = &b->pkt[i];
        if (p->len == 0)
            continue;
        ssize_t r;
        do {
            if (vnet_hdr) {
                struct iovec iov[2] = {{(void *)plain_hdr, sizeof(plain_hdr)}, {p->data, p->len}};
                r = writev(fd, iov, 2);
            } else {
                r = write(fd, p->data, p->len);
            }
        } while (r < 0 && errno == EINTR);
        if (r >= 0) {
            written++;
            continue;
        }
        if (is_packet_error(errno))
            continue;
        if (written == 0)
            return -errno;
        break;
    }
    return written;
}
