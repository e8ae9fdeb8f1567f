"""Chains, hops and nodes: which proxies a connection goes through (go-gost/x chain/, hop/).

A Chain is a list of Hops; each Hop picks one of its Nodes per connection (selector.py). `Chain.route()`
walks the hops in order; a hop whose bypass matches the destination cuts the route there (the traffic
leaves from the previous hop's node, or goes direct when it is the first hop), and a node whose bypass
matches is not a candidate of its hop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gostx.chain.plugin import Connector, Dialer
from gostx.chain.selector import FailMarker, Selector
from gostx.config.metadata import Metadata
from gostx.net.direct import DialOptions


class Bypass(Protocol):
    """What the bypass module provides (gostx.bypass): does this address match?"""

    def contains(self, addr: str) -> bool: ...


@dataclass
class Node:
    name: str
    addr: str
    dialer: Dialer
    connector: Connector
    dial_options: DialOptions = field(default_factory=DialOptions)  # interface / so_mark to reach it
    bypass: Bypass | None = None
    metadata: Metadata = field(default_factory=Metadata)
    marker: FailMarker = field(default_factory=FailMarker)


@dataclass
class Hop:
    name: str
    nodes: list[Node]
    selector: Selector = field(default_factory=Selector)
    bypass: Bypass | None = None

    def select(self, address: str, key: str = "") -> Node | None:
        """The node for a connection to address; None cuts the route before this hop."""
        if self.bypass is not None and address and self.bypass.contains(address):
            return None
        candidates = [n for n in self.nodes if n.bypass is None or not address or not n.bypass.contains(address)]
        return self.selector.select(candidates, key)


@dataclass
class Chain:
    name: str
    hops: list[Hop]

    def route(self, address: str, key: str = "") -> list[Node]:
        """One node per hop, in order, until a hop cuts the route."""
        nodes: list[Node] = []
        for hop in self.hops:
            node = hop.select(address, key)
            if node is None:
                break
            nodes.append(node)
        return nodes
