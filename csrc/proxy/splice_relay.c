/* Socket <-> socket relay with splice(2) through a pipe per direction (gx/proxy.h), a handler on
 * the shared relay engine (gx/proxy.h).
 *
 * Pipes start at the kernel's default size (64 KiB) and grow to pipe_size (1 MiB) the first time a
 * splice fills half of one: a relay that carries little keeps ~1 KiB of pipe bookkeeping instead of ~32.
 *
 * Readiness: a direction asks for EPOLLIN on its source only while its pipe is empty and it has not seen
 * EOF, and for EPOLLOUT on its destination only while its pipe holds bytes. So an fd is watched only for
 * what can make progress: a source whose pipe is full is not watched (no level-triggered spin), a hung
 * up or errored socket is either watched for an operation that then reports the error, or not at all.
 * One callback moves at most ROUNDS pipe-loads per direction before the other relays get their turn.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* splice, pipe2, F_SETPIPE_SZ */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx/proxy.h"

#define ROUNDS 4
enum { SLOT_A = 0, SLOT_B = 1 };

struct direction {
    int src, dst;           /* sockets (slots src_slot / dst_slot) */
    int pr, pw;             /* the pipe's read and write ends */
    size_t pending;         /* bytes in the pipe */
    size_t cap;             /* the pipe's size now */
    bool grown;             /* enlarged to pipe_size already (or tried: at most once) */
    bool eof;               /* the source said EOF */
    bool shut;              /* ... and it was passed on (pipe drained, dst shut for writing) */
};

struct gx_splice_relay {
    struct gx_relay_conn conn; /* first: the engine hands it back */
    struct direction d[2];     /* 0: a -> b, 1: b -> a */
    size_t pipe_size;          /* what a busy direction's pipe grows to */
    _Atomic uint64_t bytes[2];
    _Atomic int finished;
};

/* A direction that filled half its pipe in one splice carries bulk data: give it the big pipe (once). A
 * pipe's slot array is allocated at its size (16 KiB of kernel memory for 1 MiB), so idle and small
 * relays keep the kernel's default pipe. Growing keeps what the pipe holds. */
static void grow(struct gx_splice_relay *r, struct direction *d) {
    d->grown = true;
    int got = fcntl(d->pw, F_SETPIPE_SZ, (int)r->pipe_size);
    if (got > 0) /* else above /proc/sys/fs/pipe-max-size or the user's pipe quota: keep the size */
        d->cap = (size_t)got;
}

