"""The tun/tap tunnel's control plane: options from gost metadata, the UDP socket, event logging."""
