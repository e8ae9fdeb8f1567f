/* UDP forwarding in C (gx/proxy.h): sessions per client address, Python's route answer, datagrams
 * both ways with exact counts, the queue while a route is pending, idle expiry, the session cap, a
 * refused session, oversize datagrams, ICMP port unreachable ending a session. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx/proxy.h"
#include "gxtest.h"
#include "netutil.h"

/* Wait up to ms for the next event. */
static int next_event(struct gx_udp_fwd *f, struct gx_udp_fwd_event *ev, int ms) {
    for (int t = 0; t < ms; t++) {
        if (gx_udp_fwd_next_event(f, ev) == 1)
            return 1;
        struct pollfd p = {.fd = gx_udp_fwd_event_fd(f), .events = POLLIN};
        poll(&p, 1, 1);
    }
    return 0;
}

/* A UDP socket connected to `to` (what Python's dial gives C). */
static int connected_to(const struct sockaddr_in *to) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    connect(fd, (const struct sockaddr *)to, sizeof(*to));
    return fd;
}

/* Echo every datagram on fd back to its sender, for ms. Returns the count echoed. */
static int echo_for(int fd, int ms) {
    int seen = 0;
    for (int t = 0; t < ms; t++) {
        uint8_t buf[2048];
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n;
        while ((n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl)) > 0) {
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
            seen++;
            fl = sizeof(from);
        }
        sleep_ms(1);
    }
    return seen;
}

static int recv_all(int fd, int want, int ms) {
    int got = 0;
    for (int t = 0; t < ms && got < want; t++) {
        uint8_t buf[2048];
        while (recv(fd, buf, sizeof(buf), 0) > 0)
            got++;
        if (got < want)
            sleep_ms(1);
    }
    return got;
}

static struct gx_udp_fwd *make(struct sockaddr_in *listen_addr, uint32_t max_sessions, uint32_t queue,
                               uint32_t max_datagram, uint32_t ttl_ms) {
    int lfd = udp_bound(listen_addr);
    struct gx_udp_fwd_config cfg = {.max_sessions = max_sessions, .queue = queue, .max_datagram = max_datagram,
                                    .ttl_ms = ttl_ms};
    struct gx_udp_fwd *f = NULL;
    CHECK(gx_udp_fwd_new(&f, lfd, &cfg) == 0, "new");
    CHECK(gx_udp_fwd_start(f) == 0, "start");
    return f;
}

static void test_forward_queue_and_counts(void) {
    struct sockaddr_in la, ea, ca;
    struct gx_udp_fwd *f = make(&la, 8, 16, 0, 5000);
    int echo = udp_bound(&ea);
    int client = udp_bound(&ca);
    connect(client, (struct sockaddr *)&la, sizeof(la));
    /* 20 datagrams before the route is known: 16 queued, 4 dropped */
    for (int i = 0; i < 20; i++)
        CHECK(send(client, &i, sizeof(i), 0) == sizeof(i), "send");
    struct gx_udp_fwd_event ev;
    CHECK(next_event(f, &ev, 2000) == 1 && ev.kind == GX_UDP_FWD_OPEN, "open event");
    struct sockaddr_in *from = (struct sockaddr_in *)&ev.client;
    CHECK(from->sin_port == ca.sin_port, "the client's address");
    CHECK(gx_udp_fwd_next_event(f, &ev) == 0, "one event per session, not per datagram");
    sleep_ms(50); /* all 20 arrived at the forwarder */
    CHECK(gx_udp_fwd_route(f, ev.id, connected_to(&ea), GX_UDP_FWD_DGRAM, NULL, 0) == 0, "route");
    CHECK(echo_for(echo, 100) == 16, "the queued datagrams went out");
    int back = recv_all(client, 16, 2000);
    for (int i = 0; i < 500; i++) {
        send(client, &i, sizeof(i), 0);
        if (i % 50 == 49) {
            echo_for(echo, 2);
            back += recv_all(client, 50, 2000);
        }
    }
    CHECK(back == 516, "every echo came back (%d)", back);
    struct gx_udp_fwd_stats st;
    gx_udp_fwd_get_stats(f, &st);
    CHECK(st.up_pkts == 516 && st.down_pkts == 516 && st.up_bytes == 516 * 4, "counts %llu up %llu down",
          (unsigned long long)st.up_pkts, (unsigned long long)st.down_pkts);
    CHECK(st.drop_queue == 4 && st.sessions_open == 1 && st.sessions_total == 1, "queue drops %llu",
          (unsigned long long)st.drop_queue);
    CHECK(gx_udp_fwd_close(f, ev.id) == 0, "close");
    struct gx_udp_fwd_event ce;
    CHECK(next_event(f, &ce, 2000) == 1 && ce.kind == GX_UDP_FWD_CLOSE && ce.id == ev.id && ce.reason == 0,
          "close event");
    CHECK(ce.up_pkts == 516 && ce.down_pkts == 516 && ce.down_bytes == 516 * 4, "session totals");
    gx_udp_fwd_free(f);
    close(echo);
    close(client);
}

