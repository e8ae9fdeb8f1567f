/* Fake TCP endpoints on raw sockets: the sockets (raw with BPF, muted kernel TCP), dialing, listening,
 * closing (see gx/faketcp.h for the contract and the wire rules). The flows are in faketcp_flow.c, the
 * transport's receive and send in faketcp_io.c, segment parsing and building in faketcp_segment.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "faketcp_internal.h"

/* ---------------------------------------------------------------------------------------------- */
/* sockets */

static void set_buffers(int fd) {
    int v = RAW_BUFFER_BYTES;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* Set the TTL / hop limit of a kernel TCP socket: 1 mutes it, -1 restores the default. An IPv4 flow
 * may sit on an IPv6 (dual-stack) socket: IP_TTL applies to it there too. */
int ftcp_set_ttl(int fd, int family, bool v6_flow, int ttl) {
    if (!v6_flow)
        return setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) < 0 ? -errno : 0;
    (void)family;
    return setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) < 0 ? -errno : 0;
}

/* Mute a kernel TCP connection: TTL / hop limit 1 (the nftables rule drops what it still sends), and a
 * socket filter that keeps segments with PSH (our data, which the raw sockets take) away from it, so
 * it does not answer each of them with an ACK. Handshake, ACK, FIN and RST segments still reach it.
 * (The filter sees the segment from its TCP header on.) */
int ftcp_mute(int fd, int family, bool v6_flow) {
    int rc = ftcp_set_ttl(fd, family, v6_flow, 1);
    if (rc < 0)
        return rc;
    struct sock_filter prog[] = {
        {BPF_LD | BPF_B | BPF_ABS, 0, 0, 13},          /* TCP flags */
        {BPF_JMP | BPF_JSET | BPF_K, 1, 0, GX_TCP_PSH},
        {BPF_RET | BPF_K, 0, 0, SNAP_ALL},
        {BPF_RET | BPF_K, 0, 0, 0},
    };
    struct sock_fprog fp = {.len = sizeof(prog) / sizeof(prog[0]), .filter = prog};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) < 0 ? -errno : 0;
}

static void drain(int fd) {
    uint8_t buf[64];
    for (int i = 0; i < 100000; i++)
        if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC) < 0)
            break;
}

/* A raw IPPROTO_TCP socket for family with a filter for dport (and sport when non-zero). Bound to
 * bind_ip (16-byte form, NULL = any), connected to peer when given. Packets queued before the filter
 * was attached are drained. */
static int raw_open(int family, uint16_t sport, uint16_t dport, const struct sockaddr_storage *bind_addr,
                    const struct sockaddr_storage *peer) {
    int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -errno;
    struct sock_filter prog[GX_FAKETCP_BPF_MAX];
    int n = gx_faketcp_bpf(prog, GX_FAKETCP_BPF_MAX, family == AF_INET, sport, dport);
    struct sock_fprog fp = {.len = (unsigned short)n, .filter = prog};
    int rc = 0;
    if (n < 0)
        rc = n;
    else if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) < 0)
        rc = -errno;
    if (rc == 0 && family == AF_INET6) {
        int off = 16; /* the TCP checksum: the kernel computes it on send and checks it on receive */
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof(off)) < 0)
            rc = -errno;
    }
    socklen_t alen = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (rc == 0 && bind_addr != NULL && bind(fd, (const struct sockaddr *)bind_addr, alen) < 0)
        rc = -errno;
    if (rc == 0 && peer != NULL && connect(fd, (const struct sockaddr *)peer, alen) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    set_buffers(fd);
    drain(fd);
    return fd;
}

int ftcp_ep_add(struct gx_faketcp *f, struct src *s, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = s};
    return epoll_ctl(f->ep, EPOLL_CTL_ADD, s->fd, &ev) < 0 ? -errno : 0;
}

