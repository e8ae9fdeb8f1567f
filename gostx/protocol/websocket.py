"""The WebSocket opening handshake (RFC 6455 section 4) as gost's ws/wss dialer and listener do it
(gorilla/websocket v1.5.3).

Client request (gorilla's, in Go's header order):
    GET <path> HTTP/1.1 | Host | User-Agent: Go-http-client/1.1 | Connection: Upgrade |
    Sec-WebSocket-Key: <16 random bytes, base64> | Sec-WebSocket-Version: 13 | Upgrade: websocket | <extra>
Server answer: `101 Switching Protocols` with Upgrade, Connection and Sec-WebSocket-Accept =
base64(SHA-1(key + GUID)) (+ configured headers). A request for another path gets Go's 404; a request
that is not a WebSocket upgrade gets 400, as gorilla answers.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field

from gostx.net.stream import Stream
from gostx.protocol.http import Head, HttpError, parse_head

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 64 * 1024
USER_AGENT = "Go-http-client/1.1"


class HandshakeError(ConnectionError):
    """A failed opening handshake; `status` is the HTTP status a server answers with (0: none)."""

    def __init__(self, message: str, status: int = 0, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


async def read_head(stream: Stream) -> tuple[bytes, bytes]:
    """(the head up to and including the blank line, the bytes read after it). The head is empty when the
    stream ended before any byte; HandshakeError when it ends inside the head or the head is too long."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            return buf[:end + 4], buf[end + 4:]
        if len(buf) > MAX_HEAD:
            raise HandshakeError("websocket: HTTP head too large", 431)
        data = await stream.read(8192)
        if not data:
            if not buf:
                return b"", b""
            raise HandshakeError("websocket: connection closed inside the HTTP head")
        buf += data


def _has_token(value: str, token: str) -> bool:
    return any(part.strip().lower() == token for part in value.split(","))


@dataclass
class ClientHandshake:
    path: str = "/ws"
    host: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    key: str = field(default_factory=new_key)

    def request(self) -> bytes:
        host = self.host
        extra = []
        for name, value in self.headers:
            if name.lower() == "host":
                host = value  # a Host entry in `header` wins, as in gorilla
            else:
                extra.append((name, value))
        head = Head(f"GET {self.path} HTTP/1.1", [
            ("Host", host), ("User-Agent", USER_AGENT), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key), ("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket"),
            *extra])
        return head.encode()

    def check_response(self, raw: bytes) -> None:
        if not raw:
            raise HandshakeError("websocket: server closed the connection during the handshake")
        try:
            head = parse_head(raw)
        except HttpError as exc:
            raise HandshakeError(f"websocket: bad handshake response: {exc}") from None
        parts = head.start.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "101":
            raise HandshakeError(f"websocket: bad handshake: {head.start[:80]}")
        if not _has_token(head.get("Upgrade"), "websocket") or not _has_token(head.get("Connection"), "upgrade"):
            raise HandshakeError("websocket: bad handshake: missing Upgrade/Connection headers")
        if head.get("Sec-WebSocket-Accept") != accept_key(self.key):
            raise HandshakeError("websocket: bad handshake: wrong Sec-WebSocket-Accept")


def not_found() -> bytes:
    body = b"404 page not found\n"
    return (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"X-Content-Type-Options: nosniff\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def error_response(status: int, body: str) -> bytes:
    reasons = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 426: "Upgrade Required",
               431: "Request Header Fields Too Large"}
    payload = (body + "\n").encode()
    head = Head(f"HTTP/1.1 {status} {reasons.get(status, 'Error')}", [
        ("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"),
        ("Sec-Websocket-Version", "13"), ("Connection", "close"), ("Content-Length", str(len(payload)))])
    return head.encode() + payload


def server_accept(raw: bytes, path: str, headers: list[tuple[str, str]] | None = None) -> tuple[bytes, Head]:
    """The 101 answer to a request head; HandshakeError (with the status to answer) when it is not an
    upgrade for `path`."""
    try:
        head = parse_head(raw)
    except HttpError as exc:
        raise HandshakeError(f"websocket: {exc}", 400, "Bad Request") from None
    parts = head.start.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HandshakeError(f"websocket: malformed request line {head.start[:60]!r}", 400, "Bad Request")
    target = parts[1].split("?", 1)[0]
    if target != path:
        raise HandshakeError(f"websocket: no handler for path {target[:60]!r}", 404)
    if not _has_token(head.get("Connection"), "upgrade"):
        raise HandshakeError("websocket: 'upgrade' token not found in 'Connection' header", 400,
                             "websocket: the client is not using the websocket protocol: "
                             "'upgrade' token not found in 'Connection' header")
    if not _has_token(head.get("Upgrade"), "websocket"):
        raise HandshakeError("websocket: 'websocket' token not found in 'Upgrade' header", 400,
                             "websocket: the client is not using the websocket protocol: "
                             "'websocket' token not found in 'Upgrade' header")
    if parts[0] != "GET":
        raise HandshakeError("websocket: upgrade request with method " + parts[0][:10], 405,
                             "websocket: the client is not using the websocket protocol: "
                             "request method is not GET")
    if head.get("Sec-WebSocket-Version") != "13":
        raise HandshakeError("websocket: unsupported version", 400,
                             "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header")
    key = head.get("Sec-WebSocket-Key")
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid = False
    if not valid:
        raise HandshakeError("websocket: bad Sec-WebSocket-Key", 400,
                             "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be "
                             "Base64 encoded value of 16-byte in length")
    answer = Head("HTTP/1.1 101 Switching Protocols", [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept_key(key)),
        *(headers or [])])
    return answer.encode(), head


def client_addr(head: Head, fallback: str) -> str:
    """The client as gost records it: CF-Connecting-IP, else the first X-Forwarded-For item, else
    X-Real-IP, else the connection's peer."""
    for name in ("CF-Connecting-IP", "X-Forwarded-For", "X-Real-IP"):
        value = head.get(name).split(",")[0].strip()
        if value:
            return value
    return fallback
