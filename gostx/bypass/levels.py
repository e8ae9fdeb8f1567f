"""What a bypass match means at each level (go-gost/x chain/chain.go, hop/hop.go).

    service  service_rejects(bypass, addr)  True: refuse the request with the protocol's reply
             (relay status 0x03, socks5 reply 0x02, tungo TCP: close silently, socks5/relay UDP:
             drop the datagram). With sniffing, addr is the sniffed "host:80" / "host:443".
    hop      hop_cuts(bypass, addr)         True: the route ends before this hop; traffic leaves
             from the previous hop's node, or directly (through the service `interface`) when it is
             the first hop. Never a reject.
    node     node_excluded(bypass, addr)    True: drop the node from this hop's candidates; none
             left cuts the route as above.

Hop and node bypasses see the router's address: the resolved one with a service resolver/hosts,
else the target as asked ("hostname:port" with sniffing in tungo, "ip:port" without).
`route_candidates` applies the hop and node rules to a whole chain at once: the chain router picks
one node per hop among the candidates with its selector.

`bypass` is a Bypass, a BypassGroup or None (nothing attached: never bypasses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gostx.bypass.bypass import BypassLike


def _bypassed(bypass: BypassLike | None, addr: str) -> bool:
    return bypass is not None and bypass.contains(addr)


def service_rejects(bypass: BypassLike | None, addr: str) -> bool:
    """The service's bypass says reject this request."""
    return _bypassed(bypass, addr)


def hop_cuts(bypass: BypassLike | None, addr: str) -> bool:
    """The hop's bypass says end the route before this hop."""
    return _bypassed(bypass, addr)


def node_excluded(bypass: BypassLike | None, addr: str) -> bool:
    """The node's bypass says this node may not carry the request."""
    return _bypassed(bypass, addr)


@dataclass(frozen=True)
class HopRule:
    """A hop's bypass and its nodes' bypasses (one entry per node, None for none)."""

    bypass: BypassLike | None = None
    nodes: Sequence[BypassLike | None] = field(default_factory=lambda: [None])


def route_candidates(hops: Sequence[HopRule], addr: str) -> list[list[int]]:
    """For each hop the route keeps, the indices of the nodes that may carry `addr`. The route stops
    at the first hop whose bypass cuts or whose nodes are all excluded; [] means go direct."""
    route: list[list[int]] = []
    for hop in hops:
        if hop_cuts(hop.bypass, addr):
            break
        candidates = [i for i, node in enumerate(hop.nodes) if not node_excluded(node, addr)]
        if not candidates:
            break
        route.append(candidates)
    return route
