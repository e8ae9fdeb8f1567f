/* The tun/tap tunnel's down path (csrc/tunnel/tunnel.c) through its public API (gx/tunnel.h): datagrams from
 * peers, opened (AEAD or plaintext), then parsed as control messages (gost v3's "GOST" handshake and
 * reply) or inner IP packets / Ethernet frames, learned, relayed between clients or written to the
 * device. Also the exported parsers (gx_tunnel_ip_addrs, gx_tunnel_eth_addrs, gx_tunnel_is_control).
 *
 * The tunnel runs with a transport of this target's own (gx_tunnel_set_transport): its recv hands over
 * the input's datagrams from up to 8 made-up peers, then reports the end (-ECONNRESET), so the down
 * thread stops by itself after the last one (NET_CLOSED event); its send only counts. The device is an
 * AF_UNIX datagram socketpair. No socket leaves the process.
 *
 * Input: byte 0: bit 0 TAP, bit 1 client (else server), bit 2 p2p, bits 3-5 cipher (0 plaintext,
 * 1-4 aes-128/192/256-gcm, chacha20-poly1305; key of the password "s3cret"); then records (fuzz.h),
 * each [peer][flag][datagram]: flag bit 0 seals the datagram with the tunnel's key first (so it gets
 * past the AEAD), bit 1 makes it a control handshake (magic + passphrase + the datagram's bytes as
 * IPs), bit 2 prefixes a minimal IPv4 header (src/dst from the next 8 bytes). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "gx/tunnel.h"

#define MAXDG 256
#define DGMAX 1600

struct feed {
    int efd;
    uint32_t n, next;
    uint32_t len[MAXDG];
    uint8_t peer[MAXDG];
    uint8_t *data[MAXDG];
    _Atomic uint64_t sent;
};

static const int CIPHERS[5] = {GX_CIPHER_NONE, GX_CIPHER_AES_128_GCM, GX_CIPHER_AES_192_GCM, GX_CIPHER_AES_256_GCM,
                               GX_CIPHER_CHACHA20_POLY1305};
static uint8_t keys[5][GX_AEAD_MAX_KEY];
static struct gx_aead *sealer[5];
static uint8_t bufs[MAXDG][DGMAX + 64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    for (int i = 1; i < 5; i++)
        if (gx_aead_derive_key(CIPHERS[i], (const uint8_t *)"s3cret", 6, keys[i]) != 0 ||
            gx_aead_new_ex(&sealer[i], CIPHERS[i], keys[i], 0) != 0)
            abort();
    return 0;
}

static void peer_addr(uint8_t peer, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof(*ss));
    if (peer & 8) {
        struct sockaddr_in6 *a = (void *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr.s6_addr[0] = 0xfd;
        a->sin6_addr.s6_addr[15] = (uint8_t)(peer & 7);
        a->sin6_port = htons((uint16_t)(40000 + (peer & 7)));
        *len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (void *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(0x0a630000u | (peer & 7));
        a->sin_port = htons((uint16_t)(40000 + (peer & 7)));
        *len = sizeof(*a);
    }
}

static int feed_recv(void *state, struct gx_batch *b, uint64_t *bytes) {
    struct feed *f = state;
    if (f->next == f->n)
        return -ECONNRESET;   /* the end of the input: the down thread stops */
    uint32_t n = 0;
    while (n < b->cap && f->next < f->n) {
        uint32_t i = f->next++;
        uint32_t len = f->len[i] <= gx_batch_room(b) ? f->len[i] : 0;
        memcpy(b->pkt[n].data, f->data[i], len);
        b->pkt[n].len = len;
        peer_addr(f->peer[i], &b->addr[n], &b->addrlen[n]);
        *bytes += len;
        n++;
    }
    b->n = n;
    return (int)n;
}

static int feed_send(void *state, const struct gx_tunnel_dgram *d, int n, int stop_fd, uint64_t *bytes,
                     uint64_t *dropped) {
    struct feed *f = state;
    (void)stop_fd, (void)dropped;
    for (int i = 0; i < n; i++) {
        FZ_CHECK(d[i].addrlen > 0 && d[i].addr != NULL, "a datagram sent without an address");
        *bytes += d[i].len;
    }
    f->sent += (uint64_t)n;
    return n;
}