static int common_init(struct gx_faketcp *f, uint32_t tick_ms) {
    f->ep = epoll_create1(EPOLL_CLOEXEC);
    if (f->ep < 0)
        return -errno;
    f->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (f->timer < 0)
        return -errno;
    struct itimerspec its = {
        .it_interval = {tick_ms / 1000u, (long)(tick_ms % 1000u) * 1000000L},
        .it_value = {tick_ms / 1000u, (long)(tick_ms % 1000u) * 1000000L},
    };
    if (timerfd_settime(f->timer, 0, &its, NULL) < 0)
        return -errno;
    f->s_timer = (struct src){.kind = SRC_TIMER, .fd = f->timer};
    int rc = ftcp_ep_add(f, &f->s_timer, EPOLLIN);
    if (rc == 0 && f->raw4 >= 0) {
        f->s_raw4 = (struct src){.kind = SRC_RAW4, .fd = f->raw4};
        rc = ftcp_ep_add(f, &f->s_raw4, EPOLLIN);
    }
    if (rc == 0 && f->raw6 >= 0) {
        f->s_raw6 = (struct src){.kind = SRC_RAW6, .fd = f->raw6};
        rc = ftcp_ep_add(f, &f->s_raw6, EPOLLIN);
    }
    if (rc == 0) {
        f->s_tcp = (struct src){.kind = f->role == ROLE_SERVER ? SRC_LISTEN : SRC_CONN, .fd = f->tcp, .v6 = f->v6};
        rc = ftcp_ep_add(f, &f->s_tcp, f->role == ROLE_SERVER ? EPOLLIN : EPOLLIN | EPOLLRDHUP);
    }
    return rc;
}

static struct gx_faketcp *faketcp_alloc(int role) {
    struct gx_faketcp *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->rx = calloc(1, sizeof(*f->rx));
    if (f->rx == NULL) {
        free(f);
        return NULL;
    }
    f->role = role;
    f->tcp = f->raw4 = f->raw6 = f->ep = f->timer = -1;
    return f;
}

/* Normalise a socket address: a v4-mapped IPv6 address becomes IPv4. Returns its length or 0. */
static socklen_t normalise(const struct sockaddr *in, socklen_t len, struct sockaddr_storage *out) {
    memset(out, 0, sizeof(*out));
    if (in == NULL)
        return 0;
    if (in->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        memcpy(out, in, sizeof(struct sockaddr_in));
        return sizeof(struct sockaddr_in);
    }
    if (in->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const void *)in;
        if (is_v4_mapped(s6->sin6_addr.s6_addr)) {
            struct sockaddr_in *s4 = (void *)out;
            s4->sin_family = AF_INET;
            s4->sin_port = s6->sin6_port;
            memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
            return sizeof(*s4);
        }
        memcpy(out, in, sizeof(*s6));
        return sizeof(*s6);
    }
    return 0;
}

static void set_port(struct sockaddr_storage *a, uint16_t port) {
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)a)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

static uint16_t get_port(const struct sockaddr_storage *a) {
    return ntohs(a->ss_family == AF_INET ? ((const struct sockaddr_in *)a)->sin_port
                                         : ((const struct sockaddr_in6 *)a)->sin6_port);
}

/* ---------------------------------------------------------------------------------------------- */
/* client */

