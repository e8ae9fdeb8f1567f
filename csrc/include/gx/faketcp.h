/* Fake TCP: gost's `tcp=true` tunnel transport (xtaci/tcpraw v1.2.25 on the wire).
 *
 * A real kernel TCP connection does the 3-way handshake, then is muted: its TTL (hop limit) is 1 and
 * a firewall rule (installed by the control plane, see gostx/tunnel/faketcp.py) drops every TTL-1
 * segment it sends, and everything it receives is discarded. Tunnel datagrams travel as hand-built
 * TCP segments on raw IPPROTO_TCP sockets: one datagram = the payload of one PSH|ACK segment, 20-byte
 * header, no options. A classic BPF filter on each raw socket lets through only the flow's segments.
 *
 * Sequence numbers, as tcpraw: for every segment received from a peer, ACK set => our seq = its ack;
 * SYN => our ack = its seq + 1; PSH and its seq == our ack => our ack = its seq + payload length.
 * Every segment sent carries seq = our seq, ack = our ack, and then seq += payload length. (gostx
 * addition: a flow whose handshake the raw socket missed takes its ack from the first segment.)
 *
 * Client (gx_faketcp_dial + gx_faketcp_dial_finish): one flow to the server. RST or FIN from the
 * server, an error or EOF on the kernel connection, or (idle_timeout_ms > 0) silence for that long
 * ends the transport: its recv returns -ECONNRESET / -ETIMEDOUT and the tunnel emits NET_CLOSED.
 * Server (gx_faketcp_listen): a listening kernel socket (dual-stack when asked) accepts clients; one
 * flow per client ip:port. Datagrams for a peer without an accepted connection are dropped; data
 * segments of a flow it does not know at all are answered with an RST (at most 50 a second). A flow
 * ends on RST/FIN, on EOF/error of its connection, or after flow_timeout_ms without a segment (its
 * connection is then closed with a normal TTL, so the client sees the FIN and redials).
 *
 * IPv4 and IPv6. IPv4 checksums are computed and verified here; IPv6 raw sockets get IPV6_CHECKSUM,
 * so the kernel computes and verifies them. Needs CAP_NET_RAW. All fds are non-blocking and
 * close-on-exec; the transport state is the gx_faketcp itself (it must outlive the tunnel that uses
 * it; gx_faketcp_close after gx_tunnel_free).
 */
#ifndef GX_FAKETCP_H
#define GX_FAKETCP_H

#include <linux/filter.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gx/tunnel.h"

#define GX_FAKETCP_HDR 20               /* the TCP header we send: no options */
#define GX_FAKETCP_BPF_MAX 16           /* instructions in a filter program */

#define GX_TCP_FIN 0x01u
#define GX_TCP_SYN 0x02u
#define GX_TCP_RST 0x04u
#define GX_TCP_PSH 0x08u
#define GX_TCP_ACK 0x10u

struct gx_faketcp;

struct gx_faketcp_stats {
    uint64_t rx_segments;     /* segments of our flows seen on the raw socket(s) */
    uint64_t rx_datagrams;    /* PSH segments delivered as datagrams */
    uint64_t rx_orphan;       /* PSH segments of a flow without an accepted connection (dropped) */
    uint64_t rx_bad;          /* malformed, truncated or bad checksum */
    uint64_t rx_resets;       /* RST or FIN received */
    uint64_t tx_segments;     /* segments handed to the kernel */
    uint64_t tx_no_flow;      /* datagrams for a peer without a usable flow (dropped) */
    uint64_t tx_resets;       /* server: RSTs sent for data of unknown flows */
    uint64_t tx_acks;         /* server: ACKs sent for segments whose data it already had */
    uint64_t accepted;        /* server: kernel connections accepted */
    uint64_t flows_closed;    /* flows that ended */
    uint64_t flows;           /* flows now */
};

/* Client, step 1: open the raw socket (filtered to local port <-> remote port), then start a
 * non-blocking connect of a kernel TCP socket to remote (AF_INET, or AF_INET6; a v4-mapped IPv6
 * address is used as IPv4). The caller waits until gx_faketcp_conn_fd is writable, then calls
 * gx_faketcp_dial_finish. idle_timeout_ms > 0: recv ends with -ETIMEDOUT after that long without
 * a segment from the server. Returns 0 or -errno (no fd stays open on failure). */
