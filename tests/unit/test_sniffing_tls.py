"""TLS ClientHello SNI: ClientHellos captured from real clients on this machine (Python's ssl,
openssl s_client, curl) plus hand-made edge cases (fragmented records, GREASE, no SNI, TLS 1.3
key_share, truncation at every byte, bad length fields)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import ssl
import subprocess

import pytest
from sniff_builders import (
    GREASE,
    client_hello,
    ext,
    handshake_payload,
    hello_complete,
    records,
    sni_ext,
    tls13_extensions,
    u16,
    vec16,
)

from gostx.sniffing import SniffState, classify, is_grease, parse_tls_sni
from gostx.testing.capture import FirstBytesServer

SNI = "x.test"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{name} is not installed (make deps installs it)")
        pytest.skip(f"{name} is not installed")
    return path


def capture(run_client) -> bytes:  # type: ignore[no-untyped-def]
    with FirstBytesServer(enough=hello_complete) as server:
        run_client(server.port)
        data = server.captured()
    assert hello_complete(data), f"no whole ClientHello captured ({len(data)} bytes)"
    return data


def python_hello(server_hostname: str | None, version: ssl.TLSVersion | None = None) -> bytes:
    def run(port: int) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if version is not None:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            try:
                ctx.wrap_socket(sock, server_hostname=server_hostname)
            except (ssl.SSLError, OSError):
                pass
    return capture(run)


def openssl_hello(*args: str) -> bytes:
    openssl = require_tool("openssl")

    def run(port: int) -> None:
        subprocess.run([openssl, "s_client", "-connect", f"127.0.0.1:{port}", *args],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20, check=False)
    return capture(run)


def curl_hello() -> bytes:
    curl = require_tool("curl")

    def run(port: int) -> None:
        subprocess.run([curl, "-sk", "--max-time", "5", "--resolve", f"{SNI}:{port}:127.0.0.1",
                        f"https://{SNI}:{port}/"], capture_output=True, timeout=20, check=False)
    return capture(run)


CLIENTS = {
    "python-tls13": lambda: python_hello(SNI),
    "python-tls12": lambda: python_hello(SNI, ssl.TLSVersion.TLSv1_2),
    "python-tls10": lambda: python_hello(SNI, ssl.TLSVersion.TLSv1),
    "openssl-tls13": lambda: openssl_hello("-servername", SNI),
    "openssl-tls12": lambda: openssl_hello("-servername", SNI, "-tls1_2"),
    "openssl-tls10": lambda: openssl_hello("-servername", SNI, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"),
    "curl": curl_hello,
}


@pytest.fixture(scope="module")
def captured() -> dict[str, bytes]:
    return {}


def hello_from(name: str, cache: dict[str, bytes]) -> bytes:
    if name not in cache:
        cache[name] = CLIENTS[name]()
    return cache[name]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_captured_client_hello_gives_the_sni(client: str, captured: dict[str, bytes]) -> None:
    data = hello_from(client, captured)
    assert classify(data) == "tls"
    result = parse_tls_sni(data)
    assert (result.state, result.host, result.port) == (SniffState.FOUND, SNI, 443)
    assert result.consumed == len(data)
    assert result.address == f"{SNI}:443"
    legacy_version = handshake_payload(data)[4:6]
    assert legacy_version == (b"\x03\x01" if client.endswith("tls10") else b"\x03\x03")


@pytest.mark.parametrize("client", ["python-tls13", "openssl-tls13", "curl"])
def test_captured_hello_truncated_at_every_byte_needs_more(client: str, captured: dict[str, bytes]) -> None:
    data = hello_from(client, captured)
    for n in range(len(data)):
        assert parse_tls_sni(data[:n]).state is SniffState.NEED_MORE, n


@pytest.mark.parametrize("sizes", [[1], [2], [5], [100], [37, 1, 200], [3, 16384]])
def test_captured_hello_refragmented_into_records(sizes: list[int], captured: dict[str, bytes]) -> None:
    data = records(handshake_payload(hello_from("openssl-tls13", captured)), sizes)
    result = parse_tls_sni(data)
    assert (result.state, result.host, result.consumed) == (SniffState.FOUND, SNI, len(data))


def test_fragmented_hello_truncated_at_every_byte_needs_more(captured: dict[str, bytes]) -> None:
    data = records(handshake_payload(hello_from("python-tls13", captured)), [7])
    for n in range(len(data)):
        assert parse_tls_sni(data[:n]).state is SniffState.NEED_MORE, n
    assert parse_tls_sni(data).host == SNI


def test_captured_hello_followed_by_more_data_stops_at_its_records(captured: dict[str, bytes]) -> None:
    data = hello_from("curl", captured)
    result = parse_tls_sni(data + b"\x17\x03\x03\x00\x05hello")
    assert (result.host, result.consumed) == (SNI, len(data))


@pytest.mark.parametrize(("client", "args"), [
    ("openssl", ["-noservername"]),
    ("python-ip", []),
])
def test_captured_hello_without_sni_is_found_without_host(client: str, args: list[str]) -> None:
    data = openssl_hello(*args) if client == "openssl" else python_hello("127.0.0.1")
    result = parse_tls_sni(data)
    assert (result.state, result.host, result.port) == (SniffState.FOUND, None, None)
    assert result.address is None


# ----------------------------------------------------------------------------------------------
# Hand-made ClientHellos

def test_tls13_hello_with_grease_and_key_share() -> None:
    hello = records(client_hello(tls13_extensions(b"www.example.com")))
    result = parse_tls_sni(hello)
    assert (result.state, result.host, result.port) == (SniffState.FOUND, "www.example.com", 443)


def test_grease_values_are_recognised() -> None:
    assert all(is_grease(v) for v in GREASE)
    assert not any(is_grease(v) for v in (0x0000, 0x0A0B, 0x1A0A, 0x0A1A, 0xFFFF, 0x002B))


def test_repeated_grease_extension_types_are_ignored() -> None:
    exts = [ext(GREASE[0], b""), sni_ext(b"a.example"), ext(GREASE[5], b"\x00"), ext(GREASE[0], b"x")]
    assert parse_tls_sni(records(client_hello(exts))).host == "a.example"


def test_duplicate_extension_is_malformed() -> None:
    exts = [sni_ext(b"a.example"), ext(10, vec16(u16(29))), ext(10, vec16(u16(23)))]
    assert parse_tls_sni(records(client_hello(exts))).state is SniffState.NOT_THIS


@pytest.mark.parametrize(("exts", "reason"), [
    (tls13_extensions(None), "no server_name extension"),
    (None, "no extensions"),
    ([ext(0, b"")], "empty server_name extension"),
    ([sni_ext(b"not-a-host", name_type=1)], "no host_name in server_name"),
    ([sni_ext(b"bad host")], "invalid server name"),
    ([sni_ext(b"a\x00b.example")], "invalid server name"),
    ([sni_ext(b"a..b")], "invalid server name"),
    ([sni_ext(b"")], "invalid server name"),
    ([sni_ext(b"a" * 256)], "invalid server name"),
])
def test_hello_without_usable_sni_is_found_without_host(exts: list[bytes] | None, reason: str) -> None:
    result = parse_tls_sni(records(client_hello(exts)))
    assert (result.state, result.host, result.reason) == (SniffState.FOUND, None, reason)


def test_trailing_dot_is_dropped_and_first_host_name_wins() -> None:
    assert parse_tls_sni(records(client_hello([sni_ext(b"a.example.")]))).host == "a.example"
    assert parse_tls_sni(records(client_hello([sni_ext(b"first.example", b"second.example")]))).host == "first.example"


@pytest.mark.parametrize("version", [0x0301, 0x0302, 0x0303, 0x0304])
def test_every_tls_record_version_is_classified_and_parsed(version: int) -> None:
    data = records(client_hello([sni_ext(b"v.example")]), record_version=version)
    assert classify(data) == "tls"
    assert parse_tls_sni(data).host == "v.example"


def test_later_records_may_say_ssl3_but_the_first_may_not() -> None:
    hs = client_hello([sni_ext(b"v.example")])
    later_ssl3 = records(hs[:10], record_version=0x0301) + records(hs[10:], record_version=0x0300)
    assert parse_tls_sni(later_ssl3).host == "v.example"
    assert parse_tls_sni(records(hs, record_version=0x0300)).state is SniffState.NOT_THIS
    assert classify(records(hs, record_version=0x0300)) is None
    assert classify(records(hs, record_version=0x0305)) is None


def _hello_with(**kwargs: object) -> bytes:
    return records(client_hello([sni_ext(b"a.example")], **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "why"), [
    (b"\x17\x03\x03\x00\x05hello", "application data record"),
    (b"\x16\x03\x01\x00\x00", "zero-length record"),
    (b"\x16\x03\x01\x40\x01" + bytes(16385), "record over 2^14"),
    (b"\x16\x02\x00\x00\x04\x01\x00\x00\x00", "record version 2.0"),
    (records(b"\x02" + client_hello([sni_ext(b"a.example")])[1:]), "a ServerHello"),
    (records(b"\x01\x01\x00\x00"), "handshake length over the limit"),
    (_hello_with(session_id=bytes(33)), "session id over 32"),
    (_hello_with(suites=()), "no cipher suites"),
    (_hello_with(compression=b""), "no compression methods"),
    (_hello_with(version=0x0203), "ClientHello version 2.3"),
    (records(client_hello([sni_ext(b"a.example")]) + b"\x00"), "data after the ClientHello"),
    (records(b"\x01\x00\x00\x05\x03\x03\x00\x00\x00"), "truncated random"),
])
def test_malformed_hello_is_not_tls(data: bytes, why: str) -> None:
    assert parse_tls_sni(data).state is SniffState.NOT_THIS, why


def test_a_non_handshake_record_between_fragments_is_not_tls() -> None:
    hs = client_hello([sni_ext(b"a.example")])
    data = records(hs[:20]) + b"\x14\x03\x03\x00\x01\x01" + records(hs[20:])
    assert parse_tls_sni(data).state is SniffState.NOT_THIS


# Offsets of the length fields in client_hello([sni_ext(b"a.example"), ext(16, vec16(b"\x02h2"))],
# suites=(0x1301, 0x1302)): 4-byte handshake header, version, 32-byte random, then the vectors.
LENGTH_FIELDS = {
    "session id (u8)": (38, 1, 32),
    "cipher suites (u16)": (71, 2, 4),
    "compression methods (u8)": (77, 1, 1),
    "extensions (u16)": (79, 2, 27),
    "server_name extension (u16)": (83, 2, 14),
    "server name list (u16)": (85, 2, 12),
    "host name (u16)": (88, 2, 9),
    "ALPN extension (u16)": (101, 2, 5),
}


@pytest.mark.parametrize(("field", "delta"), [
    (field, delta) for field in sorted(LENGTH_FIELDS) for delta in (1, -1, 0x100)
    if LENGTH_FIELDS[field][2] + delta < 1 << (8 * LENGTH_FIELDS[field][1])])
def test_every_length_field_is_bounds_checked(field: str, delta: int) -> None:
    """Each length field made wrong (one more, one less, far too long): refused, never read past."""
    base = bytearray(client_hello([sni_ext(b"a.example"), ext(16, vec16(b"\x02h2"))], suites=(0x1301, 0x1302)))
    assert parse_tls_sni(records(bytes(base))).host == "a.example"
    offset, size, value = LENGTH_FIELDS[field]
    assert int.from_bytes(base[offset:offset + size], "big") == value, "layout changed"
    base[offset:offset + size] = (value + delta).to_bytes(size, "big")
    assert parse_tls_sni(records(bytes(base))).state is SniffState.NOT_THIS


def test_random_corruption_never_raises(captured: dict[str, bytes]) -> None:
    rng = random.Random(20240601)
    data = hello_from("openssl-tls13", captured)
    for _ in range(3000):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        result = parse_tls_sni(bytes(bad[:rng.randint(0, len(bad))]))
        assert result.state in SniffState
        if result.host is not None:
            assert result.host.isascii() and " " not in result.host


def test_size_limit() -> None:
    big = client_hello([sni_ext(b"big.example"), ext(21, bytes(60000))])  # padding extension
    assert parse_tls_sni(records(big, [16384])).host == "big.example"
    # the same bytes in 1-byte records take over 64 KiB of records: refused, not buffered forever
    tiny_records = records(client_hello([sni_ext(b"big.example"), ext(21, bytes(12000))]), [1])
    assert len(tiny_records) > 64 * 1024
    assert parse_tls_sni(tiny_records).state is SniffState.NOT_THIS
