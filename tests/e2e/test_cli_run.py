"""Whole `gost` processes that run: -V, -O, forwarding on loopback, SIGTERM -> clean stop, exit 0."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import sys
from pathlib import Path

import pytest
import yaml

from gostx.testing.gostproc import run_gost, start_gost, wait_for_text, wait_tcp_port

pytestmark = pytest.mark.e2e


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version() -> None:
    proc = run_gost("-V")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("gost 0.1.0 (gostx; python ")


def test_output_yaml_prints_the_merged_config_and_exits_zero(tmp_path: Path) -> None:
    cfg = tmp_path / "gost.yaml"
    cfg.write_text("services:\n- name: from-file\n  addr: :7000\n  handler: {type: tcp}\n"
                   "  listener: {type: tcp}\n  forwarder: {nodes: [{name: t, addr: '10.0.0.9:70'}]}\n")
    proc = run_gost("-C", str(cfg), "-L", "tcp://:8080/192.168.1.1:80", "-D", "-O", "yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    data = yaml.safe_load(proc.stdout)
    names = [s["name"] for s in data["services"]]
    assert names[0] == "from-file" and len(names) == 2  # file entries first
    cli = data["services"][1]
    assert cli["addr"] == ":8080"
    assert cli["handler"]["type"] == "tcp" and cli["listener"]["type"] == "tcp"
    assert cli["forwarder"]["nodes"][0]["addr"] == "192.168.1.1:80"
    assert data["log"]["level"] == "debug"


def test_output_json() -> None:
    proc = run_gost("-L", "udp://:5353/10.0.0.1:53", "-O", "json", "-api", ":18080")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["services"][0]["handler"]["type"] == "udp"
    assert data["api"]["addr"] == ":18080"


def echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    return srv, srv.getsockname()[1]


def test_tcp_forward_then_sigterm_runs_post_down_and_exits_zero(tmp_path: Path) -> None:
    marker = tmp_path / "postdown-ran"
    port = free_port()
    srv, target = echo_server()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(yaml.safe_dump({"services": [{
        "name": "fwd", "addr": f"127.0.0.1:{port}", "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
        "forwarder": {"nodes": [{"name": "target-0", "addr": f"127.0.0.1:{target}"}]},
        "metadata": {"postDown": [shlex.join(["touch", str(marker)])],
                     "preUp": [shlex.join([sys.executable, "-c", "print('preUp ran')"])]},
    }]}))
    with srv, start_gost("-C", str(cfg)) as gost:
        assert wait_for_text(gost, "listening on"), gost.stderr()  # a probe connection would reach srv
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            conn, _ = srv.accept()
            with conn:
                client.sendall(b"ping")
                assert conn.recv(4) == b"ping"
                conn.sendall(b"pong")
                assert client.recv(4) == b"pong"
        assert not marker.exists()
        assert gost.stop(signal.SIGTERM) == 0
        assert marker.exists()
        stderr = gost.stderr()
    assert "Traceback" not in stderr
    records = [json.loads(line) for line in stderr.splitlines()]  # every line is a JSON log record
    assert any(r["msg"].startswith("listening on 127.0.0.1:") and r["service"] == "fwd" for r in records)
    assert any(r["msg"] == "service stopped" for r in records)


def test_sigint_is_a_clean_stop_too() -> None:
    port = free_port()
    with start_gost("-L", f"tcp://127.0.0.1:{port}/127.0.0.1:1") as gost:
        assert wait_tcp_port("127.0.0.1", port), gost.stderr()
        assert gost.stop(signal.SIGINT) == 0
        assert "Traceback" not in gost.stderr()


def test_text_log_format_and_debug_flag(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(f"services:\n- name: s\n  addr: 127.0.0.1:{port}\n  handler: {{type: tcp}}\n"
                   "  listener: {type: tcp}\n  forwarder: {nodes: [{name: t, addr: '127.0.0.1:1'}]}\n"
                   "  metadata: {postUp: ['true']}\nlog:\n  format: text\n")
    with start_gost("-C", str(cfg), "-D") as gost:
        assert wait_for_text(gost, "postUp: true"), gost.stderr()  # a debug line
        assert gost.stop() == 0
        lines = gost.stderr().splitlines()
    assert lines
    assert [line for line in lines if not line.startswith('time="')] == []
    assert any(" level=debug " in line for line in lines)


def test_udp_forward_on_loopback() -> None:
    port = free_port(socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        upstream.bind(("127.0.0.1", 0))
        upstream.settimeout(10)
        client.settimeout(10)
        with start_gost("-L", f"udp://127.0.0.1:{port}/127.0.0.1:{upstream.getsockname()[1]}") as gost:
            assert wait_for_text(gost, "listening on"), gost.stderr()
            client.sendto(b"hello", ("127.0.0.1", port))
            data, src = upstream.recvfrom(100)
            assert data == b"hello"
            upstream.sendto(b"world", src)
            assert client.recvfrom(100) == (b"world", ("127.0.0.1", port))
            assert gost.stop() == 0


def test_second_signal_abandons_a_hanging_stop(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "gost.yaml"
    hang = shlex.join([sys.executable, "-c", "import time; time.sleep(60)"])
    cfg.write_text(f"services:\n- name: s\n  addr: 127.0.0.1:{port}\n  handler: {{type: tcp}}\n"
                   "  listener: {type: tcp}\n  forwarder: {nodes: [{name: t, addr: '127.0.0.1:1'}]}\n"
                   f"  metadata: {{preDown: [{json.dumps(hang)}]}}\n")
    with start_gost("-C", str(cfg), "-D") as gost:
        assert wait_for_text(gost, "listening on"), gost.stderr()
        gost.proc.send_signal(signal.SIGTERM)
        assert wait_for_text(gost, "preDown: "), gost.stderr()  # the hanging hook has started
        assert gost.stop(signal.SIGTERM, timeout=10) == 1
        assert "exiting without a clean stop" in gost.stderr()
        assert "Traceback" not in gost.stderr()
