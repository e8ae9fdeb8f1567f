"""Operating a gateway, end to end: a real Prometheus scrapes a gostx tun gateway while iperf3 runs
through it; curl drives gost's web API; `kill -USR1` logs every service. Real gost processes in network
namespaces made by the test, loopback only for the HTTP endpoints."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from gostx.testing.gost import device_up, start_gost, tunnel_ready, wait_ping
from gostx.testing.iperf import client_argv, run_client, server_argv
from gostx.testing.netns import Lab, Namespace, make_pair, wait_until
from gostx.testing.prometheus import prometheus_unavailable_reason, start_prometheus, wait_value

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

GW_TUN, CLIENT_TUN = "192.168.123.1", "192.168.123.2"
METRICS = "127.0.0.1:19100"
TUN_MTU = 8000  # big segments: the IP/TCP headers on the device are < 1% of what iperf3 counts


def test_prometheus_sees_the_bytes_iperf3_moved_through_a_tun_gateway(lab: Lab) -> None:
    if (reason := prometheus_unavailable_reason()) is not None:
        pytest.skip(reason)
    pair = make_pair(lab, mtu=9000)
    query = f"net={GW_TUN}/24&name=gx0&mtu={TUN_MTU}"
    start_gost(pair.b, ["-L", f"tun://:8421?{query}", "-metrics", f"{METRICS}?path=/m"],
               ready=lambda g: device_up("gx0")(g) and tunnel_ready(g), debug=False)
    start_gost(pair.a, ["-L", f"tun://:8421/{pair.b_ip}:8421?net={CLIENT_TUN}/24&name=gx0&mtu={TUN_MTU}"],
               ready=lambda g: device_up("gx0")(g) and tunnel_ready(g), debug=False)
    assert wait_ping(pair.a, GW_TUN), "the client cannot reach the gateway (which learns it from this)"
    assert wait_ping(pair.b, CLIENT_TUN), "the gateway cannot reach the client through the tunnel"
    pair.a.popen(server_argv())
    prom = start_prometheus(pair.b, METRICS, metrics_path="/m")
    try:
        service_in = 'gost_service_transfer_input_bytes_total{service="service-0"}'
        device_rx = 'gostx_tun_bytes_total{service="service-0",side="device",direction="rx"}'
        peer_tx = f'gostx_tun_peer_bytes_total{{service="service-0",peer="{CLIENT_TUN}",direction="tx"}}'
        # the gateway sends: its TUN device reads what iperf3 writes (gost's service input)
        assert wait_until(lambda: listening(pair.a, 5201), 5.0), "iperf3 -s did not start"
        before = {e: prom.value(e) or 0.0 for e in (service_in, device_rx, peer_tx)}
        result = json.loads(run_client(pair.b, client_argv(CLIENT_TUN, 1.0), 1.0))
        moved = float(result["end"]["sum_sent"]["bytes"])
        assert moved > 1e6, f"iperf3 moved only {moved} bytes"
        for expr in (service_in, device_rx, peer_tx):
            grown = wait_value(prom, expr, before[expr] + 0.95 * moved) - before[expr]
            assert 0.95 * moved <= grown <= 1.05 * moved, f"{expr} grew by {grown:.0f}, iperf3 moved {moved:.0f}"
        assert prom.value('gostx_tun_peers{service="service-0"}') == 1.0
        assert prom.value("gost_services") == 1.0
    finally:
        prom.close()


API = "127.0.0.1:19180"
AUTH = ("admin", "s3cret")


def curl(ns: Namespace, method: str, path: str, body: str | None = None,
         auth: tuple[str, str] | None = AUTH) -> tuple[int, str]:
    argv = ["curl", "-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}", "-X", method, f"http://{API}{path}"]
    if auth is not None:
        argv += ["-u", f"{auth[0]}:{auth[1]}"]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", body]
    out = ns.run(argv, check=False, timeout=20).stdout
    text, _, code = out.rpartition("\n")
    return int(code or 0), text


def listening(ns: Namespace, port: int) -> bool:
    return f":{port} " in ns.run(["ss", "-Hltn"], check=False).stdout


def test_api_adds_and_deletes_a_forward_service_at_runtime(lab: Lab) -> None:
    ns = lab.namespace("api")
    echo = ns.popen(["python3", "-c", (
        "import socket\n"
        "s = socket.create_server(('127.0.0.1', 19200))\n"
        "while True:\n"
        "    c, _ = s.accept(); c.sendall(c.recv(100).upper()); c.close()\n")])
    gost = start_gost(ns, ["-api", f"{AUTH[0]}:{AUTH[1]}@{API}?pathPrefix=/api&accesslog=true",
                           "-L", "udp://127.0.0.1:19300/127.0.0.1:19301"],
                      ready=lambda g: any("api service" in str(r.get("msg")) for r in g.log_records()) and
                      any("listening" in str(r.get("msg")) for r in g.log_records()))
    assert echo.poll() is None
    assert curl(ns, "GET", "/api/config", auth=("admin", "wrong"))[0] == 401
    assert curl(ns, "GET", "/api/config", auth=None)[0] == 401
    code, text = curl(ns, "GET", "/api/config")
    assert code == 200 and json.loads(text)["services"][0]["addr"] == "127.0.0.1:19300"

    service = {"name": "fwd", "addr": "127.0.0.1:19201", "handler": {"type": "tcp"},
               "listener": {"type": "tcp"}, "forwarder": {"nodes": [{"name": "echo", "addr": "127.0.0.1:19200"}]}}
    assert curl(ns, "POST", "/api/config/services", json.dumps(service)) == (200, '{"msg": "OK"}')
    assert wait_until(lambda: listening(ns, 19201), 5.0)
    reply = ns.run(["python3", "-c", (
        "import socket\n"
        "c = socket.create_connection(('127.0.0.1', 19201), timeout=5)\n"
        "c.sendall(b'hello'); print(c.recv(100).decode())\n"
    )]).stdout.strip()
    assert reply == "HELLO", "traffic does not flow through the service the API added"
    assert curl(ns, "POST", "/api/config/services", json.dumps(service))[0] == 400  # duplicated

    # malformed bodies: gost's error shape, the process keeps serving
    for body in ('{"name": ', "[1, 2]", '{"addr": ":1"}', '{"name": "x", "addr": 5, "handler": "tcp"}'):
        code, text = curl(ns, "POST", "/api/config/services", body)
        assert code == 400 and json.loads(text) == {"code": 40001, "msg": "object invalid"}, (body, code, text)
    assert curl(ns, "DELETE", "/api/config/services/nope")[1] == '{"code": 40004, "msg": "object not found"}'

    # the counters of both services, at once
    os.kill(gost.proc.pid, signal.SIGUSR1)
    assert wait_until(lambda: {r.get("service") for r in gost.find(lambda r: "counters" in r)} >= {"fwd", "service-0"},
                      5.0), "kill -USR1 did not log every service's counters"
    fwd = [r for r in gost.find(lambda r: "counters" in r) if r.get("service") == "fwd"][-1]["counters"]
    assert fwd["requests"] == 1 and fwd["inputBytes"] == 5 and fwd["outputBytes"] == 5

    assert curl(ns, "DELETE", "/api/config/services/fwd") == (200, '{"msg": "OK"}')
    assert not listening(ns, 19201), "the deleted service still holds its port"
    code, text = curl(ns, "GET", "/api/config")
    assert [s["name"] for s in json.loads(text)["services"]] == ["service-0"]
    assert listening(ns, 19300) or "udp" in text  # the other service was never restarted
    assert gost.alive()
    assert not gost.find(lambda r: "Traceback" in json.dumps(r))
    time.sleep(0.1)
