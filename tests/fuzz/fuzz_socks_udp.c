/* GOST's SOCKS5 UDP-over-TCP framing (0xF3, csrc/proxy/socks_udp.c): frames from the peer's stream.
 *
 * Input: byte 0: the size of the chunks the stream arrives in ((b0 + 1) * 4 bytes); the rest: the stream.
 *  1. gx_socks_udp_parse frame after frame over the whole stream: a complete parse lies inside the
 *     bytes, fewer bytes never give another answer than "incomplete" or the same one, and an IPv4/IPv6
 *     frame's header rebuilt with gx_socks_udp_header from its address equals the original (FRAG
 *     aside; a v4-mapped IPv6 address is written as IPv4 by design, so not compared).
 *  2. The tunnel transport (gx_transport_socks_udp) over a socketpair, the stream written chunk by chunk
 *     with recv calls in between, then EOF: it delivers exactly the frames of step 1, in order (an
 *     IPv4/IPv6 frame that fits a slot with its payload and address, a name or an oversized frame as
 *     an empty datagram), then -EPROTO at a malformed or truncated frame, or -ECONNRESET at a clean EOF. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "gx/base.h"
#include "gx/proxy.h"

#define MAXF 4096
static struct gx_batch batch;
static struct { uint32_t off, len; int ip; } ref[MAXF];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (gx_batch_init(&batch, 64, GX_SLOT_SIZE, GX_HEADROOM) != 0)
        abort();
    return 0;
}

static uint32_t got, want_n;
static int ended;

static void drain(struct gx_transport *tr, const uint8_t *stream) {
    for (int rounds = 0; rounds < 10000; rounds++) {
        gx_batch_reset(&batch);
        uint64_t bytes = 0;
        int n = tr->recv(tr->state, &batch, &bytes);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            ended = n;
            return;
        }
        FZ_CHECK(n > 0 && (uint32_t)n == batch.n, "recv: %d, n %u", n, batch.n);
        for (int i = 0; i < n; i++, got++) {
            FZ_CHECK(got < want_n, "frame %u delivered, only %u in the stream", got, want_n);
            const struct gx_pkt *p = &batch.pkt[i];
            if (ref[got].ip && ref[got].len <= gx_batch_room(&batch))
                FZ_CHECK(p->len == ref[got].len && memcmp(p->data, stream + ref[got].off, p->len) == 0 &&
                             batch.addrlen[i] > 0,
                         "frame %u: %u bytes, want %u", got, p->len, ref[got].len);
            else
                FZ_CHECK(p->len == 0, "frame %u (a name or too big) delivered with %u bytes", got, p->len);
        }
    }
    FZ_CHECK(0, "recv never ran dry");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz f = {data, size};
    size_t chunk = ((size_t)fz_u8(&f) + 1) * 4;
    const uint8_t *stream = f.p;
    size_t left = f.n, off = 0;
    int want_end = -ECONNRESET;
    want_n = 0;
    while (left > 0 && want_n < MAXF) {
        struct gx_socks_frame fr;
        int rc = gx_socks_udp_parse(stream + off, left, &fr);
        if (rc < 0) {
            FZ_CHECK(rc == -EPROTO, "parse: %d", rc);
            want_end = -EPROTO;
            break;
        }
        if (rc == 0 || (size_t)rc > left) {
            want_end = -EPROTO;   /* EOF inside a frame */
            break;
        }
        FZ_CHECK(fr.hdr_len >= 7 && fr.hdr_len + fr.len == (uint32_t)rc && fr.len >= 1 &&
                     fr.host >= stream + off && fr.host + fr.host_len <= stream + off + fr.hdr_len,
                 "frame at %zu: hdr %u len %u", off, fr.hdr_len, fr.len);
        for (size_t k = 4; k < fr.hdr_len; k++) {   /* fewer bytes: incomplete, or the same header */
            struct gx_socks_frame g;
            int r2 = gx_socks_udp_parse(stream + off, k, &g);
            FZ_CHECK(r2 == 0 || (r2 == rc && g.hdr_len == fr.hdr_len), "prefix of %zu bytes parses to %d", k, r2);
        }
        struct sockaddr_storage sa;
        socklen_t sl;
        int ip = gx_socks_frame_sockaddr(&fr, &sa, &sl) == 0;
        FZ_CHECK(ip == (fr.atyp != GX_SOCKS_ATYP_DOMAIN), "sockaddr for atyp %u", fr.atyp);
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (ip && !(fr.atyp == GX_SOCKS_ATYP_IPV6 && memcmp(fr.host, mapped, 12) == 0)) {
            uint8_t hdr[GX_SOCKS_UDP_HDR_MAX];
            int hl = gx_socks_udp_header(hdr, &sa, fr.len);
            FZ_CHECK(hl == (int)fr.hdr_len && memcmp(hdr, stream + off, 2) == 0 &&
                         memcmp(hdr + 3, stream + off + 3, fr.hdr_len - 3) == 0,
                     "header rebuilt from the frame's address differs");
        }
        ref[want_n].off = (uint32_t)(off + fr.hdr_len);
        ref[want_n].len = fr.len;
        ref[want_n].ip = ip;
        want_n++;
        off += (size_t)rc;
        left -= (size_t)rc;
    }
    if (want_n == MAXF)
        return 0;
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp) != 0)
        abort();
    struct gx_transport tr;
    FZ_CHECK(gx_transport_socks_udp(&tr, sp[0]) == 0, "transport");
    got = 0;
    ended = 0;
    for (size_t w = 0; w < f.n;) {
        size_t k = f.n - w < chunk ? f.n - w : chunk;
        ssize_t r = write(sp[1], stream + w, k);
        if (r > 0)
            w += (size_t)r;
        drain(&tr, stream);
        if (ended)
            break;
    }
    shutdown(sp[1], SHUT_WR);
    if (!ended)
        drain(&tr, stream);
    FZ_CHECK(ended == want_end, "the stream ended with %d, want %d", ended, want_end);
    FZ_CHECK(got == want_n, "%u frames delivered, want %u", got, want_n);
    if (tr.close)
        tr.close(tr.state);
    close(sp[0]);
    close(sp[1]);
    return 0;
}
