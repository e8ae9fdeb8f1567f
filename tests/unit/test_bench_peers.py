"""The bench's peer rows: which tool each gostx row is compared with, the ratio to it, and the rows
that need a binary the user builds reporting how to get it."""

from __future__ import annotations

import pytest

from bench.matrix import ROWS, Row
from bench.measure import RowRun, Sample
from bench.peers import HEV_ENV, UDP2RAW_ENV, WIREGUARD_GO_ENV, HevTunnel, Udp2rawTunnel, WireGuardGoTunnel
from bench.report import RunInfo, markdown
from bench.summary import add_bare_comparison, summarize_row
from bench.tunnels import TunnelDown

KEYS = {r.key: r for r in ROWS}


def test_every_peer_is_a_row_and_the_closest_tool() -> None:
    for row in ROWS:
        assert row.peer is None or row.peer in KEYS, row.key
    assert {KEYS[k].peer for k in ("tun-plain", "tun-aes-128-gcm", "tun-aes-256-gcm", "tun-chacha20")} == {
        "wireguard-go"}
    assert KEYS["tun-faketcp"].peer == "udp2raw-faketcp"
    assert KEYS["tungo-socks5"].peer == "hev-socks5"
    assert KEYS["tap-aes-128-gcm"].peer == "openvpn"


def _run(key: str, **values: float) -> RowRun:
    return RowRun(key, 1, [Sample(test, value=v) for test, v in values.items()])


def test_ratio_to_the_peer_in_the_same_run_is_in_the_table() -> None:
    bare = summarize_row(KEYS["bare"], [_run("bare", tcp1=20.0, ping=50.0)])
    wg = summarize_row(KEYS["wireguard-go"], [_run("wireguard-go", tcp1=1.0, ping=500.0)])
    tun = summarize_row(KEYS["tun-aes-128-gcm"], [_run("tun-aes-128-gcm", tcp1=2.5, ping=300.0)])
    lone = summarize_row(Row("x", "x", None, peer="missing"), [_run("x", tcp1=1.0)])
    add_bare_comparison([bare, wg, tun, lone])
    assert tun.tests["tcp1"].vs_bare == pytest.approx(0.125)
    assert tun.tests["tcp1"].vs_peer == pytest.approx(2.5)
    assert tun.tests["ping"].vs_peer == pytest.approx(-200.0)
    assert wg.tests["tcp1"].vs_peer is None and lone.tests["tcp1"].vs_peer is None
    info = RunInfo("2026-01-01T00:00:00+00:00", "CPU", 2, "6.1", "3.11", "iperf 3.12", "OpenVPN 2.6", 1, 1.0, 9.0)
    table = markdown([bare, wg, tun], info)
    assert "| tun:// aes-128-gcm | TCP 1 stream | 2.50 Gbit/s | 2.50-2.50 | 0.12x | 2.50x wireguard-go |" in table
    assert "-200 µs vs wireguard-go" in table


@pytest.mark.parametrize(("tunnel", "env"), [
    (WireGuardGoTunnel(binary_env=WIREGUARD_GO_ENV), WIREGUARD_GO_ENV),
    (HevTunnel(), HEV_ENV),
    (Udp2rawTunnel(), UDP2RAW_ENV),
])
def test_user_built_peers_say_which_variable_to_set(
    tunnel: WireGuardGoTunnel | HevTunnel | Udp2rawTunnel, env: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.delenv(env, raising=False)

    class FakeRig:
        workdir = str(tmp_path)
        b = None

    with pytest.raises(TunnelDown, match=f"set {env}=/path/to/"):
        tunnel.prepare(FakeRig())  # type: ignore[arg-type]
    monkeypatch.setenv(env, str(tmp_path / "nothing"))
    with pytest.raises(TunnelDown, match="is not an executable"):
        tunnel.prepare(FakeRig())  # type: ignore[arg-type]


def test_demo_summary_puts_gostx_beside_its_peers(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.demo import PathResult, _summary

    def path(title: str, gbps: float, rtt: float, cpu: float | None = 50.0) -> PathResult:
        return PathResult(title, Sample("ping", value=rtt), Sample("tcp1", value=gbps, cpu_percent=cpu))

    results = [path("bare veth (no tunnel)", 10.0, 40.0, None), path("gostx tun:// aes-128-gcm", 1.0, 240.0),
               path("OpenVPN AES-256-GCM", 0.25, 300.0), PathResult("wireguard-go", down="not installed")]
    _summary(5.0, 1.2, results, "cubic")
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("  ") and "  " in line[2:]]
    lines = {line.split("  ")[1].strip(): line for line in rows}
    assert "0.10x" in lines["gostx tun:// aes-128-gcm"] and "+200 µs" in lines["gostx tun:// aes-128-gcm"]
    assert lines["OpenVPN AES-256-GCM"].rstrip().endswith("4.00x")  # gostx carried 4x OpenVPN's throughput
    assert "wireguard-go                 n/a (not installed)" in out
    assert "a memory copy with no wire" in out
