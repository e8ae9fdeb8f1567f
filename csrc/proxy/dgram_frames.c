/* Datagrams <-> 0xF3 frames on a stream (gx/proxy.h), a handler on the relay engine. */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gx/proxy.h"

#define HDR_MAX (GX_SOCKS_UDP_HDR_MAX - 2)
#define FRAME_MAX (2u + HDR_MAX + 65535u)
#define UP_CAP (2u * FRAME_MAX)
#define DOWN_CAP (2u * FRAME_MAX)
#define ROUNDS 16

enum { SLOT_DGRAM = 0, SLOT_STREAM = 1 };
enum { ST_UP_PKTS, ST_UP_BYTES, ST_DOWN_PKTS, ST_DOWN_BYTES, ST_DROP_UP, ST_DROP_DOWN, ST_N };
_Static_assert(sizeof(struct gx_dgram_frames_stats) == ST_N * sizeof(uint64_t), "stats layout");

struct gx_dgram_frames {
    struct gx_relay_conn conn; /* first: the engine hands it back */
    int dgram_fd, stream_fd;
    bool done, seqpacket;          /* seqpacket: an empty message is the other end closing */
    int mode;
    uint32_t hdr_len;
    uint8_t hdr[HDR_MAX];
    uint8_t *up, *down;
    uint32_t up_head, up_tail, down_len;
    _Atomic uint64_t stats[ST_N];
};

static void finish(struct gx_dgram_frames *r, int err) {
    r->done = true;
    gx_relay_end(&r->conn, err == ECONNRESET || err == EPIPE ? 0 : err);
}

static void flush_up(struct gx_dgram_frames *r) {
    if (r->done)
        return;
    int rc = gx_relay_outq_flush(r->stream_fd, r->up, &r->up_head, &r->up_tail);
    if (rc < 0)
        finish(r, -rc);
}

/* Datagrams into frames while a whole largest frame fits behind the pending ones. */
static void from_dgram(struct gx_dgram_frames *r) {
    for (int round = 0; round < ROUNDS && !r->done; round++) {
        if (!gx_relay_outq_room(r->up, UP_CAP, &r->up_head, &r->up_tail, FRAME_MAX))
            return; /* the stream is behind: stop reading datagrams */
        uint8_t *p = r->up + r->up_tail;
        struct iovec iov = {.iov_base = p + 2 + r->hdr_len, .iov_len = 65535};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = recvmsg(r->dgram_fd, &mh, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            finish(r, errno);
            return;
        }
        if (n == 0 && r->seqpacket) { /* the datagram side's end (an empty message or EOF) */
            finish(r, 0);
            return;
        }
        if (n == 0)
            continue; /* an empty UDP datagram: no frame (LEN 0 is not valid in 0xF3) */
        if (mh.msg_flags & MSG_TRUNC) {
            gx_relay_count(r->stats, ST_DROP_UP, 1);
            continue;
        }
        p[0] = (uint8_t)(n >> 8);
        p[1] = (uint8_t)n;
        memcpy(p + 2, r->hdr, r->hdr_len);
        r->up_tail += 2 + r->hdr_len + (uint32_t)n;
        gx_relay_count(r->stats, ST_UP_PKTS, 1);
        gx_relay_count(r->stats, ST_UP_BYTES, (uint64_t)n);
    }
    flush_up(r);
}

static void from_stream(struct gx_dgram_frames *r) {
    for (int round = 0; round < ROUNDS && !r->done; round++) {
        ssize_t got = read(r->stream_fd, r->down + r->down_len, DOWN_CAP - r->down_len);
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                finish(r, errno);
            return;
        }
        if (got == 0) {
            finish(r, r->down_len ? EPROTO : 0);
            return;
        }
        r->down_len += (uint32_t)got;
        uint32_t pos = 0;
        for (;;) {
            struct gx_socks_frame f;
            int size;
            if (r->mode == GX_FRAMES_RELAY) {
                size = gx_relay_udp_frame(r->down + pos, r->down_len - pos, &f.len);
                f.hdr_len = 2;
            } else {
                size = gx_socks_udp_parse(r->down + pos, r->down_len - pos, &f);
            }
            if (size < 0) {
                finish(r, EPROTO);
                return;
            }
            if (size == 0 || (uint32_t)size > r->down_len - pos)
                break;
            if (f.len == 0) { /* an empty relay datagram: nothing to deliver (a SEQPACKET reads it as EOF) */
                pos += (uint32_t)size;
                continue;
            }
            ssize_t w = send(r->dgram_fd, r->down + pos + f.hdr_len, f.len, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w < 0) {
                gx_relay_count(r->stats, ST_DROP_DOWN, 1); /* the datagram side is full: drop, as UDP does */
            } else {
                gx_relay_count(r->stats, ST_DOWN_PKTS, 1);
                gx_relay_count(r->stats, ST_DOWN_BYTES, f.len);
            }
            pos += (uint32_t)size;
        }
        memmove(r->down, r->down + pos, r->down_len - pos);
        r->down_len -= pos;
    }
}

