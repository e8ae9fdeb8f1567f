"""gost handler `udp`: UDP port forwarding, `gost -L udp://:10053/192.168.1.1:53`."""

from gostx.handler.forward.handler import ForwardHandler
from gostx.registry import handlers


@handlers.register("udp")
class UdpHandler(ForwardHandler):
    """Forward each client session to a target (forward handler over the service's listener)."""
