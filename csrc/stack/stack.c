/* The tungo stack: lifecycle, the data-plane thread's epoll loop, lwIP's timers and the caller's
 * decisions (see gx/stack.h for the contract). */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lwip/init.h"
#include "lwip/ip4_frag.h"
#include "lwip/ip6_frag.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "stack_int.h"

#define EVENT_RING 4096
#define EPOLL_BATCH 128
#define SCRATCH_SIZE (256u * 1024u)
#define TICK_MS 250u                     /* TCP_TMR_INTERVAL */
#define SLOW_TICK_MS 1000u               /* reassembly, UDP idle sweep */
#define DEFAULT_UDP_TIMEOUT_MS 30000u
#define DEFAULT_MAX_FLOWS 65536u
#define TRIM_AFTER_BYTES (1u << 20)      /* traffic that makes a quiet tick give memory back */

static atomic_bool stack_exists;         /* lwIP's state is global: one stack per process */
static bool lwip_initialized;

/* ---- flows: watching fds, ending ---- */

int flow_watch_fd(struct gx_stack *s, struct flow *f, int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = f};
    if (f->tag.kind == EP_TCP)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    f->fd = fd;
    return 0;
}

void flow_bury(struct gx_stack *s, struct flow *f) {
    if (f->in_graveyard)
        return;
    if (f->fd >= 0) {
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, f->fd, NULL);
        close(f->fd);
        f->fd = -1;
    }
    if (f->tag.kind == EP_TCP)
        STAT_SUB(s, tcp_active, 1);
    flowtab_remove(s, f);
    f->state = FLOW_DEAD;
    f->in_graveyard = true;
    f->grave_next = s->graveyard;
    s->graveyard = f;
}

static void free_graveyard(struct gx_stack *s) {
    while (s->graveyard != NULL) {
        struct flow *f = s->graveyard;
        s->graveyard = f->grave_next;
        if (f->tag.kind == EP_TCP)
            tcp_flow_free(s, (struct tcp_flow *)f);
        else
            udp_sess_free(s, (struct udp_sess *)f);
    }
}

/* ---- commands from the caller ---- */

static int push_cmd(struct gx_stack *s, uint32_t type, uint64_t id, int fd) {
    pthread_mutex_lock(&s->cmd_lock);
    if (s->cmd_closed) {
        pthread_mutex_unlock(&s->cmd_lock);
        return -ESHUTDOWN;
    }
    if (s->cmd_count == s->cmd_cap) {
        uint32_t cap = s->cmd_cap ? s->cmd_cap * 2 : 64;
        struct cmd *grown = realloc(s->cmds, cap * sizeof(*grown));
        if (grown == NULL) {
            pthread_mutex_unlock(&s->cmd_lock);
            return -ENOMEM;
        }
        s->cmds = grown;
        s->cmd_cap = cap;
    }
    /* Wake the thread only for the first command of a batch: it takes every queued command once woken
     * (drain_cmds loops until the queue is empty), so under churn a burst of decisions costs one
     * eventfd write and one wake-up, not one per flow. */
    bool was_empty = s->cmd_count == 0;
    s->cmds[s->cmd_count++] = (struct cmd){.type = type, .fd = fd, .id = id};
    pthread_mutex_unlock(&s->cmd_lock);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(s->cmd_efd, &one, sizeof(one));
        (void)w;
    }
    return 0;
}

int gx_stack_connect(struct gx_stack *s, uint64_t id, int fd) {
    if (s == NULL || fd < 0)
        return -EINVAL;
    return push_cmd(s, CMD_CONNECT, id, fd);
}

int gx_stack_drop(struct gx_stack *s, uint64_t id) {
    if (s == NULL)
        return -EINVAL;
    return push_cmd(s, CMD_DROP, id, -1);
}

static void run_cmd(struct gx_stack *s, const struct cmd *c) {
    struct flow *f = flowtab_get(s, c->id);
    if (f == NULL || f->state != FLOW_PENDING || f->decided) {
        if (c->fd >= 0) /* the flow ended meanwhile */
            close(c->fd);
        return;
    }
    f->decided = true;
    if (f->tag.kind == EP_TCP)
        tcp_flow_decide(s, (struct tcp_flow *)f, c->fd);
    else
        udp_sess_decide(s, (struct udp_sess *)f, c->fd);
}

