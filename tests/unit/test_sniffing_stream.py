"""sniff_stream over real loopback TCP streams (peek without consuming: every byte still reaches
the upstream), sniffing.timeout for server-first protocols, and the handler options."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sniff_builders import client_hello, records, tls13_extensions

from gostx.config.cmd import build_config
from gostx.config.loader import load_config
from gostx.errors import GostError
from gostx.sniffing import BytesPeeker, SniffingOptions, SniffOutcome, StreamPeeker, dial_targets, sniff_stream

HELLO = records(client_hello(tls13_extensions(b"stream.example")), [300])
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "config"

Client = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def sniff_over_tcp(client: Client, timeout: float, header_timeout: float = 5.0) -> tuple[SniffOutcome, bytes]:
    """Run `client` against a loopback server that sniffs the connection; returns the outcome and
    every byte the server then forwards (peeked bytes first, then the rest of the stream)."""
    result: asyncio.Future[tuple[SniffOutcome, bytes]] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peeker = StreamPeeker(reader)
        outcome = await sniff_stream(peeker.peek, timeout, header_timeout=header_timeout)
        forwarded = peeker.take() + await reader.read()
        writer.close()
        result.set_result((outcome, forwarded))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        await client(writer)
        if writer.can_write_eof():
            writer.write_eof()
        outcome_and_bytes = await asyncio.wait_for(result, 10)
        writer.close()
    return outcome_and_bytes


def chunks_with_pauses(*parts: bytes, pause: float = 0.05) -> Client:
    async def client(writer: asyncio.StreamWriter) -> None:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause)
    return client


def test_client_hello_in_pieces_is_sniffed_and_every_byte_forwarded() -> None:
    app_data = b"\x17\x03\x03\x00\x04abcd"
    parts = (HELLO[:3], HELLO[3:200], HELLO[200:], app_data)
    outcome, forwarded = asyncio.run(sniff_over_tcp(chunks_with_pauses(*parts), timeout=1.0))
    assert (outcome.proto, outcome.host, outcome.port, outcome.address) == (
        "tls", "stream.example", 443, "stream.example:443")
    assert forwarded == HELLO + app_data


def test_http_request_is_sniffed_and_forwarded_unchanged() -> None:
    request = b"POST /up HTTP/1.1\r\nHost: up.example:8080\r\nContent-Length: 3\r\n\r\nabc"
    outcome, forwarded = asyncio.run(sniff_over_tcp(chunks_with_pauses(request[:10], request[10:]), timeout=1.0))
    assert (outcome.proto, outcome.host, outcome.port) == ("http", "up.example", 8080)
    assert forwarded == request


def test_server_first_protocol_takes_the_normal_path_after_the_timeout() -> None:
    async def silent_then_talk(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.6)
        writer.write(b"EHLO client.example\r\n")
        await writer.drain()

    started = time.monotonic()
    outcome, forwarded = asyncio.run(sniff_over_tcp(silent_then_talk, timeout=0.2))
    assert outcome.proto is None and outcome.host is None
    assert "sniffing.timeout" in outcome.reason
    assert forwarded == b"EHLO client.example\r\n"  # nothing was lost to the sniffer
    assert time.monotonic() - started < 5


def test_zero_timeout_waits_for_late_first_bytes() -> None:
    async def late(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.3)
        writer.write(HELLO)
        await writer.drain()

    outcome, forwarded = asyncio.run(sniff_over_tcp(late, timeout=0))
    assert outcome.host == "stream.example" and forwarded == HELLO


def test_flow_ending_before_five_bytes() -> None:
    outcome, forwarded = asyncio.run(sniff_over_tcp(chunks_with_pauses(b"GE"), timeout=1.0))
    assert (outcome.proto, outcome.host, forwarded) == (None, None, b"GE")
    assert "before 5 bytes" in outcome.reason


def test_stalled_request_head_gives_up_after_the_header_timeout() -> None:
    async def stall(writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET / HTTP/1.1\r\nHost: stall")
        await writer.drain()
        await asyncio.sleep(0.8)

    outcome, forwarded = asyncio.run(sniff_over_tcp(stall, timeout=1.0, header_timeout=0.2))
    assert (outcome.proto, outcome.host) == ("http", None)
    assert "incomplete http header" in outcome.reason
    assert forwarded == b"GET / HTTP/1.1\r\nHost: stall"


@pytest.mark.parametrize(("first", "proto", "host", "reason"), [
    (HELLO, "tls", "stream.example", ""),
    (HELLO[:100], "tls", None, "no more bytes inside the tls header"),
    (records(client_hello([])), "tls", None, "no server_name extension"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "ssh", None, "no host to sniff"),
    (b"GET / FTP/1.0\r\n\r\n", "http", None, "protocol 'FTP/1.0'"),
    (b"\x00\x01\x02\x03\x04\x05", None, None, "no host to sniff"),
])
def test_bytes_handed_over_once(first: bytes, proto: str | None, host: str | None, reason: str) -> None:
    """The tungo case: the engine hands the first bytes of a flow once."""
    outcome = asyncio.run(sniff_stream(BytesPeeker(first).peek))
    assert (outcome.proto, outcome.host, outcome.reason) == (proto, host, reason)
    assert outcome.peeked == len(first)


# ----------------------------------------------------------------------------------------------
# Options

@pytest.mark.parametrize(("metadata", "expected"), [
    ({}, SniffingOptions(enabled=False, timeout=0.0, fallback=False, udp=True, response_timeout=30.0)),
    ({"sniffing": True, "sniffing.udp": True, "sniffing.timeout": "1s", "sniffing.fallback": True},
     SniffingOptions(enabled=True, timeout=1.0, fallback=True, udp=True)),
    ({"sniffing": "true", "sniffing.timeout": "500ms"}, SniffingOptions(enabled=True, timeout=0.5)),
    ({"Sniffing": "1", "SNIFFING.TIMEOUT": 2, "sniffing.Fallback": "t"},
     SniffingOptions(enabled=True, timeout=2.0, fallback=True)),
    ({"sniffing": "yes"}, SniffingOptions(enabled=False)),  # Go's ParseBool: not a bool -> false
    ({"sniffing": True, "sniffing.udp": "false"}, SniffingOptions(enabled=True, udp=False)),
    ({"sniffing.timeout": "1m30s", "sniffing.responseTimeout": "5s"},
     SniffingOptions(timeout=90.0, response_timeout=5.0)),
    ({"sniffing.timeout": "-1s", "sniffing.responseTimeout": 0}, SniffingOptions(timeout=0.0, response_timeout=30.0)),
    ({"sniffing.timeout": "3"}, SniffingOptions(timeout=3.0)),
])
def test_options_from_metadata(metadata: dict[str, object], expected: SniffingOptions) -> None:
    assert SniffingOptions.from_metadata(metadata) == expected


def test_dns_sniffing_follows_sniffing_unless_udp_is_turned_off() -> None:
    assert SniffingOptions.from_metadata({"sniffing": True}).dns
    assert not SniffingOptions.from_metadata({"sniffing": True, "sniffing.udp": False}).dns
    assert not SniffingOptions.from_metadata({"sniffing.udp": True}).dns


@pytest.mark.parametrize("value", ["soon", "1x", "1s2", True])
def test_bad_timeout_is_a_one_line_error(value: object) -> None:
    with pytest.raises(GostError, match=r"^sniffing.timeout: invalid duration") as err:
        SniffingOptions.from_metadata({"sniffing.timeout": value})
    assert "\n" not in str(err.value)


def test_options_of_the_seed_yaml() -> None:
    cfg = load_config(f"{VECTORS}/tun2socks-sniffing.yaml")
    handler = cfg.services[0].handler
    assert handler is not None
    assert SniffingOptions.from_metadata(handler.metadata) == SniffingOptions(
        enabled=True, timeout=1.0, fallback=True, udp=True)


def test_options_of_the_seed_command_line() -> None:
    cfg = build_config(
        ["tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&dns=1.1.1.1&interface=eth0&sniffing=true"],
        ["relay+wss://SERVER_IP:443?interface=eth0&bypass=example.com"])
    handler = cfg.services[0].handler
    assert handler is not None
    options = SniffingOptions.from_metadata(handler.metadata)
    assert options.enabled and options.dns and options.timeout == 0.0 and not options.fallback


# ----------------------------------------------------------------------------------------------
# Where tungo dials a sniffed flow

@pytest.mark.parametrize(("outcome", "original", "fallback", "targets"), [
    (SniffOutcome("tls", "example.com", 443), "93.184.215.14:443", False, ["example.com:443"]),
    (SniffOutcome("tls", "example.com", 443), "93.184.215.14:443", True, ["example.com:443", "93.184.215.14:443"]),
    (SniffOutcome("http", "example.com", 8080), "93.184.215.14:80", False, ["example.com:80"]),  # dst port wins
    (SniffOutcome("tls", "2001:db8::7", 443), "[2001:db8::7]:8443", True, ["[2001:db8::7]:8443"]),
    (SniffOutcome("tls", None), "10.0.0.1:443", False, ["10.0.0.1:443"]),
    (SniffOutcome(None), "[2001:db8::1]:22", True, ["[2001:db8::1]:22"]),
])
def test_dial_targets(outcome: SniffOutcome, original: str, fallback: bool, targets: list[str]) -> None:
    assert dial_targets(outcome, original, fallback) == targets
