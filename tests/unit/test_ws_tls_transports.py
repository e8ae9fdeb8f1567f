"""tls, ws and wss transports: the WebSocket handshake and framing on the wire (RFC 6455, gorilla's
defaults as gost uses them), TLS certificates, and every composition through real services on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import os
import socket
import ssl
import struct
import tempfile

import pytest
from relaytest import echo_tcp, free_port, gost, http_connect

from gostx import _engine

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


async def read_head(reader: asyncio.StreamReader) -> dict[str, str]:
    raw = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
    lines = raw.split("\r\n")
    fields = {"": lines[0]}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    return fields


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(opcode, masked, unmasked payload) of the next frame, parsed here from RFC 6455 5.2."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    key = await reader.readexactly(4) if b1 & 0x80 else b""
    data = await reader.readexactly(n)
    if key:
        data = bytes(c ^ key[i % 4] for i, c in enumerate(data))
    return b0 & 0x0F, bool(b1 & 0x80), data


def frame(opcode: int, payload: bytes, key: bytes | None = None, fin: bool = True) -> bytes:
    """A frame built here from RFC 6455 5.2 (not with gostx's encoder)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    mask = 0x80 if key else 0
    if len(payload) < 126:
        head += bytes([mask | len(payload)])
    elif len(payload) < 65536:
        head += bytes([mask | 126]) + struct.pack(">H", len(payload))
    else:
        head += bytes([mask | 127]) + struct.pack(">Q", len(payload))
    if key:
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


# -- the client side: what gostx's ws dialer sends ---------------------------------------------------


def test_ws_dialer_handshake_and_masked_frames() -> None:
    async def main() -> tuple[dict[str, str], tuple[int, bool, bytes]]:
        loop = asyncio.get_running_loop()
        seen: asyncio.Future[tuple[dict[str, str], tuple[int, bool, bytes]]] = loop.create_future()

        async def fake_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await read_head(reader)
            writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept_for(head['sec-websocket-key'])}\r\n\r\n").encode())
            await writer.drain()
            first = await read_frame(reader)
            seen.set_result((head, first))
            writer.write(frame(2, b"\x01\x00\x00\x00"))  # the relay OK
            await writer.drain()
            with contextlib.suppress(ConnectionError):
                await reader.read()
            writer.close()

        server = await asyncio.start_server(fake_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proxy = free_port()
        async with gost([f"http://127.0.0.1:{proxy}"], [f"relay+ws://127.0.0.1:{port}"]):
            _reader, writer = await http_connect(proxy, "example.com:80")
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await writer.drain()
            result = await asyncio.wait_for(seen, 5)
            writer.close()
        server.close()
        return result

    head, (opcode, masked, payload) = asyncio.run(main())
    assert head[""] == "GET /ws HTTP/1.1"
    assert head["host"].startswith("127.0.0.1:")  # the node address with its port
    assert head["upgrade"] == "websocket" and head["connection"] == "Upgrade"
    assert head["sec-websocket-version"] == "13"
    assert head["user-agent"] == "Go-http-client/1.1"
    assert len(base64.b64decode(head["sec-websocket-key"])) == 16
    assert opcode == 2 and masked
    assert payload.startswith(b"\x01\x01\x00\x12\x02\x00\x0f\x03\x0bexample.com\x00\x50")
    assert payload.endswith(b"GET / HTTP/1.0\r\n\r\n")


def test_ws_dialer_path_host_and_header_options() -> None:
    async def main() -> dict[str, str]:
        seen: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

        async def fake_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.set_result(await read_head(reader))
            writer.close()

        server = await asyncio.start_server(fake_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        from gostx.chain import build_router
        from gostx.config.cmd import build_config
        from gostx.config.metadata import Metadata

        config = build_config([":0"], [f"relay+ws://127.0.0.1:{port}?path=/tunnel&host=cdn.example"])
        router = build_router(config.chains[0], config, Metadata())
        with pytest.raises(ConnectionError):
            await router.dial("tcp", "example.com:80")
        server.close()
        return await seen

    head = asyncio.run(main())
    assert head[""] == "GET /tunnel HTTP/1.1"
    assert head["host"] == "cdn.example"


# -- the server side: what gostx's ws listener accepts -----------------------------------------------


async def _ws_listener_exchange(path: str, request_extra: str, frames: list[bytes], want_frames: int,
                                url_query: str = "") -> tuple[dict[str, str], list[tuple[int, bool, bytes]]]:
    port = free_port()
    async with echo_tcp() as eport, gost([f"relay+ws://127.0.0.1:{port}{url_query}"]):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: x\r\n{request_extra}"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await read_head(reader)
        got = []
        if head[""].startswith("HTTP/1.1 101"):
            assert head["sec-websocket-accept"] == accept_for(key)
            for f in frames(eport) if callable(frames) else frames:  # type: ignore[operator]
                writer.write(f)
            await writer.drain()
            try:
                for _ in range(want_frames):
                    got.append(await asyncio.wait_for(read_frame(reader), 5))
                    if b"".join(p for op, _, p in got if op == 2).endswith(b"hello"):
                        break
            except asyncio.IncompleteReadError:
                pass
        else:
            body = await asyncio.wait_for(reader.read(1000), 5)
            head["body"] = body.decode()
        writer.close()
        return head, got


UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\n"


def test_ws_listener_other_path_is_404() -> None:
    head, _ = asyncio.run(_ws_listener_exchange("/other", UPGRADE, [], 0))
    assert head[""] == "HTTP/1.1 404 Not Found"
    assert head["body"] == "404 page not found\n"


def test_ws_listener_plain_http_is_400() -> None:
    head, _ = asyncio.run(_ws_listener_exchange("/ws", "", [], 0))
    assert head[""] == "HTTP/1.1 400 Bad Request"
    assert "not using the websocket protocol" in head["body"]


def test_ws_listener_path_option() -> None:
    head, _ = asyncio.run(_ws_listener_exchange("/custom", UPGRADE, [], 0, "?path=/custom"))
    assert head[""].startswith("HTTP/1.1 101")


def test_ws_listener_fragments_ping_text_and_close() -> None:
    """A relay request split over a fragmented text message with a ping in the middle: the stream bytes
    are the payloads in order, the ping is answered, and the server's frames are unmasked binary."""
    key = b"\x11\x22\x33\x44"

    def frames(eport: int) -> list[bytes]:
        req = b"\x01\x01\x00\x0a\x02\x00\x07\x01\x7f\x00\x00\x01" + struct.pack(">H", eport)
        return [frame(1, req[:5], key, fin=False), frame(9, b"are you there", key),
                frame(0, req[5:] + b"hel", key, fin=False), frame(0, b"lo", key, fin=True)]

    head, got = asyncio.run(_ws_listener_exchange("/ws", UPGRADE, frames, 5))  # type: ignore[arg-type]
    assert head[""].startswith("HTTP/1.1 101")
    assert (0xA, False, b"are you there") in got  # the pong
    data = b"".join(p for op, masked, p in got if op == 2 and not masked)
    assert data == b"\x01\x00\x00\x00hello"


def test_ws_listener_rejects_unmasked_client_frames() -> None:
    head, got = asyncio.run(_ws_listener_exchange("/ws", UPGRADE, [frame(2, b"\x01\x01\x00\x00")], 1))
    assert head[""].startswith("HTTP/1.1 101")
    assert got and got[0][0] == 0x8 and got[0][2][:2] == struct.pack(">H", 1002)


def test_c_frame_builder_matches_the_rfc_layout() -> None:
    key = b"\x37\xfa\x21\x3d"
    assert _engine.ws_frame(b"Hello", 1, True, key) == bytes.fromhex("818537fa213d7f9f4d5158")  # RFC 6455 5.7
    big = os.urandom(70000)
    assert _engine.ws_frame(big, 2, True, key) == frame(2, big, key)
    assert _engine.ws_frame(big[:300]) == frame(2, big[:300])


# -- TLS certificates --------------------------------------------------------------------------------


def _peer_cert(port: int, ctx: ssl.SSLContext | None = None, server_name: str | None = None) -> dict:  # type: ignore[type-arg]
    if ctx is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)  # type: ignore[arg-type]
    return {"subject": cert.subject.rfc4514_string(), "key": type(cert.public_key()).__name__}


def test_tls_listener_default_certificate_is_gosts() -> None:
    async def main() -> dict:  # type: ignore[type-arg]
        port = free_port()
        async with gost([f"relay+tls://127.0.0.1:{port}"]):
            return await asyncio.to_thread(_peer_cert, port)

    cert = asyncio.run(main())
    assert cert["subject"] == "CN=gost.run,O=GOST"
    assert cert["key"] in ("ECPublicKey", "_EllipticCurvePublicKey", "EllipticCurvePublicKey")


def _make_ca_and_cert(folder: str, name: str) -> tuple[str, str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gostx test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(folder, f) for f in ("ca.pem", "cert.pem", "key.pem")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths[0], paths[1], paths[2]


async def _echo_through(server_url: str, node_url: str, payload: bytes = b"ping") -> bytes:
    port, proxy = free_port(), free_port()
    async with echo_tcp() as eport, gost([server_url.format(port=port)]), \
            gost([f"http://127.0.0.1:{proxy}"], [node_url.format(port=port)]):
        reader, writer = await http_connect(proxy, f"127.0.0.1:{eport}")
        writer.write(payload)
        await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
        writer.close()
        return got


def test_tls_certificate_options_and_secure_verification() -> None:
    with tempfile.TemporaryDirectory() as folder:
        ca, cert, key = _make_ca_and_cert(folder, "relay.test")
        server = f"relay+wss://127.0.0.1:{{port}}?certFile={cert}&keyFile={key}"
        # secure=true with the CA and the right server name: verified
        ok = asyncio.run(_echo_through(server, f"relay+wss://127.0.0.1:{{port}}?secure=true&caFile={ca}"
                                               "&serverName=relay.test"))
        assert ok == b"ping"
        # caFile without secure: the chain is checked, the name is not (gost's rule)
        assert asyncio.run(_echo_through(server, f"relay+wss://127.0.0.1:{{port}}?caFile={ca}")) == b"ping"
        # secure=true with the wrong name fails; so does secure=true against gost's self-signed default
        with pytest.raises(ConnectionError):
            asyncio.run(_echo_through(server, f"relay+wss://127.0.0.1:{{port}}?secure=true&caFile={ca}"
                                              "&serverName=other.test"))
        with pytest.raises(ConnectionError):
            asyncio.run(_echo_through("relay+wss://127.0.0.1:{port}",
                                      "relay+wss://127.0.0.1:{port}?secure=true&serverName=gost.run"))


# -- compositions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("server", "node"), [
    ("relay+wss://127.0.0.1:{port}", "relay+wss://127.0.0.1:{port}"),
    ("relay+ws://127.0.0.1:{port}", "relay+ws://127.0.0.1:{port}?nodelay=true"),
    ("relay+tls://127.0.0.1:{port}", "relay+tls://127.0.0.1:{port}"),
    ("relay://127.0.0.1:{port}", "relay://127.0.0.1:{port}"),
    ("socks5+tls://127.0.0.1:{port}", "socks5+tls://127.0.0.1:{port}"),
    ("socks5+wss://127.0.0.1:{port}?path=/s", "socks5+wss://127.0.0.1:{port}?path=/s"),
    ("http+ws://127.0.0.1:{port}", "http+ws://127.0.0.1:{port}"),
    ("http+tls://127.0.0.1:{port}", "https://127.0.0.1:{port}"),
])
def test_every_handler_composes_with_every_transport(server: str, node: str) -> None:
    payload = os.urandom(300_000)
    assert asyncio.run(_echo_through(server, node, payload)) == payload


