/* The relay engine: one small, fixed set of event-loop threads (epoll, level-triggered) shared by every
 * relayed connection of the process, instead of a thread (or two) per connection.
 *
 * A relay is a struct gx_relay_conn embedded as the FIRST member of a handler's own struct, plus a
 * table of callbacks (gx_relay_ops). The engine owns no fd: the handler registers up to GX_RELAY_FDS
 * non-blocking fds it was given and says, after every callback, which readiness it wants on each
 * (gx_relay_want). The engine calls the handler only in the one engine thread the relay was assigned
 * to, so a handler needs no locks for its own state.
 *
 *   attach(engine, conn)    any thread: hands the relay to the least loaded engine thread, which calls
 *                           ops->start and from then on ops->ready(conn, slot, events)
 *   gx_relay_end(conn, e)   engine thread (inside a callback): the relay ended by itself (0 or an errno)
 *   gx_relay_cancel(conn)   any thread, never blocks: ask the engine to let go of the relay
 *   done fd                 an eventfd that becomes readable once the engine has let go (ended or
 *                           cancelled): the conn's fds are out of the engine. gx_relay_wait blocks until
 *                           then (and the engine's last touch of the conn is over); after it the owner
 *                           may free the conn and close its fds.
 *
 * The per-connection handlers bound their own buffers: a handler that cannot pass data on stops asking
 * for readability on the other side (backpressure), it never queues without a cap.
 *
 * The 0xF3 SOCKS relay (gx/socks_udp.h) is the first user; TLS / WebSocket / relay framing and the UDP
 * relays are meant to become handlers on the same engine.
 */
#ifndef GX_RELAY_H
#define GX_RELAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#define GX_RELAY_FDS 4          /* fds one relay may watch */
#define GX_RELAY_THREADS_MAX 8

struct gx_relay_conn;
struct gx_relay_thread;

struct gx_relay_ops {
    /* Engine thread, once: register fds (gx_relay_watch_fd) and the initial wants. 0 or -errno (the
     * relay then ends with that error). */
    int (*start)(struct gx_relay_conn *c);
    /* Engine thread: the fd in `slot` reported `events` (EPOLLIN/OUT/ERR/HUP). */
    void (*ready)(struct gx_relay_conn *c, int slot, uint32_t events);
    /* Engine thread, once, after the last ready: the engine is letting go (ended or cancelled). */
    void (*stop)(struct gx_relay_conn *c);
};

struct gx_relay_conn {
    const struct gx_relay_ops *ops;
    /* engine private */
    struct gx_relay_thread *thread;
    struct gx_relay_conn *next_cmd;      /* the thread's command list (under its lock) */
    struct gx_relay_conn *next_end;      /* the relays ended in this round */
    struct gx_relay_conn *prev, *next;   /* the thread's relays */
    int fd[GX_RELAY_FDS];
    uint32_t want[GX_RELAY_FDS], armed[GX_RELAY_FDS];
    int done_fd;
    _Atomic int state;                   /* GX_RELAY_NEW .. GX_RELAY_DONE */
    _Atomic int status;                  /* the errno it ended with, 0 for a clean end or a cancel */
    _Atomic bool cancel;
    _Atomic bool gone;                   /* the engine's last touch is over (after the done fd write) */
    bool ended;                          /* engine thread: end requested in this round */
    bool queued;                         /* on the command list (under the thread's lock) */
    bool want_kick;                      /* engine thread: call ready(GX_RELAY_KICK) at the next kick */
};

enum { GX_RELAY_NEW, GX_RELAY_ATTACHED, GX_RELAY_DONE };

struct gx_relay_engine_stats {
    uint64_t threads;        /* engine threads running */
    uint64_t relays;         /* relays attached now */
    uint64_t attached;       /* relays ever attached */
};

/* Prepare a conn (ops set, no fd watched, a new done eventfd). 0 or -errno. */
int gx_relay_conn_init(struct gx_relay_conn *c, const struct gx_relay_ops *ops);
/* Release the done fd. Only when the conn was never attached or is DONE. */
void gx_relay_conn_release(struct gx_relay_conn *c);

/* The process's shared engine, its threads started on first use (GX_RELAY_THREADS_DEFAULT, or the
 * GOSTX_RELAY_THREADS environment variable, 1..GX_RELAY_THREADS_MAX). Never freed. */
#define GX_RELAY_THREADS_DEFAULT 2
int gx_relay_attach(struct gx_relay_conn *c);
void gx_relay_cancel(struct gx_relay_conn *c);
/* Block until the engine let go (after attach). Returns the conn's status. */
int gx_relay_wait(struct gx_relay_conn *c);
void gx_relay_engine_get_stats(struct gx_relay_engine_stats *out);

/* Engine thread only (inside start/ready). */
int gx_relay_watch_fd(struct gx_relay_conn *c, int slot, int fd);   /* registers fd with no interest */
/* Takes fd out of the epoll set now and frees the slot: the handler may close it right after. */
void gx_relay_unwatch_fd(struct gx_relay_conn *c, int slot);
void gx_relay_want(struct gx_relay_conn *c, int slot, uint32_t events);  /* applied after the callback */
void gx_relay_end(struct gx_relay_conn *c, int err);
/* Ask for one ready(c, GX_RELAY_KICK, 0) call after the next gx_relay_kick_all (e.g. a name this relay
 * waits for was resolved). */
#define GX_RELAY_KICK (-1)
void gx_relay_want_kick(struct gx_relay_conn *c);
/* Any thread, never blocks: every relay that asked for a kick gets one, in its own engine thread. */
void gx_relay_kick_all(void);

#endif
