/* Two connected TCP sockets relayed both ways in the kernel with splice(2), as one handler on the shared
 * relay engine (gx/relay.h): no thread of its own, no byte ever copied to user space, Python called once
 * when the relay starts and once when it ends.
 *
 * Each direction (a -> b, b -> a) owns a pipe: the kernel's default size (64 KiB) at first, grown to
 * pipe_size (default 1 MiB, where the kernel allows) once the direction carries bulk data. The source
 * socket is spliced into the pipe while the pipe is empty, the pipe into the destination socket while it
 * holds bytes; a destination that cannot take more stops that direction's reads until it is writable
 * again (backpressure: memory per relay is bounded by the two pipes). An EOF from a source is passed on
 * as shutdown(SHUT_WR) of the destination once its pipe is drained (half-close). The relay ends by
 * itself when both directions passed their EOF on (status 0), or at the first error
 * (status ECONNRESET, EPIPE, ...).
 */
#ifndef GX_SPLICE_RELAY_H
#define GX_SPLICE_RELAY_H

#include <stddef.h>
#include <stdint.h>

#define GX_SPLICE_PIPE_DEFAULT (1u << 20)

struct gx_splice_relay;

struct gx_splice_relay_stats {
    uint64_t bytes_ab, bytes_ba; /* bytes read from a (sent to b), from b (sent to a) */
};

/* fd_a, fd_b: connected non-blocking stream sockets, owned by the caller and kept open until the relay
 * is stopped (or its event fd became readable). pipe_size: bytes a busy direction's pipe grows to
 * (0 = GX_SPLICE_PIPE_DEFAULT; the kernel may round it up, or keep its default when it refuses); a size
 * below the kernel's default is set at once (tests). 0 or -errno. */
int gx_splice_relay_new(struct gx_splice_relay **out, int fd_a, int fd_b, size_t pipe_size);
int gx_splice_relay_start(struct gx_splice_relay *r);
/* Readable (eventfd) once the engine let go of the relay: it ended by itself or after a cancel. From then
 * on no thread touches it or its fds. */
int gx_splice_relay_event_fd(const struct gx_splice_relay *r);
/* 0 while running, after both EOFs or after a cancel; else the errno that ended it. */
int gx_splice_relay_status(struct gx_splice_relay *r);
/* 1 once both directions passed their EOF on (the relay finished by itself), else 0. */
int gx_splice_relay_finished(struct gx_splice_relay *r);
void gx_splice_relay_get_stats(struct gx_splice_relay *r, struct gx_splice_relay_stats *out);
void gx_splice_relay_cancel(struct gx_splice_relay *r); /* ask the engine to let go; never blocks */
int gx_splice_relay_stop(struct gx_splice_relay *r);    /* cancel and wait until it let go; idempotent */
void gx_splice_relay_free(struct gx_splice_relay *r);  /* stops first; closes the pipes, not fd_a/fd_b */

#endif