int gx_faketcp_dial(struct gx_faketcp **out, const struct sockaddr *remote, socklen_t remote_len,
                    uint32_t idle_timeout_ms) {
    struct sockaddr_storage peer;
    socklen_t plen = normalise(remote, remote_len, &peer);
    if (plen == 0 || get_port(&peer) == 0)
        return -EINVAL;
    int family = peer.ss_family;
    struct gx_faketcp *f = faketcp_alloc(ROLE_CLIENT);
    if (f == NULL)
        return -ENOMEM;
    f->v6 = family == AF_INET6;
    f->remote = peer;
    f->remote_len = plen;
    f->idle_ms = idle_timeout_ms;
    int rc = 0;

    /* the source address the kernel will use towards the server: the raw socket is bound to it */
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    int probe = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        rc = -errno;
    else if (connect(probe, (struct sockaddr *)&peer, plen) < 0 ||
             getsockname(probe, (struct sockaddr *)&local, &llen) < 0)
        rc = -errno;
    if (probe >= 0)
        close(probe);

    if (rc == 0) {
        set_port(&local, 0);
        f->tcp = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (f->tcp < 0)
            rc = -errno;
    }
    if (rc == 0 && bind(f->tcp, (struct sockaddr *)&local, plen) < 0)
        rc = -errno;
    llen = sizeof(local);
    if (rc == 0 && getsockname(f->tcp, (struct sockaddr *)&local, &llen) < 0)
        rc = -errno;
    if (rc == 0) {
        f->port = get_port(&local);
        struct fkey lk;
        key_of(&local, llen, &lk);
        memcpy(f->cflow.local, lk.ip, 16);
        atomic_store(&f->cflow.local_known, true);
        struct sockaddr_storage raw_local = local, raw_peer = peer;
        set_port(&raw_local, 0);
        set_port(&raw_peer, 0);
        int fd = raw_open(family, get_port(&peer), f->port, &raw_local, &raw_peer);
        if (fd < 0)
            rc = fd;
        else if (family == AF_INET)
            f->raw4 = fd;
        else
            f->raw6 = fd;
    }
    if (rc == 0) {
        key_of(&peer, plen, &f->cflow.key);
        f->cflow.used = true;
        if (connect(f->tcp, (struct sockaddr *)&peer, plen) < 0 && errno != EINPROGRESS)
            rc = -errno;
    }
    if (rc < 0) {
        gx_faketcp_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* Read what the raw socket holds without delivering datagrams (the handshake). */
static void client_absorb(struct gx_faketcp *f) {
    int fd = f->v6 ? f->raw6 : f->raw4;
    uint8_t buf[2048];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0)
            break;
        struct gx_faketcp_seg seg;
        if (gx_faketcp_parse(buf, (uint32_t)n, !f->v6, &seg) == 0)
            ftcp_client_segment(f, &seg, now_ms());
    }
}

