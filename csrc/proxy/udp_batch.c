/* Batched UDP sends with GSO (gx/proxy.h, gx_udp_sendmmsg).
 *
 * A forwarder's batch often holds runs of datagrams of one size for one address (a stream of full-size
 * datagrams from one client). Each such run goes out as one UDP_SEGMENT send: the kernel builds one large
 * packet, routes it once, and cuts it into the datagrams at the device or at the receiving socket, the
 * same datagrams on the wire as one send each. Everything else goes out as sendmmsg runs.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/uio.h>

#include "gx/proxy.h"

#define GSO_BYTES 65000u /* a GSO packet stays one IP packet of at most 64 KiB, headers included */

static size_t msg_bytes(const struct msghdr *h) {
    size_t t = 0;
    for (size_t k = 0; k < h->msg_iovlen; k++)
        t += h->msg_iov[k].iov_len;
    return t;
}

/* The same address and port (by field: padding such as sin_zero is not compared) */
static bool same_dest(const struct msghdr *a, const struct msghdr *b) {
    if (a->msg_namelen != b->msg_namelen)
        return false;
    if (a->msg_namelen == 0 || a->msg_name == b->msg_name)
        return true;
    const struct sockaddr *x = a->msg_name, *y = b->msg_name;
    if (x->sa_family != y->sa_family)
        return false;
    if (x->sa_family == AF_INET && a->msg_namelen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *p = a->msg_name, *q = b->msg_name;
        return p->sin_port == q->sin_port && p->sin_addr.s_addr == q->sin_addr.s_addr;
    }
    if (x->sa_family == AF_INET6 && a->msg_namelen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *p = a->msg_name, *q = b->msg_name;
        return p->sin6_port == q->sin6_port && p->sin6_scope_id == q->sin6_scope_id &&
               memcmp(&p->sin6_addr, &q->sin6_addr, sizeof(p->sin6_addr)) == 0;
    }
    return false; /* another family: no run */
}

/* How many of msg[i..n) one GSO send carries: one address, one length, the last one possibly shorter;
 * *seg is that length. 1: no run here. */
static int gso_run(struct mmsghdr *msg, int i, int n, size_t *seg) {
    const struct msghdr *first = &msg[i].msg_hdr;
    size_t len = msg_bytes(first), total = len, iovs = first->msg_iovlen;
    *seg = len;
    if (len == 0 || len > GSO_BYTES / 2 || first->msg_controllen)
        return 1;
    int j = i + 1;
    for (; j < n && j - i < GX_UDP_GSO_SEGS; j++) {
        const struct msghdr *h = &msg[j].msg_hdr;
        size_t l = msg_bytes(h);
        if (l == 0 || l > len || h->msg_controllen || !same_dest(first, h) || total + l > GSO_BYTES ||
            iovs + h->msg_iovlen > 2 * GX_UDP_GSO_SEGS)
            break;
        total += l;
        iovs += h->msg_iovlen;
        if (l < len) { /* a shorter one ends the run */
            j++;
            break;
        }
    }
    return j - i;
}

static int send_gso(int fd, struct mmsghdr *msg, int k, size_t seg) {
    struct iovec iov[2 * GX_UDP_GSO_SEGS];
    size_t niov = 0;
    for (int i = 0; i < k; i++) {
        const struct msghdr *h = &msg[i].msg_hdr;
        for (size_t v = 0; v < h->msg_iovlen && niov < sizeof(iov) / sizeof(iov[0]); v++)
            iov[niov++] = h->msg_iov[v];
    }
    union gx_udp_segment_ctl control;
    struct msghdr h = {.msg_name = msg[0].msg_hdr.msg_name, .msg_namelen = msg[0].msg_hdr.msg_namelen,
                       .msg_iov = iov, .msg_iovlen = niov};
    gx_udp_segment_cmsg(&h, &control, (uint16_t)seg);
    if (sendmsg(fd, &h, MSG_DONTWAIT) < 0)
        return -errno;
    for (int i = 0; i < k; i++)
        msg[i].msg_len = (unsigned)msg_bytes(&msg[i].msg_hdr);
    return 0;
}

/* Datagrams from msg[i] on that start no GSO run (up to where one starts). */
static int plain_run(struct mmsghdr *msg, int i, int n, bool gso_off) {
    if (gso_off)
        return n - i;
    int j = i + 1;
    for (; j < n; j++) {
        size_t seg;
        if (gso_run(msg, j, n, &seg) > 1)
            break;
    }
    return j - i;
}

int gx_udp_sendmmsg(int fd, struct mmsghdr *msg, int n, bool *gso_off, _Atomic uint64_t *gso_counts) {
    int done = 0;
    while (done < n) {
        size_t seg = 0;
        int k = *gso_off ? 1 : gso_run(msg, done, n, &seg);
        if (k > 1) {
            int rc = send_gso(fd, msg + done, k, seg);
            if (rc == 0) {
                if (gso_counts)
                    gx_relay_count(gso_counts, 0, 1);
                done += k;
                continue;
            }
            if (rc == -EINTR)
                continue;
            if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -ENOBUFS) {
                if (done)
                    return done;
                errno = -rc;
                return -1;
            }
            /* no GSO on this route or kernel (EIO: no checksum offload; EINVAL: larger than the path's
             * MTU, or too old a kernel): this socket sends plainly from now on. Other errors (an unreachable
             * address, ...) belong to the datagrams: this run goes out plainly, to fail one by one. */
            if (rc == -EIO || rc == -EINVAL || rc == -EOPNOTSUPP || rc == -ENOPROTOOPT) {
                *gso_off = true;
                if (gso_counts)
                    gx_relay_count(gso_counts, 1, 1);
            }
        } else {
            k = plain_run(msg, done, n, *gso_off);
        }
        int sent = sendmmsg(fd, msg + done, (unsigned)k, MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            return done ? done : -1;
        }
        done += sent;
        if (sent < k)
            return done;
    }
    return done;
}
