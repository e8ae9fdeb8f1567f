/* Tunnel engine tests without root: AF_UNIX datagram socketpairs stand in for the TUN/TAP devices
 * (one packet per read/write, like a TUN fd) and the tunnels talk over real UDP on loopback. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx/crypto.h"
#include "gx/tunnel.h"
#include "gxtest.h"
#include "netutil.h"

struct end {
    int dev[2];   /* dev[0] given to the tunnel, dev[1] is "the kernel side" */
    int udp;
    struct sockaddr_in addr;
    struct gx_tunnel *t;
    struct gx_aead *aead; /* each end its own context: salts it sends enter its own replay filter */
};

struct cipher {
    int id;
    uint8_t key[32];
};

static int udp_socket(struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int big = 4 << 20; /* as the Python side sets them (SO_*BUFFORCE needs root; fall back quietly) */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t len = sizeof(*addr);
    getsockname(fd, (struct sockaddr *)addr, &len);
    return fd;
}

static void mapped4(uint8_t out[16], const char *ip) {
    memset(out, 0, 16);
    out[10] = out[11] = 0xff;
    inet_pton(AF_INET, ip, out + 12);
}

/* An IPv4/ICMP-ish packet src -> dst with a payload marker. */
static uint32_t ip4_packet(uint8_t *p, const char *src, const char *dst, uint8_t marker, uint32_t len) {
    memset(p, 0, len);
    p[0] = 0x45;
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
    p[8] = 64;
    p[9] = 1;
    inet_pton(AF_INET, src, p + 12);
    inet_pton(AF_INET, dst, p + 16);
    for (uint32_t i = 20; i < len; i++)
        p[i] = (uint8_t)(marker + i);
    return len;
}

/* Read one packet from the kernel side within ms; returns its length or -1. */
static int recv_dev(int fd, uint8_t *buf, size_t cap, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return -1;
    return (int)read(fd, buf, cap);
}

static void end_init(struct end *e) {
    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, e->dev);
    fcntl(e->dev[0], F_SETFL, O_NONBLOCK);
    e->udp = udp_socket(&e->addr);
    e->t = NULL;
    e->aead = NULL;
}

static int end_start(struct end *e, int mode, int role, const struct end *server, const struct cipher *ci,
                     const char *own_ip, int keepalive, uint32_t ttl_ms, uint32_t peer_timeout_ms) {
    struct gx_tunnel_cfg cfg = {0};
    if (ci != NULL && gx_aead_new(&e->aead, ci->id, ci->key) < 0)
        return -1;
    cfg.mode = mode;
    cfg.role = role;
    cfg.dev_fd = e->dev[0];
    cfg.net_fd = e->udp;
    cfg.aead = e->aead;
    cfg.mtu = 1350;
    cfg.keepalive = keepalive;
    cfg.ttl_ms = ttl_ms;
    cfg.peer_timeout_ms = peer_timeout_ms;
    memcpy(cfg.passphrase, "secret", 6);
    if (own_ip != NULL) {
        mapped4(cfg.ips[0], own_ip);
        cfg.n_ips = 1;
    }
    if (server != NULL) {
        memcpy(&cfg.remote, &server->addr, sizeof(server->addr));
        cfg.remote_len = sizeof(server->addr);
    }
    int rc = gx_tunnel_new(&e->t, &cfg);
    if (rc < 0)
        return rc;
    return gx_tunnel_start(e->t);
}

static void end_close(struct end *e) {
    gx_tunnel_free(e->t);
    gx_aead_free(e->aead);
    close(e->dev[0]);
    close(e->dev[1]);
    close(e->udp);
}