static void update_wants(struct gx_dgram_frames *r) {
    bool pending = r->up_tail > r->up_head;
    bool room = UP_CAP - (r->up_tail - r->up_head) >= FRAME_MAX;
    gx_relay_want(&r->conn, SLOT_DGRAM, room ? EPOLLIN : 0);
    gx_relay_want(&r->conn, SLOT_STREAM, EPOLLIN | (pending ? EPOLLOUT : 0));
}

static int frames_start(struct gx_relay_conn *c) {
    struct gx_dgram_frames *r = (struct gx_dgram_frames *)c;
    int rc = gx_relay_watch_fd(c, SLOT_DGRAM, r->dgram_fd);
    if (rc == 0)
        rc = gx_relay_watch_fd(c, SLOT_STREAM, r->stream_fd);
    if (rc == 0)
        update_wants(r);
    return rc;
}

static void frames_ready(struct gx_relay_conn *c, int slot, uint32_t events) {
    struct gx_dgram_frames *r = (struct gx_dgram_frames *)c;
    if (slot == SLOT_DGRAM) {
        from_dgram(r);
    } else {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            flush_up(r);
        if (!r->done && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            from_stream(r);
        if (!r->done && r->up_tail == r->up_head)
            from_dgram(r); /* datagrams that waited for room */
    }
    if (!r->done)
        update_wants(r);
}

static const struct gx_relay_ops frames_ops = {.start = frames_start, .ready = frames_ready, .stop = NULL};

int gx_dgram_frames_new(struct gx_dgram_frames **out, int dgram_fd, int stream_fd, int mode, const uint8_t *hdr,
                        uint32_t hdr_len) {
    bool f3_ok = mode == GX_FRAMES_F3 && hdr != NULL && hdr_len >= 2 && hdr_len <= HDR_MAX;
    if (dgram_fd < 0 || stream_fd < 0 || !(f3_ok || (mode == GX_FRAMES_RELAY && hdr_len == 0)))
        return -EINVAL;
    struct gx_dgram_frames *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    int rc = gx_relay_conn_init(&r->conn, &frames_ops);
    r->up = malloc(UP_CAP);
    r->down = malloc(DOWN_CAP);
    if (rc == 0 && (r->up == NULL || r->down == NULL))
        rc = -ENOMEM;
    if (rc < 0) {
        gx_dgram_frames_free(r); /* never attached: frees what was allocated */
        return rc;
    }
    r->dgram_fd = dgram_fd;
    r->stream_fd = stream_fd;
    int type = 0;
    socklen_t tl = sizeof(type);
    r->seqpacket = getsockopt(dgram_fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_SEQPACKET;
    r->mode = mode;
    r->hdr_len = hdr_len;
    if (hdr_len)
        memcpy(r->hdr, hdr, hdr_len);
    *out = r;
    return 0;
}

int gx_dgram_frames_start(struct gx_dgram_frames *r) { return gx_relay_attach(&r->conn); }

int gx_dgram_frames_event_fd(const struct gx_dgram_frames *r) { return r->conn.done_fd; }

int gx_dgram_frames_status(struct gx_dgram_frames *r) { return atomic_load(&r->conn.status); }

void gx_dgram_frames_get_stats(struct gx_dgram_frames *r, struct gx_dgram_frames_stats *out) {
    gx_relay_stats_copy((uint64_t *)out, r->stats, ST_N);
}

void gx_dgram_frames_cancel(struct gx_dgram_frames *r) { gx_relay_cancel(&r->conn); }

void gx_dgram_frames_free(struct gx_dgram_frames *r) {
    if (r == NULL)
        return;
    gx_relay_stop(&r->conn);
    gx_relay_conn_release(&r->conn);
    free(r->up);
    free(r->down);
    free(r);
}
