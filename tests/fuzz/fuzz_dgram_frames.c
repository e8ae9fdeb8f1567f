/* Datagrams <-> frames on a stream (csrc/proxy/dgram_frames.c), through its public calls (gx/proxy.h):
 * a peer's stream of 0xF3 or relay-protocol UDP frames becomes datagrams on a SOCK_SEQPACKET socketpair.
 *
 * Input: byte 0: bit 0 the framing (0: 0xF3, 1: relay `LEN(2) DATA`); the rest: the stream, written in
 * chunks while the datagrams are read, then EOF. Checks: the datagrams that come out are, in order, the
 * non-empty payloads of the complete frames a reference parse finds (gx_socks_udp_parse; the 2-byte
 * length for relay frames) before the first malformed one, none missing unless counted in drop_down;
 * the relay ends by itself within 5 s with status 0 (EOF on a frame boundary) or EPROTO (a malformed
 * frame, or EOF inside one); free is clean (ASan checks the rest). */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "gx/proxy.h"

#define MAXF 8192
static struct { size_t off; uint32_t len; } want[MAXF];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    int mode = data[0] & 1 ? GX_FRAMES_RELAY : GX_FRAMES_F3;
    const uint8_t *stream = data + 1;
    size_t n = size - 1;
    /* the reference parse */
    size_t pos = 0, nwant = 0;
    int expect_status = 0;
    for (;;) {
        struct gx_socks_frame f;
        int fs;
        if (mode == GX_FRAMES_RELAY) {
            fs = gx_relay_udp_frame(stream + pos, n - pos, &f.len);
            f.hdr_len = 2;
        } else {
            fs = gx_socks_udp_parse(stream + pos, n - pos, &f);
        }
        if (fs < 0) {
            expect_status = EPROTO;
            break;
        }
        if (fs == 0 || (size_t)fs > n - pos) {
            if (pos < n)
                expect_status = EPROTO; /* EOF inside a frame */
            break;
        }
        if (f.len > 0 && nwant < MAXF) {
            want[nwant].off = pos + f.hdr_len;
            want[nwant].len = f.len;
            nwant++;
        }
        pos += (size_t)fs;
    }
    int sq[2], st[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sq) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, st) != 0)
        abort();
    uint8_t hdr[8] = {0, 1, 127, 0, 0, 1, 0, 9};
    struct gx_dgram_frames *r = NULL;
    FZ_CHECK(gx_dgram_frames_new(&r, sq[0], st[0], mode, mode == GX_FRAMES_F3 ? hdr : NULL,
                                 mode == GX_FRAMES_F3 ? 8 : 0) == 0, "new");
    FZ_CHECK(gx_dgram_frames_start(r) == 0, "start");
    static uint8_t buf[70000];
    size_t written = 0, got = 0;
    bool eof_sent = false, ended = false;
    for (int t = 0; t < 5000 && !ended; t++) {
        if (written < n) {
            ssize_t w = write(st[1], stream + written, n - written < 4096 ? n - written : 4096);
            if (w > 0)
                written += (size_t)w;
        } else if (!eof_sent) {
            shutdown(st[1], SHUT_WR);
            eof_sent = true;
        }
        ssize_t m;
        while ((m = recv(sq[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
            /* skip expected payloads the relay counted as dropped (the socketpair was full) */
            while (got < nwant && !(want[got].len == (uint32_t)m && memcmp(stream + want[got].off, buf, (size_t)m) == 0))
                got++;
            FZ_CHECK(got < nwant, "a datagram that is no frame's payload (%zd bytes)", m);
            got++;
        }
        struct pollfd p = {.fd = gx_dgram_frames_event_fd(r), .events = POLLIN};
        ended = poll(&p, 1, written < n ? 0 : 1) == 1;
    }
    FZ_CHECK(ended, "the relay did not end by itself within 5 s");
    while (recv(sq[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
    int status = gx_dgram_frames_status(r);
    if (written == n)
        FZ_CHECK(status == expect_status, "status %d, want %d", status, expect_status);
    else
        FZ_CHECK(status == EPROTO, "ended early with %d", status);
    struct gx_dgram_frames_stats s;
    gx_dgram_frames_get_stats(r, &s);
    if (status == expect_status && written == n)
        FZ_CHECK(s.down_pkts + s.drop_down == nwant, "%llu delivered + %llu dropped != %zu frames",
                 (unsigned long long)s.down_pkts, (unsigned long long)s.drop_down, nwant);
    gx_dgram_frames_free(r);
    close(sq[0]), close(sq[1]), close(st[0]), close(st[1]);
    return 0;
}