static void drain_cmds(struct gx_stack *s) {
    uint64_t v;
    ssize_t r = read(s->cmd_efd, &v, sizeof(v));
    (void)r;
    for (;;) {
        struct cmd batch[64];
        uint32_t n;
        pthread_mutex_lock(&s->cmd_lock);
        n = s->cmd_count < 64 ? s->cmd_count : 64;
        if (n == 0) {
            pthread_mutex_unlock(&s->cmd_lock);
            return;
        }
        memcpy(batch, s->cmds, n * sizeof(batch[0]));
        memmove(s->cmds, s->cmds + n, (s->cmd_count - n) * sizeof(batch[0]));
        s->cmd_count -= n;
        pthread_mutex_unlock(&s->cmd_lock);
        for (uint32_t i = 0; i < n; i++)
            run_cmd(s, &batch[i]);
    }
}

/* Close fds of decisions nobody will run any more (after stop). */
static void discard_cmds(struct gx_stack *s) {
    pthread_mutex_lock(&s->cmd_lock);
    for (uint32_t i = 0; i < s->cmd_count; i++)
        if (s->cmds[i].fd >= 0)
            close(s->cmds[i].fd);
    s->cmd_count = 0;
    s->cmd_closed = true;
    pthread_mutex_unlock(&s->cmd_lock);
}

/* ---- the data-plane thread ---- */

/* A burst of traffic leaves the pbufs it used as free chunks in this thread's malloc arena: resident,
 * and under the next burst (1000 new flows, say) more is taken on top. Once traffic stops, after at
 * least TRIM_AFTER_BYTES moved, hand the free pages back (malloc_trim: every arena). "Stopped": a wait
 * of at least QUIET_MS saw no event at all, or a whole tick passed without TUN bytes. Never during
 * traffic, so throughput pays nothing. */
#define QUIET_MS 50
static uint64_t tun_bytes(struct gx_stack *s) {
    return atomic_load_explicit(&s->stats.tun_rx_bytes, memory_order_relaxed) +
           atomic_load_explicit(&s->stats.tun_tx_bytes, memory_order_relaxed);
}

static void trim_if_moved(struct gx_stack *s, uint64_t moved) {
    if (moved - s->trim_done >= TRIM_AFTER_BYTES) {
        malloc_trim(0);
        s->trim_done = moved;
    }
}

static void trim_when_quiet(struct gx_stack *s) {
    uint64_t moved = tun_bytes(s);
    if (moved == s->trim_seen)
        trim_if_moved(s, moved);
    s->trim_seen = moved;
}

static void *run(void *arg) {
    struct gx_stack *s = arg;
    struct epoll_event evs[EPOLL_BATCH];
    s->now_ms = gx_stack_now_ms();
    uint64_t next_tick = s->now_ms + TICK_MS, next_slow = s->now_ms + SLOW_TICK_MS;
    while (!atomic_load_explicit(&s->stopping, memory_order_acquire)) {
        int timeout = (int)(next_tick > s->now_ms ? next_tick - s->now_ms : 0);
        int n = epoll_wait(s->epfd, evs, EPOLL_BATCH, timeout);
        s->now_ms = gx_stack_now_ms();
        if (n == 0 && timeout >= QUIET_MS)
            trim_if_moved(s, tun_bytes(s));
        for (int i = 0; i < n; i++) {
            struct ep_tag *tag = evs[i].data.ptr;
            switch (tag->kind) {
            case EP_TUN:
                tun_read_packets(s);
                break;
            case EP_CMD:
                drain_cmds(s);
                break;
            case EP_TCP:
                tcp_flow_on_fd(s, (struct tcp_flow *)tag, evs[i].events);
                break;
            case EP_UDP:
                udp_sess_on_fd(s, (struct udp_sess *)tag, evs[i].events);
                break;
            default:
                break;
            }
            if (s->out.n >= 32)
                tun_flush(s);
        }
        if (s->now_ms >= next_tick) {
            tcp_tmr();
            tcp_flows_tick(s);
            trim_when_quiet(s);
            next_tick = s->now_ms + TICK_MS;
        }
        if (s->now_ms >= next_slow) {
            ip_reass_tmr();
            ip6_reass_tmr();
            udp_sessions_tick(s);
            next_slow = s->now_ms + SLOW_TICK_MS;
        }
        tcp_flows_flush(s);
        tun_flush(s);
        free_graveyard(s);
    }
    /* stopping: reset every flow while the netif can still carry the RSTs */
    discard_cmds(s);
    tcp_flows_shutdown(s);
    udp_sessions_close(s);
    s->dirty = NULL;
    tun_flush(s);
    free_graveyard(s);
    tun_netif_remove(s);
    return NULL;
}

/* ---- lifecycle ---- */