static void test_parsers(void) {
    uint8_t pkt[64], src[16], dst[16], want[16];
    ip4_packet(pkt, "192.168.123.2", "192.168.123.1", 0, 40);
    CHECK(gx_tunnel_ip_addrs(pkt, 40, src, dst) == 0, "ipv4 parsed");
    mapped4(want, "192.168.123.2");
    CHECK(memcmp(src, want, 16) == 0, "ipv4 src mapped");
    mapped4(want, "192.168.123.1");
    CHECK(memcmp(dst, want, 16) == 0, "ipv4 dst mapped");
    CHECK(gx_tunnel_ip_addrs(pkt, 19, src, dst) == -EINVAL, "ipv4 shorter than 20");
    CHECK(gx_tunnel_ip_addrs(pkt, 0, src, dst) == -EINVAL, "empty");
    pkt[0] = 0x4f; /* IHL 60 > len 40 */
    CHECK(gx_tunnel_ip_addrs(pkt, 40, src, dst) == -EINVAL, "ihl past the end");
    pkt[0] = 0x44; /* IHL 16 < 20 */
    CHECK(gx_tunnel_ip_addrs(pkt, 40, src, dst) == -EINVAL, "ihl below 20");
    pkt[0] = 0x35;
    CHECK(gx_tunnel_ip_addrs(pkt, 40, src, dst) == -EINVAL, "version 3");
    uint8_t v6[40] = {0x60};
    v6[8] = 0xfd;
    v6[24] = 0xfe;
    CHECK(gx_tunnel_ip_addrs(v6, 40, src, dst) == 0 && src[0] == 0xfd && dst[0] == 0xfe, "ipv6 parsed");
    CHECK(gx_tunnel_ip_addrs(v6, 39, src, dst) == -EINVAL, "ipv6 shorter than 40");
    uint8_t eth[14] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0};
    uint8_t msrc[6], mdst[6];
    CHECK(gx_tunnel_eth_addrs(eth, 14, msrc, mdst) == 0 && mdst[0] == 1 && msrc[0] == 7, "ethernet parsed");
    CHECK(gx_tunnel_eth_addrs(eth, 13, msrc, mdst) == -EINVAL, "ethernet too short");

    uint8_t ips[2][16], msg[128], pass[16] = "pw";
    mapped4(ips[0], "192.168.123.2");
    mapped4(ips[1], "192.168.123.3");
    int n = gx_tunnel_control_build(msg, sizeof(msg), pass, (const uint8_t(*)[16])ips, 2);
    CHECK(n == 52, "control length %d", n);
    CHECK(memcmp(msg, "GOST", 4) == 0 && msg[4] == 'p' && msg[6] == 0 && msg[20 + 15] == 2, "control bytes");
    CHECK(gx_tunnel_is_control(msg, (uint32_t)n) == 1, "handshake recognised");
    CHECK(gx_tunnel_is_control(msg, 20) == 2, "reply recognised");
    CHECK(gx_tunnel_is_control(msg, 19) == 0, "too short for control");
    CHECK(gx_tunnel_control_build(msg, 30, pass, (const uint8_t(*)[16])ips, 2) == -EMSGSIZE, "no room");
    CHECK(gx_tunnel_control_build(msg, sizeof(msg), pass, (const uint8_t(*)[16])ips, 0) == -EINVAL, "no ips");
}

static void test_pair(const struct cipher *aead, const char *label) {
    struct end s, c;
    end_init(&s);
    end_init(&c);
    CHECK(end_start(&s, GX_TUNNEL_TUN, GX_TUNNEL_SERVER, NULL, aead, "192.168.123.1", 0, 0, 0) == 0, "%s server", label);
    CHECK(end_start(&c, GX_TUNNEL_TUN, GX_TUNNEL_CLIENT, &s, aead, "192.168.123.2", 0, 0, 0) == 0, "%s client", label);
    uint8_t pkt[2048], got[2048];

    /* client -> server, several sizes */
    uint64_t up_bytes = 0, up_pkts = 0;
    for (uint32_t len = 20; len <= 1350; len += 333, up_bytes += len - 333, up_pkts++) {
        ip4_packet(pkt, "192.168.123.2", "192.168.123.1", (uint8_t)len, len);
        CHECK(write(c.dev[1], pkt, len) == (ssize_t)len, "inject");
        int n = recv_dev(s.dev[1], got, sizeof(got), 2000);
        CHECK(n == (int)len && memcmp(got, pkt, len) == 0, "%s up %u: got %d", label, len, n);
    }
    /* server -> client via the learned route */
    ip4_packet(pkt, "192.168.123.1", "192.168.123.2", 7, 100);
    write(s.dev[1], pkt, 100);
    int n = recv_dev(c.dev[1], got, sizeof(got), 2000);
    CHECK(n == 100 && memcmp(got, pkt, 100) == 0, "%s down: got %d", label, n);

    /* no route: the server drops and counts */
    ip4_packet(pkt, "192.168.123.1", "192.168.123.99", 7, 100);
    write(s.dev[1], pkt, 100);
    /* malformed from the device */
    write(s.dev[1], "\x00\x01\x02", 3);
    sleep_ms(100);
    struct gx_tunnel_stats st;
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.drop_no_route == 1, "%s no-route drop %lu", label, (unsigned long)st.drop_no_route);
    CHECK(st.drop_malformed == 1, "%s malformed drop %lu", label, (unsigned long)st.drop_malformed);
    CHECK(st.peers == 1, "%s one peer learned (%lu)", label, (unsigned long)st.peers);
    /* per-peer counters: the inner bytes from and to the client's entry */
    struct gx_tunnel_peer peers[4];
    CHECK(gx_tunnel_peers(s.t, peers, 4) == 1, "%s one peer in the snapshot", label);
    uint8_t want_key[16];
    mapped4(want_key, "192.168.123.2");
    CHECK(memcmp(peers[0].key, want_key, 16) == 0 && peers[0].keylen == 16, "%s peer key", label);
    CHECK(peers[0].rx_pkts == up_pkts && peers[0].rx_bytes == up_bytes, "%s peer rx %lu/%lu (want %lu/%lu)",
          label, (unsigned long)peers[0].rx_pkts, (unsigned long)peers[0].rx_bytes, (unsigned long)up_pkts,
          (unsigned long)up_bytes);
    CHECK(peers[0].tx_pkts == 1 && peers[0].tx_bytes == 100, "%s peer tx %lu/%lu", label,
          (unsigned long)peers[0].tx_pkts, (unsigned long)peers[0].tx_bytes);
    CHECK(peers[0].addrlen == sizeof(struct sockaddr_in) &&
          ((struct sockaddr_in *)&peers[0].addr)->sin_port == c.addr.sin_port, "%s peer outer address", label);
    CHECK(gx_tunnel_peers(s.t, peers, 0) == 0 && gx_tunnel_peers(s.t, peers, -1) == -EINVAL, "%s peers max", label);

    /* junk datagrams at the server: random, truncated, empty */
    int junk = socket(AF_INET, SOCK_DGRAM, 0);
    uint8_t rnd[300];
    for (size_t i = 0; i < sizeof(rnd); i++)
        rnd[i] = (uint8_t)(i * 37 + 11);
    sendto(junk, rnd, sizeof(rnd), 0, (struct sockaddr *)&s.addr, sizeof(s.addr));
    sendto(junk, rnd, 5, 0, (struct sockaddr *)&s.addr, sizeof(s.addr));
    sendto(junk, rnd, 0, 0, (struct sockaddr *)&s.addr, sizeof(s.addr));
    sleep_ms(100);
    gx_tunnel_get_stats(s.t, &st);
    uint64_t dropped = st.drop_auth + st.drop_short + st.drop_malformed;
    CHECK(dropped >= 4, "%s junk dropped: auth %lu short %lu malformed %lu", label, (unsigned long)st.drop_auth,
          (unsigned long)st.drop_short, (unsigned long)st.drop_malformed);
    CHECK(recv_dev(s.dev[1], got, sizeof(got), 100) < 0, "%s junk not written to the device", label);
    /* still serving */
    ip4_packet(pkt, "192.168.123.2", "192.168.123.1", 9, 60);
    write(c.dev[1], pkt, 60);
    n = recv_dev(s.dev[1], got, sizeof(got), 2000);
    CHECK(n == 60 && memcmp(got, pkt, 60) == 0, "%s still serving after junk", label);
    close(junk);
    end_close(&c);
    end_close(&s);
}

