/* SOCKS5 UDP ASSOCIATE datagram headers (RFC 1928 section 7, csrc/proxy/socks_assoc.c gx_socks_assoc_parse).
 *
 * Input: one datagram as a client would send it to the association's relay socket.
 *  - A parse that succeeds lies inside the bytes: header + payload == the datagram, the address inside
 *    the header; every shorter prefix than the header fails.
 *  - An IPv4/IPv6 header rebuilt with gx_socks_assoc_header from its address equals the original (a
 *    v4-mapped IPv6 address is written as IPv4 by design, so not compared). */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "fuzz.h"
#include "gx/proxy.h"

static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct gx_socks_frame f;
    int rc = gx_socks_assoc_parse(data, size, &f);
    if (rc != 0) {
        FZ_CHECK(rc == -EPROTO || rc == -EMSGSIZE, "parse: %d", rc);
        return 0;
    }
    FZ_CHECK(f.hdr_len >= 8 && (size_t)f.hdr_len + f.len == size, "header %u + payload %u != %zu", f.hdr_len,
             f.len, size);
    FZ_CHECK(f.host >= data + 4 && f.host + f.host_len + 2 == data + f.hdr_len, "address outside the header");
    for (size_t n = 0; n < f.hdr_len; n++) {
        struct gx_socks_frame g;
        FZ_CHECK(gx_socks_assoc_parse(data, n, &g) != 0, "a %zu-byte prefix parsed", n);
    }
    if (f.atyp == GX_SOCKS_ATYP_DOMAIN || (f.atyp == GX_SOCKS_ATYP_IPV6 && memcmp(f.host, mapped, 12) == 0))
        return 0;
    struct sockaddr_storage a;
    socklen_t alen;
    FZ_CHECK(gx_socks_frame_sockaddr(&f, &a, &alen) == 0, "an IP header without its address");
    uint8_t hdr[GX_SOCKS_UDP_HDR_MAX];
    int h = gx_socks_assoc_header(hdr, &a);
    FZ_CHECK(h == (int)f.hdr_len && memcmp(hdr, data, (size_t)h) == 0, "header rebuilt differently (%d)", h);
    return 0;
}
