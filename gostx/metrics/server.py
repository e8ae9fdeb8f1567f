"""`-metrics` / YAML `metrics:`: the Prometheus endpoint (gost's `path`, default /metrics; basic auth).

The exposition is prometheus_client's (generate_latest over a registry holding one collector that reads
every registered source). A scrape runs on the control loop: one C call per source copies its counters
out; the data plane never waits for it.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gostx.config.model import MetricsConfig
from gostx.errors import GostError
from gostx.httpd import HttpServer, basic_auth_ok, unauthorized
from gostx.log import get_logger
from gostx.metrics.registry import SinkCollector

DEFAULT_PATH = "/metrics"


def make_registry() -> CollectorRegistry:
    # gostx's sources must be imported for their process-wide registrations
    import gostx.metrics.counters
    import gostx.metrics.sources  # noqa: F401

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SinkCollector())
    return registry


def scrape(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


class MetricsServer:
    def __init__(self, config: MetricsConfig) -> None:
        if config.auther:  # never serve unauthenticated what the config meant to protect
            raise GostError("metrics: named authers are not supported yet (use auth: {username, password})")
        self.config = config
        self.path = "/" + (config.path or DEFAULT_PATH).lstrip("/")
        self.registry = make_registry()
        self.log = get_logger(kind="metrics")
        app = web.Application()
        app.router.add_get(self.path, self.handle)
        self.http = HttpServer(app, config.addr, "metrics")
        self.last_scrape_seconds = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        if not basic_auth_ok(request, self.config.auth):
            return unauthorized()
        start = time.perf_counter()
        body = scrape(self.registry)
        self.last_scrape_seconds = time.perf_counter() - start
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        await self.http.start()
        self.log.info(f"metrics service on {self.http.bound}{self.path}",
                      extra={"address": self.http.bound, "path": self.path})

    async def close(self) -> None:
        await self.http.close()
