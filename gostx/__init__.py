"""gostx: GOST's tunnel features (tun, tap, tungo, proxy chains) with the packet hot path in C."""

__version__ = "0.1.0"
GOST_COMPAT_VERSION = "3.2.6"
