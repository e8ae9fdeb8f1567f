/* Datagrams <-> 0xF3 frames (gx/proxy.h): a SEQPACKET session through the C 0xF3 server relay
 * (csrc/socks_relay.c) to a UDP echo and back, exact counts; the frame on the wire; EOF ends it. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx/proxy.h"
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
    CHECK(gx_dgram_frames_new(&r, sq[0], st[0], GX_FRAMES_F3, hdr, 0) == -EINVAL, "a header is needed");
    CHECK(gx_dgram_frames_new(&r, sq[0], st[0], GX_FRAMES_F3, hdr, 8) == 0 && gx_dgram_frames_start(r) == 0, "start");
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

    /* relay-protocol frames, the relay server's side: stream <-> a UDP socket connected to an echo */
    int echo2 = udp_bound(&ea);
    int conn = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    connect(conn, (struct sockaddr *)&ea, sizeof(ea));
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, st) == 0, "stream");
    CHECK(gx_dgram_frames_new(&r, conn, st[0], GX_FRAMES_RELAY, hdr, 8) == -EINVAL, "relay frames carry no header");
    CHECK(gx_dgram_frames_new(&r, conn, st[0], GX_FRAMES_RELAY, NULL, 0) == 0 && gx_dgram_frames_start(r) == 0,
          "relay mode");
    const uint8_t frames[] = {0, 3, 'a', 'b', 'c', 0, 0, 0, 2, 'x', 'y'}; /* "abc", an empty one, "xy" */
    CHECK(write(st[1], frames, sizeof(frames)) == sizeof(frames), "write");
    uint8_t buf[64];
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    int got = 0;
    for (int t = 0; t < 2000 && got < 2; t++) {
        ssize_t n = recvfrom(echo2, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n > 0) {
            CHECK((got == 0 && n == 3 && memcmp(buf, "abc", 3) == 0) || (got == 1 && n == 2), "payloads");
            sendto(echo2, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
            got++;
        } else {
            sleep_ms(1);
        }
    }
    CHECK(got == 2, "two datagrams (the empty frame is not sent)");
    uint8_t back_frames[16];
    size_t have = 0;
    for (int t = 0; t < 2000 && have < 9; t++) {
        ssize_t n = read(st[1], back_frames + have, sizeof(back_frames) - have);
        if (n > 0)
            have += (size_t)n;
        else
            sleep_ms(1);
    }
    CHECK(have == 9 && memcmp(back_frames, "\0\3abc\0\2xy", 9) == 0, "LEN + data frames back (%zu)", have);
    close(st[1]); /* the client's stream ends: the relay ends cleanly */
    CHECK(readable(gx_dgram_frames_event_fd(r), 2000) && gx_dgram_frames_status(r) == 0, "EOF ends it");
    gx_dgram_frames_free(r);
    close(conn), close(echo2), close(st[0]);
    TEST_DONE();
}