static void test_idle_cap_refused_oversize(void) {
    struct sockaddr_in la, ea;
    struct gx_udp_fwd *f = make(&la, 2, 8, 100, 150);
    int echo = udp_bound(&ea);
    int c[3];
    for (int i = 0; i < 3; i++) {
        struct sockaddr_in ca;
        c[i] = udp_bound(&ca);
        connect(c[i], (struct sockaddr *)&la, sizeof(la));
        send(c[i], "x", 1, 0);
    }
    struct gx_udp_fwd_event e1, e2, extra;
    CHECK(next_event(f, &e1, 2000) == 1 && next_event(f, &e2, 2000) == 1, "two sessions");
    CHECK(next_event(f, &extra, 100) == 0, "the third client is over the cap");
    struct gx_udp_fwd_stats st;
    gx_udp_fwd_get_stats(f, &st);
    CHECK(st.drop_sessions == 1, "cap drop counted");
    /* e1 routed, e2 refused */
    CHECK(gx_udp_fwd_route(f, e1.id, connected_to(&ea), GX_UDP_FWD_DGRAM, NULL, 0) == 0, "route");
    CHECK(gx_udp_fwd_route(f, e2.id, -1, GX_UDP_FWD_DGRAM, NULL, 0) == 0, "refuse");
    sleep_ms(20);
    uint8_t big[200] = {0};
    for (int i = 0; i < 3; i++)
        send(c[i], big, sizeof(big), 0); /* over max_datagram 100 */
    sleep_ms(20);
    gx_udp_fwd_get_stats(f, &st);
    CHECK(st.drop_size == 3, "oversize dropped: %llu", (unsigned long long)st.drop_size);
    /* idle: the routed session ends with ETIMEDOUT within ttl + a tick */
    struct gx_udp_fwd_event ce;
    int closes = 0, timed_out = 0;
    while (next_event(f, &ce, 2000) == 1) {
        closes++;
        if (ce.kind == GX_UDP_FWD_CLOSE && ce.id == e1.id && ce.reason == ETIMEDOUT)
            timed_out = 1;
        if (closes == 2)
            break;
    }
    CHECK(timed_out, "idle session ended with ETIMEDOUT");
    gx_udp_fwd_get_stats(f, &st);
    CHECK(st.sessions_open == 0, "none open");
    gx_udp_fwd_free(f);
    for (int i = 0; i < 3; i++)
        close(c[i]);
    close(echo);
}

static void test_port_unreachable_ends_session(void) {
    struct sockaddr_in la, dead, ca;
    struct gx_udp_fwd *f = make(&la, 4, 8, 0, 30000);
    int gone = udp_bound(&dead);
    close(gone); /* nobody listens there now: ICMP port unreachable */
    int client = udp_bound(&ca);
    connect(client, (struct sockaddr *)&la, sizeof(la));
    send(client, "a", 1, 0);
    struct gx_udp_fwd_event ev;
    CHECK(next_event(f, &ev, 2000) == 1, "open");
    gx_udp_fwd_route(f, ev.id, connected_to(&dead), GX_UDP_FWD_DGRAM, NULL, 0);
    for (int i = 0; i < 3; i++) {
        sleep_ms(20);
        send(client, "b", 1, 0);
    }
    CHECK(next_event(f, &ev, 2000) == 1 && ev.kind == GX_UDP_FWD_CLOSE && ev.reason == ECONNREFUSED,
          "ended by ECONNREFUSED (reason %d)", ev.reason);
    gx_udp_fwd_free(f);
    close(client);
}

/* A session through a SOCKS5 ASSOCIATE hop: the forwarder puts the hop's header before every datagram
 * and takes it off the replies; here the hop is the C ASSOCIATE relay itself, in front of an echo. */