static void parsers(const uint8_t *p, uint32_t len) {
    uint8_t src[16], dst[16];
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, p, len);
    (void)gx_tunnel_ip_addrs(copy, len, src, dst);
    (void)gx_tunnel_eth_addrs(copy, len, src, dst);
    int k = gx_tunnel_is_control(copy, len);
    FZ_CHECK(k >= 0 && k <= 2, "is_control: %d", k);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz in = {data, size};
    uint8_t b0 = fz_u8(&in);
    int tap = b0 & 1, client = (b0 >> 1) & 1, p2p = (b0 >> 2) & 1, c = ((b0 >> 3) & 7) % 5;
    static struct feed f;
    f.n = f.next = 0;
    f.sent = 0;
    size_t len;
    const uint8_t *rec;
    while (f.n < MAXDG && (rec = fz_record(&in, &len)) != NULL) {
        struct fz r = {rec, len};
        uint8_t peer = fz_u8(&r), flag = fz_u8(&r);
        uint8_t *out = bufs[f.n], pt[DGMAX];
        uint32_t n = 0;
        if (flag & 2) {   /* control handshake: magic, passphrase, IPs */
            memcpy(pt, "GOST", 4);
            memcpy(pt + 4, "secret\0\0\0\0\0\0\0\0\0\0", 16);
            n = 20;
        } else if (flag & 4) {   /* a minimal IPv4 header */
            memset(pt, 0, 20);
            pt[0] = 0x45;
            fz_fill(&r, pt + 12, 8);
            n = 20;
        }
        size_t k = r.n < DGMAX - 64 - n ? r.n : DGMAX - 64 - n;
        memcpy(pt + n, r.p, k);
        n += (uint32_t)k;
        parsers(pt, n);
        if ((flag & 1) && c != 0) {
            int m = gx_aead_seal_one(sealer[c], NULL, pt, n, out);
            FZ_CHECK(m > 0, "seal");
            n = (uint32_t)m;
        } else {
            memcpy(out, pt, n);
        }
        f.data[f.n] = out;
        f.len[f.n] = n;
        f.peer[f.n] = peer;
        f.n++;
    }
    int dev[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, dev) != 0)
        abort();
    struct gx_aead *aead = NULL;
    if (c != 0 && gx_aead_new_ex(&aead, CIPHERS[c], keys[c], 64) != 0)
        abort();
    struct gx_tunnel_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.mode = tap ? GX_TUNNEL_TAP : GX_TUNNEL_TUN;
    cfg.role = client ? GX_TUNNEL_CLIENT : GX_TUNNEL_SERVER;
    cfg.dev_fd = dev[0];
    cfg.net_fd = -1;
    cfg.aead = aead;
    cfg.mtu = 1350;
    cfg.batch = 16;
    cfg.p2p = p2p;
    cfg.max_peers = 8;
    memcpy(cfg.passphrase, "secret", 6);
    cfg.n_ips = 1;
    cfg.ips[0][10] = cfg.ips[0][11] = 0xff;
    cfg.ips[0][12] = 10, cfg.ips[0][15] = 1;
    if (client) {
        peer_addr(0, &cfg.remote, &cfg.remote_len);
        cfg.keepalive = 1;
        cfg.ttl_ms = 60000;
    }
    static const uint8_t net[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 50, 0};
    static const uint8_t gw[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2};
    struct gx_tunnel *t;
    FZ_CHECK(gx_tunnel_new(&t, &cfg) == 0, "tunnel_new");
    if (!client)
        FZ_CHECK(gx_tunnel_add_route(t, net, 96 + 24, gw) == 0, "add_route");
    f.efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);   /* always readable: recv says when it is over */
    struct gx_transport tr = {.state = &f, .fd = f.efd, .recv = feed_recv, .send = feed_send, .close = NULL};
    FZ_CHECK(gx_tunnel_set_transport(t, &tr) == 0, "set_transport");
    FZ_CHECK(gx_tunnel_start(t) == 0, "start");
    struct pollfd ev = {.fd = gx_tunnel_event_fd(t), .events = POLLIN};
    int closed = 0;
    for (int waited = 0; waited < 10000 && !closed; waited += 5) {
        if (poll(&ev, 1, 5) > 0) {
            struct gx_tunnel_event e[32];
            int n;
            while ((n = gx_tunnel_poll_events(t, e, 32)) > 0)
                for (int i = 0; i < n; i++)
                    closed |= e[i].type == GX_TEV_NET_CLOSED;
        }
        char junk[2048];
        while (read(dev[1], junk, sizeof(junk)) >= 0) {
        }
    }
    FZ_CHECK(closed, "the down thread did not finish the input within 10 s");
    struct gx_tunnel_stats st;
    gx_tunnel_get_stats(t, &st);
    FZ_CHECK(st.net_rx_pkts == f.n, "net_rx_pkts %llu, %u datagrams given", (unsigned long long)st.net_rx_pkts, f.n);
    gx_tunnel_free(t);
    gx_aead_free(aead);
    close(f.efd);
    close(dev[0]);
    close(dev[1]);
    return 0;
}