static void test_relay_keepalive_expiry(const struct cipher *aead) {
    struct end s, a, b;
    end_init(&s);
    end_init(&a);
    end_init(&b);
    CHECK(end_start(&s, GX_TUNNEL_TUN, GX_TUNNEL_SERVER, NULL, aead, "10.9.0.1", 0, 0, 1500) == 0, "server");
    CHECK(end_start(&a, GX_TUNNEL_TUN, GX_TUNNEL_CLIENT, &s, aead, "10.9.0.2", 1, 200, 0) == 0, "client a");
    CHECK(end_start(&b, GX_TUNNEL_TUN, GX_TUNNEL_CLIENT, &s, aead, "10.9.0.3", 1, 200, 0) == 0, "client b");
    sleep_ms(300); /* the handshakes teach the server both clients */
    struct gx_tunnel_stats st;
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.peers == 2, "server learned both from handshakes (%lu)", (unsigned long)st.peers);
    CHECK(st.control_rx >= 2 && st.control_tx >= 2, "control rx %lu tx %lu", (unsigned long)st.control_rx,
          (unsigned long)st.control_tx);
    struct gx_tunnel_event ev[16];
    int n = gx_tunnel_poll_events(a.t, ev, 16), replies = 0;
    for (int i = 0; i < n; i++)
        replies += ev[i].type == GX_TEV_KEEPALIVE_REPLY;
    CHECK(replies >= 1, "client got a keepalive reply (%d events)", n);

    uint8_t pkt[256], got[256];
    ip4_packet(pkt, "10.9.0.2", "10.9.0.3", 3, 200);
    write(a.dev[1], pkt, 200);
    int r = recv_dev(b.dev[1], got, sizeof(got), 2000);
    CHECK(r == 200 && memcmp(got, pkt, 200) == 0, "client a -> client b through the server (%d)", r);
    CHECK(recv_dev(s.dev[1], got, sizeof(got), 100) < 0, "relayed packet not written to the server device");
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.relayed_pkts == 1, "relayed %lu", (unsigned long)st.relayed_pkts);

    /* stop the clients: their entries expire after 1.5 s (polled up to 8 s: a loaded machine is slow) */
    gx_tunnel_stop(a.t);
    gx_tunnel_stop(b.t);
    int expired = 0;
    for (int waited = 0; waited < 8000; waited += 20) {
        sleep_ms(20);
        n = gx_tunnel_poll_events(s.t, ev, 16);
        for (int i = 0; i < n; i++)
            expired += ev[i].type == GX_TEV_PEER_EXPIRED;
        gx_tunnel_get_stats(s.t, &st);
        if (st.peers == 0 && expired >= 2)
            break;
    }
    CHECK(st.peers == 0, "entries expired (%lu left)", (unsigned long)st.peers);
    CHECK(expired == 2, "two expiry events (%d)", expired);
    end_close(&a);
    end_close(&b);
    end_close(&s);
}

