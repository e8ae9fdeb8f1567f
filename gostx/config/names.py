"""The plugin names gost 3.2.6 registers (go-gost/x v0.8.x `registry.*Registry().Register(...)` calls
in each plugin's `init`, as linked by gost's `cmd/gost`).

The command-line compiler uses these lists, not gostx's own registry, so `-L foo+bar://` becomes the
same config in gostx as in gost whatever gostx implements: an unregistered handler falls back to
`auto`, listener to `tcp`, connector to `http`, dialer to `tcp` (`udp` for `ssu`).
"""

from __future__ import annotations

HANDLERS: frozenset[str] = frozenset({
    "auto", "dns", "file", "forward", "http", "http2", "http3", "red", "redir", "redirect", "redu",
    "relay", "router", "rtcp", "rudp", "serial", "sni", "socks", "socks4", "socks4a", "socks5", "ss",
    "sshd", "ssu", "tap", "tcp", "tun", "tungo", "tunnel", "udp", "unix",
})

LISTENERS: frozenset[str] = frozenset({
    "dns", "dtls", "ftcp", "grpc", "h2", "h2c", "h3", "http2", "http3", "icmp", "icmp6", "kcp", "mtcp",
    "mtls", "mws", "mwss", "ohttp", "otls", "pht", "phts", "quic", "red", "redir", "redirect", "redu",
    "rtcp", "rudp", "serial", "ssh", "sshd", "tap", "tcp", "tls", "tun", "tungo", "udp", "unix", "ws",
    "wss", "wt",
})

CONNECTORS: frozenset[str] = frozenset({
    "direct", "forward", "http", "http2", "relay", "router", "serial", "sni", "socks", "socks4",
    "socks4a", "socks5", "ss", "sshd", "ssu", "tcp", "tunnel", "unix", "virtual",
})

DIALERS: frozenset[str] = frozenset({
    "direct", "dtls", "ftcp", "grpc", "h2", "h2c", "h3", "http2", "http3", "icmp", "icmp6", "kcp",
    "mtcp", "mtls", "mws", "mwss", "ohttp", "otls", "pht", "phts", "quic", "serial", "ssh", "sshd",
    "tcp", "tls", "udp", "unix", "virtual", "ws", "wss", "wt",
})

# Listeners whose handler becomes the listener's own name when the URL has forward targets
# (`-L tcp://:8080/host:80`); any other non-relay handler becomes `forward`.
FORWARD_LISTENERS: frozenset[str] = frozenset({
    "tcp", "udp", "rtcp", "rudp", "tun", "tap", "dns", "unix", "serial",
})

# Listeners that take the chain themselves (`listener.chain`) instead of the handler.
CHAINED_LISTENERS: frozenset[str] = frozenset({"rtcp", "rudp"})

# Listeners/dialers whose user:pass authenticates the transport rather than the handler/connector.
SSH_TRANSPORTS: frozenset[str] = frozenset({"ssh", "sshd"})
