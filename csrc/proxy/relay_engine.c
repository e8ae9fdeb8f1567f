/* The relay engine (gx/proxy.h): a fixed number of epoll threads shared by every relay of the process.
 *
 * Each thread has an epoll fd, a wake eventfd and a command list (attach / cancel / poke requests from
 * other threads, under a mutex; a conn is on it at most once, with flags saying what it is there for). One epoll_wait round: run the callbacks of the ready fds, then let go of the
 * relays that ended in the round (their fds leave the epoll set, ops->stop runs, and only then is the
 * relay marked DONE, the thread's condition variable broadcast (gx_relay_wait) and the done eventfd
 * written): an event later in the same round never sees a relay its owner already freed.
 *
 * An fd nobody wants anything from is taken out of the epoll set (not left with an empty mask), so a
 * hung-up socket a relay stopped reading cannot make epoll_wait spin on EPOLLHUP/EPOLLERR.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sched.h>
#include <unistd.h>

#include "gx/proxy.h"

#define EVENTS_PER_ROUND 64
#define WAKE_TAG UINT64_MAX

struct gx_relay_thread {
    pthread_t tid;
    int epfd, wake_fd;
    pthread_mutex_t lock;
    pthread_cond_t done_cv;           /* broadcast (under lock) when a relay of this thread becomes DONE */
    struct gx_relay_conn *cmds;       /* under lock */
    struct gx_relay_conn *relays;     /* engine thread only */
    struct gx_relay_conn *ended;      /* engine thread only: to let go at the end of the round */
    _Atomic uint32_t count;
    _Atomic bool kick;
};

static struct {
    pthread_once_t once;
    int err;
    _Atomic int nthreads;
    struct gx_relay_thread t[GX_RELAY_THREADS_MAX];
    _Atomic uint64_t attached;
} E = {.once = PTHREAD_ONCE_INIT};

static void wake(struct gx_relay_thread *t) {
    uint64_t one = 1;
    ssize_t w = write(t->wake_fd, &one, sizeof(one));
    (void)w; /* EAGAIN only when the counter is huge: the thread is woken anyway */
}

int gx_relay_conn_init(struct gx_relay_conn *c, const struct gx_relay_ops *ops) {
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    for (int i = 0; i < GX_RELAY_FDS; i++)
        c->fd[i] = -1;
    c->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->done_fd < 0)
        return -errno;
    atomic_init(&c->state, GX_RELAY_NEW);
    atomic_init(&c->status, 0);
    atomic_init(&c->cancel, false);
    atomic_init(&c->gone, false);
    return 0;
}

void gx_relay_conn_release(struct gx_relay_conn *c) {
    if (c->done_fd >= 0)
        close(c->done_fd);
    c->done_fd = -1;
}

int gx_relay_watch_fd(struct gx_relay_conn *c, int slot, int fd) {
    if (slot < 0 || slot >= GX_RELAY_FDS || fd < 0 || c->fd[slot] >= 0)
        return -EINVAL;
    c->fd[slot] = fd;
    c->want[slot] = c->armed[slot] = 0;
    return 0;
}

void gx_relay_unwatch_fd(struct gx_relay_conn *c, int slot) {
    if (slot < 0 || slot >= GX_RELAY_FDS || c->fd[slot] < 0)
        return;
    if (c->armed[slot])
        epoll_ctl(c->thread->epfd, EPOLL_CTL_DEL, c->fd[slot], NULL);
    c->fd[slot] = -1;
    c->want[slot] = c->armed[slot] = 0;
}

void gx_relay_want(struct gx_relay_conn *c, int slot, uint32_t events) {
    if (slot >= 0 && slot < GX_RELAY_FDS)
        c->want[slot] = events & (EPOLLIN | EPOLLOUT);
}

void gx_relay_want_kick(struct gx_relay_conn *c) { c->want_kick = true; }

void gx_relay_end(struct gx_relay_conn *c, int err) {
    if (c->ended)
        return;
    c->ended = true;
    int zero = 0;
    atomic_compare_exchange_strong(&c->status, &zero, err);
    c->next_end = c->thread->ended;
    c->thread->ended = c;
}

/* epoll data: the conn pointer with the slot in its low bits (a conn is at least 8-byte aligned) */
static uint64_t tag(struct gx_relay_conn *c, int slot) { return (uint64_t)(uintptr_t)c | (uint64_t)slot; }

static void apply_wants(struct gx_relay_conn *c) {
    if (c->ended)
        return;
    for (int i = 0; i < GX_RELAY_FDS; i++) {
        if (c->fd[i] < 0 || c->want[i] == c->armed[i])
            continue;
        struct epoll_event ev = {.events = c->want[i], .data.u64 = tag(c, i)};
        int op = c->armed[i] == 0 ? EPOLL_CTL_ADD : c->want[i] == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
        if (epoll_ctl(c->thread->epfd, op, c->fd[i], &ev) < 0) {
            gx_relay_end(c, errno);
            return;
        }
        c->armed[i] = c->want[i];
    }
}