static void test_tap_broadcast(void) {
    struct end s, a, b;
    end_init(&s);
    end_init(&a);
    end_init(&b);
    CHECK(end_start(&s, GX_TUNNEL_TAP, GX_TUNNEL_SERVER, NULL, NULL, NULL, 0, 0, 0) == 0, "tap server");
    CHECK(end_start(&a, GX_TUNNEL_TAP, GX_TUNNEL_CLIENT, &s, NULL, NULL, 0, 0, 0) == 0, "tap a");
    CHECK(end_start(&b, GX_TUNNEL_TAP, GX_TUNNEL_CLIENT, &s, NULL, NULL, 0, 0, 0) == 0, "tap b");
    uint8_t fa[60] = {0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00};
    uint8_t fb[60] = {0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0x0b, 0x08, 0x00};
    uint8_t got[128];
    write(a.dev[1], fa, 60); /* unknown destination: to the server device; learns a's MAC */
    write(b.dev[1], fb, 60);
    CHECK(recv_dev(s.dev[1], got, sizeof(got), 2000) == 60, "frame from a at the server");
    CHECK(recv_dev(s.dev[1], got, sizeof(got), 2000) == 60, "frame from b at the server");
    uint8_t bc[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x06};
    write(a.dev[1], bc, 60);
    CHECK(recv_dev(b.dev[1], got, sizeof(got), 2000) == 60 && got[11] == 0x0a, "broadcast from a reaches b");
    CHECK(recv_dev(s.dev[1], got, sizeof(got), 2000) == 60, "broadcast from a reaches the server device");
    CHECK(recv_dev(a.dev[1], got, sizeof(got), 200) < 0, "broadcast not echoed to its sender");
    uint8_t to_b[60] = {0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0xee, 0x08, 0x00};
    write(s.dev[1], to_b, 60);
    CHECK(recv_dev(b.dev[1], got, sizeof(got), 2000) == 60 && got[11] == 0xee, "server device -> b by MAC");
    write(s.dev[1], bc, 60);
    CHECK(recv_dev(a.dev[1], got, sizeof(got), 2000) == 60, "server broadcast reaches a");
    CHECK(recv_dev(b.dev[1], got, sizeof(got), 2000) == 60, "server broadcast reaches b");
    end_close(&a);
    end_close(&b);
    end_close(&s);
}


/* Both directions at full speed at once: every packet that arrives must be intact (the up and down
 * threads share the transport; a shared scratch buffer once corrupted headers under exactly this load). */
struct flood_arg {
    int fd;
    const char *src, *dst;
    int count;
};

static void *flood_writer(void *p) {
    struct flood_arg *a = p;
    uint8_t pkt[1400];
    for (int i = 0; i < a->count; i++) {
        uint32_t len = 100 + (uint32_t)(i % 1200);
        ip4_packet(pkt, a->src, a->dst, (uint8_t)i, len);
        memcpy(pkt + 20, &i, sizeof(i));
        if (write(a->fd, pkt, len) != (ssize_t)len)
            break;
    }
    return NULL;
}

/* Read until quiet; count packets and check each one against what its sequence number implies. */
static void flood_reader(int fd, const char *src, const char *dst, int *got, int *bad) {
    uint8_t buf[2048], want[1400];
    int n;
    while ((n = recv_dev(fd, buf, sizeof(buf), 1500)) > 0) {
        int i;
        memcpy(&i, buf + 20, sizeof(i));
        uint32_t len = 100 + (uint32_t)(i % 1200);
        ip4_packet(want, src, dst, (uint8_t)i, len);
        memcpy(want + 20, &i, sizeof(i));
        (*got)++;
        if ((uint32_t)n != len || memcmp(buf, want, len) != 0)
            (*bad)++;
    }
}

struct reader_arg {
    int fd;
    const char *src, *dst;
    int got, bad;
};

static void *reader_main(void *p) {
    struct reader_arg *r = p;
    flood_reader(r->fd, r->src, r->dst, &r->got, &r->bad);
    return NULL;
}

