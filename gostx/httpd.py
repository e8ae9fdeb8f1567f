"""The HTTP side of `-metrics` and `-api`: aiohttp servers on the control loop (never the data plane).

aiohttp is used because gostx's control plane is one asyncio loop: its server runs there as a task,
parses HTTP itself (no hand-written parsing here) and listens on TCP or on a unix socket
(`addr: unix:///path`), so API changes can start and stop services directly. Basic auth as gost does it:
a wrong or missing user/password is answered 401.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import socket

from aiohttp import web

from gostx.addr import split_host_port
from gostx.config.model import AuthConfig
from gostx.errors import GostError


def basic_auth_ok(request: web.Request, auth: AuthConfig | None) -> bool:
    if auth is None or not (auth.username or auth.password):
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), auth.username.encode()) and \
        hmac.compare_digest(password.encode(), auth.password.encode())


def unauthorized() -> web.Response:
    return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="gost"'})


class HttpServer:
    """One aiohttp application served on `addr` (host:port, :port, or unix:///path)."""

    def __init__(self, app: web.Application, addr: str, what: str) -> None:
        self.app = app
        self.addr = addr
        self.what = what
        self.runner: web.AppRunner | None = None
        self.unix_path = ""
        self.bound = ""

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        try:
            if self.addr.startswith("unix://"):
                self.unix_path = self.addr.removeprefix("unix://")
                with contextlib.suppress(FileNotFoundError):
                    if os.path.exists(self.unix_path) and _is_socket(self.unix_path):
                        os.unlink(self.unix_path)  # a stale socket of an earlier run
                site: web.BaseSite = web.UnixSite(self.runner, self.unix_path)
                self.bound = self.addr
            else:
                host, port = split_host_port(self.addr)
                sock = _listen(host, int(port))
                site = web.SockSite(self.runner, sock)
                name = sock.getsockname()
                self.bound = f"[{name[0]}]:{name[1]}" if ":" in name[0] else f"{name[0]}:{name[1]}"
            await site.start()
        except (OSError, ValueError, GostError) as exc:
            await self.close()
            reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise GostError(f"{self.what} {self.addr}: {reason}") from None

    async def close(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
        if self.unix_path:
            with contextlib.suppress(OSError):
                os.unlink(self.unix_path)
            self.unix_path = ""


def _is_socket(path: str) -> bool:
    import stat

    return stat.S_ISSOCK(os.stat(path).st_mode)


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket as Go's net.Listen("tcp", addr): an empty host is dual-stack."""
    if host in ("", "::"):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        bind: tuple[str, int] = ("::", port)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        bind = (host, port)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(bind)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
