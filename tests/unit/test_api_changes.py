"""The web API in process (no root): routes, gost's errors, and changes applied through the runner: a
service added and deleted at runtime (its port free), a replaced chain used by new dials only."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from propertytest import FEW

from gostx.api.server import ApiServer
from gostx.chain import build_router
from gostx.config.metadata import Metadata
from gostx.config.model import APIConfig, AuthConfig, ChainConfig, Config, ConnectorConfig, HopConfig, NodeConfig
from gostx.runner import Runner

AUTH = AuthConfig(username="admin", password="pw")


def chain(name: str, addr: str) -> ChainConfig:
    node = NodeConfig(name="n", addr=addr, connector=ConnectorConfig(type="socks5"))
    return ChainConfig(name=name, hops=[HopConfig(name="h", nodes=[node])])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(scenario: Callable[[TestClient, Runner], Awaitable[None]], config: Config | None = None) -> None:
    async def main() -> None:
        cfg = config or Config()
        cfg.api = APIConfig(addr="127.0.0.1:0", path_prefix="/api", auth=AUTH)
        runner = Runner(cfg)
        api = ApiServer(cfg.api, runner)
        client = TestClient(TestServer(api.http.app))
        await client.start_server()
        try:
            await scenario(client, runner)
        finally:
            await client.close()
            await runner.stop_all()

    asyncio.run(main())


async def call(client: TestClient, method: str, path: str, body: Any = None, auth: bool = True,
               raw: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": "Basic YWRtaW46cHc="} if auth else {}  # admin:pw
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    resp = await client.request(method, path, data=data, headers=headers)
    return resp.status, await resp.text()


def test_auth_and_gosts_error_shape() -> None:
    async def scenario(client: TestClient, runner: Runner) -> None:
        assert (await call(client, "GET", "/api/config", auth=False))[0] == 401
        code, text = await call(client, "GET", "/api/config")
        assert code == 200 and json.loads(text)["api"]["pathPrefix"] == "/api"
        for raw in ("{", "null", "[]", '"x"', '{"name": {}}', '{"name": "x", "hops": [5]}', '{"hops": []}'):
            code, text = await call(client, "POST", "/api/config/chains", raw=raw)
            assert (code, json.loads(text)) == (400, {"code": 40001, "msg": "object invalid"}), raw
        assert (await call(client, "PUT", "/api/config/hops/x", {"nodes": []}))[1] == \
            '{"code": 40004, "msg": "object not found"}'
        code, text = await call(client, "POST", "/api/config/bypasses", {"name": "b", "matchers": ["*.example.com"]})
        assert code == 200 and runner.config.bypasses[0].matchers == ["*.example.com"]
        assert (await call(client, "POST", "/api/config/bypasses", {"name": "b"}))[0] == 400  # duplicated
        code, text = await call(client, "POST", "/api/config/chains", {"name": "c", "hops": [{"name": "h", "nodes": [
            {"name": "n", "addr": "127.0.0.1:1", "connector": {"type": "nope"}}]}]})
        assert (code, json.loads(text)["code"]) == (409, 40003) and runner.config.chains == []

    run(scenario)


def test_a_service_is_added_and_deleted_at_runtime() -> None:
    port = free_port()

    async def scenario(client: TestClient, runner: Runner) -> None:
        svc = {"name": "fwd", "addr": f"127.0.0.1:{port}", "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
               "forwarder": {"nodes": [{"name": "t", "addr": "127.0.0.1:1"}]}}
        assert await call(client, "POST", "/api/config/services", svc) == (200, '{"msg": "OK"}')
        _, writer = await asyncio.open_connection("127.0.0.1", port)  # it listens
        writer.close()
        assert [s.name for s in runner.started] == ["fwd"]
        busy = {**svc, "name": "other"}  # same port: cannot start, nothing is left of it
        assert (await call(client, "POST", "/api/config/services", busy))[0] == 409
        assert [s.name for s in runner.config.services] == ["fwd"]
        assert await call(client, "DELETE", "/api/config/services/fwd") == (200, '{"msg": "OK"}')
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # the port is free again
        assert runner.config.services == [] and runner.started == []

    run(scenario)


def test_a_replaced_chain_is_used_by_new_dials_only() -> None:
    config = Config(chains=[chain("c1", "10.0.0.1:1080")])

    async def scenario(client: TestClient, runner: Runner) -> None:
        router = build_router(config.chains[0], config, Metadata({}))
        before = router.route("example.com:443")
        assert [n.addr for n in before] == ["10.0.0.1:1080"]
        body = {"hops": [{"name": "h", "nodes": [{"name": "n", "addr": "10.0.0.2:1080",
                                                  "connector": {"type": "socks5"}}]}]}
        assert await call(client, "PUT", "/api/config/chains/c1", body) == (200, '{"msg": "OK"}')
        assert [n.addr for n in router.route("example.com:443")] == ["10.0.0.2:1080"]
        assert before[0].addr == "10.0.0.1:1080"  # a route already taken is not touched
        assert await call(client, "DELETE", "/api/config/chains/c1") == (200, '{"msg": "OK"}')
        assert runner.config.chains == []

    run(scenario, config)


# ---- hostile bodies: whatever JSON (or not) comes, the answer is gost's shape, never a 500 -------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["name", "hops", "nodes", "addr", "connector", "dialer", "type", "matchers",
                                         "whitelist", "metadata", "selector", "bypass", "file", "x"]),
                        inner, max_size=5), max_leaves=12)


@FEW
@given(kind=st.sampled_from(["chains", "hops", "bypasses"]), method=st.sampled_from(["POST", "PUT"]),
       body=JSON | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
def test_any_body_gets_gosts_answer(kind: str, method: str, body: Any) -> None:
    async def scenario(client: TestClient, runner: Runner) -> None:
        raw = body if isinstance(body, str) else json.dumps(body)
        path = f"/api/config/{kind}" + ("/x" if method == "PUT" else "")
        code, text = await call(client, method, path, raw=raw)
        answer = json.loads(text)
        assert code in (200, 400, 409), (code, text)
        assert answer == {"msg": "OK"} or set(answer) == {"code", "msg"}

    run(scenario)


def test_named_authers_are_refused_not_ignored() -> None:
    import pytest

    from gostx.config.model import MetricsConfig
    from gostx.errors import GostError
    from gostx.metrics.server import MetricsServer

    with pytest.raises(GostError, match="api: named authers are not supported"):
        ApiServer(APIConfig(addr="127.0.0.1:0", auther="a1"), Runner(Config()))
    with pytest.raises(GostError, match="metrics: named authers are not supported"):
        MetricsServer(MetricsConfig(addr="127.0.0.1:0", auther="a1"))
    assert MetricsServer(MetricsConfig(addr="127.0.0.1:0", path="m")).path == "/m"