static void test_bidirectional_flood(const struct cipher *ci, const char *label) {
    struct end s, c;
    end_init(&s);
    end_init(&c);
    CHECK(end_start(&s, GX_TUNNEL_TUN, GX_TUNNEL_SERVER, NULL, ci, "10.8.0.1", 0, 0, 0) == 0, "server");
    CHECK(end_start(&c, GX_TUNNEL_TUN, GX_TUNNEL_CLIENT, &s, ci, "10.8.0.2", 0, 0, 0) == 0, "client");
    uint8_t pkt[128], got[2048];
    ip4_packet(pkt, "10.8.0.2", "10.8.0.1", 0, 60); /* teach the server the client first */
    write(c.dev[1], pkt, 60);
    CHECK(recv_dev(s.dev[1], got, sizeof(got), 2000) == 60, "%s first packet", label);
    enum { COUNT = 20000 };
    struct flood_arg up = {c.dev[1], "10.8.0.2", "10.8.0.1", COUNT}, down = {s.dev[1], "10.8.0.1", "10.8.0.2", COUNT};
    struct reader_arg at_server = {s.dev[1], "10.8.0.2", "10.8.0.1", 0, 0};
    struct reader_arg at_client = {c.dev[1], "10.8.0.1", "10.8.0.2", 0, 0};
    pthread_t w1, w2, r1, r2;
    pthread_create(&r1, NULL, reader_main, &at_server);
    pthread_create(&r2, NULL, reader_main, &at_client);
    pthread_create(&w1, NULL, flood_writer, &up);
    pthread_create(&w2, NULL, flood_writer, &down);
    pthread_join(w1, NULL);
    pthread_join(w2, NULL);
    pthread_join(r1, NULL);
    pthread_join(r2, NULL);
    CHECK(at_server.bad == 0 && at_client.bad == 0, "%s corrupted packets: %d up, %d down", label, at_server.bad,
          at_client.bad);
    /* the socketpair standing in for a device has a short queue, so the tunnel's device writes drop
     * under a flood (counted as drop_dev_full); what the tunnel says it wrote must be what arrived */
    struct gx_tunnel_stats ss, cs;
    gx_tunnel_get_stats(s.t, &ss);
    gx_tunnel_get_stats(c.t, &cs);
    CHECK((uint64_t)at_server.got + 1 == ss.dev_tx_pkts && (uint64_t)at_client.got == cs.dev_tx_pkts,
          "%s delivered %d/%lu up, %d/%lu down", label, at_server.got, (unsigned long)ss.dev_tx_pkts - 1,
          at_client.got, (unsigned long)cs.dev_tx_pkts);
    CHECK(at_server.got > COUNT / 20 && at_client.got > COUNT / 20, "%s delivered %d up, %d down", label,
          at_server.got, at_client.got);
    end_close(&c);
    end_close(&s);
}

/* ---- what a server learns (hostile-input issue: any key holder could claim the server's address,
 * 0.0.0.0, loopback, multicast, or fill the table) ---- */

static void mapped6(uint8_t out[16], const char *ip) { inet_pton(AF_INET6, ip, out); }

/* A TUN server (not started unless start) on s with nets 192.168.123.1/24 and fd00:123::1/64 and
 * a route 10.88.0.0/24 via 192.168.123.2. */
static uint32_t rules_max_peers; /* 0: the default table size */

static int rules_server(struct end *s, int mode, uint32_t peer_routes, const struct cipher *ci, int start) {
    struct gx_tunnel_cfg cfg = {0};
    cfg.max_peers = rules_max_peers;
    if (ci != NULL && gx_aead_new(&s->aead, ci->id, ci->key) < 0)
        return -1;
    cfg.mode = mode;
    cfg.role = GX_TUNNEL_SERVER;
    cfg.dev_fd = s->dev[0];
    cfg.net_fd = s->udp;
    cfg.aead = s->aead;
    cfg.peer_routes = peer_routes;
    if (mode == GX_TUNNEL_TUN) {
        mapped4(cfg.ips[0], "192.168.123.1");
        cfg.prefix[0] = 96 + 24;
        mapped6(cfg.ips[1], "fd00:123::1");
        cfg.prefix[1] = 64;
        cfg.n_ips = 2;
    } else {
        static const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x01};
        memcpy(cfg.mac, mac, 6);
    }
    int rc = gx_tunnel_new(&s->t, &cfg);
    if (rc < 0)
        return rc;
    if (mode == GX_TUNNEL_TUN) {
        uint8_t net[16], gw[16];
        mapped4(net, "10.88.0.0");
        mapped4(gw, "192.168.123.2");
        rc = gx_tunnel_add_route(s->t, net, 96 + 24, gw);
    }
    return rc == 0 && start ? gx_tunnel_start(s->t) : rc;
}

