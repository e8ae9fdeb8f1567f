"""The two halves of a chain node (go-gost/x layering): a Dialer carries the connection to the node
(the transport: tcp now; tls, ws, wss later) and a Connector speaks the node's proxy protocol over it
(socks5, http; relay later). Both register in gostx.registry (`dialers`, `connectors`) under gost's names.

    class Dialer(abc.ABC):
        def __init__(self, config: DialerConfig, node: NodeSpec) -> None
        async def dial(self, addr, opts) -> Stream           # first node only: connect the transport
        async def handshake(self, stream, addr) -> Stream    # every node: TLS / WebSocket upgrade, ...
    class Connector(abc.ABC):
        def __init__(self, config: ConnectorConfig, node: NodeSpec) -> None
        async def handshake(self, stream) -> Stream          # per connection, after the dialer (socks5 methods)
        async def connect(self, stream, network, address) -> Stream | PacketConn

For a route n0..nk the router does: n0.dial, n0.handshake (dialer), n0.handshake (connector); then for each
later node: prev.connect(stream, "tcp", node.addr), node's dialer handshake, node's connector handshake;
finally nk.connect(stream, network, target). `network` is "tcp" (a Stream comes back) or "udp" (a
PacketConn: datagrams to/from `address`; a connector that cannot carry UDP raises ConnectionError).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from gostx.config.metadata import Metadata
from gostx.config.model import AuthConfig, ConnectorConfig, DialerConfig, TLSConfig
from gostx.net.direct import DialOptions, dial
from gostx.net.packet import PacketConn
from gostx.net.stream import SocketStream, Stream


@dataclass
class NodeSpec:
    """What a dialer or connector may know about its node."""

    name: str
    addr: str
    metadata: Metadata = field(default_factory=Metadata)  # the node's own metadata


class Dialer:
    multiplex = False  # a multiplexing dialer (mws, h2, ...) starts a new sub-route (not supported yet)

    def __init__(self, config: DialerConfig, node: NodeSpec) -> None:
        self.config = config
        self.node = node
        self.metadata = Metadata(config.metadata)
        self.auth: AuthConfig | None = config.auth
        self.tls: TLSConfig | None = config.tls

    async def dial(self, addr: str, opts: DialOptions) -> Stream:
        """Connect the transport to addr (a plain TCP connection by default)."""
        from gostx.addr import split_host_port

        host, port = split_host_port(addr)
        return SocketStream(await dial("tcp", host, port, opts))

    async def handshake(self, stream: Stream, addr: str) -> Stream:
        """Transport handshake over an established stream (TLS, WebSocket upgrade, ...)."""
        return stream


class Connector(abc.ABC):
    def __init__(self, config: ConnectorConfig, node: NodeSpec) -> None:
        self.config = config
        self.node = node
        self.metadata = Metadata(config.metadata)
        self.auth: AuthConfig | None = config.auth if config.auth and config.auth.username else None

    async def handshake(self, stream: Stream) -> Stream:
        return stream

    @abc.abstractmethod
    async def connect(self, stream: Stream, network: str, address: str) -> Stream | PacketConn:
        """Ask the node to connect to address; "tcp" gives a Stream, "udp" a PacketConn."""
