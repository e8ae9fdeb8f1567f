"""gost dialer `tcp`: a plain TCP connection to the node (with the node's interface/so_mark)."""

from __future__ import annotations

from gostx.chain.plugin import Dialer
from gostx.registry import dialers


@dialers.register("tcp")
class TcpDialer(Dialer):
    """The base Dialer already dials plain TCP and has no handshake."""