int gx_faketcp_dial_finish(struct gx_faketcp *f) {
    if (f == NULL || f->role != ROLE_CLIENT || f->connected)
        return -EINVAL;
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(f->tcp, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -errno;
    if (err != 0)
        return -err;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    if (getpeername(f->tcp, (struct sockaddr *)&peer, &plen) < 0)
        return errno == ENOTCONN ? -EINPROGRESS : -errno;
    int rc = ftcp_mute(f->tcp, f->v6 ? AF_INET6 : AF_INET, f->v6);
    if (rc < 0)
        return rc;
    client_absorb(f);
    if (f->dead)
        return -f->dead;
    uint32_t tick = TICK_MS;
    if (f->idle_ms > 0 && f->idle_ms / 4 < tick)
        tick = f->idle_ms / 4 ? f->idle_ms / 4 : 1;
    rc = common_init(f, tick);
    if (rc < 0)
        return rc;
    f->last_rx_ms = now_ms();
    f->connected = true;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* server */

int gx_faketcp_listen(struct gx_faketcp **out, const struct sockaddr *local, socklen_t local_len,
                      int dual_stack, uint32_t flow_timeout_ms, uint32_t max_flows) {
    struct sockaddr_storage addr;
    socklen_t alen = 0;
    memset(&addr, 0, sizeof(addr));
    if (local != NULL && local->sa_family == AF_INET && local_len >= sizeof(struct sockaddr_in))
        memcpy(&addr, local, alen = sizeof(struct sockaddr_in));
    else if (local != NULL && local->sa_family == AF_INET6 && local_len >= sizeof(struct sockaddr_in6))
        memcpy(&addr, local, alen = sizeof(struct sockaddr_in6));
    if (alen == 0 || max_flows > (1u << 20))
        return -EINVAL;
    int family = addr.ss_family;
    struct gx_faketcp *f = faketcp_alloc(ROLE_SERVER);
    if (f == NULL)
        return -ENOMEM;
    f->flow_timeout_ms = flow_timeout_ms ? flow_timeout_ms : DEFAULT_FLOW_TIMEOUT_MS;
    f->limit = max_flows ? max_flows : DEFAULT_MAX_FLOWS;
    uint32_t cap = 16;
    while (cap < f->limit * 2u)
        cap <<= 1;
    int rc = 0;
    f->slots = calloc(cap, sizeof(*f->slots));
    if (f->slots == NULL)
        rc = -ENOMEM;
    f->mask = cap - 1;
    if (rc == 0) {
        rc = -pthread_rwlock_init(&f->lock, NULL);
        f->lock_ready = rc == 0;
    }

    bool any = false;
    if (family == AF_INET)
        any = ((struct sockaddr_in *)&addr)->sin_addr.s_addr == htonl(INADDR_ANY);
    else
        any = memcmp(&((struct sockaddr_in6 *)&addr)->sin6_addr, &in6addr_any, 16) == 0;
    bool dual = family == AF_INET6 && any && dual_stack;

    if (rc == 0) {
        f->tcp = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (f->tcp < 0)
            rc = -errno;
    }
    int one = 1, v6only = !dual;
    if (rc == 0 && setsockopt(f->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        rc = -errno;
    if (rc == 0 && family == AF_INET6 && setsockopt(f->tcp, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
        rc = -errno;
    if (rc == 0 && bind(f->tcp, (struct sockaddr *)&addr, alen) < 0)
        rc = -errno;
    if (rc == 0 && listen(f->tcp, 1024) < 0)
        rc = -errno;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (rc == 0 && getsockname(f->tcp, (struct sockaddr *)&bound, &blen) < 0)
        rc = -errno;
    if (rc == 0) {
        f->port = get_port(&bound);
        struct sockaddr_storage raw_bind = addr;
        set_port(&raw_bind, 0);
        if (family == AF_INET || dual) {
            int fd = raw_open(AF_INET, 0, f->port, family == AF_INET && !any ? &raw_bind : NULL, NULL);
            if (fd < 0)
                rc = fd;
            f->raw4 = fd;
        }
        if (rc == 0 && family == AF_INET6) {
            int fd = raw_open(AF_INET6, 0, f->port, any ? NULL : &raw_bind, NULL);
            if (fd < 0)
                rc = fd;
            f->raw6 = fd;
        }
    }
    if (rc == 0)
        rc = common_init(f, TICK_MS);
    if (rc < 0) {
        gx_faketcp_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */

int gx_faketcp_conn_fd(const struct gx_faketcp *f) { return f->tcp; }

int gx_faketcp_local(const struct gx_faketcp *f, struct sockaddr_storage *out, socklen_t *len) {
    *len = sizeof(*out);
    return getsockname(f->tcp, (struct sockaddr *)out, len) < 0 ? -errno : 0;
}

void gx_faketcp_get_stats(struct gx_faketcp *f, struct gx_faketcp_stats *out) {
    uint64_t *o = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        o[i] = atomic_load_explicit(&f->stats.v[i], memory_order_relaxed);
    if (f->role == ROLE_CLIENT)
        out->flows = f->connected && !f->dead;
}

void gx_faketcp_close(struct gx_faketcp *f) {
    if (f == NULL)
        return;
    if (f->slots != NULL) {
        for (uint32_t i = 0; i <= f->mask; i++)
            if (f->slots[i].used && f->slots[i].conn != NULL)
                ftcp_conn_close(f, f->slots[i].conn, true);
        free(f->slots);
    }
    if (f->lock_ready)
        pthread_rwlock_destroy(&f->lock);
    if (f->tcp >= 0) {
        if (f->role == ROLE_CLIENT && f->connected)
            ftcp_conn_close(f, &f->s_tcp, true); /* normal TTL: our FIN reaches a server that is still there */
        else
            close(f->tcp);
    }
    if (f->raw4 >= 0)
        close(f->raw4);
    if (f->raw6 >= 0)
        close(f->raw6);
    if (f->timer >= 0)
        close(f->timer);
    if (f->ep >= 0)
        close(f->ep);
    free(f->rx);
    free(f);
}
