"""Property tests (hypothesis) of the proxy servers themselves: generated and mutated client bytes go
through the real socks5, http, relay and auto handlers (`handle`, as the accept loop calls it) over an
in-memory stream, with every dial refused. What may escape `handle` is what the accept loop logs as a
plain connection error (ConnectionError, TimeoutError, OSError, GostError); anything else is the
"internal error" a client must never be able to cause. Whatever the server wrote must be the start of a
well-formed reply of its protocol."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from propertytest import FEW, MemStream, mutated, run
from test_properties_wire import HTTP_VALID, VALID_RELAY, VALID_SOCKS

from gostx.config.cmd import build_config
from gostx.errors import GostError
from gostx.handler.proxy import ProxyHandler
from gostx.plugins import load_builtin_plugins
from gostx.service import Service
from tests.unit.proxytest import captured_logs

_handlers: dict[str, ProxyHandler] = {}


async def _refuse(network: str, address: str, key: str = "") -> Any:
    """A dial that fails as a real one would: getaddrinfo encodes the name first (a UnicodeError for a
    name IDNA refuses), then the connection is refused."""
    address.rpartition(":")[0].strip("[]").encode("idna")
    raise ConnectionError(f"dial {network} {address}: refused (test)")


def handler(url: str) -> ProxyHandler:
    if url not in _handlers:
        load_builtin_plugins()
        cfg = build_config([url], [])
        service = Service(cfg.services[0], cfg)
        run(service.handler.init())
        h = service.handler
        assert isinstance(h, ProxyHandler)
        for part in (h, getattr(h, "socks5", None), getattr(h, "http", None)):
            if part is not None:
                part.router.dial = _refuse  # type: ignore[method-assign]
        _handlers[url] = h
    return _handlers[url]


@pytest.fixture(autouse=True, scope="module")
def _quiet():  # type: ignore[no-untyped-def]
    with captured_logs():
        yield


def serve(url: str, data: bytes) -> bytes:
    stream = MemStream(data, chunk=13)
    try:
        run(handler(url).handle(stream, "192.0.2.1:4000"))
    except (ConnectionError, TimeoutError, OSError, GostError):
        pass
    return bytes(stream.written)


SOCKS_CLIENT = st.builds(lambda methods, req: bytes([5, len(methods)]) + methods + req,
                         st.sampled_from([b"\x00", b"\x02", b"\x00\x02", b"\x01"]), VALID_SOCKS)


@FEW
@given(st.one_of(st.binary(max_size=200), mutated(SOCKS_CLIENT)))
@example(b"\x05\x01\x00\x05\x01\x00\x03\x02\xff\xfe\x00\x50")
def test_socks5_server(data: bytes) -> None:
    out = serve("socks5://127.0.0.1:1?notls=true", data)
    if out:
        assert out[:1] == b"\x05"
        if len(out) > 2:
            assert out[2:4] in (b"\x05\x01", b"\x05\x02", b"\x05\x03", b"\x05\x04", b"\x05\x07", b"\x05\x08"), out


@FEW
@given(st.one_of(st.binary(max_size=200), mutated(HTTP_VALID)))
@example(b"GET http://[::1/ HTTP/1.1\r\n\r\n")
def test_http_server(data: bytes) -> None:
    out = serve("http://127.0.0.1:1", data)
    if out:
        assert out.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 431 ", b"HTTP/1.1 503 ")), out[:40]


@FEW
@given(st.one_of(st.binary(max_size=200), mutated(VALID_RELAY)))
def test_relay_server(data: bytes) -> None:
    out = serve("relay://127.0.0.1:1", data)
    if out:
        assert out[:1] == b"\x01" and out[1] in (1, 3, 5, 7) and len(out) == 4, out


@FEW
@given(st.one_of(st.binary(max_size=200), mutated(SOCKS_CLIENT), mutated(HTTP_VALID)))
def test_auto_server(data: bytes) -> None:
    out = serve("auto://127.0.0.1:1?notls=true", data)
    assert not out or out[:1] == b"\x05" or out.startswith(b"HTTP/1.1 "), out[:40]
