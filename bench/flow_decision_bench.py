"""Per-flow decision cost in Python: sniff a flow's first bytes, then test the sniffed address
against a bypass. This runs once per new TCP flow (tungo hands the first bytes to Python, then the
C engine splices the flow), never per packet, so it bounds the new-flow rate, not the throughput.

    python3 -m bench.flow_decision_bench [--patterns 10000] [--flows 20000] [--repeat 3]

The ClientHello is a real one, captured from Python's ssl client on loopback. The bypass holds
--patterns rules of every kind (names, .domains, CIDRs, globs, IP ranges) in equal parts.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import time
from collections.abc import Callable

from gostx.bypass import Bypass
from gostx.sniffing import BytesPeeker, parse_http_host, parse_tls_sni, sniff_stream
from gostx.testing.capture import FirstBytesServer

HTTP_REQUEST = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"


def captured_client_hello(server_name: str) -> bytes:
    with FirstBytesServer(enough=lambda b: len(b) > 5 and len(b) >= 5 + int.from_bytes(b[3:5], "big")) as srv:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            try:
                ctx.wrap_socket(sock, server_hostname=server_name)
            except (ssl.SSLError, OSError):
                pass
        return srv.captured()


def make_bypass(n: int) -> Bypass:
    k = max(n // 5, 1)
    patterns = [f"host{i}.example.com" for i in range(k)] + [f".dom{i}.org" for i in range(k)]
    patterns += [f"10.{i // 256 % 256}.{i % 256}.0/24" for i in range(k)] + [f"*.w{i}.net" for i in range(k)]
    patterns += [f"172.{16 + i // 65536 % 16}.{i // 256 % 256}.{i % 256}-172.31.255.255" for i in range(k)]
    return Bypass("bench", patterns)


def per_second(run: Callable[[], object], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(count):
            run()
        best = min(best, time.perf_counter() - start)
    return count / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.flow_decision_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--patterns", type=int, default=10000)
    parser.add_argument("--flows", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    hello = captured_client_hello("www.example.com")
    bypass = make_bypass(args.patterns)
    assert parse_tls_sni(hello).host == "www.example.com"

    def whole_flow() -> None:
        outcome = asyncio.run(sniff_stream(BytesPeeker(hello).peek))
        bypass.contains(outcome.address or "")

    loop = asyncio.new_event_loop()

    def whole_flow_in_loop() -> None:
        outcome = loop.run_until_complete(sniff_stream(BytesPeeker(hello).peek))
        bypass.contains(outcome.address or "")

    rows = [
        (f"parse TLS ClientHello ({len(hello)} B)", lambda: parse_tls_sni(hello)),
        (f"parse HTTP request head ({len(HTTP_REQUEST)} B)", lambda: parse_http_host(HTTP_REQUEST)),
        (f"bypass.contains, {len(bypass.patterns)} patterns, miss", lambda: bypass.contains("a.b.example.net:443")),
        (f"bypass.contains, {len(bypass.patterns)} patterns, CIDR hit", lambda: bypass.contains("10.3.7.9:80")),
        ("sniff_stream + bypass (one event loop)", whole_flow_in_loop),
    ]
    print(f"{'per-flow step':<52} {'flows/s':>12} {'us/flow':>9}")
    for title, run in rows:
        rate = per_second(run, args.flows, args.repeat)
        print(f"{title:<52} {rate:>12,.0f} {1e6 / rate:>9.1f}")
    loop.close()
    del whole_flow
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