static void test_learn_rules(void) {
    struct end s;
    end_init(&s);
    CHECK(rules_server(&s, GX_TUNNEL_TUN, 0, NULL, 0) == 0, "tun rules server");
    struct {
        const char *ip;
        int want;
    } v4[] = {
        {"192.168.123.2", 1},   {"192.168.123.254", 1}, {"192.168.123.1", -EADDRNOTAVAIL}, /* own */
        {"0.0.0.0", -EADDRNOTAVAIL}, {"127.0.0.1", -EADDRNOTAVAIL}, {"224.0.0.1", -EADDRNOTAVAIL},
        {"255.255.255.255", -EADDRNOTAVAIL}, {"192.168.123.255", -EADDRNOTAVAIL}, /* the net's broadcast */
        {"192.168.123.0", -EADDRNOTAVAIL}, {"192.168.124.2", -EADDRNOTAVAIL},    /* outside net */
        {"10.1.2.3", -EADDRNOTAVAIL}, {"10.88.0.7", 0},                         /* via a route: not learned */
    };
    uint8_t key[16];
    for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
        mapped4(key, v4[i].ip);
        int got = gx_tunnel_learnable(s.t, key);
        CHECK(got == v4[i].want, "learnable(%s) = %d, want %d", v4[i].ip, got, v4[i].want);
    }
    struct {
        const char *ip;
        int want;
    } v6[] = {
        {"fd00:123::2", 1}, {"fd00:123::1", -EADDRNOTAVAIL}, {"::", -EADDRNOTAVAIL}, {"::1", -EADDRNOTAVAIL},
        {"ff02::1", -EADDRNOTAVAIL}, {"fe80::1", -EADDRNOTAVAIL}, {"fd00:124::2", -EADDRNOTAVAIL},
    };
    for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
        mapped6(key, v6[i].ip);
        int got = gx_tunnel_learnable(s.t, key);
        CHECK(got == v6[i].want, "learnable(%s) = %d, want %d", v6[i].ip, got, v6[i].want);
    }
    end_close(&s);

    /* TAP: unicast source MACs other than the device's own */
    end_init(&s);
    CHECK(rules_server(&s, GX_TUNNEL_TAP, 0, NULL, 0) == 0, "tap rules server");
    struct {
        uint8_t mac[6];
        int want;
    } macs[] = {
        {{0x02, 0, 0, 0, 0, 0x0a}, 1},
        {{0x02, 0, 0, 0, 0, 0x01}, -EADDRNOTAVAIL},             /* the server's own */
        {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, -EADDRNOTAVAIL}, /* broadcast */
        {{0x01, 0x00, 0x5e, 0, 0, 1}, -EADDRNOTAVAIL},          /* multicast */
        {{0x33, 0x33, 0, 0, 0, 1}, -EADDRNOTAVAIL},
        {{0, 0, 0, 0, 0, 0}, -EADDRNOTAVAIL},
    };
    for (size_t i = 0; i < sizeof(macs) / sizeof(macs[0]); i++) {
        memset(key, 0, 16);
        memcpy(key, macs[i].mac, 6);
        int got = gx_tunnel_learnable(s.t, key);
        CHECK(got == macs[i].want, "learnable(mac #%zu) = %d, want %d", i, got, macs[i].want);
    }
    end_close(&s);
}

static void send_ip4(int fd, const struct sockaddr_in *to, const char *src, const char *dst, struct gx_aead *a) {
    uint8_t pkt[256], sealed[256 + 64];
    uint32_t len = ip4_packet(pkt, src, dst, 1, 60);
    if (a != NULL) {
        int n = gx_aead_seal_one(a, NULL, pkt, len, sealed);
        sendto(fd, sealed, (size_t)n, 0, (const struct sockaddr *)to, sizeof(*to));
    } else {
        sendto(fd, pkt, len, 0, (const struct sockaddr *)to, sizeof(*to));
    }
}

static int count_events(struct gx_tunnel *t, uint32_t type, uint32_t *value, struct sockaddr_in *addr) {
    struct gx_tunnel_event ev[64];
    int n = gx_tunnel_poll_events(t, ev, 64), found = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].type != type)
            continue;
        found++;
        if (value != NULL)
            *value = ev[i].value;
        if (addr != NULL && ev[i].addrlen == sizeof(*addr))
            memcpy(addr, &ev[i].addr, sizeof(*addr));
    }
    return found;
}

/* count_events, polled until one of type came (the reports go out about once a second) or 5 s passed;
 * every event read meanwhile is consumed, as by count_events. */
static int wait_events(struct gx_tunnel *t, uint32_t type, uint32_t *value, struct sockaddr_in *addr) {
    int found = 0;
    for (int waited = 0; waited < 5000 && found == 0; waited += 20) {
        sleep_ms(20);
        found = count_events(t, type, value, addr);
    }
    return found;
}

/* A running server: a hostile peer's bad sources are refused, its in-net ones capped at peer_routes;
 * another peer still learns; the server's own address still goes to the server's device. */
