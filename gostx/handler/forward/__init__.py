"""gost handler `forward`: port forwarding to the service's forwarder targets (see handler.py)."""

from gostx.handler.forward.handler import ForwardHandler
from gostx.registry import handlers

handlers.register("forward")(ForwardHandler)

__all__ = ["ForwardHandler"]
