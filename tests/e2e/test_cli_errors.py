"""Whole `gost` processes: every bad input gives ONE line on stderr, no traceback, exit code != 0."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from gostx.testing.gostproc import run_gost, start_gost, wait_for_text

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


# -- hostile values: the parsing layer turns each into one error line (or gost's quiet default) -----

DIGITS = "1" * 5000  # int() refuses more than 4300 digits with a ValueError


def test_port_of_5000_digits() -> None:
    assert_one_error_line(run_gost("-L", f"socks5://127.0.0.1:{DIGITS}"), "bad port")
    assert_one_error_line(run_gost("-L", f"tcp://127.0.0.1:{free_port()}/10.0.0.1:{DIGITS}"), "bad port")
    line = assert_one_error_line(run_gost("-api", f":{DIGITS}"), "bad port")
    assert len(line) < 400, line  # the value is cut in the message


def test_5000_digit_query_key_and_number_read_as_gost_reads_them() -> None:
    """Unknown keys are kept and a number out of range reads as 0 (Go's strconv error is ignored)."""
    proc = run_gost("-L", f"socks5://127.0.0.1:1080?{DIGITS}=1&retries={DIGITS}&readTimeout={DIGITS}", "-O", "json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    service = json.loads(proc.stdout)["services"][0]
    assert service["handler"]["metadata"][DIGITS] == "1"
    assert "retries" not in service["handler"]


def test_config_nested_too_deeply(tmp_path: Path) -> None:
    for name, text in (("deep.yaml", "[" * 20000), ("deep.json", '{"a":' * 20000), ("deep.toml", "a = " + "[" * 20000)):
        assert_one_error_line(run_gost("-C", write(tmp_path, name, text)), name, "nested too deeply")


def test_yaml_int_of_5000_digits(tmp_path: Path) -> None:
    cfg = write(tmp_path, "gost.yaml", f"services:\n- name: a\n  addr: 127.0.0.1:{free_port()}\n"
                                       f"  handler:\n    type: socks5\n    retries: {DIGITS}\n")
    assert_one_error_line(run_gost("-C", cfg), "out of range")


def test_yaml_net_of_the_wrong_type(tmp_path: Path) -> None:
    """`net: 1.5` is read as the text "1.5" (as gost's metadata getters do), which is not an address:
    the service fails while its options are parsed, before any device is made."""
    cfg = write(tmp_path, "gost.yaml", "services:\n- name: t\n  addr: :8421\n  handler:\n    type: tun\n"
                                       "  listener:\n    type: tun\n    metadata:\n      net: 1.5\n")
    assert_one_error_line(run_gost("-C", cfg), "net: '1.5' is not an address with a prefix length")


def test_unknown_scheme_serves_auto_with_a_warning() -> None:
    port = free_port()
    with start_gost("-L", f"tunn://127.0.0.1:{port}") as proc:
        assert wait_for_text(proc, "listening on"), proc.stderr()
        lines = [json.loads(line) for line in proc.stderr().splitlines()]
    warnings = [line for line in lines if line["level"] == "warning"]
    assert len(warnings) == 1, lines
    assert "unknown handler type 'tunn'" in warnings[0]["msg"] and "auto" in warnings[0]["msg"]
    assert lines[0] is warnings[0]  # at start, before the service listens
    assert any(line.get("handler") == "auto" and "listening on" in line["msg"] for line in lines)
