"""A tun server Tunnel with many learned peers, without root or real clients: for the metrics tests and
the scrape-time bench.

The device is one end of an AF_UNIX datagram socketpair (one packet per read/write, like a TUN fd) and
the clients are UDP sockets on loopback: each sends one IPv4 packet from its own inner address, so the
server's C peer table learns one entry per client (peer_routes lets several share one socket).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass, field

from gostx import _engine
from gostx.testing.packets import inet_checksum

NET = ipaddress.ip_network("10.64.0.0/16")
SERVER_IP = "10.64.0.1"


def ipv4_packet(src: str, dst: str, payload: bytes = b"x" * 32) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack("!H", inet_checksum(header)) + header[12:]
    return header + payload


@dataclass
class FakePeers:
    tunnel: _engine.Tunnel
    dev: tuple[socket.socket, socket.socket]
    server: socket.socket
    clients: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        self.tunnel.stop()
        for s in (*self.dev, self.server, *self.clients):
            s.close()


def fake_peers(n: int, per_socket: int = 64, timeout: float = 10.0) -> FakePeers:
    """A started server tunnel that has learned n peers (10.64.x.y) from n / per_socket UDP sockets."""
    dev = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    dev[0].setblocking(False)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    tunnel = _engine.Tunnel(tap=False, server=True, dev_fd=dev[0].fileno(), net_fd=server.fileno(), family=2,
                            ips=[f"{SERVER_IP}/16"], peer_routes=per_socket, max_peers=max(n, 16))
    tunnel.start()
    fp = FakePeers(tunnel, dev, server)
    hosts = NET.hosts()
    next(hosts)  # the server's own
    for i in range(n):
        if i % per_socket == 0:
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.bind(("127.0.0.1", 0))
            fp.clients.append(client)
        fp.clients[-1].sendto(ipv4_packet(str(next(hosts)), SERVER_IP, os.urandom(8) * (1 + i % 8)),
                              server.getsockname())
        if i % 64 == 63:
            time.sleep(0.002)  # let the down thread keep up (the socket buffer is the only queue)
    deadline = time.monotonic() + timeout
    while tunnel.stats()["peers"] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return fp
