/* SOCKS5 UDP ASSOCIATE in C (gx/proxy.h): the header parser against RFC 1928's layout, and the
 * relay: exact counts both ways through a UDP echo, datagrams from another IP / malformed / fragments
 * / oversize dropped and counted while the association goes on, replies to the client's latest port. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx/proxy.h"
#include "gxtest.h"
#include "netutil.h"

static void test_parse(void) {
    struct gx_socks_frame f;
    const uint8_t v4[] = {0, 0, 0, 1, 10, 0, 0, 1, 0x01, 0xbb, 'h', 'i'};
    CHECK(gx_socks_assoc_parse(v4, sizeof(v4), &f) == 0 && f.hdr_len == 10 && f.len == 2 && f.port == 443 &&
              f.host_len == 4 && f.host == v4 + 4,
          "IPv4");
    const uint8_t name[] = {0, 0, 0, 3, 3, 'a', '.', 'b', 0, 53};
    CHECK(gx_socks_assoc_parse(name, sizeof(name), &f) == 0 && f.hdr_len == 10 && f.len == 0 && f.host_len == 3,
          "a name, empty payload");
    uint8_t v6[4 + 16 + 2 + 1] = {0, 0, 0, 4};
    v6[20] = 0x12, v6[21] = 0x34;
    CHECK(gx_socks_assoc_parse(v6, sizeof(v6), &f) == 0 && f.port == 0x1234 && f.len == 1, "IPv6");
    const uint8_t frag[] = {0, 0, 1, 1, 10, 0, 0, 1, 0, 53};
    CHECK(gx_socks_assoc_parse(frag, sizeof(frag), &f) == -EMSGSIZE, "a fragment");
    const uint8_t rsv[] = {0, 1, 0, 1, 10, 0, 0, 1, 0, 53};
    CHECK(gx_socks_assoc_parse(rsv, sizeof(rsv), &f) == -EPROTO, "RSV != 0");
    CHECK(gx_socks_assoc_parse(v4, 9, &f) == -EPROTO, "short header");
    const uint8_t empty_name[] = {0, 0, 0, 3, 0, 0, 53};
    CHECK(gx_socks_assoc_parse(empty_name, sizeof(empty_name), &f) == -EPROTO, "empty name");
    const uint8_t long_name[] = {0, 0, 0, 3, 200, 'x'};
    CHECK(gx_socks_assoc_parse(long_name, sizeof(long_name), &f) == -EPROTO, "name past the end");
    const uint8_t atyp[] = {0, 0, 0, 9, 1, 2, 3, 4, 0, 53};
    CHECK(gx_socks_assoc_parse(atyp, sizeof(atyp), &f) == -EPROTO, "unknown ATYP");
    uint8_t hdr[GX_SOCKS_UDP_HDR_MAX];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(443)};
    inet_pton(AF_INET, "10.0.0.1", &a.sin_addr);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, &a, sizeof(a));
    CHECK(gx_socks_assoc_header(hdr, &ss) == 10 && memcmp(hdr, v4, 10) == 0, "reply header");
}

/* The association: client socket -> relay socket, upstream socket -> echo. */
static void test_relay(void) {
    struct sockaddr_in ra, ua, ea, ca;
    int relay = udp_bound(&ra), up = udp_bound(&ua), echo = udp_bound(&ea), client = udp_bound(&ca);
    struct sockaddr_storage cl;
    memset(&cl, 0, sizeof(cl));
    memcpy(&cl, &ca, sizeof(ca));
    struct gx_socks_assoc *a = NULL;
    CHECK(gx_socks_assoc_new(&a, relay, up, &cl, 1000) == 0, "new");
    CHECK(gx_socks_assoc_start(a) == 0, "start");
    uint8_t dgram[10 + 1200];
    memset(dgram, 0, sizeof(dgram));
    dgram[3] = 1;
    memcpy(dgram + 4, &ea.sin_addr, 4);
    memcpy(dgram + 8, &ea.sin_port, 2);
    int back = 0, echoed = 0;
    for (int i = 0; i < 200; i++) {
        memcpy(dgram + 10, &i, sizeof(i));
        sendto(client, dgram, 10 + 100, 0, (struct sockaddr *)&ra, sizeof(ra));
        if (i % 20 == 19) {
            sleep_ms(5);
            uint8_t buf[2048];
            struct sockaddr_storage from;
            socklen_t fl = sizeof(from);
            ssize_t n;
            while ((n = recvfrom(echo, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl)) > 0) {
                CHECK(n == 100, "payload only, %zd bytes", n);
                sendto(echo, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
                echoed++;
                fl = sizeof(from);
            }
            sleep_ms(5);
            while ((n = recv(client, buf, sizeof(buf), 0)) > 0) {
                CHECK(n == 110 && buf[3] == 1 && memcmp(buf + 4, &ea.sin_addr, 4) == 0 &&
                          memcmp(buf + 8, &ea.sin_port, 2) == 0,
                      "reply with the echo's address, %zd bytes", n);
                back++;
            }
        }
    }
    CHECK(echoed == 200 && back == 200, "200 out, 200 back (%d, %d)", echoed, back);
    /* hostile datagrams: malformed, a fragment, oversize (1200 > 1000) */
    uint8_t bad[] = {0, 0, 0, 9, 1};
    sendto(client, bad, sizeof(bad), 0, (struct sockaddr *)&ra, sizeof(ra));
    dgram[2] = 1;
    sendto(client, dgram, 20, 0, (struct sockaddr *)&ra, sizeof(ra));
    dgram[2] = 0;
    sendto(client, dgram, sizeof(dgram), 0, (struct sockaddr *)&ra, sizeof(ra));
    /* from another IP: 127.0.0.2 */
    int other = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in oa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.2", &oa.sin_addr);
    bind(other, (struct sockaddr *)&oa, sizeof(oa));
    sendto(other, dgram, 20, 0, (struct sockaddr *)&ra, sizeof(ra));
    sleep_ms(30);
    struct gx_socks_assoc_stats st;
    gx_socks_assoc_get_stats(a, &st);
    CHECK(st.up_pkts == 200 && st.down_pkts == 200 && st.up_bytes == 200 * 100 && st.down_bytes == 200 * 100,
          "counts");
    CHECK(st.drop_malformed == 2 && st.drop_size == 1 && st.drop_foreign == 1, "drops %llu %llu %llu",
          (unsigned long long)st.drop_malformed, (unsigned long long)st.drop_size,
          (unsigned long long)st.drop_foreign);
    /* it lives on: one more round trip */
    sendto(client, dgram, 10 + 5, 0, (struct sockaddr *)&ra, sizeof(ra));
    uint8_t buf[2048];
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    ssize_t n = -1;
    for (int t = 0; t < 1000 && n < 0; t++) {
        n = recvfrom(echo, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            sleep_ms(1);
    }
    CHECK(n == 5, "the association lives on after bad input");
    CHECK(gx_socks_assoc_status(a) == 0, "still running");
    gx_socks_assoc_free(a);
    close(relay), close(up), close(echo), close(client), close(other);
}

/* The upstream a chain's SOCKS5 hop: datagrams become 0xF3 frames on a stream; here the C 0xF3 server
 * relay (csrc/socks_relay.c) over a socketpair, in front of an echo. The hop's EOF ends the association. */
static void test_stream_upstream(void) {
    struct sockaddr_in ra, ua, ea, ca;
    int relay = udp_bound(&ra), up = udp_bound(&ua), echo = udp_bound(&ea), client = udp_bound(&ca);
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp) == 0, "socketpair");
    struct gx_socks_relay *hop = NULL;
    CHECK(gx_socks_relay_new(&hop, sp[1], up, 0) == 0 && gx_socks_relay_start(hop) == 0, "0xF3 server");
    struct sockaddr_storage cl;
    memset(&cl, 0, sizeof(cl));
    memcpy(&cl, &ca, sizeof(ca));
    struct gx_socks_assoc *a = NULL;
    CHECK(gx_socks_assoc_new(&a, relay, sp[0], &cl, 0) == 0 && gx_socks_assoc_start(a) == 0, "stream upstream");
    uint8_t dgram[10 + 300];
    memset(dgram, 0, sizeof(dgram));
    dgram[3] = 1;
    memcpy(dgram + 4, &ea.sin_addr, 4);
    memcpy(dgram + 8, &ea.sin_port, 2);
    int echoed = 0, back = 0;
    for (int i = 1; i <= 100; i++) {
        dgram[10] = (uint8_t)i;
        sendto(client, dgram, 10 + 100 + (size_t)i, 0, (struct sockaddr *)&ra, sizeof(ra));
        for (int t = 0; t < 2000 && back < i; t++) {
            uint8_t buf[2048];
            struct sockaddr_storage from;
            socklen_t fl = sizeof(from);
            ssize_t n;
            while ((n = recvfrom(echo, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) > 0) {
                CHECK(n == 100 + i && buf[0] == i, "the payload only (%zd)", n);
                sendto(echo, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
                echoed++;
                fl = sizeof(from);
            }
            while ((n = recv(client, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
                CHECK(n == 10 + 100 + i && buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 1 &&
                          memcmp(buf + 4, &ea.sin_addr, 4) == 0 && buf[10] == i,
                      "a reply datagram with the echo's address (%zd)", n);
                back++;
            }
            if (back < i)
                sleep_ms(1);
        }
    }
    CHECK(echoed == 100 && back == 100, "100 out, 100 back (%d, %d)", echoed, back);
    struct gx_socks_assoc_stats st;
    gx_socks_assoc_get_stats(a, &st);
    CHECK(st.up_pkts == 100 && st.down_pkts == 100 && st.up_bytes == st.down_bytes, "counts");
    gx_socks_relay_free(hop);
    close(sp[1]); /* the hop goes away: the association ends by itself */
    struct pollfd p = {.fd = gx_socks_assoc_event_fd(a), .events = POLLIN};
    CHECK(poll(&p, 1, 2000) == 1 && gx_socks_assoc_status(a) == 0, "EOF ends it");
    gx_socks_assoc_free(a);
    close(relay), close(up), close(echo), close(client), close(sp[0]);
}

int main(void) {
    test_parse();
    test_relay();
    test_stream_upstream();
    TEST_DONE();
}
