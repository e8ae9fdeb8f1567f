"""gost handler `http`: an HTTP proxy, `gost -L http://[user:pass@]:8080`.

CONNECT host:port -> `200 Connection established`, then the bytes are relayed (splice(2) when both ends
are plain sockets). Any other method with an absolute URI (`GET http://host/path`) is forwarded: the
request goes to host (port 80 by default) in origin form, without the Proxy-* headers, and the
connection is then relayed both ways.

Credentials: `Proxy-Authorization: Basic`; missing or wrong -> 407 with `Proxy-Authenticate: Basic
realm="gost"`. A service bypass match -> 403. A malformed request (or one naming no usable host or port)
-> 400; a head larger than 64 KiB -> 431;
a failed dial -> 503. Each closes the connection; the server keeps serving. Metadata: `readTimeout` (request
head deadline, 15s), `header` (extra response headers for CONNECT). """

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from gostx.addr import AddressError, check_host, join_host_port, split_host_port
from gostx.handler.proxy import ProxyHandler
from gostx.net.stream import Stream, pipe
from gostx.protocol.http import Head, HttpError, parse_basic_auth, parse_head, read_head, response
from gostx.registry import handlers

DEFAULT_READ_TIMEOUT = 15.0
REASONS = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
           431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def _target(head: Head) -> tuple[str, str]:
    """(method, host:port) of a proxy request; HttpError (400) when it is not one or names no usable
    host (gostx.addr.check_host) or port."""
    parts = head.start.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(f"malformed request line {head.start[:60]!r}")
    method, uri = parts[0], parts[1]
    if method == "CONNECT":
        host = uri
        if ":" not in host.rsplit("]", 1)[-1]:
            host += ":443"
        return method, _checked(host)
    try:
        url = urlsplit(uri)
        proxied = url.scheme.lower() == "http" and bool(url.hostname)
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise HttpError(f"malformed URI {uri[:60]!r}: {exc}") from None
    if not proxied:  # origin form: a request for a web server, not for a proxy
        raise HttpError(f"not a proxy request: {uri[:60]!r}")
    host = url.netloc.rsplit("@", 1)[-1]
    if ":" not in host.rsplit("]", 1)[-1]:
        host += ":80"
    return method, _checked(host)


def _checked(address: str) -> str:
    try:
        host, port = split_host_port(address)
        check_host(host)
    except AddressError as exc:
        raise HttpError(str(exc)) from None
    return join_host_port(host, port)


@handlers.register("http")
class HttpHandler(ProxyHandler):
    def parse_metadata(self) -> None:
        timeout = self.metadata.get_duration("readTimeout", default=DEFAULT_READ_TIMEOUT)
        self.read_timeout = timeout if timeout > 0 else DEFAULT_READ_TIMEOUT
        extra = self.metadata.raw("header")
        self.extra_headers = [(str(k), str(v)) for k, v in extra.items()] if isinstance(extra, dict) else []

    async def refuse(self, stream: Stream, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        await stream.write(response(status, REASONS.get(status, "Error"), headers))

    def authorized(self, head: Head) -> bool:
        if not self.credentials:
            return True
        creds = parse_basic_auth(head.get("Proxy-Authorization"))
        return creds is not None and self.credentials.check(*creds)

    async def handle(self, stream: Stream, peer: str) -> None:
        try:
            async with asyncio.timeout(self.read_timeout):
                raw = await read_head(stream)
            if not raw:
                return
            head = parse_head(raw)
            method, target = _target(head)
        except HttpError as exc:
            await self.refuse(stream, exc.status)
            self.ctx.log.debug(f"{peer}: {exc}", extra={"remote": peer})
            return
        self.handshake_done()
        if not self.authorized(head):
            await self.refuse(stream, 407, [("Proxy-Authenticate", 'Basic realm="gost"')])
            self.log_auth_failure(peer, "proxy authentication failed")
            return
        if self.rejects(target, peer):
            await self.refuse(stream, 403)
            return
        start = asyncio.get_running_loop().time()
        try:
            upstream = await self.router.dial("tcp", target)
        except ConnectionError as exc:
            await self.refuse(stream, 503)
            self.ctx.log.error(f"{peer} -> {target}: {exc}", extra={"remote": peer, "dst": target})
            return
        assert isinstance(upstream, Stream)
        if method == "CONNECT":
            await stream.write(response(200, "Connection established", [("Proxy-Agent", "gost/3.0"),
                                                                         *self.extra_headers]))
        else:
            head.remove("Proxy-Authorization", "Proxy-Connection", "Proxy-Authenticate")
            url = urlsplit(head.start.split(" ")[1])
            if url.scheme:
                path = url.path or "/"
                if url.query:
                    path += "?" + url.query
                version = head.start.split(" ")[2]
                head.start = f"{method} {path} {version}"
            await upstream.write(head.encode())
        extra = self.log_open(peer, target, method=method)
        sent, received = await pipe(stream, upstream)
        self.log_close(peer, target, extra, start, sent, received)