static void test_learn_cap(const struct cipher *ci, const char *label) {
    struct end s;
    end_init(&s);
    CHECK(rules_server(&s, GX_TUNNEL_TUN, 3, ci, 1) == 0, "%s cap server", label);
    struct gx_aead *peer_aead = NULL;
    if (ci != NULL)
        gx_aead_new(&peer_aead, ci->id, ci->key);
    struct sockaddr_in hostile_addr, honest_addr;
    int hostile = udp_socket(&hostile_addr), honest = udp_socket(&honest_addr);
    const char *bad[] = {"192.168.123.1", "0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255",
                         "192.168.123.255", "10.1.2.3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        send_ip4(hostile, &s.addr, bad[i], "192.168.123.1", peer_aead);
    char ip[32];
    for (int i = 10; i < 18; i++) {
        snprintf(ip, sizeof(ip), "192.168.123.%d", i);
        send_ip4(hostile, &s.addr, ip, "192.168.123.1", peer_aead);
    }
    send_ip4(honest, &s.addr, "192.168.123.2", "192.168.123.1", peer_aead);
    sleep_ms(200);
    struct gx_tunnel_stats st;
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.peers == 4, "%s hostile peer capped at 3 routes + the honest one (%lu)", label, (unsigned long)st.peers);
    CHECK(st.learn_refused == 7, "%s refused %lu", label, (unsigned long)st.learn_refused);
    CHECK(st.learn_capped == 5, "%s capped %lu", label, (unsigned long)st.learn_capped);
    CHECK(st.dev_tx_pkts == 16, "%s every packet still delivered (%lu)", label, (unsigned long)st.dev_tx_pkts);

    /* the server's device -> its own address never leaves; the honest client is reached */
    uint8_t pkt[128], got[512];
    uint32_t len = ip4_packet(pkt, "192.168.123.1", "192.168.123.2", 5, 60);
    write(s.dev[1], pkt, len);
    struct pollfd pf = {.fd = honest, .events = POLLIN};
    CHECK(poll(&pf, 1, 2000) == 1 && recv(honest, got, sizeof(got), 0) > 0, "%s server -> honest client", label);
    len = ip4_packet(pkt, "192.168.123.2", "192.168.123.1", 5, 60);
    write(s.dev[1], pkt, len);
    sleep_ms(100);
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.drop_no_route == 1, "%s nothing learned for the server's own address (%lu)", label,
          (unsigned long)st.drop_no_route);
    pf.fd = hostile;
    CHECK(poll(&pf, 1, 100) == 0, "%s the hostile peer got nothing", label);

    /* the cap is reported once (about a second later), with the count, not once per packet */
    uint32_t value = 0;
    struct sockaddr_in from = {0};
    CHECK(wait_events(s.t, GX_TEV_ROUTES_CAPPED, &value, &from) == 1, "%s one routes_capped event", label);
    CHECK(value == 5 && from.sin_port == hostile_addr.sin_port, "%s capped count %u", label, value);

    /* a route moved to another peer is released by the first: after the honest peer takes over two
     * of the hostile peer's 3 routes, the hostile peer may learn one more */
    for (int i = 10; i < 12; i++) {
        snprintf(ip, sizeof(ip), "192.168.123.%d", i);
        send_ip4(honest, &s.addr, ip, "192.168.123.1", peer_aead);
    }
    sleep_ms(100);
    send_ip4(hostile, &s.addr, "192.168.123.20", "192.168.123.1", peer_aead);
    send_ip4(hostile, &s.addr, "192.168.123.21", "192.168.123.1", peer_aead);
    send_ip4(hostile, &s.addr, "192.168.123.22", "192.168.123.1", peer_aead);
    sleep_ms(100);
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.learn_capped == 6 && st.peers == 6, "%s moved routes released (capped %lu, peers %lu)", label,
          (unsigned long)st.learn_capped, (unsigned long)st.peers);
    close(hostile);
    close(honest);
    gx_aead_free(peer_aead);
    end_close(&s);
}

/* A full peer table is reported once a second, not once for every datagram of an unlearned source. */
static void test_table_full_reported_once(void) {
    struct end s;
    end_init(&s);
    rules_max_peers = 2;
    CHECK(rules_server(&s, GX_TUNNEL_TUN, 64, NULL, 1) == 0, "table-full server");
    rules_max_peers = 0;
    struct sockaddr_in a;
    int fd = udp_socket(&a);
    char ip[32];
    for (int i = 10; i < 60; i++) {
        snprintf(ip, sizeof(ip), "192.168.123.%d", i);
        send_ip4(fd, &s.addr, ip, "192.168.123.1", NULL);
    }
    uint32_t value = 0;
    struct sockaddr_in from = {0};
    int n = wait_events(s.t, GX_TEV_TABLE_FULL, &value, &from);
    struct gx_tunnel_stats st;
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.peers == 2, "the table holds its 2 peers (%lu)", (unsigned long)st.peers);
    CHECK(n == 1 && value == 2, "one table-full event for 48 refused sources (%d, value %u)", n, value);
    close(fd);
    end_close(&s);
}

