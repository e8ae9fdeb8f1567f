"""Go's `net/url` and `net.SplitHostPort`, as far as gost's command line depends on them.

gost turns `-L`/`-F` values into URLs with Go's `url.Parse`; which strings parse, how the userinfo,
host, path and query come out, and how `Hostname()`/`EscapedPath()`/`Query()` read them decides the
config. This module reproduces that behaviour (written from the Go documentation and RFC 3986), with
one deliberate difference: a query part that Go would silently drop (a bad %-escape, a `;`) is an
error here, so the user learns about it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

_HEX = set(string.hexdigits)
_ALNUM = set(string.ascii_letters + string.digits)
_HOST_OK = _ALNUM | set("-_.~!$&'()*+,;=:[]<>\"")
_USERINFO_OK = _ALNUM | set("-._:~!$&'()*+,;=%@")
_PATH_UNRESERVED = _ALNUM | set("-_.~$&+,/:;=@")
_PATH_VALID_EXTRA = set("!$&'()*+,;=:@[]%")


class URLError(ValueError):
    """A string that Go's url.Parse (or net.SplitHostPort) would reject; the message says why."""


def _unescape(text: str, *, query: bool = False, host: bool = False) -> str:
    out = bytearray()
    i = 0
    raw = text.encode("utf-8", "surrogateescape")
    while i < len(raw):
        c = raw[i]
        if c == 0x25:  # '%'
            seq = raw[i:i + 3]
            if len(seq) < 3 or chr(seq[1]) not in _HEX or chr(seq[2]) not in _HEX:
                shown = seq.decode("utf-8", "replace")
                raise URLError(f"invalid URL escape {shown!r}")
            out.append(int(seq[1:3], 16))
            i += 3
            continue
        if query and c == 0x2B:  # '+'
            out.append(0x20)
        elif host and c < 0x80 and chr(c) not in _HOST_OK:
            raise URLError(f"invalid character {chr(c)!r} in host name")
        else:
            out.append(c)
        i += 1
    return out.decode("utf-8", "replace")


def _valid_optional_port(port: str) -> bool:
    if port == "":
        return True
    return port[0] == ":" and all(ch in string.digits for ch in port[1:])


def _parse_host(host: str) -> str:
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0:
            raise URLError("missing ']' in host")
        if not _valid_optional_port(host[end + 1:]):
            raise URLError(f"invalid port {host[end + 1:]!r} after host")
    else:
        colon = host.rfind(":")
        if colon >= 0 and not _valid_optional_port(host[colon:]):
            raise URLError(f"invalid port {host[colon:]!r} after host")
    return _unescape(host, host=True)


def _escape_path(path: str) -> str:
    out = []
    for byte in path.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        out.append(ch if byte < 0x80 and ch in _PATH_UNRESERVED else f"%{byte:02X}")
    return "".join(out)


def _valid_encoded_path(raw: str) -> bool:
    return all(ch in _PATH_UNRESERVED or ch in _PATH_VALID_EXTRA for ch in raw)


@dataclass
class GoURL:
    scheme: str = ""
    opaque: str = ""
    username: str | None = None  # None: no userinfo at all
    password: str | None = None  # None: userinfo without ':'
    host: str = ""
    path: str = ""  # unescaped
    raw_path: str = ""  # the path as written
    raw_query: str = ""
    fragment: str = ""

    @property
    def has_user(self) -> bool:
        return self.username is not None

    def hostname(self) -> str:
        """Go's URL.Hostname(): the host without a valid ":port", brackets removed."""
        host = self.host
        colon = host.rfind(":")
        if colon >= 0 and _valid_optional_port(host[colon:]):
            host = host[:colon]
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return host

    def escaped_path(self) -> str:
        """Go's URL.EscapedPath(): the path as written when it is validly encoded."""
        if _valid_encoded_path(self.raw_path):
            return self.raw_path
        return _escape_path(self.path)

    def query(self) -> dict[str, str]:
        """Go's URL.Query() keeping the first value of each key, in order of appearance.

        Keys are kept as written (case-sensitive). Unlike Go, a pair that Go would drop
        (bad %-escape, a ';') raises URLError.
        """
        out: dict[str, str] = {}
        for pair in self.raw_query.split("&"):
            if ";" in pair:
                raise URLError(f"invalid semicolon in query {pair!r} (separate parameters with '&')")
            if pair == "":
                continue
            key, _, value = pair.partition("=")
            key = _unescape(key, query=True)
            value = _unescape(value, query=True)
            out.setdefault(key, value)
        return out


def _get_scheme(raw: str) -> tuple[str, str]:
    for i, ch in enumerate(raw):
        if ch.isascii() and ch.isalpha():
            continue
        if ch.isascii() and (ch.isdigit() or ch in "+-."):
            if i == 0:
                return "", raw
            continue
        if ch == ":":
            if i == 0:
                raise URLError("missing protocol scheme")
            return raw[:i], raw[i + 1:]
        return "", raw
    return "", raw


def parse_url(raw: str) -> GoURL:
    """Go's url.Parse(raw). Raises URLError."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise URLError("invalid control character in URL")
    rest, sep, frag = raw.partition("#")
    u = GoURL()
    if sep:
        u.fragment = _unescape(frag)
    scheme, rest = _get_scheme(rest)
    u.scheme = scheme.lower()
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest, _, u.raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if u.scheme:
            u.opaque = rest
            return u
        first = rest.split("/", 1)[0]
        if ":" in first:
            raise URLError("first path segment in URL cannot contain colon")
    if (u.scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        rest = slash + tail
        at = authority.rfind("@")
        u.host = _parse_host(authority[at + 1:] if at >= 0 else authority)
        if at >= 0:
            userinfo = authority[:at]
            if any(ch not in _USERINFO_OK for ch in userinfo):
                raise URLError("invalid userinfo")
            if ":" in userinfo:
                user, _, password = userinfo.partition(":")
                u.username, u.password = _unescape(user), _unescape(password)
            else:
                u.username = _unescape(userinfo)
    u.path = _unescape(rest)
    u.raw_path = rest
    return u


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's net.SplitHostPort. Raises URLError."""
    colon = hostport.rfind(":")
    if colon < 0:
        raise URLError("missing port in address")
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise URLError("missing ']' in address")
        if end + 1 == len(hostport):
            raise URLError("missing port in address")
        if end + 1 != colon:
            if hostport[end + 1] == ":":
                raise URLError("too many colons in address")
            raise URLError("missing port in address")
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:colon]
        if ":" in host:
            raise URLError("too many colons in address")
    if "[" in hostport[j:]:
        raise URLError("unexpected '[' in address")
    if "]" in hostport[k:]:
        raise URLError("unexpected ']' in address")
    return host, hostport[colon + 1:]


def join_host_port(host: str, port: str) -> str:
    """Go's net.JoinHostPort."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