static void test_associate_hop(void) {
    struct sockaddr_in la, ra, ua, ea, ca;
    struct gx_udp_fwd *f = make(&la, 4, 8, 0, 30000);
    int relay = udp_bound(&ra), up = udp_bound(&ua), echo = udp_bound(&ea), client = udp_bound(&ca);
    struct sockaddr_storage lo;
    memset(&lo, 0, sizeof(lo));
    memcpy(&lo, &la, sizeof(la)); /* the forwarder's sessions come from 127.0.0.1 */
    struct gx_socks_assoc *a = NULL;
    CHECK(gx_socks_assoc_new(&a, relay, up, &lo, 0) == 0 && gx_socks_assoc_start(a) == 0, "associate relay");
    connect(client, (struct sockaddr *)&la, sizeof(la));
    send(client, "q0", 2, 0);
    struct gx_udp_fwd_event ev;
    CHECK(next_event(f, &ev, 2000) == 1, "open");
    uint8_t hdr[10] = {0, 0, 0, 1};
    memcpy(hdr + 4, &ea.sin_addr, 4);
    memcpy(hdr + 8, &ea.sin_port, 2);
    CHECK(gx_udp_fwd_route(f, ev.id, connected_to(&ra), GX_UDP_FWD_ASSOC, hdr, sizeof(hdr)) == 0, "route through the hop");
    int echoed = 0, back = 0;
    /* q0 waited in the session's queue for its route: its round trip shows the route is in place before the
     * bursts (a burst sent earlier, on a slow machine, would overflow the 8-datagram queue and be dropped) */
    for (int t = 0; t < 5000 && back < 1; t++) {
        echoed += echo_for(echo, 1);
        back += recv_all(client, 1, 1);
    }
    for (int i = 1; i <= 100; i++) {
        char msg[8];
        int n = snprintf(msg, sizeof(msg), "q%d", i);
        send(client, msg, (size_t)n, 0);
        if (i % 20 == 0) /* a burst at most: no socket buffer overflows */
            for (int t = 0; t < 2000 && back < i; t++) {
                echoed += echo_for(echo, 1);
                back += recv_all(client, 1, 1);
            }
    }
    for (int t = 0; t < 2000 && back < 101; t++) {
        echoed += echo_for(echo, 1);
        back += recv_all(client, 1, 1);
    }
    struct gx_udp_fwd_stats st;
    gx_udp_fwd_get_stats(f, &st);
    struct gx_socks_assoc_stats ast;
    gx_socks_assoc_get_stats(a, &ast);
    CHECK(echoed == 101 && back == 101, "101 out, 101 back (%d, %d); fwd up %llu down %llu queue %llu send %llu "
          "size %llu; assoc up %llu down %llu foreign %llu send %llu", echoed, back,
          (unsigned long long)st.up_pkts, (unsigned long long)st.down_pkts, (unsigned long long)st.drop_queue,
          (unsigned long long)st.drop_send, (unsigned long long)st.drop_size, (unsigned long long)ast.up_pkts,
          (unsigned long long)ast.down_pkts, (unsigned long long)ast.drop_foreign, (unsigned long long)ast.drop_send);
    CHECK(st.up_bytes == st.down_bytes && st.drop_malformed == 0, "payload bytes only");
    /* the hop replaced by a plain socket on its address: the wire format, and a reply without a header */
    struct sockaddr_storage sess_addr;
    socklen_t sl = sizeof(sess_addr);
    uint8_t buf[64];
    ssize_t n;
    gx_socks_assoc_free(a);
    int fake = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fake, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    close(relay);
    CHECK(bind(fake, (struct sockaddr *)&ra, sizeof(ra)) == 0, "the hop's address again");
    send(client, "y", 1, 0);
    sl = sizeof(sess_addr);
    n = -1;
    for (int t = 0; t < 500 && n < 0; t++) {
        n = recvfrom(fake, buf, sizeof(buf), 0, (struct sockaddr *)&sess_addr, &sl);
        if (n < 0)
            sleep_ms(1);
    }
    CHECK(n == 11 && memcmp(buf, hdr, 10) == 0 && buf[10] == 'y', "header + payload on the wire (%zd)", n);
    sendto(fake, "bare", 4, 0, (struct sockaddr *)&sess_addr, sl);
    sleep_ms(30);
    gx_udp_fwd_get_stats(f, &st);
    CHECK(st.drop_malformed == 1, "a reply without a header dropped (%llu)", (unsigned long long)st.drop_malformed);
    gx_udp_fwd_free(f);
    close(fake), close(up), close(echo), close(client);
}

/* A session through a 0xF3 hop: frames on a stream; the far end is the C 0xF3 server relay
 * (csrc/socks_relay.c) over a socketpair, in front of an echo. Then EOF on the stream ends the session. */
