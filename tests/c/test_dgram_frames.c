/* Datagrams <-> 0xF3 frames (gx/dgram_frames.h): a SEQPACKET session through the C 0xF3 server relay
 * (csrc/socks_relay.c) to a UDP echo and back, exact counts; the frame on the wire; EOF ends it. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx/dgram_frames.h"
#include "gx/socks_udp.h"
#include "gxtest.h"
#include "netutil.h"

static bool readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

int main(void) {
    struct sockaddr_in ua, ea;
    int up = udp_bound(&ua), echo = udp_bound(&ea);
    int sq[2], st[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sq) == 0, "seqpacket");
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, st) == 0, "stream");
    uint8_t hdr[8] = {0, 1};
    memcpy(hdr + 2, &ea.sin_addr, 4);
    memcpy(hdr + 6, &ea.sin_port, 2);
    struct gx_dgram_frames *r = NULL;
    CHECK(gx_dgram_frames_new(&r, sq[0], st[0], hdr, 0) == -EINVAL, "a header is needed");
    CHECK(gx_dgram_frames_new(&r, sq[0], st[0], hdr, 8) == 0 && gx_dgram_frames_start(r) == 0, "start");
    struct gx_socks_relay *srv = NULL;
    CHECK(gx_socks_relay_new(&srv, st[1], up, 0) == 0 && gx_socks_relay_start(srv) == 0, "0xF3 server");
    int echoed = 0, back = 0;
    for (int i = 1; i <= 200; i++) {
        uint8_t msg[1400];
        memset(msg, i, sizeof(msg));
        CHECK(send(sq[1], msg, 500 + (size_t)i, 0) == 500 + i, "send");
        if (i % 10 == 0)
            for (int t = 0; t < 2000 && back < i; t++) {
                uint8_t buf[2048];
                struct sockaddr_storage from;
                socklen_t fl = sizeof(from);
                ssize_t n;
                while ((n = recvfrom(echo, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) > 0) {
                    sendto(echo, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
                    echoed++;
                    fl = sizeof(from);
                }
                if (readable(sq[1], 1))
                    while ((n = recv(sq[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
                        CHECK(n > 500 && buf[0] == buf[n - 1], "one whole datagram per message");
                        back++;
                    }
            }
    }
    CHECK(echoed == 200 && back == 200, "200 out, 200 back (%d, %d)", echoed, back);
    struct gx_dgram_frames_stats s;
    gx_dgram_frames_get_stats(r, &s);
    CHECK(s.up_pkts == 200 && s.down_pkts == 200 && s.up_bytes == s.down_bytes && !s.drop_up && !s.drop_down,
          "counts");
    close(sq[1]); /* the stack's end closes: the relay ends by itself, cleanly */
    CHECK(readable(gx_dgram_frames_event_fd(r), 2000), "ended");
    CHECK(gx_dgram_frames_status(r) == 0, "clean end (%d)", gx_dgram_frames_status(r));
    gx_dgram_frames_free(r);
    gx_socks_relay_free(srv);
    close(sq[0]), close(st[0]), close(st[1]), close(up), close(echo);
    TEST_DONE();
}
