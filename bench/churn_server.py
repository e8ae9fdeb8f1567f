"""The far end of the churn test: a TCP and UDP echo server on one port, single-threaded on epoll.

    python3 bench/churn_server.py ADDR[,ADDR...] PORT

TCP: every accepted connection gets back what it sends, and is closed when the client's side ends
(EOF or reset). UDP: every datagram is sent back to its sender, from the address it was sent to (one
socket bound per address). Prints "ready" once every socket listens. Standalone (no gostx import): it
runs inside a network namespace as a plain script.
"""

from __future__ import annotations

import errno
import resource
import select
import socket
import sys

BACKLOG = 4096
CHUNK = 65536


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def family_of(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve(addrs: list[str], port: int) -> None:
    raise_fd_limit()
    ep = select.epoll()
    listeners: dict[int, socket.socket] = {}
    udps: dict[int, socket.socket] = {}
    conns: dict[int, socket.socket] = {}
    for addr in addrs:
        lst = socket.socket(family_of(addr), socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((addr, port))
        lst.listen(BACKLOG)
        lst.setblocking(False)
        listeners[lst.fileno()] = lst
        ep.register(lst.fileno(), select.EPOLLIN)
        udp = socket.socket(family_of(addr), socket.SOCK_DGRAM)
        udp.bind((addr, port))
        udp.setblocking(False)
        udps[udp.fileno()] = udp
        ep.register(udp.fileno(), select.EPOLLIN)
    print("ready", flush=True)

    def close(fd: int) -> None:
        sock = conns.pop(fd, None)
        if sock is not None:
            ep.unregister(fd)
            sock.close()

    while True:
        for fd, _events in ep.poll(1.0, 512):
            if fd in listeners:
                lst = listeners[fd]
                for _ in range(256):
                    try:
                        sock, _peer = lst.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:  # EMFILE and the like: try again on the next wake-up
                        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                            break
                        continue
                    sock.setblocking(False)
                    conns[sock.fileno()] = sock
                    ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
            elif fd in udps:
                udp = udps[fd]
                for _ in range(256):
                    try:
                        data, peer = udp.recvfrom(CHUNK)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        continue
                    try:
                        udp.sendto(data, peer)
                    except OSError:
                        pass
            else:
                sock = conns.get(fd)
                if sock is None:
                    continue
                try:
                    data = sock.recv(CHUNK)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    close(fd)
                    continue
                if not data:
                    close(fd)
                    continue
                try:
                    sock.send(data)  # 64-byte echoes: the send buffer always has room
                except OSError:
                    close(fd)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: churn_server.py ADDR[,ADDR...] PORT", file=sys.stderr)
        return 2
    try:
        serve(argv[1].split(","), int(argv[2]))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
