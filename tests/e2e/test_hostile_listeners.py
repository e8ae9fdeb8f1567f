"""Hostile input on every listener type: real gost processes in two namespaces (client side a =
10.200.1.1, server side b = 10.200.1.2) fed seeded junk, every-prefix truncations, oversized fields,
valid-prefix-then-junk, byte mutations, slowloris connections and RST closes.

Each case: start the server, prove one valid request works, take a baseline of the gost process
(threads, fds, RSS), attack, then check everything at once and report each failed check on one line:
the process still serves a valid request; threads and fds come back near the baseline; RSS grew by at
most 30 MiB; it burns no CPU when idle; it logged no internal error (an exception escaping a handler);
handshakes that stall are closed by the server (readTimeout / handshakeTimeout of 2 s); SIGTERM ends it
within 2 s.

Registered plugins (gostx/plugins.py) and where they are covered here:
  handlers  socks5 (without user/pass; `socks://` with user/pass), http, auto, relay (and its
            forward mode), forward/tcp (tcp://), udp (udp://), tun (with and without cipher, fake TCP), tap
            (with cipher), tungo
  listeners tcp, udp, tls (socks5+tls), ws (relay+ws), wss (relay+wss), tun (udp and fake TCP), tap, tungo
There is no ss handler or listener in gostx.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hostile_helpers import (
    BAD_NAMES,
    S5_GREETING,
    Chan,
    Client,
    Slowloris,
    Transport,
    close,
    fd_kinds,
    feed,
    feed_udp,
    idle_cpu,
    junk,
    mutations,
    prefix_then_junk,
    prefixes,
    relay_addr_feature,
    relay_read_response,
    relay_request,
    s5_addr,
    s5_handshake,
    s5_request,
    s5_udp_frame,
    settle,
    snapshot,
    ss_key,
    ss_seal,
    tcp_segment,
    udp_datagram,
    ws_frame,
    ws_header,
    ws_mask,
)

from gostx.testing.gost import GostProcess, start_gost, wait_ping
from gostx.testing.netns import Namespace, Pair, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

ECHO_PORT = 9000
PROXY_PORT = 1080
TUN_PORT = 8421
SEED = 20261207
SERVER_TUN, CLIENT_TUN = "192.168.123.1", "192.168.123.2"
TUNGO_NET = "192.168.124.1/24"
BEHIND = "10.201.0.1"  # on b's loopback: a reaches it only through tungo
CIPHER = "aes-128-gcm:s3cret@"
TIMEOUTS = "readTimeout=2s&handshakeTimeout=2s"
STALL_DEADLINE = 2.0 + 3.0  # the configured 2 s plus slack for a loaded machine

RSS_BOUND_KIB = 30 * 1024
# asyncio's default executor (getaddrinfo of the junk names) keeps up to min(32, cpus + 4) idle threads
THREAD_SLACK = min(32, (os.cpu_count() or 1) + 4) + 2
FD_SLACK = 6
IDLE_CPU_MAX = 0.15  # CPU seconds per idle second

ECHO = textwrap.dedent("""
    import socket, sys, threading
    port = int(sys.argv[1])
    def serve(c):
        with c:
            try:
                while data := c.recv(65536):
                    c.sendall(data)
            except OSError:
                pass
    def tcp():
        srv = socket.create_server(("0.0.0.0", port), backlog=512)
        while True:
            c, _ = srv.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=tcp, daemon=True).start()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = u.recvfrom(65535)
        try:
            u.sendto(data, peer)
        except OSError:
            pass
