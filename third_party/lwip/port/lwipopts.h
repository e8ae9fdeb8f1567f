/* lwIP options for gostx's tungo stack (tun2socks): NO_SYS, one netif over the TUN device, timers driven
 * by our data-plane thread (gx stack), IPv4 + IPv6, TCP, UDP, ICMP; no sockets, no netconn, no ARP.
 *
 * Tuned like the fast lwIP tun2socks engines (hev-socks5-tunnel, go-tun2socks): checksums of packets from
 * the TUN device are not checked (the kernel made them), TCP checksums are offloaded, windows of
 * several hundred KiB (window scaling), libc malloc for every pool so memory follows the flows that exist
 * (no fixed pools to size), Nagle off per connection (set by the glue).
 *
 * Per connection, buffering is bounded by lwIP itself: the receive window (TCP_WND) holds what the client
 * sent and the upstream has not yet taken (the glue calls tcp_recved only after writing it upstream), the
 * send buffer (TCP_SND_BUF) what the upstream sent and the client has not acknowledged.
 */
#ifndef GX_LWIPOPTS_H
#define GX_LWIPOPTS_H

/* ---- system: no OS layer; one thread (ours) calls lwIP, so no locking ---- */
#define NO_SYS                          1
#define LWIP_TIMERS                     0   /* the glue calls tcp_tmr()/ip_reass_tmr() itself */
#define SYS_LIGHTWEIGHT_PROT            0
#define LWIP_SOCKET                     0
#define LWIP_NETCONN                    0
#define LWIP_NETIF_API                  0
#define LWIP_CALLBACK_API               1
#define LWIP_SINGLE_NETIF               1   /* the TUN netif is the only one */
#define LWIP_HAVE_LOOPIF                0
#define LWIP_NETIF_LOOPBACK             0

/* ---- memory: libc malloc for the heap and for every pool ---- */
#define MEM_LIBC_MALLOC                 1
#define MEMP_MEM_MALLOC                 1
#define MEM_ALIGNMENT                   8
#define MEM_USE_POOLS                   0
#define PBUF_POOL_BUFSIZE               2048

/* ---- protocols ---- */
#define LWIP_IPV4                       1
#define LWIP_IPV6                       1
#define LWIP_ICMP                       1
#define LWIP_ICMP6                      1
#define LWIP_RAW                        0
#define LWIP_TCP                        1
#define LWIP_UDP                        1
#define LWIP_UDPLITE                    0
#define LWIP_ARP                        0
#define LWIP_ETHERNET                   0
#define LWIP_DHCP                       0
#define LWIP_AUTOIP                     0
#define LWIP_IGMP                       0
#define LWIP_DNS                        0
#define LWIP_IPV6_MLD                   0
#define LWIP_IPV6_AUTOCONFIG            0
#define LWIP_IPV6_DHCP6                 0
#define LWIP_IPV6_SEND_ROUTER_SOLICIT   0
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS   0
#define LWIP_ND6_QUEUEING               0
#define IP_FORWARD                      0
#define LWIP_IPV6_FORWARD               0
#define IP_REASSEMBLY                   1   /* fragmented UDP datagrams from the host */
#define IP_FRAG                         1   /* upstream replies larger than the TUN MTU */
#define LWIP_IPV6_REASS                 1
#define LWIP_IPV6_FRAG                  1
#define IPV6_FRAG_COPYHEADER            1   /* 64-bit pointers do not fit in the fragment header */
#define IP_REASS_MAX_PBUFS              128
#define IP_DEFAULT_TTL                  64
#define LWIP_BROADCAST_PING             0
#define LWIP_MULTICAST_PING             0

/* ---- checksums: trust the kernel's packets; TCP checksums are the netif's job (offloaded to the kernel
 * with a virtio_net_hdr, computed by the glue without one: csrc/stack/netif.c) ---- */
#define CHECKSUM_CHECK_IP               0
#define CHECKSUM_CHECK_TCP              0
#define CHECKSUM_CHECK_UDP              0
#define CHECKSUM_CHECK_ICMP             0
#define CHECKSUM_CHECK_ICMP6            0
#define CHECKSUM_GEN_TCP                0
#define LWIP_CHECKSUM_ON_COPY           0
#define LWIP_CHKSUM_ALGORITHM           3

/* ---- TCP ---- */
#define TCP_MSS                         8960            /* the largest; the effective MSS follows the TUN MTU */
#define LWIP_WND_SCALE                  1
#define TCP_RCV_SCALE                   3
#define TCP_WND                         (448 * 1024)     /* receive window per connection (< 64 KiB << 3) */
#define TCP_SND_BUF                     (512 * 1024)     /* send buffer per connection */
#define TCP_SND_QUEUELEN                4096             /* pbufs queued for sending per connection */
#define TCP_SNDLOWAT                    (16 * 1024)
#define TCP_SNDQUEUELOWAT               (TCP_SND_QUEUELEN / 2)
#define TCP_QUEUE_OOSEQ                 1
#define LWIP_TCP_SACK_OUT               1
#define LWIP_TCP_MAX_SACK_NUM           4
#define TCP_OOSEQ_MAX_BYTES             TCP_WND
#define TCP_OOSEQ_MAX_PBUFS             2048
#define LWIP_TCP_TIMESTAMPS             0
#define TCP_LISTEN_BACKLOG              0
#define LWIP_TCP_KEEPALIVE              1
#define TCP_KEEPIDLE_DEFAULT            60000           /* gost's gVisor stack: idle 60 s, interval 30 s, 9 probes */
#define TCP_KEEPINTVL_DEFAULT           30000
#define TCP_KEEPCNT_DEFAULT             9
#define TCP_CALCULATE_EFF_SEND_MSS      1
#define TCP_OVERSIZE                    TCP_MSS
#define LWIP_TCP_PCB_NUM_EXT_ARGS       0
#define MEMP_NUM_TCP_PCB                65535           /* bounded by the glue's max_flows, not by pools */
#define MEMP_NUM_TCP_PCB_LISTEN         2
#define MEMP_NUM_TCP_SEG                65535
#define MEMP_NUM_UDP_PCB                4
#define MEMP_NUM_PBUF                   65535
#define MEMP_NUM_REASSDATA              64
#define MEMP_NUM_FRAG_PBUF              256

/* ---- netif ---- */
#define LWIP_NETIF_STATUS_CALLBACK      0
#define LWIP_NETIF_LINK_CALLBACK        0
#define LWIP_NETIF_HOSTNAME             0
#define LWIP_NETIF_TX_SINGLE_PBUF       0
#define LWIP_NUM_NETIF_CLIENT_DATA      0
#define LWIP_IPV6_NUM_ADDRESSES         3

/* ---- statistics: only the heap's (bytes held, high-water mark, failed allocations: gostx_tungo_lwip_*
 * metrics), counted by the stack thread; the per-packet protocol counters stay off ---- */
#define LWIP_STATS                      1
#define LWIP_STATS_DISPLAY              0
#define MEM_STATS                       1
#define MEMP_STATS                      0
#define SYS_STATS                       0
#define LINK_STATS                      0
#define ETHARP_STATS                    0
#define IP_STATS                        0
#define IPFRAG_STATS                    0
#define ICMP_STATS                      0
#define IGMP_STATS                      0
#define UDP_STATS                       0
#define TCP_STATS                       0
#define IP6_STATS                       0
#define ICMP6_STATS                     0
#define IP6_FRAG_STATS                  0
#define MLD6_STATS                      0
#define ND6_STATS                       0
#define MIB2_STATS                      0
#define PPP_SUPPORT                     0

#endif
