"""The host an HTTP/1.x request asks for, read from its request head (RFC 9112 3, 3.2; gost reads
it with Go's http.ReadRequest: the absolute-form or CONNECT authority wins, else the Host header).

Lines end in LF with an optional CR, as Go's textproto reads them. The head must be complete (up to
the empty line) before the host is trusted; a head over MAX_HTTP_HEAD_BYTES, a malformed request
line or header line, a bad Host value or several Host headers is NOT_THIS: the flow then takes the
normal path with its bytes untouched. A request without any host (HTTP/1.0 origin-form, the HTTP/2
preface "PRI * HTTP/2.0") is FOUND with host None. The port is the one named, else 80.
"""

from __future__ import annotations

from gostx.addr import AddressError, check_host
from gostx.sniffing.result import SniffResult, found, need_more, not_this

HTTP_DEFAULT_PORT = 80
MAX_HTTP_HEAD_BYTES = 64 * 1024

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$&'()*+,-.:;=[]_~%")
_WS = " \t"
_DIGITS = frozenset("0123456789")
_CTL = frozenset([*range(0x20), 0x7F])
_SCHEMES_WITH_AUTHORITY = "://"


def parse_http_host(buf: bytes | bytearray | memoryview) -> SniffResult:
    """Parse the request head at the start of `buf`; NEED_MORE until its empty line has arrived."""
    data = bytes(buf[:MAX_HTTP_HEAD_BYTES])
    lines, consumed = _head_lines(data)
    if lines is None:
        if len(buf) >= MAX_HTTP_HEAD_BYTES:
            return not_this("request head over the size limit")
        first, newline, _ = data.partition(b"\n")
        first = first.rstrip(b"\r")
        if any(c in _CTL for c in first):
            return not_this("control bytes in the request line")
        if newline:  # the request line is complete: refuse a bad one now, not after the head
            parsed = _request_line(first.decode("latin-1"))
            if isinstance(parsed, SniffResult):
                return parsed
        return need_more("request head")
    request_line, header_lines = lines[0], lines[1:]
    parsed = _request_line(request_line)
    if parsed is None:
        return found(None, None, consumed, "HTTP/2 preface")
    if isinstance(parsed, SniffResult):
        return parsed
    method, target = parsed
    fields = _header_fields(header_lines)
    if isinstance(fields, SniffResult):
        return fields
    authority = _target_authority(method, target)
    if authority is None:
        return not_this(f"invalid request target {target[:64]!r}")
    if not authority:
        hosts = [value for name, value in fields if name == "host"]
        if len(hosts) > 1:
            return not_this("several Host headers")
        authority = hosts[0] if hosts else ""
    if not authority:
        return found(None, None, consumed, "no host in the request")
    hostport = _split_authority(authority)
    if hostport is None:
        return not_this(f"malformed host {authority[:64]!r}")
    host, port = hostport
    return found(host, port, consumed)


def _head_lines(data: bytes) -> tuple[list[str] | None, int]:
    """The lines of the request head (LF or CRLF endings) and its length, or (None, 0) if incomplete."""
    lines: list[str] = []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return None, 0
        line = data[pos:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        pos = nl + 1
        if not line:
            if not lines:  # an empty first line is not a request line
                return [""], pos
            return lines, pos
        lines.append(line.decode("latin-1"))


def _request_line(line: str) -> tuple[str, str] | SniffResult | None:
    """(method, target); None for the HTTP/2 preface; NOT_THIS if malformed (Go's parseRequestLine)."""
    method, sp1, rest = line.partition(" ")
    target, sp2, proto = rest.partition(" ")
    if not (sp1 and sp2) or not method or not target:
        return not_this("malformed request line")
    if not all(ord(c) in _TOKEN for c in method):
        return not_this("bad method")
    if any(ord(c) in _CTL for c in target):
        return not_this("bad request target")
    if method == "PRI" and target == "*" and proto == "HTTP/2.0":
        return None
    if len(proto) != 8 or not proto.startswith("HTTP/1.") or proto[7] not in _DIGITS:
        return not_this(f"protocol {proto[:16]!r}")
    return method, target


def _header_fields(lines: list[str]) -> list[tuple[str, str]] | SniffResult:
    """(lowercased name, value) pairs; a value folded over several lines is joined, as Go does."""
    fields: list[tuple[str, str]] = []
    for line in lines:
        if line[0] in " \t":
            if not fields:
                return not_this("continuation line before any header")
            name, value = fields[-1]
            fields[-1] = (name, (value + " " + line.strip(_WS)).strip(_WS))
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or not all(ord(c) in _TOKEN for c in name):
            return not_this("malformed header line")
        if any(ord(c) in _CTL and c != "\t" for c in value):
            return not_this("control bytes in a header value")
        fields.append((name.lower(), value.strip(_WS)))
    return fields


def _target_authority(method: str, target: str) -> str | None:
    """The authority named by the request target: '' for origin-form and '*', None if invalid."""
    if target.startswith("/") or target == "*":
        return ""
    if method == "CONNECT":
        return target
    scheme, sep, rest = target.partition(_SCHEMES_WITH_AUTHORITY)
    if not sep or not scheme or not scheme[0].isalpha():
        return None
    authority = rest
    for stop in "/?#":
        authority = authority.split(stop, 1)[0]
    return authority.rpartition("@")[2]


def _split_authority(authority: str) -> tuple[str, int] | None:
    """'host[:port]' / '[v6][:port]' -> (host, port) with port 80 by default; None if malformed."""
    if not all(ord(c) in _HOST_CHARS for c in authority):
        return None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        host, rest = authority[1:end], authority[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
        if not host or "[" in host:
            return None
    else:
        if "[" in authority or "]" in authority:
            return None
        host, _, port_text = authority.partition(":")
        if ":" in port_text or not host:
            return None
    try:  # a name getaddrinfo takes (labels of 1..63 bytes)
        check_host(host)
    except AddressError:
        return None
    if not port_text:
        return host, HTTP_DEFAULT_PORT
    if not all(c in _DIGITS for c in port_text) or len(port_text) > 5 or int(port_text) > 65535:
        return None
    return host, int(port_text)