static void let_go(struct gx_relay_thread *t, struct gx_relay_conn *c) {
    for (int i = 0; i < GX_RELAY_FDS; i++) {
        if (c->fd[i] >= 0 && c->armed[i])
            epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd[i], NULL);
        c->armed[i] = 0;
    }
    if (c->ops->stop)
        c->ops->stop(c);
    if (c->prev)
        c->prev->next = c->next;
    else if (t->relays == c)
        t->relays = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    atomic_fetch_sub(&t->count, 1);
    int fd = c->done_fd;
    pthread_mutex_lock(&t->lock);
    if (c->queued) { /* a cancel still on the command list: take it off */
        for (struct gx_relay_conn **p = &t->cmds; *p; p = &(*p)->next_cmd) {
            if (*p == c) {
                *p = c->next_cmd;
                break;
            }
        }
        c->queued = false;
    }
    c->poked = false;
    atomic_store(&c->state, GX_RELAY_DONE);
    pthread_cond_broadcast(&t->done_cv);
    pthread_mutex_unlock(&t->lock);
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof(one));
    (void)w;
    /* the last touch of c: gx_relay_wait returns (and the owner may free c and close fd) only after it */
    atomic_store_explicit(&c->gone, true, memory_order_release);
}

static void run_commands(struct gx_relay_thread *t) {
    uint64_t drained;
    ssize_t r = read(t->wake_fd, &drained, sizeof(drained));
    (void)r;
    /* one conn at a time off the list: a conn taken off may be queued again (cancel, poke) by another
     * thread at once, which reuses its next_cmd */
    for (;;) {
        pthread_mutex_lock(&t->lock);
        struct gx_relay_conn *c = t->cmds;
        if (c == NULL) {
            pthread_mutex_unlock(&t->lock);
            break;
        }
        t->cmds = c->next_cmd;
        c->next_cmd = NULL;
        c->queued = false;
        bool poke = c->poked;
        c->poked = false;
        pthread_mutex_unlock(&t->lock);
        if (atomic_load(&c->state) == GX_RELAY_NEW) {
            atomic_store(&c->state, GX_RELAY_ATTACHED);
            c->next = t->relays;
            if (t->relays)
                t->relays->prev = c;
            t->relays = c;
            int rc = c->ops->start(c);
            if (rc < 0)
                gx_relay_end(c, -rc);
            else
                apply_wants(c);
        }
        if (atomic_load(&c->cancel))
            gx_relay_end(c, 0);
        if (poke && !c->ended) {
            c->ops->ready(c, GX_RELAY_POKE, 0);
            apply_wants(c);
        }
    }
    if (atomic_exchange(&t->kick, false)) {
        for (struct gx_relay_conn *c = t->relays; c; c = c->next) {
            if (c->want_kick && !c->ended) {
                c->want_kick = false;
                c->ops->ready(c, GX_RELAY_KICK, 0);
                apply_wants(c);
            }
        }
    }
}

static void *thread_main(void *arg) {
    struct gx_relay_thread *t = arg;
    struct epoll_event ev[EVENTS_PER_ROUND];
    for (;;) {
        int n = epoll_wait(t->epfd, ev, EVENTS_PER_ROUND, -1);
        if (n < 0 && errno != EINTR)
            break; /* EBADF/EINVAL: cannot happen with our own epoll fd */
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == WAKE_TAG) {
                run_commands(t);
                continue;
            }
            struct gx_relay_conn *c = (void *)(uintptr_t)(ev[i].data.u64 & ~(uint64_t)(GX_RELAY_FDS - 1));
            int slot = (int)(ev[i].data.u64 & (GX_RELAY_FDS - 1));
            if (c->ended)
                continue;
            c->ops->ready(c, slot, ev[i].events);
            apply_wants(c);
        }
        while (t->ended) {
            struct gx_relay_conn *c = t->ended;
            t->ended = c->next_end;
            let_go(t, c);
        }
    }
    return NULL;
}

static int thread_count(void) {
    const char *env = getenv("GOSTX_RELAY_THREADS");
    long n = env ? strtol(env, NULL, 10) : GX_RELAY_THREADS_DEFAULT;
    if (n < 1)
        n = 1;
    if (n > GX_RELAY_THREADS_MAX)
        n = GX_RELAY_THREADS_MAX;
    return (int)n;
}

