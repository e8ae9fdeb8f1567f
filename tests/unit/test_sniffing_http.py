"""HTTP request Host: requests captured from curl on this machine (every method gost detects, proxy
absolute-form, CONNECT) and hand-made edge cases; plus gost's 5-byte classifier."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from gostx.sniffing import SniffState, classify, parse_http_host
from gostx.sniffing.http import MAX_HTTP_HEAD_BYTES
from gostx.testing.capture import FirstBytesServer

HOST = "x.test"
REPLY = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"


def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("curl is not installed (make deps installs it)")
        pytest.skip("curl is not installed")
    return path


def head_complete(data: bytes) -> bool:
    return b"\r\n\r\n" in data


def curl_request(*args: str, url_path: str = "/p?q=1", proxy: bool = False, target: str = "") -> bytes:
    with FirstBytesServer(enough=head_complete, reply=REPLY) as server:
        port = server.port
        if proxy:
            cmd = [curl(), "-s", "--max-time", "5", "-x", f"http://127.0.0.1:{port}", *args, target]
        else:
            cmd = [curl(), "-s", "--max-time", "5", "--resolve", f"{HOST}:{port}:127.0.0.1", *args,
                   f"http://{HOST}:{port}{url_path}"]
        subprocess.run(cmd, capture_output=True, timeout=20, check=False)
        data = server.captured()
    assert head_complete(data), data
    return data


@pytest.mark.parametrize(("method", "args"), [
    ("GET", []),
    ("POST", ["-d", "a=1"]),
    ("PUT", ["-X", "PUT", "-d", "x"]),
    ("DELETE", ["-X", "DELETE"]),
    ("OPTIONS", ["-X", "OPTIONS"]),
    ("PATCH", ["-X", "PATCH", "-d", "y"]),
    ("HEAD", ["-I"]),
    ("TRACE", ["-X", "TRACE"]),
])
def test_curl_request_gives_host_and_port(method: str, args: list[str]) -> None:
    data = curl_request(*args)
    assert data.startswith(method.encode() + b" /p?q=1 HTTP/1.1\r\n")
    assert classify(data) == "http"
    port = int(data.split(b"\r\nHost: x.test:", 1)[1].split(b"\r\n", 1)[0])
    result = parse_http_host(data)
    assert (result.state, result.host, result.port) == (SniffState.FOUND, HOST, port)
    assert result.consumed == data.index(b"\r\n\r\n") + 4


def test_curl_request_with_a_body_stops_at_the_head() -> None:
    data = curl_request("-d", "k=v&z=2")
    result = parse_http_host(data)
    assert result.host == HOST and data[result.consumed:] in (b"", b"k=v&z=2")


def test_curl_through_a_proxy_sends_absolute_form() -> None:
    data = curl_request(proxy=True, target="http://Y.Example:8081/path")
    assert data.startswith(b"GET http://Y.Example:8081/path HTTP/1.1\r\n")
    result = parse_http_host(data)
    assert (result.host, result.port) == ("Y.Example", 8081)


def test_curl_proxy_tunnel_sends_connect() -> None:
    data = curl_request("-p", "-k", proxy=True, target="https://tunnel.example:8443/")
    assert data.startswith(b"CONNECT tunnel.example:8443 HTTP/1.1\r\n")
    assert classify(data) == "http"
    result = parse_http_host(data)
    assert (result.host, result.port, result.address) == ("tunnel.example", 8443, "tunnel.example:8443")


def test_curl_request_truncated_at_every_byte_needs_more() -> None:
    data = curl_request()
    for n in range(len(data) - 1):  # the last byte completes the empty line
        assert parse_http_host(data[:n]).state is SniffState.NEED_MORE, n
    assert parse_http_host(data).state is SniffState.FOUND


# ----------------------------------------------------------------------------------------------
# Hand-made requests

@pytest.mark.parametrize(("request_head", "host", "port"), [
    (b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "example.com", 80),
    (b"GET / HTTP/1.1\r\nhOsT:   example.com:8080  \r\n\r\n", "example.com", 8080),
    (b"GET / HTTP/1.1\nHost: lf.example\n\n", "lf.example", 80),
    (b"GET / HTTP/1.0\r\nHost: [2001:db8::1]:8080\r\n\r\n", "2001:db8::1", 8080),
    (b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", "::1", 80),
    (b"GET / HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n", "10.1.2.3", 80),
    (b"GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n", "a.example", 80),
    (b"GET / HTTP/1.1\r\nX-A: 1\r\n  folded\r\nHost: b.example\r\n\r\n", "b.example", 80),
    (b"GET http://abs.example/x HTTP/1.1\r\nHost: other.example\r\n\r\n", "abs.example", 80),
    (b"GET http://user:pw@abs.example:81?x HTTP/1.1\r\n\r\n", "abs.example", 81),
    (b"CONNECT c.example:443 HTTP/1.1\r\n\r\n", "c.example", 443),
    (b"OPTIONS * HTTP/1.1\r\nHost: o.example\r\n\r\n", "o.example", 80),
])
def test_host_and_port(request_head: bytes, host: str, port: int) -> None:
    result = parse_http_host(request_head)
    assert (result.state, result.host, result.port, result.consumed) == (
        SniffState.FOUND, host, port, len(request_head))


@pytest.mark.parametrize(("request_head", "reason"), [
    (b"GET / HTTP/1.0\r\n\r\n", "no host in the request"),
    (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", "no host in the request"),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/2 preface"),
])
def test_request_without_host_is_found_without_host(request_head: bytes, reason: str) -> None:
    result = parse_http_host(request_head)
    assert (result.state, result.host, result.port, result.reason) == (SniffState.FOUND, None, None, reason)


@pytest.mark.parametrize(("request_head", "why"), [
    (b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", "several Host headers"),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "space in the host"),
    (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "slash in the host"),
    (b"GET / HTTP/1.1\r\nHost: a.example:http\r\n\r\n", "named port"),
    (b"GET / HTTP/1.1\r\nHost: a.example:65536\r\n\r\n", "port out of range"),
    (b"GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", "IPv6 without brackets"),
    (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "unclosed bracket"),
    (b"GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", "space before the colon"),
    (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", "header line without a colon"),
    (b"GET / HTTP/1.1\r\n Host: a.example\r\n\r\n", "continuation before any header"),
    (b"GET / HTTP/1.1\r\nX: a\x00b\r\nHost: a.example\r\n\r\n", "NUL in a value"),
    (b"GET / HTTP/2.0\r\nHost: a.example\r\n\r\n", "HTTP/2.0 request line"),
    (b"GET / FTP/1.0\r\nHost: a.example\r\n\r\n", "not HTTP"),
    (b"GET /\r\nHost: a.example\r\n\r\n", "HTTP/0.9 style"),
    (b"GET example.com HTTP/1.1\r\n\r\n", "target without scheme or slash"),
    (b"G(T / HTTP/1.1\r\nHost: a.example\r\n\r\n", "bad method"),
    (b"GET \x01 HTTP/1.1\r\nHost: a\r\n", "control byte in the request line"),
])
def test_malformed_request_is_not_http(request_head: bytes, why: str) -> None:
    assert parse_http_host(request_head).state is SniffState.NOT_THIS, why


@pytest.mark.parametrize("start", [b"GET / FTP/1.0\r\n", b"GET /\r\n", b"GET  / HTTP/1.1\r\nHost: a"])
def test_bad_request_line_is_refused_before_the_head_ends(start: bytes) -> None:
    assert parse_http_host(start).state is SniffState.NOT_THIS


def test_head_size_limit() -> None:
    start = b"GET / HTTP/1.1\r\nHost: a.example\r\nCookie: "
    assert parse_http_host(start + b"c" * 1000).state is SniffState.NEED_MORE
    assert parse_http_host(start + b"c" * MAX_HTTP_HEAD_BYTES).state is SniffState.NOT_THIS
    fits = start + b"c" * (MAX_HTTP_HEAD_BYTES - len(start) - 4) + b"\r\n\r\n"
    assert parse_http_host(fits).host == "a.example"


# ----------------------------------------------------------------------------------------------
# gost's classifier (X:internal/util/sniffing/sniff.go)

@pytest.mark.parametrize(("first", "proto"), [
    (b"GET /", "http"), (b"GETXY", "http"), (b"POST ", "http"), (b"PUT /", "http"),
    (b"DELET", "http"), (b"OPTIO", "http"), (b"PATCH", "http"), (b"HEAD ", "http"),
    (b"CONNE", "http"), (b"TRACE", "http"), (b"PRI *", "http"),
    (b"get /", None), (b"DELE ", None), (b"PATC ", None), (b"PRI  ", None), (b"GE", None),
    (b"\x16\x03\x01\x02\x00", "tls"), (b"\x16\x03\x04\x00\x10", "tls"),
    (b"\x16\x03\x00\x00\x10", None), (b"\x16\x03\x05\x00\x10", None), (b"\x17\x03\x03\x00\x10", None),
    (b"SSH-2.0-OpenSSH", "ssh"), (b"SSH-1", None), (b"", None), (b"\x16\x03\x01", None),
    (b"220 smtp.example ESMTP", None),
])
def test_classify(first: bytes, proto: str | None) -> None:
    assert classify(first) == proto
