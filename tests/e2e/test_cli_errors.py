"""Whole `gost` processes: every bad input gives ONE line on stderr, no traceback, exit code != 0."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from gostx.testing.gostproc import run_gost

pytestmark = pytest.mark.e2e


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *needles: str, code: int = 1) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("gost: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    return lines[0]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_malformed_url() -> None:
    proc = run_gost("-L", "tcp://:80%zz/127.0.0.1:1")
    assert_one_error_line(proc)


def test_malformed_port() -> None:
    assert_one_error_line(run_gost("-L", "tcp://:http-nope/127.0.0.1:1"))


def test_unknown_handler_type_in_yaml(tmp_path: Path) -> None:
    cfg = write(tmp_path, "gost.yaml", f"""
services:
- name: svc-a
  addr: 127.0.0.1:{free_port()}
  handler:
    type: nope
  listener:
    type: tcp
""")
    line = assert_one_error_line(run_gost("-C", cfg), "svc-a", "unknown handler type 'nope' (supported: ")
    assert "tcp" in line and "udp" in line


def test_unknown_listener_type_in_json(tmp_path: Path) -> None:
    service = {"name": "svc-b", "addr": f":{free_port()}", "handler": {"type": "tcp"},
               "listener": {"type": "kcpx"}}
    cfg = write(tmp_path, "gost.json", json.dumps({"services": [service]}))
    assert_one_error_line(run_gost("-C", cfg), "svc-b", "unknown listener type 'kcpx'")


def test_bad_yaml(tmp_path: Path) -> None:
    cfg = write(tmp_path, "gost.yaml", "services: [\n  - name: x\n  addr: ::\n")
    assert_one_error_line(run_gost("-C", cfg))


def test_missing_file(tmp_path: Path) -> None:
    assert_one_error_line(run_gost("-C", str(tmp_path / "missing.yaml")), "missing.yaml")


def test_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_gost("-L", f"tcp://127.0.0.1:{port}/127.0.0.1:1")
    assert_one_error_line(proc, f"listen tcp 127.0.0.1:{port}: bind: address already in use")


def test_udp_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = run_gost("-L", f"udp://127.0.0.1:{port}/127.0.0.1:1")
    assert_one_error_line(proc, f"listen udp 127.0.0.1:{port}: bind: address already in use")


def test_forward_without_target() -> None:
    assert_one_error_line(run_gost("-L", f"tcp://127.0.0.1:{free_port()}"), "no forward target")


def test_no_arguments_and_no_config(tmp_path: Path) -> None:
    proc = run_gost(env={"HOME": str(tmp_path)})
    assert_one_error_line(proc, "no services to run")


def test_bad_log_level_in_config(tmp_path: Path) -> None:
    cfg = write(tmp_path, "gost.yaml", f"""
services:
- name: s
  addr: 127.0.0.1:{free_port()}
  handler: {{type: tcp}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: t, addr: "127.0.0.1:1"}}]}}
log:
  level: loud
""")
    assert_one_error_line(run_gost("-C", cfg), "unknown level 'loud'")


def test_unknown_flag_usage_exit_2() -> None:
    proc = run_gost("-Z")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "flag provided but not defined: -Z"
    assert "Usage of gost:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping a capability with setpriv needs root")
def test_missing_cap_net_admin() -> None:
    # SO_MARK is allowed with CAP_NET_ADMIN or (Linux >= 5.17) CAP_NET_RAW: drop both.
    drop = ["setpriv", "--bounding-set=-net_admin,-net_raw", "--inh-caps=-net_admin,-net_raw"]
    proc = run_gost("-L", f"tcp://127.0.0.1:{free_port()}/127.0.0.1:1?so_mark=100", prefix=drop)
    assert_one_error_line(proc, "so_mark=100: operation not permitted (needs CAP_NET_ADMIN)")
