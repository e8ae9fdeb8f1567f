"""The web API's HTTP side: gost's routes under `pathPrefix`, basic auth on /config, gost's error shape.

aiohttp parses HTTP and JSON bodies are read with the standard json module; a body that is not JSON, or
not the object the route wants, is gost's 40001 "object invalid", never a traceback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from gostx.api import changes, errors
from gostx.config.dump import dump_config
from gostx.config.model import APIConfig
from gostx.errors import GostError
from gostx.httpd import HttpServer, basic_auth_ok, unauthorized
from gostx.log import get_logger

if TYPE_CHECKING:
    from gostx.runner import Runner

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiServer:
    def __init__(self, config: APIConfig, runner: Runner) -> None:
        if config.auther:  # never serve unauthenticated what the config meant to protect
            raise GostError("api: named authers are not supported yet (use auth: {username, password})")
        self.config = config
        self.runner = runner
        self.log = get_logger(kind="api")
        self.prefix = "/" + config.path_prefix.strip("/") if config.path_prefix.strip("/") else ""
        app = web.Application(middlewares=[self._middleware])
        base = f"{self.prefix}/config"
        app.router.add_get(base, self.get_config)
        app.router.add_post(base, self.save_config)
        for kind in changes.KINDS:
            app.router.add_post(f"{base}/{kind}", self._create(kind))
            app.router.add_put(f"{base}/{kind}/{{name}}", self._replace(kind))
            app.router.add_delete(f"{base}/{kind}/{{name}}", self._delete(kind))
        self.http = HttpServer(app, config.addr, "api")

    async def start(self) -> None:
        await self.http.start()
        self.log.info(f"api service on {self.http.bound}{self.prefix}", extra={"address": self.http.bound})

    async def close(self) -> None:
        await self.http.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.monotonic()
        if request.path.startswith(f"{self.prefix}/config") and not basic_auth_ok(request, self.config.auth):
            response: web.StreamResponse = unauthorized()
        else:
            try:
                response = await handler(request)
            except errors.ApiError as exc:
                response = exc.response()
            except web.HTTPException as exc:
                response = exc
            except Exception as exc:  # one log line and a 500, never a traceback to the client
                self.log.error(f"{request.method} {request.path}: internal error: {type(exc).__name__}: {exc}",
                               exc_info=exc)
                response = web.Response(status=500, text=json.dumps({"code": 500, "msg": "internal error"}),
                                        content_type="application/json")
        if self.config.accesslog:
            duration = time.monotonic() - start
            self.log.info(f"| {response.status:3d} | {duration * 1000:10.3f}ms | {request.remote or '-':>15} | "
                          f"{request.method:<7} {request.path_qs}",
                          extra={"method": request.method, "uri": request.path_qs, "code": response.status,
                                 "client": request.remote or "", "duration": f"{duration:.6f}s"})
        return response

    async def get_config(self, request: web.Request) -> web.Response:
        fmt = "yaml" if request.query.get("format") == "yaml" else "json"
        text = dump_config(self.runner.config, fmt)
        return web.Response(text=text, content_type="text/x-yaml" if fmt == "yaml" else "application/json")

    async def save_config(self, request: web.Request) -> web.Response:
        """gost's POST /config: write the running config to `path` (default gost.yaml, or gost.json with
        format=json, in the working directory)."""
        fmt = "json" if request.query.get("format") == "json" else "yaml"
        path = request.query.get("path") or f"gost.{fmt}"
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(dump_config(self.runner.config, fmt))
        except OSError as exc:
            raise errors.save_failed(f"create file: {exc.strerror or exc}") from None
        self.log.info(f"config saved to {os.path.abspath(path)}")
        return errors.ok()

    @staticmethod
    async def _body(request: web.Request) -> object:
        try:
            return json.loads(await request.read() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise errors.invalid() from None

    def _create(self, kind: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            obj = changes.parse_object(kind, await self._body(request))
            await changes.create(self.runner, kind, obj)
            return errors.ok()
        return handle

    def _replace(self, kind: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            body = await self._body(request)
            if isinstance(body, dict) and not body.get("name"):
                body = {**body, "name": request.match_info["name"]}
            obj = changes.parse_object(kind, body)
            await changes.replace(self.runner, kind, request.match_info["name"], obj)
            return errors.ok()
        return handle

    def _delete(self, kind: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            await changes.delete(self.runner, kind, request.match_info["name"])
            return errors.ok()
        return handle