static void test_f3_hop(void) {
    struct sockaddr_in la, ua, ea, ca;
    struct gx_udp_fwd *f = make(&la, 4, 8, 0, 30000);
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp) == 0, "socketpair");
    int up = udp_bound(&ua), echo = udp_bound(&ea), client = udp_bound(&ca);
    struct gx_socks_relay *r = NULL;
    CHECK(gx_socks_relay_new(&r, sp[1], up, 0) == 0 && gx_socks_relay_start(r) == 0, "0xF3 relay");
    connect(client, (struct sockaddr *)&la, sizeof(la));
    send(client, "q0", 2, 0);
    struct gx_udp_fwd_event ev;
    CHECK(next_event(f, &ev, 2000) == 1, "open");
    uint8_t hdr[9] = {0, 1}; /* FRAG ATYP ADDR PORT */
    memcpy(hdr + 2, &ea.sin_addr, 4);
    memcpy(hdr + 6, &ea.sin_port, 2);
    CHECK(gx_udp_fwd_route(f, ev.id, sp[0], GX_UDP_FWD_F3, hdr, 8) == 0, "route through the stream");
    int echoed = 0, back = 0;
    /* q0 waited in the session's queue for its route: its round trip shows the route is in place before the
     * bursts (a burst sent earlier, on a slow machine, would overflow the 8-datagram queue and be dropped) */
    for (int t = 0; t < 5000 && back < 1; t++) {
        echoed += echo_for(echo, 1);
        back += recv_all(client, 1, 1);
    }
    for (int i = 1; i <= 300; i++) {
        char msg[1200];
        memset(msg, 'a' + i % 26, sizeof(msg));
        send(client, msg, 100 + (size_t)i, 0);
        if (i % 20 == 0)
            for (int t = 0; t < 2000 && back < i; t++) {
                echoed += echo_for(echo, 1);
                back += recv_all(client, 1, 1);
            }
    }
    for (int t = 0; t < 2000 && back < 301; t++) {
        echoed += echo_for(echo, 1);
        back += recv_all(client, 1, 1);
    }
    CHECK(echoed == 301 && back == 301, "301 out, 301 back (%d, %d)", echoed, back);
    struct gx_udp_fwd_stats st;
    gx_udp_fwd_get_stats(f, &st);
    CHECK(st.up_pkts == 301 && st.down_pkts == 301 && st.up_bytes == st.down_bytes, "counts");
    gx_socks_relay_free(r); /* the far end goes away: EOF ends the session */
    close(sp[1]);
    struct gx_udp_fwd_event ce;
    CHECK(next_event(f, &ce, 2000) == 1 && ce.kind == GX_UDP_FWD_CLOSE && ce.reason == 0, "EOF ends it (%d)",
          ce.reason);
    gx_udp_fwd_free(f);
    close(up), close(echo), close(client);
}

/* A malformed frame from the stream ends the session with EPROTO. */
static void test_f3_malformed(void) {
    struct sockaddr_in la, ca;
    struct gx_udp_fwd *f = make(&la, 4, 8, 0, 30000);
    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp);
    int client = udp_bound(&ca);
    connect(client, (struct sockaddr *)&la, sizeof(la));
    send(client, "q", 1, 0);
    struct gx_udp_fwd_event ev;
    CHECK(next_event(f, &ev, 2000) == 1, "open");
    uint8_t hdr[8] = {0, 1, 127, 0, 0, 1, 0, 9};
    gx_udp_fwd_route(f, ev.id, sp[0], GX_UDP_FWD_F3, hdr, 8);
    uint8_t frame[64];
    ssize_t n = -1;
    for (int t = 0; t < 1000 && n < 0; t++) {
        n = read(sp[1], frame, sizeof(frame));
        if (n < 0)
            sleep_ms(1);
    }
    CHECK(n == 2 + 8 + 1 && frame[1] == 1 && memcmp(frame + 2, hdr, 8) == 0 && frame[10] == 'q',
          "LEN + header + data on the stream (%zd)", n);
    const uint8_t bad[] = {0, 1, 0, 9, 1, 2, 3};
    CHECK(write(sp[1], bad, sizeof(bad)) == sizeof(bad), "write");
    CHECK(next_event(f, &ev, 2000) == 1 && ev.kind == GX_UDP_FWD_CLOSE && ev.reason == EPROTO, "EPROTO (%d)",
          ev.reason);
    CHECK(gx_udp_fwd_route(f, 1, -1, GX_UDP_FWD_F3, NULL, 0) == -EINVAL, "a stream without a header");
    gx_udp_fwd_free(f);
    close(sp[1]), close(client);
}

static void test_bad_config(void) {
    struct gx_udp_fwd *f = NULL;
    struct gx_udp_fwd_config cfg = {.max_sessions = 0, .queue = 1, .ttl_ms = 1000};
    CHECK(gx_udp_fwd_new(&f, 0, &cfg) == -EINVAL, "zero sessions refused");
    cfg = (struct gx_udp_fwd_config){.max_sessions = 1, .queue = 1, .max_datagram = 70000, .ttl_ms = 1000};
    CHECK(gx_udp_fwd_new(&f, 0, &cfg) == -EINVAL, "datagram cap over 65535 refused");
}

int main(void) {
    test_bad_config();
    test_forward_queue_and_counts();
    test_idle_cap_refused_oversize();
    test_port_unreachable_ends_session();
    test_associate_hop();
    test_f3_hop();
    test_f3_malformed();
    TEST_DONE();
}
