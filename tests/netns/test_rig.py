"""The bench rig in real namespaces: rows report numbers or a clear n/a, and nothing is left behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.matrix import ROWS, Row
from bench.measure import measure_row
from bench.rig import Rig, RigError
from bench.tunnels import GOST_ENV
from gostx.testing import iperf
from gostx.testing.netns import existing_namespaces, pid_alive
from gostx.testing.pytest_plugin import require_netns

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.netns


def row(key: str) -> Row:
    return next(r for r in ROWS if r.key == key)


def assert_cleaned_up(rig: Rig) -> None:
    assert len(rig.namespace_names) == 2
    assert not set(rig.namespace_names) & existing_namespaces()
    assert rig.pids, "the rig started no process"
    assert not [pid for pid in rig.pids if pid_alive(pid)]


def test_bare_veth_tcp_row_for_one_second() -> None:
    require_netns()
    rig = Rig(prefix="gxtr")
    with rig:
        assert set(rig.namespace_names) <= existing_namespaces()
        run = measure_row(rig, row("bare"), seconds=1, tests=("tcp1",))
    assert run.down is None
    [sample] = run.samples
    assert sample.error is None
    assert sample.value is not None and sample.value > 0
    assert sample.cpu_percent is None  # no tunnel processes on the bare link
    assert_cleaned_up(rig)


def test_openvpn_row_carries_traffic_and_is_sampled() -> None:
    require_netns()
    if shutil.which("openvpn") is None and not Path("/usr/sbin/openvpn").exists():
        pytest.skip("openvpn is not installed (make deps installs it)")
    rig = Rig(prefix="gxtr")
    with rig:
        run = measure_row(rig, row("openvpn"), seconds=1, tests=("ping", "tcp1"), timeout=30)
    assert run.down is None, run.down
    ping, tcp = run.samples
    assert ping.error is None and ping.value is not None and ping.value > 0
    assert tcp.error is None and tcp.value is not None and tcp.value > 0
    assert tcp.cpu_percent is not None and tcp.cpu_percent > 0
    assert tcp.peak_rss_kib is not None and tcp.peak_rss_kib > 0
    assert_cleaned_up(rig)


def test_gost_row_that_cannot_start_is_na_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    require_netns()
    monkeypatch.setenv(GOST_ENV, f"{sys.executable} -c 'import sys; sys.exit(\"gost: no tun here\")'")
    rig = Rig(prefix="gxtr")
    with rig:
        run = measure_row(rig, row("tun-aes-128-gcm"), seconds=1, timeout=5)
    # both ends run the failing command: whichever the rig saw exit first is named
    assert run.down in ("gost server exited with status 1: gost: no tun here",
                        "gost client exited with status 1: gost: no tun here"), run.down
    assert run.samples == []
    assert_cleaned_up(rig)


def test_gost_row_that_never_passes_traffic_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    require_netns()
    monkeypatch.setenv(
        GOST_ENV, f"{sys.executable} -c 'import time; print(\"listening\", flush=True); time.sleep(60)'"
    )
    rig = Rig(prefix="gxtr")
    with rig:
        run = measure_row(rig, row("tun-plain"), seconds=1, timeout=1.5)
    assert run.down is not None
    assert run.down.startswith("no traffic through the tunnel within 1.5 s")
    assert "gost client: listening" in run.down
    assert_cleaned_up(rig)


def test_bench_cli_writes_markdown_and_json(tmp_path: Path) -> None:
    require_netns()
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        "--rows",
        "bare",
        "--reps",
        "1",
        "--seconds",
        "1",
        "--tests",
        "ping,tcp1,tcp4,udp",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [json_file] = tmp_path.glob("bench-*.json")
    [md_file] = tmp_path.glob("bench-*.md")
    doc = json.loads(json_file.read_text())
    [bare] = doc["rows"]
    assert bare["key"] == "bare"
    assert set(bare["tests"]) == {"ping", "tcp1", "tcp4", "udp"}  # --tests: the churn tests were left out
    assert bare["tests"]["tcp1"]["median"] > 0
    assert bare["tests"]["tcp4"]["median"] > 0
    assert bare["tests"]["udp"]["median"] > 0
    assert bare["tests"]["ping"]["median"] > 0
    assert "| bare veth | TCP 4 streams |" in md_file.read_text()
    assert "| bare veth | TCP 1 stream |" in proc.stdout


def test_demo_fails_with_one_clear_line_and_cleans_up() -> None:
    require_netns()
    before = existing_namespaces()
    cmd = [sys.executable, "-m", "bench.demo", "--gost", "false", "--seconds", "1", "--timeout", "3"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "error: the gost tunnel did not come up: gost server exited with status 1"
    assert any(line.startswith("[8/8] tearing down") for line in lines)
    assert "Traceback" not in proc.stdout + proc.stderr
    leftovers = {name for name in existing_namespaces() - before if name.startswith("gxdm")}
    made = {word.strip(":,()") for line in lines for word in line.split() if word.startswith("gxdm")}
    assert made and not made & leftovers


def host_tcp_cc() -> str:
    return Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()


def available_tcp_cc() -> list[str]:
    return Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()


def test_rig_runs_iperf3_with_the_chosen_congestion_control_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    """Namespaces inherit the host's default (BBR on some VMs, which halves bare veth): the rig's
    iperf3 runs use cubic unless BENCH_TCP_CC says otherwise, the sender's end too under -R."""
    require_netns()
    others = [cc for cc in available_tcp_cc() if cc != host_tcp_cc()]
    if not others:
        pytest.skip("this kernel offers one congestion control only")
    wanted = "cubic" if "cubic" in others else others[0]
    monkeypatch.setenv("BENCH_TCP_CC", wanted)
    rig = Rig(prefix="gxtr")
    with rig:
        assert rig.tcp_cc == wanted
        for reverse in (False, True):
            result = iperf.run_tcp(rig.a, rig.b_ip, 1, reverse=reverse, congestion=rig.tcp_cc)
            assert result.gbps > 0 and result.congestion == wanted
        plain = iperf.run_tcp(rig.a, rig.b_ip, 1)
        assert plain.congestion == host_tcp_cc()  # without -C: the namespace's own
    assert_cleaned_up(rig)


def test_rig_with_host_congestion_control_keeps_the_namespace_default(monkeypatch: pytest.MonkeyPatch) -> None:
    require_netns()
    monkeypatch.setenv("BENCH_TCP_CC", "host")
    rig = Rig(prefix="gxtr")
    with rig:
        assert rig.tcp_cc == host_tcp_cc()
    assert_cleaned_up(rig)


def test_rig_refuses_an_unknown_congestion_control_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    require_netns()
    monkeypatch.setenv("BENCH_TCP_CC", "no-such-cc")
    rig = Rig(prefix="gxtr")
    with pytest.raises(RigError) as info:
        with rig:
            pass
    assert str(info.value).startswith("TCP congestion control 'no-such-cc' ($BENCH_TCP_CC) is not available here")
    assert "\n" not in str(info.value)
    assert not set(rig.namespace_names) & existing_namespaces()
