"""Helpers for in-process relay/tls/ws tests on loopback: gost command lines (-L/-F) running in this event
loop, echo servers, free ports, an HTTP CONNECT client."""

from __future__ import annotations

import asyncio

from tests.unit.proxytest import echo_tcp, echo_udp, free_port, gost

__all__ = ["echo_tcp", "echo_udp", "free_port", "gost", "http_connect"]


async def http_connect(proxy_port: int, target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        writer.close()
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
    return reader, writer
