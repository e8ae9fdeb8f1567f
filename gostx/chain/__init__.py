"""Proxy chains: the router, chains of hops of nodes, and the dialer/connector plugin interface.

Layering (go-gost/x): listener -> handler -> Router -> Chain of Hops, each Hop one Node per connection,
each Node = Dialer (transport: tcp; tls/ws/wss later) + Connector (protocol: socks5, http; relay later).

Using the router (handlers, tungo)
----------------------------------
    from gostx.chain import build_router
    router = build_router(ctx.chain, ctx.config, ctx.metadata, retries=handler_config.retries)

    stream = await router.dial("tcp", "example.com:443")
        # gostx.net.stream.Stream: read(n) / readexactly(n) / write(data) / write_eof() / close();
        # stream.sock is the kernel socket when the bytes on it are exactly the stream's (plain TCP all
        # the way), so C code can splice it; gostx.net.stream.CBridge(stream).sock always gives a
        # socket for C (a socketpair pumped by Python when the stream is TLS/WebSocket).
        # gostx.net.stream.pipe(a, b) relays two streams (splice(2) when both are plain sockets).
    conn = await router.dial("udp", "1.1.1.1:53")
        # gostx.net.packet.PacketConn: recvfrom() -> (data, "host:port"); sendto(data, addr="") ; close().
        # Through a socks5 node it is gostx.protocol.socks5.UdpTunConn (GOST 0xF3 frames on a stream:
        # .stream/.host/.port let the C tunnel engine take the stream over); direct, a UDP socket.
    conn = await router.dial("udp", "")      # unconnected: any destination per sendto

Failures raise ConnectionError with a one-line message. `router.route(addr)` shows the nodes a dial to
addr would take (empty = direct).

Bypass: hops and nodes take a Bypass (any object with `contains(addr: str) -> bool`); build_router /
build_chain resolve bypass names through a `bypass_of(name)` function, by default the config's
`bypasses:` (gostx.bypass). A hop bypass match cuts the route before that hop (direct when it is the
first), a node bypass match drops the node from its hop's candidates. `service_bypass(config, name)` is
the service-level bypass handlers use to refuse requests.

Writing a dialer or connector: see gostx.chain.plugin; register it in gostx.registry (`dialers`,
`connectors`) and list its module in gostx.plugins.BUILTIN_PLUGINS.
"""

from gostx.chain.builder import build_chain, build_node, build_router, service_bypass
from gostx.chain.plugin import Connector, Dialer, NodeSpec
from gostx.chain.route import Bypass, Chain, Hop, Node
from gostx.chain.router import Router
from gostx.chain.selector import FailMarker, Selector

__all__ = ["Bypass", "Chain", "Connector", "Dialer", "FailMarker", "Hop", "Node", "NodeSpec", "Router",
           "Selector", "build_chain", "build_node", "build_router", "service_bypass"]
