"""Bypass (gost X:bypass, X:internal/matcher): address patterns attached to services, hops and nodes.

    Bypass(name, patterns, whitelist).contains("host:port")   gost's Contains
    BypassGroup([...]).contains(addr)                          `bypass` + `bypasses` on one object
    build_bypasses(config) -> BypassRegistry (name -> Bypass; .for_service/.for_hop/.for_node)
    service_rejects / hop_cuts / node_excluded / route_candidates   what a match means per level
"""

from gostx.bypass.bypass import Bypass, BypassGroup, BypassLike, parse_pattern_lines
from gostx.bypass.levels import HopRule, hop_cuts, node_excluded, route_candidates, service_rejects
from gostx.bypass.loader import BypassRegistry, build_bypasses, check_references, load_bypass
from gostx.bypass.matchers import classify_pattern

__all__ = [
    "Bypass",
    "BypassGroup",
    "BypassLike",
    "BypassRegistry",
    "HopRule",
    "build_bypasses",
    "check_references",
    "classify_pattern",
    "hop_cuts",
    "load_bypass",
    "node_excluded",
    "parse_pattern_lines",
    "route_candidates",
    "service_rejects",
]