/* Move what one direction can move now: 0, or an errno that ends the relay. */
static int pump(struct gx_splice_relay *r, int i) {
    struct direction *d = &r->d[i];
    for (int round = 0; round < ROUNDS; round++) {
        if (d->pending == 0 && !d->eof) {
            ssize_t n = splice(d->src, NULL, d->pw, NULL, d->cap, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                return errno;
            }
            if (n == 0) {
                d->eof = true;
            } else {
                d->pending = (size_t)n;
                atomic_fetch_add_explicit(&r->bytes[i], (uint64_t)n, memory_order_relaxed);
                if (!d->grown && (size_t)n * 2 >= d->cap)
                    grow(r, d);
            }
        }
        while (d->pending) {
            ssize_t m = splice(d->pr, NULL, d->dst, NULL, d->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (m < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    return 0; /* wait for EPOLLOUT on dst */
                return errno;
            }
            if (m == 0) /* cannot happen for a socket with bytes in the pipe; do not loop on it */
                return EIO;
            d->pending -= (size_t)m;
        }
        if (d->eof)
            break;
    }
    if (d->eof && d->pending == 0 && !d->shut) {
        d->shut = true;
        shutdown(d->dst, SHUT_WR); /* ENOTCONN after a reset: the other direction reports it */
    }
    return 0;
}

static void update_wants(struct gx_splice_relay *r) {
    uint32_t want[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        const struct direction *d = &r->d[i];
        int src_slot = i == 0 ? SLOT_A : SLOT_B, dst_slot = i == 0 ? SLOT_B : SLOT_A;
        if (d->pending == 0 && !d->eof)
            want[src_slot] |= EPOLLIN;
        if (d->pending)
            want[dst_slot] |= EPOLLOUT;
    }
    gx_relay_want(&r->conn, SLOT_A, want[SLOT_A]);
    gx_relay_want(&r->conn, SLOT_B, want[SLOT_B]);
}

/* Let the directions in `which` (bit i: direction i) move what they can, then end or re-arm. */
static void step(struct gx_splice_relay *r, unsigned which) {
    for (int i = 0; i < 2; i++) {
        int err = (which >> i) & 1 ? pump(r, i) : 0;
        if (err) {
            gx_relay_end(&r->conn, err);
            return;
        }
    }
    if (r->d[0].shut && r->d[1].shut) {
        atomic_store(&r->finished, 1);
        gx_relay_end(&r->conn, 0);
        return;
    }
    update_wants(r);
}

static int relay_start(struct gx_relay_conn *c) {
    struct gx_splice_relay *r = (struct gx_splice_relay *)c;
    int rc = gx_relay_watch_fd(c, SLOT_A, r->d[0].src);
    if (rc == 0)
        rc = gx_relay_watch_fd(c, SLOT_B, r->d[1].src);
    if (rc == 0)
        step(r, 3);
    return rc;
}

static void relay_ready(struct gx_relay_conn *c, int slot, uint32_t events) {
    /* a's EPOLLIN feeds direction 0 (a -> b), its EPOLLOUT drains direction 1 (b -> a); b the other way
     * round. An error or hang-up concerns both directions: each then meets it in its own splice. */
    unsigned in_dir = slot == SLOT_A ? 1u : 2u, out_dir = slot == SLOT_A ? 2u : 1u, which = 0;
    if (events & (EPOLLERR | EPOLLHUP))
        which = 3;
    if (events & EPOLLIN)
        which |= in_dir;
    if (events & EPOLLOUT)
        which |= out_dir;
    step((struct gx_splice_relay *)c, which);
}

static const struct gx_relay_ops splice_relay_ops = {.start = relay_start, .ready = relay_ready};

static void close_pipes(struct gx_splice_relay *r) {
    for (int i = 0; i < 2; i++) {
        if (r->d[i].pr >= 0)
            close(r->d[i].pr);
        if (r->d[i].pw >= 0)
            close(r->d[i].pw);
        r->d[i].pr = r->d[i].pw = -1;
    }
}

int gx_splice_relay_new(struct gx_splice_relay **out, int fd_a, int fd_b, size_t pipe_size) {
    if (fd_a < 0 || fd_b < 0 || fd_a == fd_b)
        return -EINVAL;
    if (pipe_size == 0)
        pipe_size = GX_SPLICE_PIPE_DEFAULT;
    if (pipe_size > (64u << 20))
        return -EINVAL;
    struct gx_splice_relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->d[0].pr = r->d[0].pw = r->d[1].pr = r->d[1].pw = -1;
    int rc = gx_relay_conn_init(&r->conn, &splice_relay_ops);
    for (int i = 0; rc == 0 && i < 2; i++) {
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
            rc = -errno;
            break;
        }
        struct direction *d = &r->d[i];
        d->pr = p[0];
        d->pw = p[1];
        int got = fcntl(p[1], F_GETPIPE_SZ);
        d->cap = got > 0 ? (size_t)got : 4096;
        if (pipe_size <= d->cap) { /* a small pipe asked for: now, while it is empty */
            d->grown = true;
            got = fcntl(p[1], F_SETPIPE_SZ, (int)pipe_size);
            if (got > 0)
                d->cap = (size_t)got;
        }
    }
    if (rc < 0) {
        close_pipes(r);
        gx_relay_conn_release(&r->conn);
        free(r);
        return rc;
    }
    r->pipe_size = pipe_size;
    r->d[0].src = r->d[1].dst = fd_a;
    r->d[0].dst = r->d[1].src = fd_b;
    *out = r;
    return 0;
}

int gx_splice_relay_start(struct gx_splice_relay *r) { return gx_relay_attach(&r->conn); }

int gx_splice_relay_event_fd(const struct gx_splice_relay *r) { return r->conn.done_fd; }

int gx_splice_relay_status(struct gx_splice_relay *r) { return atomic_load(&r->conn.status); }

int gx_splice_relay_finished(struct gx_splice_relay *r) { return atomic_load(&r->finished); }

void gx_splice_relay_get_stats(struct gx_splice_relay *r, struct gx_splice_relay_stats *out) {
    out->bytes_ab = atomic_load_explicit(&r->bytes[0], memory_order_relaxed);
    out->bytes_ba = atomic_load_explicit(&r->bytes[1], memory_order_relaxed);
}

void gx_splice_relay_cancel(struct gx_splice_relay *r) { gx_relay_cancel(&r->conn); }

int gx_splice_relay_stop(struct gx_splice_relay *r) {
    gx_relay_stop(&r->conn);
    return 0;
}

void gx_splice_relay_free(struct gx_splice_relay *r) {
    if (r == NULL)
        return;
    gx_splice_relay_stop(r);
    gx_relay_conn_release(&r->conn);
    close_pipes(r);
    free(r);
}