def test_relay_over_two_wss_hops() -> None:
    """The second hop's TLS and WebSocket run inside the first hop's relay stream (memory-BIO TLS)."""
    async def main() -> bytes:
        a, b, proxy = free_port(), free_port(), free_port()
        async with echo_tcp() as eport, gost([f"relay+wss://127.0.0.1:{a}"]), \
                gost([f"relay+wss://127.0.0.1:{b}"]), \
                gost([f"http://127.0.0.1:{proxy}"], [f"relay+wss://127.0.0.1:{a}", f"relay+wss://127.0.0.1:{b}"]):
            reader, writer = await http_connect(proxy, f"127.0.0.1:{eport}")
            writer.write(b"two hops")
            await writer.drain()
            got = await asyncio.wait_for(reader.readexactly(8), 5)
            writer.close()
            return got

    assert asyncio.run(main()) == b"two hops"


def test_auto_handler_over_tls_and_ws() -> None:
    """`-L tls://` and `-L ws://` are handler auto: socks5 or http by the first byte, over the transport."""
    assert asyncio.run(_echo_through("tls://127.0.0.1:{port}", "https://127.0.0.1:{port}")) == b"ping"
    assert asyncio.run(_echo_through("ws://127.0.0.1:{port}", "socks5+ws://127.0.0.1:{port}")) == b"ping"