int gx_faketcp_dial(struct gx_faketcp **out, const struct sockaddr *remote, socklen_t remote_len,
                    uint32_t idle_timeout_ms);
/* Client, step 2: the connect result (0 or -errno, e.g. -ECONNREFUSED), then mute the connection
 * (TTL/hop limit 1) and read the handshake's sequence numbers from the raw socket. */
int gx_faketcp_dial_finish(struct gx_faketcp *f);
/* Server: listen on local (port 0 = any; AF_INET6 any + dual_stack = IPv4 clients too). flow_timeout_ms
 * 0 = 300000; max_flows 0 = 4096. Returns 0 or -errno (-EADDRINUSE, ...). */
int gx_faketcp_listen(struct gx_faketcp **out, const struct sockaddr *local, socklen_t local_len,
                      int dual_stack, uint32_t flow_timeout_ms, uint32_t max_flows);
/* The kernel TCP socket: the connecting/connected one (client) or the listening one (server). */
int gx_faketcp_conn_fd(const struct gx_faketcp *f);
/* That socket's local address. */
int gx_faketcp_local(const struct gx_faketcp *f, struct sockaddr_storage *out, socklen_t *len);
/* The tunnel transport over f (state = f; close = NULL: f stays the caller's). */
int gx_faketcp_transport(struct gx_faketcp *f, struct gx_transport *out);
void gx_faketcp_get_stats(struct gx_faketcp *f, struct gx_faketcp_stats *out);
/* Close everything: kernel connections get their normal TTL back first, so their FIN goes out. */
void gx_faketcp_close(struct gx_faketcp *f);

/* ---- pieces exported for tests ---- */

/* A parsed segment. */
struct gx_faketcp_seg {
    uint8_t src[16], dst[16];   /* IPv4: v4-mapped; IPv6 without an IP header: zeros */
    uint16_t sport, dport;      /* host order */
    uint32_t seq, ack;          /* host order */
    uint8_t flags;
    uint32_t hdr_len;           /* IP header (if any) + TCP header */
    uint32_t payload_len;
};

/* Parse a segment as a raw socket gives it: with an IPv4 header (ip_header = 1; IHL honoured, total
 * length trims trailing bytes, fragments refused) or from the TCP header (IPv6 raw sockets). Every
 * field is bounds-checked. Returns 0 or -EINVAL. */
int gx_faketcp_parse(const uint8_t *pkt, uint32_t len, int ip_header, struct gx_faketcp_seg *out);
/* Our 20-byte TCP header (no options; data segments are PSH|ACK) with its checksum over the pseudo-
 * header of src/dst (4 bytes each, or 16 with v6) and the payload; with src or dst NULL the checksum
 * field is left 0 (IPv6 raw sockets: the kernel fills it). */
void gx_faketcp_build(uint8_t hdr[GX_FAKETCP_HDR], uint16_t sport, uint16_t dport, uint32_t seq,
                      uint32_t ack, uint8_t flags, uint16_t window, const uint8_t *src, const uint8_t *dst,
                      int v6, const uint8_t *payload, uint32_t payload_len);
/* 1 when the TCP checksum of seg (a parsed IPv4 segment at pkt) is valid. */
int gx_faketcp_csum_ok(const uint8_t *pkt, const struct gx_faketcp_seg *seg);
/* 1 when the checksum field of seg (a parsed IPv4 segment at pkt) holds the partial checksum a local
 * kernel leaves for the device to complete (CHECKSUM_PARTIAL: the folded pseudo-header sum). A raw
 * socket sees segments of kernel TCP in that state when they crossed a virtual link (veth, lo, a
 * virtio device), with no flag telling so: the payload is then unchecked, as the kernel's own TCP
 * receive takes such a segment (the data is only ever used after the cipher authenticated it). */
int gx_faketcp_csum_partial(const uint8_t *pkt, const struct gx_faketcp_seg *seg);
/* The classic BPF program a raw socket gets: accept TCP segments with destination port dport and,
 * when sport != 0, source port sport; ip_header = 1 for IPv4 sockets (the filter skips IHL), 0 for
 * IPv6 (data starts at the TCP header). Returns the instruction count or -EINVAL. */
int gx_faketcp_bpf(struct sock_filter *prog, int cap, int ip_header, uint16_t sport, uint16_t dport);

#endif
