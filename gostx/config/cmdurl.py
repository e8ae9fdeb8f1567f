"""How gost reads one command-line URL: `Norm`, `cutHost`, the scheme split, userinfo and query.

Shared by the `-L` (`cmd_service`), `-F` (`cmd_chain`), `-api` and `-metrics` compilers.
"""

from __future__ import annotations

from typing import Any

from gostx.config.gourl import GoURL, URLError, parse_url
from gostx.config.model import AuthConfig, ConfigError


def describe_arg(flag: str, raw: str) -> str:
    """How error messages name an argument: `-L "tun://:8421?..."` (control characters escaped; a value
    longer than 200 characters cut, so a 5000-digit port stays a readable line)."""
    shown = raw if len(raw) <= 200 else raw[:200] + "..."
    shown = shown if shown.isprintable() else shown.encode("unicode_escape").decode("ascii")
    return f'{flag} "{shown}"'


def norm(raw: str, where: str) -> GoURL:
    """gost's `Norm`: trim, `auto://` when the value starts with ':' or has no scheme, Go's
    url.Parse, `https` -> `http+tls`."""
    s = raw.strip()
    if s == "":
        raise ConfigError(f"{where}: empty value")
    if s[0] == ":" or "://" not in s:
        s = "auto://" + s
    try:
        u = parse_url(s)
    except URLError as exc:
        raise ConfigError(f"{where}: malformed URL: {exc}") from None
    if u.scheme == "https":
        u.scheme = "http+tls"
    return u


def query_of(u: GoURL, where: str) -> dict[str, Any]:
    try:
        return dict(u.query())
    except URLError as exc:
        raise ConfigError(f"{where}: malformed query: {exc}") from None


def cut_host(s: str) -> tuple[str, str]:
    """gost's `cutHost`: take the host (after '://' and the last '@', up to '/' or '?') out of the
    string before url.Parse sees it, so `host:8000-8002` survives."""
    start = s.index(":") + 3
    end = len(s)
    for i in range(start, len(s)):
        if s[i] in "/?":
            end = i
            break
    at = s.rfind("@", start, end)
    if at >= 0:
        start = at + 1
    return s[start:end], s[:start] + s[end:]


def split_scheme(scheme: str) -> tuple[str, str]:
    parts = scheme.split("+")
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return "", ""


def userinfo_auth(u: GoURL) -> AuthConfig | None:
    if not u.has_user:
        return None
    return AuthConfig(username=u.username or "", password=u.password or "")
