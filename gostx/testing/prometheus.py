"""A real Prometheus server (Debian's `prometheus`) for the metrics tests: started inside a test's
network namespace on loopback, scraping one target every second, queried through its HTTP API."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from gostx.testing.netns import Namespace, wait_until

PROMETHEUS = "prometheus"


def prometheus_unavailable_reason() -> str | None:
    return None if shutil.which(PROMETHEUS) else "needs Prometheus (apt-get install prometheus)"


@dataclass
class Prometheus:
    ns: Namespace
    port: int
    workdir: str

    def api(self, path: str) -> dict[str, Any]:
        out = self.ns.run(["curl", "-s", "-m", "5", f"http://127.0.0.1:{self.port}{path}"], check=False, timeout=10)
        try:
            return json.loads(out.stdout or "{}")  # type: ignore[no-any-return]
        except ValueError:
            return {}

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: [{"metric": {...}, "value": [ts, "v"]}, ...] ([] when there is no answer yet)."""
        from urllib.parse import quote

        data = self.api(f"/api/v1/query?query={quote(expr)}")
        return list(data.get("data", {}).get("result", [])) if data.get("status") == "success" else []

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_prometheus(ns: Namespace, target: str, port: int = 19090, metrics_path: str = "/metrics",
                     basic_auth: tuple[str, str] | None = None, timeout: float = 20.0) -> Prometheus:
    """Prometheus in ns on 127.0.0.1:port scraping `target` (host:port) every second; waits until the
    target was scraped once. Killed with the namespace's processes."""
    workdir = tempfile.mkdtemp(prefix="gostx-prom-")
    auth = ""
    if basic_auth is not None:
        auth = f"    basic_auth:\n      username: {basic_auth[0]}\n      password: {basic_auth[1]}\n"
    config = (
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: gost\n"
        f"    metrics_path: {metrics_path}\n{auth}"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    path = f"{workdir}/prometheus.yml"
    with open(path, "w", encoding="utf-8") as f:
        f.write(config)
    ns.popen([PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={workdir}/data",
              f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
    prom = Prometheus(ns, port, workdir)
    if not wait_until(lambda: prom.value('up{job="gost"}') == 1.0, timeout, interval=0.2):
        prom.close()
        raise AssertionError(f"Prometheus did not scrape {target} within {timeout} s: {prom.query('up')}")
    return prom


def wait_value(prom: Prometheus, expr: str, at_least: float, timeout: float = 10.0) -> float:
    """Poll until expr's value reaches at_least, then once more after a scrape interval (the settled
    value); returns it (or the last value seen)."""
    deadline = time.monotonic() + timeout
    value = prom.value(expr) or 0.0
    while value < at_least and time.monotonic() < deadline:
        time.sleep(0.25)
        value = prom.value(expr) or 0.0
    time.sleep(1.2)
    return prom.value(expr) or value