static void engine_init(void) {
    int n = thread_count();
    for (int i = 0; i < n; i++) {
        struct gx_relay_thread *t = &E.t[i];
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (t->epfd < 0 || t->wake_fd < 0) {
            E.err = -errno;
            break;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_TAG};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wake_fd, &ev) < 0 || pthread_mutex_init(&t->lock, NULL) != 0 ||
            pthread_cond_init(&t->done_cv, NULL) != 0) {
            E.err = -errno;
            break;
        }
        int rc = pthread_create(&t->tid, NULL, thread_main, t);
        if (rc != 0) {
            E.err = -rc;
            break;
        }
        atomic_store(&E.nthreads, i + 1);
    }
    if (E.nthreads > 0)
        E.err = 0; /* fewer threads than asked still make an engine */
}

int gx_relay_attach(struct gx_relay_conn *c) {
    pthread_once(&E.once, engine_init);
    if (E.nthreads == 0)
        return E.err ? E.err : -ENOMEM;
    if (c->thread != NULL || atomic_load(&c->state) != GX_RELAY_NEW)
        return -EALREADY;
    struct gx_relay_thread *t = &E.t[0];
    for (int i = 1; i < E.nthreads; i++)
        if (atomic_load(&E.t[i].count) < atomic_load(&t->count))
            t = &E.t[i];
    atomic_fetch_add(&t->count, 1);
    atomic_fetch_add(&E.attached, 1);
    c->thread = t;
    pthread_mutex_lock(&t->lock);
    c->next_cmd = t->cmds;
    t->cmds = c;
    c->queued = true;
    pthread_mutex_unlock(&t->lock);
    wake(t);
    return 0;
}

/* Put c on its engine thread's command list (at most once) and wake the thread, unless c is DONE or not
 * attached; poke: its callback is also owed one ready(GX_RELAY_POKE). Any thread. */
static void queue_command(struct gx_relay_conn *c, bool poke) {
    struct gx_relay_thread *t = c->thread;
    if (t == NULL)
        return;
    bool queued = false;
    pthread_mutex_lock(&t->lock);
    if (atomic_load(&c->state) != GX_RELAY_DONE) {
        if (poke)
            c->poked = true;
        if (!c->queued) {
            c->next_cmd = t->cmds;
            t->cmds = c;
            c->queued = queued = true;
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (queued)
        wake(t);
}

void gx_relay_cancel(struct gx_relay_conn *c) {
    atomic_store(&c->cancel, true);
    queue_command(c, false);
}

void gx_relay_poke(struct gx_relay_conn *c) { queue_command(c, true); }

int gx_relay_wait(struct gx_relay_conn *c) {
    if (c->thread == NULL)
        return atomic_load(&c->status);
    /* not the done fd: its owner may read it (Python's notification), a relay may signal more on it */
    struct gx_relay_thread *t = c->thread;
    pthread_mutex_lock(&t->lock);
    while (atomic_load(&c->state) != GX_RELAY_DONE)
        pthread_cond_wait(&t->done_cv, &t->lock);
    pthread_mutex_unlock(&t->lock);
    /* the engine thread is at most a few instructions from its last touch of c */
    while (!atomic_load_explicit(&c->gone, memory_order_acquire))
        sched_yield();
    return atomic_load(&c->status);
}

int gx_relay_stop(struct gx_relay_conn *c) {
    gx_relay_cancel(c);
    return gx_relay_wait(c);
}

void gx_relay_stats_copy(uint64_t *out, const _Atomic uint64_t *stats, int n) {
    for (int i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&stats[i], memory_order_relaxed);
}

void *gx_relay_scratch(void **slot, size_t size) {
    if (*slot == NULL)
        *slot = calloc(1, size);
    return *slot;
}

bool gx_relay_outq_room(uint8_t *buf, uint32_t cap, uint32_t *head, uint32_t *tail, uint32_t need) {
    if (cap - *tail < need && *head > 0) {
        memmove(buf, buf + *head, *tail - *head);
        *tail -= *head;
        *head = 0;
    }
    return cap - *tail >= need;
}

int gx_relay_outq_flush(int fd, uint8_t *buf, uint32_t *head, uint32_t *tail) {
    int rc = 0;
    while (*tail > *head) {
        ssize_t w = send(fd, buf + *head, *tail - *head, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                rc = -errno;
            break;
        }
        *head += (uint32_t)w;
    }
    if (*head == *tail)
        *head = *tail = 0;
    return rc;
}

void gx_relay_kick_all(void) {
    for (int i = 0; i < E.nthreads; i++) {
        atomic_store(&E.t[i].kick, true);
        wake(&E.t[i]);
    }
}

void gx_relay_engine_get_stats(struct gx_relay_engine_stats *out) {
    out->threads = (uint64_t)E.nthreads;
    out->relays = 0;
    for (int i = 0; i < E.nthreads; i++)
        out->relays += atomic_load(&E.t[i].count);
    out->attached = atomic_load(&E.attached);
}