def test_end_of_either_side_closes_the_relay_promptly() -> None:
    """No half-close over TLS/WebSocket: when the target closes first, the client sees EOF at once (gost
    closes its WebSocket conn the same way); when the client half-closes, the connection ends too."""
    async def main(client_half_closes: bool) -> tuple[bytes, float]:
        async def target_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(8)
            writer.write(b"answer, then close")
            await writer.drain()
            writer.close()

        target = await asyncio.start_server(target_handler, "127.0.0.1", 0)
        tport = target.sockets[0].getsockname()[1]
        port, proxy = free_port(), free_port()
        async with gost([f"relay+wss://127.0.0.1:{port}"]), \
                gost([f"http://127.0.0.1:{proxy}"], [f"relay+wss://127.0.0.1:{port}"]):
            reader, writer = await http_connect(proxy, f"127.0.0.1:{tport}")
            start = asyncio.get_running_loop().time()
            writer.write(b"question")
            await writer.drain()
            if client_half_closes:
                writer.write_eof()
            got = await asyncio.wait_for(reader.read(), 15)
            elapsed = asyncio.get_running_loop().time() - start
            writer.close()
        target.close()
        return got, elapsed

    got, elapsed = asyncio.run(main(False))
    assert got == b"answer, then close" and elapsed < 3
    _, elapsed = asyncio.run(main(True))
    assert elapsed < 3
