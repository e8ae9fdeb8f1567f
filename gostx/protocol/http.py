"""HTTP/1.x heads for the HTTP proxy handler and connector: read one request/response head from a
stream, parse it, write one."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from gostx.net.stream import SocketStream, Stream, TransportStream

MAX_HEAD = 64 * 1024


class HttpError(ConnectionError):
    """A malformed or oversized head; `status` is what a server answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Head:
    start: str                                   # request line or status line
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return ""

    def remove(self, *names: str) -> None:
        drop = {n.lower() for n in names}
        self.headers = [(k, v) for k, v in self.headers if k.lower() not in drop]

    def encode(self) -> bytes:
        lines = [self.start, *(f"{k}: {v}" for k, v in self.headers), "", ""]
        return "\r\n".join(lines).encode("latin-1")


async def read_head(stream: Stream) -> bytes:
    """Bytes up to and including the blank line; what was read beyond it stays in the stream.
    b"" when the stream ends before any byte; HttpError when it ends mid-head or the head is too big."""
    if isinstance(stream, TransportStream):
        try:
            return await stream.reader.readuntil(b"\r\n\r\n")
        except Exception as exc:  # IncompleteReadError / LimitOverrunError
            partial = getattr(exc, "partial", b"x")
            if not partial:
                return b""
            raise HttpError("incomplete or oversized HTTP head") from None
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end > MAX_HEAD:
            raise HttpError("HTTP head too large", 431)
        if end >= 0:
            if isinstance(stream, SocketStream):
                stream.unread(buf[end + 4:])
            return buf[:end + 4]
        if len(buf) > MAX_HEAD:
            raise HttpError("HTTP head too large", 431)
        data = await stream.read(8192)
        if not data:
            if not buf:
                return b""
            raise HttpError("connection closed in the middle of an HTTP head")
        buf += data


def parse_head(raw: bytes) -> Head:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise HttpError("undecodable HTTP head") from None
    lines = text.split("\r\n")
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise HttpError(f"malformed header line {line[:40]!r}")
        headers.append((name, value.strip()))
    return Head(start, headers)


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def parse_basic_auth(value: str) -> tuple[str, str] | None:
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def response(status: int, reason: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
    hdrs = list(headers or [])
    if body or status >= 400:
        hdrs.append(("Content-Length", str(len(body))))
    head = Head(f"HTTP/1.1 {status} {reason}", hdrs)
    return head.encode() + body