int gx_stack_new(struct gx_stack **out, const struct gx_stack_cfg *cfg) {
    if (out == NULL || cfg == NULL || cfg->tun_fd < 0 || cfg->mtu < GX_STACK_MTU_MIN || cfg->mtu > GX_STACK_MTU_MAX ||
        cfg->sniff_bytes > GX_STACK_SNIFF_MAX)
        return -EINVAL;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&stack_exists, &expected, true))
        return -EBUSY;
    struct gx_stack *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        atomic_store(&stack_exists, false);
        return -ENOMEM;
    }
    s->cfg = *cfg;
    if (s->cfg.udp_timeout_ms == 0)
        s->cfg.udp_timeout_ms = DEFAULT_UDP_TIMEOUT_MS;
    if (s->cfg.max_flows == 0)
        s->cfg.max_flows = DEFAULT_MAX_FLOWS;
    s->epfd = s->cmd_efd = s->ev_efd = -1;
    int rc = -ENOMEM;
    s->scratch_size = SCRATCH_SIZE;
    s->scratch = malloc(SCRATCH_SIZE);
    if (s->scratch == NULL)
        goto fail;
    if ((rc = events_init(s, EVENT_RING)) < 0)
        goto fail;
    if ((rc = -pthread_mutex_init(&s->cmd_lock, NULL)) < 0)
        goto fail;
    if ((rc = flowtab_init(s)) < 0)
        goto fail;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->cmd_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->ev_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->epfd < 0 || s->cmd_efd < 0 || s->ev_efd < 0) {
        rc = -errno;
        goto fail;
    }
    s->tun_tag.kind = EP_TUN;
    s->cmd_tag.kind = EP_CMD;
    struct epoll_event tun_ev = {.events = EPOLLIN, .data.ptr = &s->tun_tag};
    struct epoll_event cmd_ev = {.events = EPOLLIN, .data.ptr = &s->cmd_tag};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, cfg->tun_fd, &tun_ev) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->cmd_efd, &cmd_ev) < 0) {
        rc = -errno;
        goto fail;
    }
    if (!lwip_initialized) {
        lwip_init();
        lwip_initialized = true;
    }
    if ((rc = tun_netif_add(s)) < 0)
        goto fail;
    if ((rc = tcp_flows_listen(s)) < 0 || (rc = udp_sessions_open(s)) < 0) {
        tcp_flows_shutdown(s);
        udp_sessions_close(s);
        tun_netif_remove(s);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->cmd_efd >= 0)
        close(s->cmd_efd);
    if (s->ev_efd >= 0)
        close(s->ev_efd);
    flowtab_free(s);
    events_free(s);
    free(s->scratch);
    free(s);
    atomic_store(&stack_exists, false);
    return rc;
}

int gx_stack_start(struct gx_stack *s) {
    if (s == NULL)
        return -EINVAL;
    if (s->started)
        return -EALREADY;
    int rc = pthread_create(&s->thread, NULL, run, s);
    if (rc != 0)
        return -rc;
    s->started = true;
    return 0;
}

int gx_stack_stop(struct gx_stack *s) {
    if (s == NULL)
        return -EINVAL;
    if (!s->started)
        return 0;
    atomic_store_explicit(&s->stopping, true, memory_order_release);
    uint64_t one = 1;
    ssize_t w = write(s->cmd_efd, &one, sizeof(one));
    (void)w;
    pthread_join(s->thread, NULL);
    s->started = false;
    return 0;
}

void gx_stack_free(struct gx_stack *s) {
    if (s == NULL)
        return;
    if (s->started) {
        gx_stack_stop(s);
    } else if (!atomic_load(&s->stopping)) {
        /* never started: the netif and the pcbs were made by gx_stack_new on this thread */
        atomic_store(&s->stopping, true);
        discard_cmds(s);
        tcp_flows_shutdown(s);
        udp_sessions_close(s);
        s->dirty = NULL;
        tun_flush(s);
        free_graveyard(s);
        tun_netif_remove(s);
    }
    discard_cmds(s);
    close(s->epfd);
    close(s->cmd_efd);
    close(s->ev_efd);
    pthread_mutex_destroy(&s->cmd_lock);
    free(s->cmds);
    flowtab_free(s);
    events_free(s);
    free(s->scratch);
    free(s);
    atomic_store(&stack_exists, false);
}

int gx_stack_event_fd(const struct gx_stack *s) {
    return s->ev_efd;
}

_Static_assert(sizeof(((struct gx_stack *)0)->stats) == sizeof(struct gx_stack_stats), "stats layout");

void gx_stack_get_stats(struct gx_stack *s, struct gx_stack_stats *out) {
    uint64_t *dst = (uint64_t *)out;
    _Atomic uint64_t *src = (_Atomic uint64_t *)&s->stats;
    size_t n = sizeof(*out) / sizeof(uint64_t);
    for (size_t i = 0; i < n; i++)
        dst[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
}
