"""gost handler `tcp`: TCP port forwarding, `gost -L tcp://:8080/192.168.1.1:80`."""

from gostx.handler.forward.handler import ForwardHandler
from gostx.registry import handlers


@handlers.register("tcp")
class TcpHandler(ForwardHandler):
    """Forward each accepted connection to a target (forward handler over the service's listener)."""