""")


@dataclass
class Env:
    pair: Pair
    client: Client  # sockets in namespace a
    server_ip: str  # b
    gost: GostProcess | None = None
    helpers: list[GostProcess] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    id: str
    args: Callable[[Env], list[str]]
    ready: Callable[[GostProcess], bool]
    probe: Callable[[Env], None]
    attack: Callable[[Env, random.Random], None]
    stall_closes: bool = False  # a stalled handshake must be closed by the server within STALL_DEADLINE
    slowloris: Callable[[Env], tuple[int, bytes]] | None = None  # (port, the bytes to dribble)
    setup: Callable[[Env], None] | None = None  # after the server is up (a tunnel client, routes)
    in_a: bool = False  # the server runs in a (tungo), not b
    needs: tuple[str, ...] = ()  # commands the case runs (ping for the tunnel probes, nft for fake TCP)


def listening(port: int) -> Callable[[GostProcess], bool]:
    return lambda g: any("listening on" in str(r.get("msg", "")) and str(r.get("msg", "")).endswith(f":{port}")
                         for r in g.log_records())


# -- probes (a valid request through the server) -----------------------------------------------------


def echo_check(chan: Chan, payload: bytes = b"hostile-probe-1234") -> None:
    chan.send(payload)
    got = chan.recv_exact(len(payload))
    assert got == payload, f"echo mismatch {got!r}"


def plain() -> Transport:
    return Transport()


def socks5_connect_probe(transport: Transport) -> Callable[[Env], None]:
    def probe(env: Env) -> None:
        chan = transport.open(env.client, env.server_ip, PROXY_PORT, timeout=5)
        try:
            rep, _ = s5_handshake(chan, 1, env.server_ip, ECHO_PORT)
            assert rep == 0, f"CONNECT refused: REP {rep}"
            echo_check(chan)
        finally:
            chan.close()
    return probe


AUTH_GREETING = b"\x05\x01\x02"
AUTH = b"\x01\x05alice\x06s3cret"


def socks5_auth_probe(env: Env) -> None:
    chan = plain().open(env.client, env.server_ip, PROXY_PORT, timeout=5)
    try:
        chan.send(AUTH_GREETING)
        assert chan.recv_exact(2) == b"\x05\x02"
        chan.send(AUTH)
        assert chan.recv_exact(2) == b"\x01\x00", "authentication refused"
        chan.send(s5_request(1, env.server_ip, ECHO_PORT))
        head = chan.recv_exact(10)
        assert head[1] == 0, f"CONNECT refused: REP {head[1]}"
        echo_check(chan)
    finally:
        chan.close()


def socks5_auth_attack(env: Env, rng: random.Random) -> None:
    request = s5_request(1, env.server_ip, ECHO_PORT)
    extra = [
        AUTH_GREETING + b"\x01\xffalice",                          # ULEN 255, then EOF
        AUTH_GREETING + b"\x01\xff" + b"u" * 255 + b"\xff" + b"p" * 255 + request,  # the longest
        AUTH_GREETING + b"\x01\x00\x00" + request,                 # empty user and password
        AUTH_GREETING + b"\x02\x05alice\x06s3cret" + request,      # subnegotiation version 2
        AUTH_GREETING + b"\x01\x05alice\x06wrong!" + request,      # wrong password
        AUTH_GREETING + b"\x01\x05al\x00ce\x06s3cret" + request,  # NUL in the user name
        AUTH_GREETING + b"\x01\x05\xff\xfe\xfd\xfc\xfb\x06s3cret" + request,
        S5_GREETING + request,                                       # no auth offered
        b"\x05\x02\x00\x02" + AUTH + request,
    ]
    stream_attack(env, rng, plain(), [AUTH_GREETING + AUTH + request + b"hello"], extra)


def relay_forward_probe(env: Env) -> None:
    chan = plain().open(env.client, env.server_ip, PROXY_PORT, timeout=5)
    try:
        chan.send(relay_request("192.0.2.1", 80) + b"forwarded")  # the address is ignored in forward mode
        assert relay_read_response(chan) == 0
        assert chan.recv_exact(9) == b"forwarded"
    finally:
        chan.close()


def socks5_udptun_probe(env: Env) -> None:
    chan = plain().open(env.client, env.server_ip, PROXY_PORT, timeout=5)
    try:
        rep, _ = s5_handshake(chan, 0xF3, "0.0.0.0", 0)
        assert rep == 0, f"0xF3 refused: REP {rep}"
        chan.send(s5_udp_frame(b"udp-over-tcp", env.server_ip, ECHO_PORT))
        size, _frag = struct.unpack(">HB", chan.recv_exact(3))
        chan.recv_exact(7)  # ATYP IPv4 ADDR PORT
        assert chan.recv_exact(size) == b"udp-over-tcp"
    finally:
        chan.close()


def associate(env: Env) -> tuple[Chan, tuple[str, int]]:
    chan = plain().open(env.client, env.server_ip, PROXY_PORT, timeout=5)
    rep, bound = s5_handshake(chan, 3, "0.0.0.0", 0)
    assert rep == 0 and bound[0] == 1, f"UDP ASSOCIATE refused: REP {rep}"
    host = socket.inet_ntoa(bound[1:5])
    port = struct.unpack(">H", bound[5:7])[0]
    return chan, (env.server_ip if host == "0.0.0.0" else host, port)


def socks5_associate_probe(env: Env) -> None:
    chan, relay = associate(env)
    try:
        data = udp_ask(env, b"\0\0\0" + s5_addr(env.server_ip, ECHO_PORT) + b"associate", relay)
        assert data.endswith(b"associate") and data[:3] == b"\0\0\0", data[:40]
    finally:
        chan.close()


def udp_ask(env: Env, payload: bytes, target: tuple[str, int], tries: int = 3, timeout: float = 2.0) -> bytes:
    """Send a datagram and return the first answer; UDP may lose one, so up to `tries` sends."""
    udp = env.client.udp()
    try:
        udp.settimeout(timeout)
        for attempt in range(tries):
            udp.sendto(payload, target)
            try:
                return udp.recv(65535)
            except TimeoutError:
                if attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")
    finally:
        udp.close()


def http_probe(transport: Transport) -> Callable[[Env], None]:
    def probe(env: Env) -> None:
        target = f"{env.server_ip}:{ECHO_PORT}"
        chan = transport.open(env.client, env.server_ip, PROXY_PORT, timeout=5)
        try:
            chan.send(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            head = chan.recv_until(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:60]
            echo_check(chan)
        finally:
            chan.close()
        # plain GET: the echo server sends the forwarded request back, in origin form
        chan = transport.open(env.client, env.server_ip, PROXY_PORT, timeout=5)
        try:
            chan.send(f"GET http://{target}/probe HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            back = chan.recv_until(b"\r\n\r\n")
            assert back.startswith(b"GET /probe HTTP/1.1"), back[:60]
        finally:
            chan.close()
    return probe


def relay_probe(transport: Transport) -> Callable[[Env], None]:
    def probe(env: Env) -> None:
        chan = transport.open(env.client, env.server_ip, PROXY_PORT, timeout=5)
        try:
            chan.send(relay_request(env.server_ip, ECHO_PORT) + b"relay-tcp")
            assert relay_read_response(chan) == 0
            assert chan.recv_exact(9) == b"relay-tcp"
        finally:
            chan.close()
        chan = transport.open(env.client, env.server_ip, PROXY_PORT, timeout=5)
        try:
            chan.send(relay_request(env.server_ip, ECHO_PORT, 0x81) + struct.pack(">H", 9) + b"relay-udp")
            assert relay_read_response(chan) == 0
            size = struct.unpack(">H", chan.recv_exact(2))[0]
            assert chan.recv_exact(size) == b"relay-udp"
        finally:
            chan.close()
    return probe


def auto_probe(env: Env) -> None:
    socks5_connect_probe(plain())(env)
    http_probe(plain())(env)


def tcp_forward_probe(env: Env) -> None:
    chan = plain().open(env.client, env.server_ip, PROXY_PORT, timeout=5)
    try:
        echo_check(chan)
    finally:
        chan.close()


def udp_forward_probe(env: Env) -> None:
    assert udp_ask(env, b"udp-forward", (env.server_ip, PROXY_PORT)) == b"udp-forward"


def tun_probe(env: Env) -> None:
    assert wait_ping(env.pair.a, SERVER_TUN, timeout=10), "no ping through the tunnel"


def tungo_probe(env: Env) -> None:
    chan = plain().open(env.client, BEHIND, ECHO_PORT, timeout=5)
    try:
        echo_check(chan)
    finally:
        chan.close()


# -- attacks ------------------------------------------------------------------------------------------


def stream_attack(env: Env, rng: random.Random, transport: Transport, valid: list[bytes], extra: list[bytes],
                  raw_extra: list[bytes] = (), port: int = PROXY_PORT) -> None:  # type: ignore[assignment]
    """Junk on the raw TCP connection; the transport's first bytes truncated and mutated; through the
    transport: junk, every prefix of each valid request, prefix-then-junk, mutations, the oversized
    `extra`; `raw_extra` goes on the raw connection after the transport handshake (WebSocket frames)."""
    def raw() -> Chan:
        return Chan(env.client.tcp(env.server_ip, port))

    def layered() -> Chan:
        return transport.open(env.client, env.server_ip, port)

    feed(raw, junk(rng))
    first = transport.first_bytes(env.server_ip)
    if first:
        feed(raw, prefixes(first, 48) + prefix_then_junk(rng, first, 16) + mutations(rng, first, 24))
    payloads = junk(rng, (1, 5, 64, 4096, 70000))
    for request in valid:
        payloads += prefixes(request, 64) + prefix_then_junk(rng, request) + mutations(rng, request)
    feed(layered, payloads)
    feed(layered, extra, wait_reply=0.5)  # the server answers or closes before the client goes away
    if raw_extra:
        def send_raw(payload: bytes) -> None:
            try:
                chan = layered()
            except (OSError, ConnectionError):
                return  # the server is busy or refuses: the probe afterwards tells whether it recovered
            try:
                chan.send_raw(payload)
                chan.sock.settimeout(1.0 if len(payload) > 1 << 20 else 0.3)  # big ones: let it work on them
                try:
                    chan.sock.recv(1)
                except OSError:
                    pass
            except OSError:
                pass
            finally:
                chan.close(rst=len(payload) % 2 == 1)
        for payload in raw_extra:
            send_raw(payload)


def socks5_valid(env: Env) -> list[bytes]:
    return [S5_GREETING + s5_request(1, env.server_ip, ECHO_PORT) + b"hello"]


def socks5_extra(env: Env) -> list[bytes]:
    ip = env.server_ip
    out = [
        b"\x05\xff" + bytes(range(255)),               # 255 methods
        b"\x05\x00",                                   # no methods
        b"\x05\x01\x02\x01\x05user\x05pass",           # user/pass the server did not offer
        b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00",       # SOCKS4
        S5_GREETING + bytes([5, 0x02, 0]) + s5_addr(ip, 80),   # BIND (not enabled)
        S5_GREETING + bytes([5, 0xF2, 0]) + s5_addr(ip, 80),   # mux BIND
        S5_GREETING + bytes([5, 0x7F, 0]) + s5_addr(ip, 80),   # unknown command
        S5_GREETING + b"\x05\x01\x00\x09" + b"\0" * 20,         # unknown ATYP
        S5_GREETING + b"\x05\x01\x00\x03\x00\x00\x50",          # empty name
        S5_GREETING + b"\x05\x01\x00\x04" + b"\0" * 16 + b"\0\0",  # [::]:0
        S5_GREETING + s5_request(1, ip, 0),
        S5_GREETING + s5_request(1, "0.0.0.0", ECHO_PORT),
    ]
    out += [S5_GREETING + s5_request(1, name, 80) for name in BAD_NAMES]
    out += [S5_GREETING + s5_request(0xF3, "0.0.0.0", 0) + s5_udp_frame(b"x", name, 53) for name in BAD_NAMES]
    return out


def socks5_attack(transport: Transport) -> Callable[[Env, random.Random], None]:
    def attack(env: Env, rng: random.Random) -> None:
        stream_attack(env, rng, transport, socks5_valid(env), socks5_extra(env))
    return attack


def socks5_udptun_attack(env: Env, rng: random.Random) -> None:
    ip = env.server_ip
    head = S5_GREETING + s5_request(0xF3, "0.0.0.0", 0)
    frame = s5_udp_frame(b"hello", ip, ECHO_PORT)
    extra = [
        head + s5_udp_frame(rng.randbytes(65535), ip, ECHO_PORT),   # the largest frame
        head + s5_udp_frame(rng.randbytes(60001), ip, ECHO_PORT),
        head + s5_udp_frame(rng.randbytes(65507), ip, ECHO_PORT),   # the largest UDP payload
        head + s5_udp_frame(b"short", ip, ECHO_PORT, length=65535),  # LEN lies, then EOF
        head + s5_udp_frame(b"", ip, ECHO_PORT),                     # LEN 0
        head + b"\x00\x05\x00\x09" + b"\0" * 30,                      # bad ATYP
        head + frame * 2000,                                         # many frames in one write
        head + s5_udp_frame(b"x", ip, 0),                            # port 0
        head + s5_udp_frame(b"x", "255.255.255.255", 9),             # broadcast
    ]
    stream_attack(env, rng, plain(), [head + frame], extra)
    # frames that do not fit in one read, arriving slowly, on a live relay
    chan = plain().open(env.client, ip, PROXY_PORT)
    try:
        rep, _ = s5_handshake(chan, 0xF3, "0.0.0.0", 0)
        assert rep == 0
        big = s5_udp_frame(rng.randbytes(40000), ip, ECHO_PORT)
        for i in range(0, len(big), 5000):
            chan.send(big[i:i + 5000])
            time.sleep(0.01)
        for size in (65535, 61000, 60001):
            chan.send(s5_udp_frame(rng.randbytes(size), ip, ECHO_PORT))
    except OSError:
        pass
    finally:
        chan.close(rst=True)
    # many relays at once, then all reset
    chans = []
    for _ in range(60):
        try:
            c = plain().open(env.client, ip, PROXY_PORT)
            c.send(head + frame)
            chans.append(c)
        except OSError:
            pass
    time.sleep(0.3)
    for c in chans:
        c.close(rst=True)


def socks5_associate_attack(env: Env, rng: random.Random) -> None:
    ip = env.server_ip
    head = S5_GREETING + s5_request(3, "0.0.0.0", 0)
    stream_attack(env, rng, plain(), [head], [head + rng.randbytes(100), head * 50])
    controls = []
    udp = env.client.udp()
    try:
        for _ in range(3):
            controls.append(associate(env))
        valid = b"\0\0\0" + s5_addr(ip, ECHO_PORT) + b"hello"
        datagrams = [b"", *junk(rng, (1, 2, 3, 4, 9, 64, 1400, 9000, 65507))]
        datagrams += prefixes(valid) + mutations(rng, valid, 60) + prefix_then_junk(rng, valid)
        datagrams += [b"\0\0\0" + s5_addr(name, 53) + b"x" for name in BAD_NAMES]
        datagrams += [b"\0\0\x01" + s5_addr(ip, ECHO_PORT) + b"frag",             # fragmented
                      b"\0\0\0" + s5_addr(ip, ECHO_PORT) + rng.randbytes(65507 - 10),  # 65507 in all
                      b"\0\0\0" + s5_addr(ip, 0) + b"port0",
                      b"\0\0\0\x09" + rng.randbytes(40)]
        for _, relay in controls:
            feed_udp(udp, relay, datagrams)
    finally:
        udp.close()
        for i, (chan, _) in enumerate(controls):
            chan.close(rst=bool(i % 2))
    # associations opened and dropped
    for i in range(80):
        try:
            chan, _ = associate(env)
            chan.close(rst=bool(i % 2))
        except (OSError, ConnectionError, AssertionError):
            pass


def http_valid(env: Env) -> list[bytes]:
    target = f"{env.server_ip}:{ECHO_PORT}"
    return [f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\nhello".encode(),
            f"GET http://{target}/x HTTP/1.1\r\nHost: {target}\r\nUser-Agent: h\r\n\r\n".encode()]


def http_extra(env: Env, rng: random.Random) -> list[bytes]:
    ip = env.server_ip
    out = [
        b"GET http://[::1/ HTTP/1.1\r\n\r\n",
        b"GET http://a\x00b/ HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"CONNECT a\x00b:80 HTTP/1.1\r\n\r\n",
        f"CONNECT {ip}:99999 HTTP/1.1\r\n\r\n".encode(),
        b"CONNECT :80 HTTP/1.1\r\n\r\n",
        b"CONNECT [::1:80 HTTP/1.1\r\n\r\n",
        b"CONNECT [zz]:80 HTTP/1.1\r\n\r\n",
        f"GET http://{ip}:0/ HTTP/1.1\r\n\r\n".encode(),
        f"GET http://{ip}:65536/ HTTP/1.1\r\n\r\n".encode(),
        b"GET http:// HTTP/1.1\r\n\r\n",
        b"GET http://%zz/ HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET http://" + b"a" * 70000 + b"/ HTTP/1.1\r\n\r\n",                 # a long request line
        f"GET http://{ip}:{ECHO_PORT}/ HTTP/1.1\r\nX: ".encode() + b"a" * 70000 + b"\r\n\r\n",  # > 64 KiB head
        f"GET http://{ip}:{ECHO_PORT}/ HTTP/1.1\r\n".encode() + b"X: y\r\n" * 20000 + b"\r\n",
        b"G" * (1 << 20),                                                            # no line end at all
        f"CONNECT {ip}:{ECHO_PORT} HTTP/1.1\r\nProxy-Authorization: Basic !!!\r\n\r\n".encode(),
        f"CONNECT {ip}:{ECHO_PORT} HTTP/1.1\r\nProxy-Authorization: Basic {'QQ' * 5000}\r\n\r\n".encode(),
        f"GET http://{ip}:{ECHO_PORT}/ HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".encode(),
        f"GET http://{ip}:{ECHO_PORT}/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n".encode(),
        f"GET http://{ip}:{ECHO_PORT}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n".encode(),
        b"GET http://\xff\xfe/ HTTP/1.1\r\n\r\n",
        b"\r\n" * 5000,
        b"GET\x00http://x/ HTTP/1.1\r\n\r\n",
        b"GET http://x/ HTTP/1.1\n\n",
        b"GET http://x/ HTTP/1.1\r\nno colon here\r\n\r\n",
        b"CONNECT " + b"[" + b":" * 200 + b"]:80 HTTP/1.1\r\n\r\n",
    ]
    for name in BAD_NAMES:
        out.append(b"CONNECT " + name + b":80 HTTP/1.1\r\n\r\n")
        out.append(b"GET http://" + name + b"/ HTTP/1.1\r\nHost: " + name + b"\r\n\r\n")
    out.append(rng.randbytes(3000) + b"\r\n\r\n")
    return out


def http_attack(env: Env, rng: random.Random) -> None:
    stream_attack(env, rng, plain(), http_valid(env), http_extra(env, rng))


def auto_attack(env: Env, rng: random.Random) -> None:
    stream_attack(env, rng, plain(), socks5_valid(env) + http_valid(env),
                  socks5_extra(env) + http_extra(env, rng) + [b"\x04" + rng.randbytes(100)])


def relay_valid(env: Env) -> list[bytes]:
    ip = env.server_ip
    return [relay_request(ip, ECHO_PORT) + b"hello",
            relay_request(ip, ECHO_PORT, 0x81) + struct.pack(">H", 5) + b"hello"]


def relay_extra(env: Env, rng: random.Random) -> list[bytes]:
    ip = env.server_ip
    addr = relay_addr_feature(ip, ECHO_PORT)
    udp = relay_request(ip, ECHO_PORT, 0x81)

    def req(cmd: int, features: bytes, fealen: int | None = None) -> bytes:
        return struct.pack(">BBH", 1, cmd, len(features) if fealen is None else fealen) + features

    out = [
        req(1, addr, fealen=0xFFFF),                                # FEALEN beyond the data
        req(1, b"\x02\xff\xff" + addr[3:]),                         # a feature longer than the list
        req(1, b"\x7f\x00\x03abc" + addr),                          # unknown feature type
        req(1, b"\x01\x00\x05\xff" + b"u" * 4),                     # user/pass: ULEN beyond the feature
        req(1, b"\x01" + struct.pack(">H", 512) + b"\xff" + b"u" * 255 + b"\xff" + b"p" * 255 + addr),
        req(1, b"\x02\x00\x01\x09" + addr),                         # an address feature of one byte
        req(1, b"\x03\x00\x05abcde" + addr),                        # a short tunnel id
        req(1, b"\x03\x00\x10" + b"\0" * 16 + addr),                # a tunnel id
        req(1, addr + b"\x04\x00\x02\x00\x02"),                      # network ip
        req(1, addr + b"\x04\x00\x02\x00\x10"),                      # network unix
        req(1, addr + b"\x04\x00\x02\x00\x11"),                      # network serial
        req(1, addr + b"\x04\x00\x01\x00"),                          # a short network feature
        req(1, addr + b"\x04\x00\x02\xff\xff"),                      # an unknown network
        req(2, addr), req(3, addr), req(0x0F, addr), req(0x82, addr), req(0x83, addr), req(0, addr),
        req(1, b""),                                                 # CONNECT without an address
        req(1, rng.randbytes(0xFFFF)),                               # the largest feature list, junk
        req(1, addr * 3000),
        b"\x02\x01\x00\x00",                                          # version 2
        udp + struct.pack(">H", 0xFFFF) + rng.randbytes(0xFFFF),     # the largest UDP frame
        udp + struct.pack(">H", 65507) + rng.randbytes(65507),
        udp + struct.pack(">H", 0xFFFF) + b"short",                  # LEN lies, then EOF
        udp + struct.pack(">H", 0),                                  # LEN 0
        udp + (struct.pack(">H", 1) + b"x") * 5000,                  # many tiny frames
    ]
    for name in BAD_NAMES:
        out.append(relay_request(name, 80))
        out.append(relay_request(name, 53, 0x81) + struct.pack(">H", 1) + b"x")
    return out


WS_RAW_EXTRA: list[bytes] = [
    ws_header(0x2, (1 << 63) - 1, force_64=True) + b"x" * 64,   # 64-bit lengths
    ws_header(0x2, (1 << 64) - 1, force_64=True) + b"x" * 64,
    ws_header(0x2, 1 << 63, force_64=True),
    ws_header(0x2, 1 << 40, force_64=True) + b"x" * 1000,
    ws_header(0x2, 1 << 31, force_64=True) + b"x" * 1000,
    ws_header(0x2, 4, force_64=True) + ws_mask(b"\x01\x01\x00\x00"),  # a non-minimal length
    ws_header(0x9, 200) + b"p" * 200,                          # a control frame over 125 bytes
    ws_header(0x9, 5, fin=False) + b"p" * 5,                   # a fragmented control frame
    ws_header(0x2, 5, masked=False) + b"hello",               # unmasked from a client
    ws_header(0x3, 5) + b"hello",                              # reserved opcodes
    ws_header(0xB, 5) + b"hello",
    ws_header(0x2, 5, rsv=7) + b"hello",                       # reserved bits
    ws_header(0x0, 5) + b"hello",                              # continuation without a start
    ws_header(0x1, 4) + ws_mask(b"\xff\xfe\xfd\xfc"),          # text that is not UTF-8
    ws_header(0x8, 1) + b"x",                                  # a close frame with a 1-byte body
    ws_header(0x8, 0),
    # 100000 pings (13 MB) from a client that never reads the pongs: the answers must not pile up in memory
    ws_frame(b"\x01", opcode=0x2) + ws_frame(b"x" * 125, opcode=0x9) * 100_000,
    ws_header(0x2, 1 << 16, fin=False) + b"\0" * (1 << 16)
    + (ws_header(0x0, 1 << 16, fin=False) + b"\0" * (1 << 16)) * 48,  # a 3 MiB message that never ends
    b"\x82",                                                    # a header cut short
    b"\x82\xff" + b"\xff" * 4,
]


def ws_transport_extra(path: str, rng: random.Random) -> list[bytes]:
    """Upgrade requests gone wrong, on the raw connection."""
    base = "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    return [
        f"GET /nope HTTP/1.1\r\n{base}Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n".encode(),
        f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),                               # no Upgrade
        f"GET {path} HTTP/1.1\r\n{base}\r\n".encode(),                                    # no key
        f"GET {path} HTTP/1.1\r\n{base}Sec-WebSocket-Key: !!\r\n\r\n".encode(),
        f"GET {path} HTTP/1.1\r\n{base}Sec-WebSocket-Key: {'A' * 70000}\r\n\r\n".encode(),
        f"GET {path} HTTP/1.1\r\n".encode() + b"X: y\r\n" * 20000 + b"\r\n",
        f"POST {path} HTTP/1.1\r\n{base}Content-Length: 99999999999\r\n\r\n".encode(),
        b"GET " + b"/" * 70000 + b" HTTP/1.1\r\n\r\n",
        rng.randbytes(5000),
    ]


def relay_attack(transport: Transport) -> Callable[[Env, random.Random], None]:
    def attack(env: Env, rng: random.Random) -> None:
        raw_extra = WS_RAW_EXTRA if transport.ws else []
        extra = relay_extra(env, rng)
        stream_attack(env, rng, transport, relay_valid(env), extra, raw_extra=raw_extra)
        if transport.ws and not transport.tls:
            feed(lambda: Chan(env.client.tcp(env.server_ip, PROXY_PORT)), ws_transport_extra(transport.path, rng))
    return attack


def tcp_forward_attack(env: Env, rng: random.Random) -> None:
    stream_attack(env, rng, plain(), [b"hello, forward"], [rng.randbytes(1 << 21)])


def udp_flood(env: Env, rng: random.Random, port: int, datagrams: list[bytes], sources: int) -> None:
    udp = env.client.udp()
    try:
        feed_udp(udp, (env.server_ip, port), datagrams)
    finally:
        udp.close()
    socks = []
    try:
        for i in range(sources):  # one datagram from each of many source ports
            s = env.client.udp()
            socks.append(s)
            s.sendto(datagrams[i % len(datagrams)] or b"x", (env.server_ip, port))
            if i % 50 == 49:
                time.sleep(0.01)
    finally:
        for s in socks:
            s.close()


UDP_SIZES = (0, 1, 2, 15, 16, 17, 31, 32, 33, 48, 64, 100, 576, 1350, 1400, 1500, 9000, 16384, 32768, 65507)


def udp_forward_attack(env: Env, rng: random.Random) -> None:
    udp_flood(env, rng, PROXY_PORT, junk(rng, UDP_SIZES) * 3, sources=200)


def tun_attack(sealed: bool = True, tap: bool = False) -> Callable[[Env, random.Random], None]:
    def attack(env: Env, rng: random.Random) -> None:
        """Junk, short and forged (a random salt and tag: well formed, not authentic) datagrams to the
        server's port, from one source port and from many; with the cipher also authentic datagrams
        (sealed with the password) that carry junk, lying IP headers, floods of inner sources (TAP:
        source MACs) and replays."""
        datagrams = junk(rng, UDP_SIZES) * 3
        datagrams += [rng.randbytes(16 + n + 16) for n in (0, 1, 20, 28, 40, 84, 1350, 1500, 65507 - 32)]
        inner = tcp_segment("192.168.123.77", SERVER_TUN, 1234, 80, 0x02)
        datagrams += [inner, inner[:10], ipv4_bogus_length(inner)]  # plaintext IP packets (not sealed)
        datagrams += mutations(rng, rng.randbytes(120), 40)
        if sealed:
            before = env.gost.stats() if env.gost else {}
            insides = tap_frames(rng) if tap else tun_packets(rng)
            key = ss_key(CIPHER.split(":")[1].rstrip("@").encode())
            authentic = [ss_seal(key, p, rng.randbytes(16)) for p in insides]
            replayed = authentic[-1:] * 50
            udp = env.client.udp()
            try:
                feed_udp(udp, (env.server_ip, TUN_PORT), authentic + replayed)
            finally:
                udp.close()
            after = env.gost.stats() if env.gost else {}
            rejected = after.get("drop_auth", 0) - before.get("drop_auth", 0)
            # the test's own check: the server took the sealed datagrams as authentic
            assert rejected < len(authentic) // 10, f"the server refused {rejected} of the sealed datagrams"
        udp_flood(env, rng, TUN_PORT, datagrams, sources=200)
    return attack


def tun_packets(rng: random.Random) -> list[bytes]:
    good = udp_datagram(CLIENT_TUN, SERVER_TUN, 5000, 9, b"x" * 32)
    out = [b"", rng.randbytes(1), rng.randbytes(19), good[:20], ipv4_bogus_length(good),
           good[:2] + b"\0\0" + good[4:],                     # total length 0
           good[:2] + b"\0\x0a" + good[4:],                   # total length below the header
           bytes([0x4F]) + good[1:], bytes([0x75]) + good[1:],  # IHL 15; version 7
           b"\x60\0\0\0\xff\xff\x11\x40" + b"\0" * 32,      # IPv6, payload length lies
           rng.randbytes(1350), rng.randbytes(65507 - 32),       # the largest that fits
           udp_datagram(CLIENT_TUN, "192.168.123.255", 5000, 9, b"broadcast"),
           udp_datagram(CLIENT_TUN, "224.0.0.1", 5000, 9, b"multicast"),
           udp_datagram(CLIENT_TUN, CLIENT_TUN, 5000, 9, b"back to the client"),  # relayed
           udp_datagram(CLIENT_TUN, "192.168.123.99", 5000, 9, b"nobody")]
    out += mutations(rng, good, 40)
    # inner sources from 2000 addresses (each may teach the server a route)
    out += [udp_datagram(f"10.{i >> 8 & 255}.{i & 255}.7", SERVER_TUN, 5000, 9, b"src") for i in range(2000)]
    return out


def tap_frames(rng: random.Random) -> list[bytes]:
    payload = udp_datagram("192.168.123.2", SERVER_TUN, 5000, 9, b"x" * 32)
    out = [b"", rng.randbytes(1), rng.randbytes(13), rng.randbytes(14), rng.randbytes(1350),
           rng.randbytes(65507 - 32),
           b"\xff" * 6 + b"\x02\0\0\0\0\x01" + b"\x08\x00" + payload,    # broadcast: flooded
           b"\x01\0\x5e\0\0\x01" + b"\x02\0\0\0\0\x01" + b"\x08\x00" + payload,  # multicast
           b"\x02\0\0\0\0\x99" + b"\x02\0\0\0\0\x01" + b"\x81\x00" + b"\0" * 4]  # a short VLAN tag
    out += mutations(rng, b"\xff" * 6 + b"\x02\0\0\0\0\x01\x08\x00" + payload, 40)
    # frames from 2000 source MACs (each may teach the server a MAC)
    out += [b"\xff" * 6 + b"\x02\x00" + i.to_bytes(4, "big") + b"\x08\x00" + payload for i in range(2000)]
    return out


def ipv4_bogus_length(packet: bytes) -> bytes:
    return packet[:2] + struct.pack(">H", 65535) + packet[4:]


def faketcp_attack(env: Env, rng: random.Random) -> None:
    """Kernel TCP connections to the fake-TCP port: each becomes a flow whose segments carry junk."""
    feed(lambda: Chan(env.client.tcp(env.server_ip, TUN_PORT)),
         junk(rng, (1, 16, 17, 33, 64, 1350, 1400, 4096, 65536)) + mutations(rng, rng.randbytes(100), 20))
    # many flows at once, each sending forged datagrams, then reset
    socks = []
    for _ in range(60):
        try:
            s = env.client.tcp(env.server_ip, TUN_PORT)
            s.send(rng.randbytes(16 + 84 + 16))
            socks.append(s)
        except OSError:
            pass
    time.sleep(0.3)
    for s in socks:
        close(s, rst=True)


def tungo_attack(env: Env, rng: random.Random) -> None:
    """Packets written straight to the tungo device's reader (AF_PACKET on the TUN): junk, truncations of
    a valid SYN, mutations, lying length fields, fragments, floods from spoofed sources."""
    pkt = env.client.packet("gxtg")
    src = "192.168.124.1"
    syn = tcp_segment(src, BEHIND, 40000, ECHO_PORT, 0x02, options=b"\x02\x04\x05\xb4")
    udp = udp_datagram(src, BEHIND, 40001, ECHO_PORT, b"hello")
    packets = junk(rng, (1, 2, 19, 20, 21, 40, 60, 576, 1400))
    packets += prefixes(syn) + prefixes(udp) + mutations(rng, syn, 80) + mutations(rng, udp, 80)
    packets += [
        ipv4_bogus_length(syn), ipv4_bogus_length(udp),
        bytes([0x4F]) + syn[1:],                                           # IHL 15, no options there
        bytes([0x44]) + syn[1:],                                           # IHL 4
        bytes([0x65]) + syn[1:],                                           # version 6 on a v4 header
        udp_datagram(src, BEHIND, 40002, ECHO_PORT, b"hello", length=65535),  # UDP length lies
        udp_datagram(src, BEHIND, 40003, ECHO_PORT, b"hello", length=3),
        tcp_segment(src, BEHIND, 40004, ECHO_PORT, 0x02, options=b"\x02\x00" + b"\x01" * 38),  # bad MSS option
        tcp_segment(src, BEHIND, 40005, ECHO_PORT, 0x02, options=b"\x03\x03\x0e\x08\x0a\xff" + b"\0" * 2),
        tcp_segment(src, BEHIND, 40006, ECHO_PORT, 0xFF),                  # every flag
        tcp_segment(src, BEHIND, 40007, ECHO_PORT, 0x10, ack=12345),       # ACK for no flow
        tcp_segment(src, BEHIND, 40008, ECHO_PORT, 0x04),                  # RST for no flow
        tcp_segment(src, BEHIND, 40009, ECHO_PORT, 0x18, data=b"data for no flow"),
        ipv4_frag(udp, 0x2000), ipv4_frag(udp, 0x0010), ipv4_frag(syn, 0x3FFF),
        b"\x60" + rng.randbytes(60),                                       # IPv6 junk
        b"\x60\0\0\0\xff\xff\x11\x40" + b"\0" * 32,                        # IPv6: payload length lies
    ]
    try:
        for i, packet in enumerate(packets):
            try:
                pkt.send(packet)
            except OSError:
                pass
            if i % 64 == 63:
                time.sleep(0.01)
        # floods from spoofed sources: SYNs to a closed port, UDP sessions (udpTimeout=2s ends them)
        for i in range(100):
            spoof = f"10.99.{i // 250}.{i % 250 + 1}"
            for packet in (tcp_segment(spoof, BEHIND, 20000 + i, 9, 0x02),
                           tcp_segment(spoof, BEHIND, 30000 + i, ECHO_PORT, 0x02),  # half-open, never ACKed
                           udp_datagram(spoof, BEHIND, 20000 + i, ECHO_PORT, rng.randbytes(32))):
                try:
                    pkt.send(packet)
                except OSError:
                    pass
            if i % 20 == 19:
                time.sleep(0.01)
    finally:
        pkt.close()
    # real TCP flows through the device that stall and are reset
    socks = []
    for _ in range(30):
        try:
            s = env.client.tcp(BEHIND, ECHO_PORT)
            s.send(b"x")
            socks.append(s)
        except OSError:
            pass
    time.sleep(0.3)
    for i, s in enumerate(socks):
        close(s, rst=bool(i % 2))


def ipv4_frag(packet: bytes, flags_offset: int) -> bytes:
    from hostile_helpers import checksum

    head = bytearray(packet[:20])
    head[6:8] = struct.pack(">H", flags_offset)
    head[10:12] = b"\0\0"
    head[10:12] = struct.pack(">H", checksum(bytes(head)))
    return bytes(head) + packet[20:]


# -- setups ----------------------------------------------------------------------------------------------


def tun_client_setup(tcp: bool, cipher: str = CIPHER, scheme: str = "tun") -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        query = f"net={CLIENT_TUN}/24&name=gxh0" + ("&tcp=true" if tcp else "")
        ready = fake_tcp_up if tcp else tunnel_up
        url = f"{scheme}://{cipher}:0/{env.server_ip}:{TUN_PORT}?{query}"
        env.helpers.append(start_gost(env.pair.a, ["-L", url], ready=ready, debug=False))
    return setup


def tungo_setup(env: Env) -> None:
    a, pair = env.pair.a, env.pair
    assert wait_until(lambda: a.run(["ip", "link", "show", "gxtg"], check=False).returncode == 0, 10)
    a.run(["ip", "route", "add", "default", "via", pair.b_ip, "dev", pair.a_if, "metric", "10"])
    a.run(["ip", "route", "add", "default", "dev", "gxtg", "metric", "1"])


def tunnel_up(g: GostProcess) -> bool:
    return any("tunnel" in str(r.get("msg", "")) and " on udp " in str(r.get("msg", "")) for r in g.log_records())


def fake_tcp_up(g: GostProcess) -> bool:
    return any("tunnel" in str(r.get("msg", "")) and " on fake tcp " in str(r.get("msg", ""))
               for r in g.log_records())


def tungo_up(g: GostProcess) -> bool:
    return any(str(r.get("msg", "")).startswith("tungo stack on ") for r in g.log_records())


# -- the cases -----------------------------------------------------------------------------------------


def proxy_url(scheme: str, query: str = "") -> Callable[[Env], list[str]]:
    return lambda env: ["-L", f"{scheme}://{env.server_ip}:{PROXY_PORT}?{TIMEOUTS}{query}"]


def first_bytes_of(transport: Transport, request: Callable[[Env], bytes]) -> Callable[[Env], tuple[int, bytes]]:
    return lambda env: (PROXY_PORT, transport.first_bytes(env.server_ip) or request(env))


TLS, WS, WSS = Transport(tls=True), Transport(ws=True), Transport(tls=True, ws=True)
s5_first = first_bytes_of(plain(), lambda env: socks5_valid(env)[0])
http_first = first_bytes_of(plain(), lambda env: http_valid(env)[0])
relay_first = first_bytes_of(plain(), lambda env: relay_valid(env)[0])

CASES = [
    Case("socks5-connect", proxy_url("socks5"), listening(PROXY_PORT), socks5_connect_probe(plain()),
         socks5_attack(plain()), stall_closes=True, slowloris=s5_first),
    Case("socks5-udp-associate", proxy_url("socks5", "&udp=true"), listening(PROXY_PORT), socks5_associate_probe,
         socks5_associate_attack, stall_closes=True, slowloris=s5_first),
    Case("socks5-udp-over-tcp", proxy_url("socks5", "&udp=true"), listening(PROXY_PORT), socks5_udptun_probe,
         socks5_udptun_attack, stall_closes=True, slowloris=s5_first),
    Case("socks5-auth", lambda env: ["-L", f"socks://alice:s3cret@{env.server_ip}:{PROXY_PORT}?{TIMEOUTS}"],
         listening(PROXY_PORT), socks5_auth_probe, socks5_auth_attack, stall_closes=True,
         slowloris=lambda env: (PROXY_PORT, AUTH_GREETING + AUTH)),
    Case("http", proxy_url("http"), listening(PROXY_PORT), http_probe(plain()), http_attack,
         stall_closes=True, slowloris=http_first),
    Case("auto", proxy_url("auto"), listening(PROXY_PORT), auto_probe, auto_attack,
         stall_closes=True, slowloris=http_first),
    Case("relay", proxy_url("relay"), listening(PROXY_PORT), relay_probe(plain()), relay_attack(plain()),
         stall_closes=True, slowloris=relay_first),
    Case("relay-forward",
         lambda env: ["-L", f"relay://{env.server_ip}:{PROXY_PORT}/{env.server_ip}:{ECHO_PORT}?{TIMEOUTS}"],
         listening(PROXY_PORT), relay_forward_probe, relay_attack(plain()), stall_closes=True, slowloris=relay_first),
    Case("relay+ws", proxy_url("relay+ws"), listening(PROXY_PORT), relay_probe(WS), relay_attack(WS),
         stall_closes=True, slowloris=first_bytes_of(WS, lambda env: b"")),
    Case("relay+wss", proxy_url("relay+wss"), listening(PROXY_PORT), relay_probe(WSS), relay_attack(WSS),
         stall_closes=True, slowloris=first_bytes_of(WSS, lambda env: b"")),
    Case("socks5+tls", proxy_url("socks5+tls"), listening(PROXY_PORT), socks5_connect_probe(TLS),
         socks5_attack(TLS), stall_closes=True, slowloris=first_bytes_of(TLS, lambda env: b"")),
    Case("tcp-forward",
         lambda env: ["-L", f"tcp://{env.server_ip}:{PROXY_PORT}/{env.server_ip}:{ECHO_PORT}"],
         listening(PROXY_PORT), tcp_forward_probe, tcp_forward_attack,
         slowloris=lambda env: (PROXY_PORT, b"slow forward")),
    Case("udp-forward",
         lambda env: ["-L", f"udp://{env.server_ip}:{PROXY_PORT}/{env.server_ip}:{ECHO_PORT}?ttl=2s"],
         listening(PROXY_PORT), udp_forward_probe, udp_forward_attack),
    Case("tun-cipher", lambda env: ["-L", f"tun://{CIPHER}:{TUN_PORT}?net={SERVER_TUN}/24&name=gxh0"],
         tunnel_up, tun_probe, tun_attack(), setup=tun_client_setup(tcp=False), needs=("ping",)),
    Case("tun-plain", lambda env: ["-L", f"tun://:{TUN_PORT}?net={SERVER_TUN}/24&name=gxh0"],
         tunnel_up, tun_probe, tun_attack(sealed=False), setup=tun_client_setup(tcp=False, cipher=""), needs=("ping",)),
    Case("tap-cipher", lambda env: ["-L", f"tap://{CIPHER}:{TUN_PORT}?net={SERVER_TUN}/24&name=gxh0"],
         tunnel_up, tun_probe, tun_attack(tap=True), setup=tun_client_setup(tcp=False, scheme="tap"), needs=("ping",)),
    Case("tun-faketcp", lambda env: ["-L", f"tun://{CIPHER}:{TUN_PORT}?net={SERVER_TUN}/24&name=gxh0&tcp=true"],
         fake_tcp_up, tun_probe, faketcp_attack, setup=tun_client_setup(tcp=True),
         slowloris=lambda env: (TUN_PORT, b"\x00" * 8), needs=("ping", "nft")),
    Case("tungo",
         lambda env: ["-L", f"tungo://:0?name=gxtg&net={TUNGO_NET}&interface={env.pair.a_if}&udpTimeout=2s"],
         tungo_up, tungo_probe, tungo_attack, setup=tungo_setup, in_a=True),
]


@pytest.fixture
def env(pair: Pair) -> Env:
    proc = pair.b.popen([sys.executable, "-c", ECHO, str(ECHO_PORT)])
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    pair.b.run(["ip", "addr", "add", f"{BEHIND}/32", "dev", "lo"])
    return Env(pair, Client(pair.a.name), pair.b_ip)


def log_errors(gost: GostProcess) -> list[str]:
    """The distinct messages of exceptions that escaped a handler (or worse), without the peer address."""
    bad = ("internal error", "Traceback", "exception was never retrieved", "handler failed", "Fatal")
    found: dict[str, None] = {}
    for line in gost.log_lines():
        if any(b in line for b in bad):
            try:
                msg = str(json.loads(line).get("msg", line))
            except ValueError:
                msg = line
            found[re.sub(r"^[0-9a-f.:\[\]]+:\d+: ", "", msg)[:160]] = None
    return list(found)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_listener_survives_hostile_input(env: Env, case: Case) -> None:
    missing = [cmd for cmd in case.needs if shutil.which(cmd) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (iputils-ping, nftables)")
    ns: Namespace = env.pair.a if case.in_a else env.pair.b
    gost = start_gost(ns, case.args(env), ready=case.ready, debug=False)
    env.gost = gost
    if case.setup is not None:
        case.setup(env)
    pid = gost.proc.pid
    case.probe(env)  # the baseline: one valid request works
    base = snapshot(pid)
    failures: list[str] = []
    rng = random.Random(SEED)

    silent: list[socket.socket] = []
    loris: Slowloris | None = None
    dripper: threading.Thread | None = None
    if case.slowloris is not None:
        port, prefix = case.slowloris(env)
        if case.stall_closes:
            silent = [env.client.tcp(env.server_ip, port) for _ in range(5)]
        loris = Slowloris.open(env.client, env.server_ip, port, prefix, count=50)
        dripper = threading.Thread(target=loris.drip, args=(5,), daemon=True)
        dripper.start()
    started = time.monotonic()
    try:
        case.attack(env, rng)
        if dripper is not None:
            dripper.join(timeout=30)
        if not gost.alive():
            pytest.fail(f"gost died under hostile input (exit {gost.proc.returncode}):\n"
                        + "\n".join(gost.log_lines()[-20:]))
        if case.stall_closes:
            # both the silent connections and the slowloris ones have stalled past the deadline by now
            remaining = STALL_DEADLINE - (time.monotonic() - started)
            open_silent = [s for s in silent if not wait_until(lambda s=s: _closed(s), max(remaining, 0.5))]
            if open_silent:
                failures.append(f"stall: {len(open_silent)}/{len(silent)} silent connections still open "
                                f"{time.monotonic() - started:.1f}s after connecting (timeout 2s)")
            assert loris is not None
            closed = loris.closed_by_server()
            if closed < len(loris.socks):
                failures.append(f"slowloris: server closed only {closed}/{len(loris.socks)} dribbling connections "
                                f"after {time.monotonic() - started:.1f}s (timeout 2s)")
    finally:
        for s in silent:
            close(s, rst=True)
        if loris is not None:
            loris.close()
    attack_time = time.monotonic() - started

    try:
        case.probe(env)
    except (OSError, ConnectionError, AssertionError) as exc:
        failures.append(f"serve: the valid request after the attack failed: {type(exc).__name__}: {exc}")
    after = settle(pid, base, THREAD_SLACK, FD_SLACK, timeout=10)
    if after.threads > base.threads + THREAD_SLACK:
        failures.append(f"threads: {after.threads} after settling, baseline {base.threads} (slack {THREAD_SLACK})")
    if after.fds > base.fds + FD_SLACK:
        failures.append(f"fds: {after.fds} after settling, baseline {base.fds} (slack {FD_SLACK}): {fd_kinds(pid)}")
    if after.rss_kib > base.rss_kib + RSS_BOUND_KIB:
        failures.append(f"rss: grew by {(after.rss_kib - base.rss_kib) // 1024} MiB ({base} -> {after})")
    elif after.peak_rss_kib > max(base.peak_rss_kib, base.rss_kib) + RSS_BOUND_KIB:
        failures.append(f"rss: peaked {(after.peak_rss_kib - base.rss_kib) // 1024} MiB above the baseline "
                        f"during the attack ({base} -> {after})")
    burnt = idle_cpu(pid, 1.0)
    if burnt > IDLE_CPU_MAX:
        failures.append(f"idle cpu: {burnt:.2f}s of CPU in 1s idle (spinning thread?)")
    errors = log_errors(gost)
    if errors:
        failures.append(f"log: {len(errors)} distinct internal errors: " + " | ".join(errors[:6]))
    t0 = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: gost.proc.poll() is not None, 2.0):
        failures.append("sigterm: still running 2s after SIGTERM")
    else:
        stopped = time.monotonic() - t0
        if stopped > 2.0:
            failures.append(f"sigterm: took {stopped:.1f}s")
    summary = f"[{case.id}] attack {attack_time:.1f}s; baseline {base}; after {after}"
    tail = "\n".join(["-- gost log tail:", *gost.log_lines()[-8:]])
    assert not failures, summary + "\n" + "\n".join(failures) + "\n" + tail


def _closed(sock: socket.socket) -> bool:
    from hostile_helpers import peer_closed

    return peer_closed(sock)