/* Failing datagrams from one peer: one event with their count, then nothing for 10 s. */
static void test_bad_peer_reports(const struct cipher *ci) {
    struct end s;
    end_init(&s);
    CHECK(rules_server(&s, GX_TUNNEL_TUN, 0, ci, 1) == 0, "report server");
    struct sockaddr_in junk_addr;
    int junk = udp_socket(&junk_addr);
    uint8_t rnd[100];
    for (size_t i = 0; i < sizeof(rnd); i++)
        rnd[i] = (uint8_t)(i * 29 + 3);
    for (int i = 0; i < 30; i++) {
        rnd[0] = (uint8_t)i;
        sendto(junk, rnd, sizeof(rnd), 0, (struct sockaddr *)&s.addr, sizeof(s.addr));
    }
    uint32_t value = 0;
    struct sockaddr_in from = {0};
    CHECK(wait_events(s.t, GX_TEV_AUTH_FAILED, &value, &from) == 1, "one auth_failed event");
    CHECK(value == 30, "auth_failed counts the 30 datagrams (%u)", value);
    CHECK(from.sin_port == junk_addr.sin_port, "auth_failed names the peer");
    for (int i = 0; i < 20; i++) {
        rnd[1] = (uint8_t)i;
        sendto(junk, rnd, sizeof(rnd), 0, (struct sockaddr *)&s.addr, sizeof(s.addr));
    }
    sleep_ms(1400);
    CHECK(count_events(s.t, GX_TEV_AUTH_FAILED, NULL, NULL) == 0, "no second event within 10 s");
    struct gx_tunnel_stats st;
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.drop_auth == 50, "drop_auth %lu", (unsigned long)st.drop_auth);
    close(junk);
    end_close(&s);
}

/* peerPins: a pinned address is learned only from its outer IP (any port). */
static void test_pins(void) {
    struct end s;
    end_init(&s);
    CHECK(rules_server(&s, GX_TUNNEL_TUN, 0, NULL, 0) == 0, "pin server");
    uint8_t key[16], outer[16];
    mapped4(key, "192.168.123.2");
    mapped4(outer, "127.0.0.2");
    CHECK(gx_tunnel_add_pin(s.t, key, outer) == 0, "pin added");
    CHECK(gx_tunnel_start(s.t) == 0, "pin server started");
    struct sockaddr_in other_addr;
    int other = udp_socket(&other_addr); /* 127.0.0.1 */
    int owner = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    CHECK(bind(owner, (struct sockaddr *)&a, sizeof(a)) == 0, "bind 127.0.0.2");
    for (int i = 0; i < 3; i++)
        send_ip4(other, &s.addr, "192.168.123.2", "192.168.123.1", NULL);
    send_ip4(other, &s.addr, "192.168.123.3", "192.168.123.1", NULL); /* not pinned: anyone */
    sleep_ms(100);
    struct gx_tunnel_stats st;
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.peers == 1 && st.learn_refused == 3, "pinned address refused from another IP (peers %lu, refused %lu)",
          (unsigned long)st.peers, (unsigned long)st.learn_refused);
    send_ip4(owner, &s.addr, "192.168.123.2", "192.168.123.1", NULL);
    sleep_ms(100);
    gx_tunnel_get_stats(s.t, &st);
    CHECK(st.peers == 2 && st.learn_refused == 3, "pinned address learned from its IP (peers %lu)",
          (unsigned long)st.peers);
    uint32_t value = 0;
    CHECK(wait_events(s.t, GX_TEV_PIN_REFUSED, &value, NULL) == 1 && value == 3, "one pin_refused event (%u)",
          value);
    close(other);
    close(owner);
    end_close(&s);
}

int main(void) {
    test_parsers();
    test_pair(NULL, "plaintext");
    struct cipher aes = {.id = gx_aead_lookup("aes-128-gcm")};
    CHECK(aes.id > 0, "cipher");
    CHECK(gx_aead_derive_key(aes.id, (const uint8_t *)"pw", 2, aes.key) == 0, "key");
    test_pair(&aes, "aes-128-gcm");
    struct cipher chacha = {.id = gx_aead_lookup("chacha20-ietf-poly1305")};
    CHECK(gx_aead_derive_key(chacha.id, (const uint8_t *)"pw", 2, chacha.key) == 0, "chacha key");
    test_relay_keepalive_expiry(&chacha);
    test_relay_keepalive_expiry(NULL);
    test_tap_broadcast();
    test_bidirectional_flood(NULL, "plaintext flood");
    test_bidirectional_flood(&aes, "aes flood");
    test_learn_rules();
    test_learn_cap(NULL, "plaintext");
    test_learn_cap(&aes, "aes-128-gcm");
    test_table_full_reported_once();
    test_bad_peer_reports(&aes);
    test_pins();
    TEST_DONE();
}
