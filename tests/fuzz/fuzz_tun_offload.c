/* The virtio_net_hdr path of TUN/TAP reads (csrc/tun/tun_offload.c, csrc/tun/tun_linux.c): what the kernel hands
 * a tun fd with IFF_VNET_HDR, i.e. a 10-byte header (GSO type and size, checksum offsets) then a packet,
 * possibly a 64 KiB TSO/USO super-packet to split.
 *
 * Input: byte 0: bits 0-1 the read mode (GX_TUN_VNET_NONE/CSUM/GSO/GSO_ETH); then records (fuzz.h), each
 * [10-byte virtio_net_hdr][IP packet or Ethernet frame].
 *  1. Each record straight into gx_tun_gso_split_at (l3off from gx_eth_l3_offset in GSO_ETH mode, else
 *     0): every segment it makes fits its slot, has a valid IPv4 header checksum, IP length fields that
 *     match, and a valid TCP/UDP checksum (tests/c/pktref.h's byte-pair reference sum).
 *  2. gx_tun_csum_complete on the record with the header's offsets.
 *  3. All records written to a SOCK_SEQPACKET socketpair and read back with gx_tun_read_batch in that
 *     mode (the real read path: header decode, checksum completion, splitting into the batch). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../c/pktref.h"
#include "fuzz.h"
#include "gx/tun.h"

static struct gx_batch batch;
static int sp[2];
static uint8_t frame[GX_TUN_GSO_MAX + 64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (gx_batch_init(&batch, GX_BATCH_MAX, GX_SLOT_SIZE, GX_HEADROOM) != 0)
        abort();
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sp) != 0)
        abort();
    int big = 4 << 20;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    return 0;
}

static void check_segments(uint32_t first, uint32_t l3off, const struct gx_vnet_hdr *h) {
    for (uint32_t i = first; i < batch.n; i++) {
        const struct gx_pkt *p = &batch.pkt[i];
        FZ_CHECK(p->len <= gx_batch_room(&batch), "segment %u: %u bytes, more than its slot", i, p->len);
        FZ_CHECK(p->len > l3off, "segment %u: %u bytes", i, p->len);
        const uint8_t *ip = p->data + l3off;
        uint32_t len = p->len - l3off;
        int v6 = ip[0] >> 4 == 6;
        uint32_t l4off = h->csum_start - l3off;
        FZ_CHECK(l4off < len, "segment %u: L4 offset %u past %u", i, l4off, len);
        uint8_t proto;
        if (v6) {
            FZ_CHECK(len >= 40 && get16(ip + 4) == len - 40, "segment %u: IPv6 payload length", i);
            proto = (h->gso_type & ~GX_VNET_GSO_ECN) == GX_VNET_GSO_UDP_L4 ? 17 : 6;
        } else {
            FZ_CHECK(ip[0] >> 4 == 4 && len >= 20 && get16(ip + 2) == len, "segment %u: IPv4 total length", i);
            FZ_CHECK(ip4_valid(ip), "segment %u: IPv4 header checksum", i);
            proto = ip[9];
        }
        FZ_CHECK(l4_valid(ip, len, v6, proto, l4off), "segment %u (gso_type %u, proto %u): L4 checksum", i,
                 h->gso_type, proto);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz f = {data, size};
    int mode = fz_u8(&f) & 3;
    size_t len;
    const uint8_t *rec;
    struct fz all = f;
    while ((rec = fz_record(&f, &len)) != NULL) {
        if (len < GX_VNET_HDR_LEN)
            continue;
        struct gx_vnet_hdr h;
        gx_vnet_hdr_decode(rec, &h);
        uint8_t raw[GX_VNET_HDR_LEN];
        gx_vnet_hdr_encode(&h, raw);
        FZ_CHECK(memcmp(raw, rec, GX_VNET_HDR_LEN) == 0, "vnet header encode(decode) differs");
        const uint8_t *pkt = rec + GX_VNET_HDR_LEN;
        uint32_t plen = (uint32_t)(len - GX_VNET_HDR_LEN);
        memcpy(frame, pkt, plen);    /* its own buffer, so ASan sees reads past the packet */
        int l3off = mode == GX_TUN_VNET_GSO_ETH ? gx_eth_l3_offset(frame, plen) : 0;
        if (l3off >= 0) {
            gx_batch_reset(&batch);
            int rc = gx_tun_gso_split_at(frame, plen, &h, (uint32_t)l3off, &batch);
            FZ_CHECK(rc < 0 || (uint32_t)rc == batch.n, "split: %d segments, batch has %u", rc, batch.n);
            if (rc > 0)
                check_segments(0, (uint32_t)l3off, &h);
        }
        uint8_t *copy = malloc(plen ? plen : 1);
        memcpy(copy, pkt, plen);
        int rc = gx_tun_csum_complete(copy, plen, h.csum_start, h.csum_offset);
        FZ_CHECK(rc == 0 || rc == -EINVAL, "csum_complete: %d", rc);
        if (rc == 0)
            FZ_CHECK((uint32_t)h.csum_start + h.csum_offset + 2 <= plen, "completed a field past the packet");
        free(copy);
    }
    /* the read path: the same records as datagrams on a SEQPACKET socket */
    int sent = 0;
    while ((rec = fz_record(&all, &len)) != NULL && sent < 256) {
        if (mode == GX_TUN_VNET_NONE && len == 0)
            continue;     /* a 0-byte read is EOF on a tun fd too */
        if (send(sp[0], rec, len, MSG_DONTWAIT) == (ssize_t)len)
            sent++;
    }
    for (int rounds = 0; rounds < 300; rounds++) {
        gx_batch_reset(&batch);
        int rc = gx_tun_read_batch(sp[1], mode, &batch);
        if (rc == -EAGAIN)
            break;
        FZ_CHECK(rc > 0 && (uint32_t)rc == batch.n && batch.n <= batch.cap, "read_batch: %d (n %u)", rc, batch.n);
        for (uint32_t i = 0; i < batch.n; i++)
            FZ_CHECK(batch.pkt[i].len <= gx_batch_room(&batch) &&
                         batch.pkt[i].data == gx_batch_slot(&batch, i) + batch.headroom,
                     "read packet %u: len %u outside its slot", i, batch.pkt[i].len);
    }
    char junk[16];
    while (recv(sp[1], junk, sizeof(junk), MSG_DONTWAIT | MSG_TRUNC) >= 0) {
    }
    return 0;
}
