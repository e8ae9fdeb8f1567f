"""The bench's parsers and arithmetic, on iperf3 3.12 and iputils ping output recorded on this rig."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.matrix import ROWS, Row, select_rows
from bench.measure import RowRun, Sample
from bench.report import RunInfo, cpu_times, markdown, steal_pct, to_json
from bench.rig import tcp_cc_choice
from bench.run import parse_args
from bench.summary import add_bare_comparison, summarize_row
from bench.tunnels import gost_tun, gost_tungo, tun_url
from gostx.testing import iperf
from gostx.testing.ping import PingError, parse_ping
from gostx.testing.procstats import CpuSampler, parse_stat, parse_status_kib

DATA = Path(__file__).parent / "data" / "bench"


def read(name: str) -> str:
    return (DATA / name).read_text()


# iperf3 -------------------------------------------------------------------------------------------


def test_tcp_one_stream_reports_receiver_goodput_and_retransmits() -> None:
    result = iperf.parse_tcp(read("iperf3_tcp_1stream.json"))
    assert result.gbps == pytest.approx(24.444016888672707)
    assert result.retransmits == 296
    assert result.streams == 1
    assert result.seconds == pytest.approx(1.003276)
    assert result.congestion == "bbr"  # recorded on a VM whose namespaces inherit the host's BBR


def test_tcp_four_streams_are_summed() -> None:
    result = iperf.parse_tcp(read("iperf3_tcp_4streams.json"))
    assert result.streams == 4
    assert result.gbps == pytest.approx(28.11426465318659)
    assert result.retransmits == 0


def test_udp_reports_received_packets_per_second_and_loss() -> None:
    result = iperf.parse_udp(read("iperf3_udp_1400.json"))
    assert result.sent_packets == 276780
    assert result.lost_packets == 7669
    assert result.received_pps == pytest.approx((276780 - 7669) / 1.000116)
    assert result.loss_percent == pytest.approx(100 * 7669 / 276780)
    assert result.gbps == pytest.approx(3.0136936115410614)


def test_udp_falls_back_to_sum_on_old_iperf3() -> None:
    text = '{"end": {"sum": {"seconds": 2.0, "bits_per_second": 8e8, "packets": 1000, "lost_packets": 10}}}'
    result = iperf.parse_udp(text)
    assert result.received_pps == pytest.approx(495.0)
    assert result.loss_percent == pytest.approx(1.0)


def test_iperf_error_is_one_clear_line() -> None:
    with pytest.raises(
        iperf.IperfError, match=r"^iperf3: unable to connect to server: Connection timed out$"
    ):
        iperf.parse_tcp(read("iperf3_connect_timeout.json"))


@pytest.mark.parametrize("text", ["", "iperf3: error - unable to connect", "[1, 2]", '{"end": {}}'])
def test_iperf_garbage_raises_iperf_error(text: str) -> None:
    with pytest.raises(iperf.IperfError):
        iperf.parse_tcp(text)


def test_client_argv_udp_is_1400_bytes_unlimited_rate() -> None:
    argv = iperf.client_argv("192.168.123.1", 5, udp=True)
    assert argv[:3] == ["iperf3", "-c", "192.168.123.1"]
    assert "-J" in argv
    assert argv[argv.index("-t") + 1] == "5"
    assert argv[argv.index("-b") + 1] == "0"
    assert argv[argv.index("-l") + 1] == "1400"
    assert "-P" not in argv
    assert iperf.client_argv("h", 0.5, streams=4)[-2:] == ["-P", "4"]
    # iperf3 takes whole seconds (-t 0.5 would be -t 0: forever): fractions round up
    assert [iperf.client_argv("h", s)[7] for s in (0.5, 1, 1.5, 3.0)] == ["1", "1", "2", "3"]
    with pytest.raises(ValueError):
        iperf.client_argv("h", 0)


def test_client_argv_congestion_control_is_for_tcp_only() -> None:
    assert iperf.client_argv("h", 1, congestion="cubic")[-2:] == ["-C", "cubic"]
    assert "-C" not in iperf.client_argv("h", 1)
    assert "-C" not in iperf.client_argv("h", 1, udp=True, congestion="cubic")


# ping ---------------------------------------------------------------------------------------------


def test_ping_replies_become_microseconds() -> None:
    result = parse_ping(read("ping_ok.txt"))
    assert (result.transmitted, result.received) == (5, 5)
    assert result.rtts_us == pytest.approx((42.0, 65.0, 78.0, 66.0, 57.0))
    assert result.median_us == pytest.approx(65.0)
    assert result.loss_percent == 0.0


def test_ping_skip_first_drops_the_warm_up_reply() -> None:
    result = parse_ping(read("ping_ok.txt"), skip_first=1)
    assert result.rtts_us == pytest.approx((65.0, 78.0, 66.0, 57.0))
    assert result.median_us == pytest.approx(65.5)


def test_ping_all_lost() -> None:
    result = parse_ping(read("ping_all_lost.txt"))
    assert (result.transmitted, result.received) == (3, 0)
    assert result.loss_percent == 100.0
    with pytest.raises(PingError):
        _ = result.median_us


def test_ping_busybox_quiet_summary() -> None:
    text = (
        "PING 10.0.0.2 (10.0.0.2): 56 data bytes\n\n--- 10.0.0.2 ping statistics ---\n"
        "4 packets transmitted, 4 packets received, 0% packet loss\n"
        "round-trip min/avg/max = 0.101/0.250/0.400 ms\n"
    )
    result = parse_ping(text)
    assert result.received == 4
    assert result.median_us == pytest.approx(250.0)


def test_ping_without_statistics_is_an_error() -> None:
    with pytest.raises(PingError):
        parse_ping("ping: connect: Network is unreachable\n")


# /proc ----------------------------------------------------------------------------------------------


def test_parse_stat_survives_odd_process_names() -> None:
    line = "4242 (gost (tun) 1) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0 1000 0 0"
    assert parse_stat(line) == (17, 281)
    with pytest.raises(ValueError):
        parse_stat("garbage")


def test_parse_status_reads_vmhwm() -> None:
    status = "Name:\tpython3\nVmPeak:\t  30000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t   12000 kB\n"
    assert parse_status_kib(status, "VmHWM") == 12345
    assert parse_status_kib(status, "VmSwap") is None


def test_cpu_sampler_sees_this_process_working() -> None:
    sampler = CpuSampler([os.getpid()]).start()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    usage = sampler.stop()
    assert usage.cpu_percent > 20
    assert usage.peak_rss_kib > 1000
    assert os.getpid() in usage.pids


# rows, summaries, report --------------------------------------------------------------------------


def test_tun_urls_are_the_seed_syntax() -> None:
    assert (
        tun_url("tun", "aes-128-gcm", "192.168.123.2", remote="10.200.1.2:8421")
        == "tun://aes-128-gcm:gostx-bench@:8421/10.200.1.2:8421?net=192.168.123.2/24&name=gxtun0"
    )
    assert tun_url("tun", None, "192.168.123.1", name=None) == "tun://:8421?net=192.168.123.1/24"
    tap = gost_tun("aes-128-gcm", scheme="tap")
    assert tap.server_args == ["-L", "tap://aes-128-gcm:gostx-bench@:8421?net=192.168.123.1/24&name=gxtap0"]
    faketcp = gost_tun(None, extra=["tcp=true"], client_listen=":0")
    assert faketcp.client_args == ["-L", "tun://:0/{server}:8421?net=192.168.123.2/24&name=gxtun0&tcp=true"]
    tungo = gost_tungo()
    assert tungo.client_args[-2:] == ["-F", "socks5://{server}:1080"]
    assert tungo.ready == "tcp"


def test_select_rows_keeps_bare_first_and_rejects_unknown_patterns() -> None:
    chosen = select_rows(["openvpn", "tun-aes*"])
    # the tun rows' peer (wireguard-go) comes along, in the matrix's order
    assert [r.key for r in chosen] == ["bare", "tun-aes-128-gcm", "tun-aes-256-gcm", "openvpn", "wireguard-go"]
    assert select_rows([]) == list(ROWS)
    with pytest.raises(ValueError, match="no bench row matches 'nope'"):
        select_rows(["nope"])


def _run(key: str, rep: int, **values: float | None) -> RowRun:
    samples = [Sample(test, value=v, error=None if v is not None else "boom") for test, v in values.items()]
    for s in samples:
        if s.value is not None and key != "bare":
            s.cpu_percent, s.peak_rss_kib = 50.0 * rep, 1000 * rep
    return RowRun(key, rep, samples, up_seconds=1.0)


def test_summary_medians_ranges_and_ratios_to_bare() -> None:
    bare_row, tun_row = Row("bare", "bare veth", None), Row("tun-x", "tun x", lambda: None)  # type: ignore[arg-type,return-value]
    bare = summarize_row(
        bare_row, [_run("bare", r, tcp1=v, ping=p) for r, v, p in [(1, 20, 60), (2, 10, 70), (3, 30, 50)]]
    )
    tun = summarize_row(
        tun_row, [_run("tun-x", r, tcp1=v, ping=p) for r, v, p in [(1, 2, 160), (2, 4, None), (3, 3, 150)]]
    )
    add_bare_comparison([bare, tun])
    assert (bare.tests["tcp1"].median, bare.tests["tcp1"].low, bare.tests["tcp1"].high) == (20, 10, 30)
    assert tun.tests["tcp1"].vs_bare == pytest.approx(3 / 20)
    assert tun.tests["tcp1"].cpu_percent == pytest.approx(100.0)
    assert tun.tests["tcp1"].peak_rss_kib == 3000
    assert tun.tests["ping"].median == pytest.approx(155.0)
    assert tun.tests["ping"].vs_bare == pytest.approx(95.0)
    assert tun.tests["ping"].errors == ["boom"]


def test_report_shows_down_rows_as_na_with_their_reason() -> None:
    bare = summarize_row(Row("bare", "bare veth", None), [_run("bare", 1, tcp1=20.0)])
    down = summarize_row(
        Row("tungo", "tungo", None), [RowRun("tungo", 1, down="gost client exited with status 1: no | here")]
    )
    info = RunInfo(
        "2026-01-01T00:00:00+00:00", "Test CPU", 2, "6.1", "3.11", "iperf 3.12", "OpenVPN 2.6", 1, 1.0, 9.0
    )
    table = markdown([bare, down], info)
    assert "| tungo | all | n/a (gost client exited with status 1: no \\| here) |" in table
    assert "| bare veth | TCP 1 stream | 20.00 Gbit/s | 20.00-20.00 | baseline |" in table
    doc = to_json([bare, down], info)
    assert doc["rows"][1]["down"].startswith("gost client exited")
    assert doc["info"]["cpu_model"] == "Test CPU"


def test_bench_options_reject_bad_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENCH_REPS", "zero")
    with pytest.raises(SystemExit) as exc:
        parse_args([])
    assert exc.value.code == 2
    assert "BENCH_REPS must be a positive number, got 'zero'" in capsys.readouterr().err
    monkeypatch.setenv("BENCH_REPS", "2")
    monkeypatch.setenv("BENCH_SECONDS", "0.5")
    args = parse_args(["--rows", "bare"])
    assert (args.reps, args.seconds, args.rows) == (2, 0.5, "bare")


def test_steal_share_from_proc_stat_and_the_warning_it_adds() -> None:
    before = cpu_times("cpu  1000 0 500 8000 10 0 100 200 0 0\n")
    after = cpu_times("cpu  1600 0 900 8200 10 0 200 1300 0 0\n")
    assert before == [1000, 0, 500, 8000, 10, 0, 100, 200]
    assert steal_pct(before, after) == 45.8          # 1100 of 2400 ticks
    assert steal_pct(before, before) is None and steal_pct([], after) is None
    assert cpu_times("intr 1 2 3") == [] and len(cpu_times()) == 8
    bare = summarize_row(Row("bare", "bare veth", None), [_run("bare", 1, tcp1=20.0)])
    info = RunInfo("2026-01-01T00:00:00+00:00", "Test CPU", 2, "6.1", "3.11", "iperf 3.12", "OpenVPN 2.6", 1, 1.0,
                   9.0, steal_pct=40.7)
    table = markdown([bare], info)
    assert "CPU steal 40.7%." in table and "Warning: the hypervisor took 40.7%" in table
    quiet = RunInfo(*[getattr(info, f) for f in ("date", "cpu_model", "cpus", "kernel", "python", "iperf3",
                                                  "openvpn", "reps", "seconds", "duration_s")], steal_pct=0.4)
    assert "Warning" not in markdown([bare], quiet) and "CPU steal 0.4%." in markdown([bare], quiet)
    named = RunInfo(*[getattr(quiet, f) for f in ("date", "cpu_model", "cpus", "kernel", "python", "iperf3",
                                                   "openvpn", "reps", "seconds", "duration_s", "steal_pct")],
                    crypto="AES-GCM vaes-avx2, HKDF-SHA1 sha-ni")
    assert "CPU steal 0.4%; crypto: AES-GCM vaes-avx2, HKDF-SHA1 sha-ni." in markdown([bare], named)


def test_header_names_the_tcp_congestion_control() -> None:
    bare = summarize_row(Row("bare", "bare veth", None), [_run("bare", 1, tcp1=20.0)])
    info = RunInfo("2026-01-01T00:00:00+00:00", "Test CPU", 2, "6.1", "3.11", "iperf 3.12", "OpenVPN 2.6", 1, 1.0,
                   9.0, tcp_cc="cubic")
    assert "; iperf 3.12 over TCP cubic; 1 reps of 1 s each" in markdown([bare], info)
    assert to_json([bare], info)["info"]["tcp_cc"] == "cubic"
    unnamed = RunInfo("2026-01-01T00:00:00+00:00", "Test CPU", 2, "6.1", "3.11", "iperf 3.12", "OpenVPN 2.6", 1,
                      1.0, 9.0)
    assert "; iperf 3.12; 1 reps" in markdown([bare], unnamed)


def test_rig_congestion_control_defaults_to_cubic_and_follows_the_environment() -> None:
    assert tcp_cc_choice({}) == "cubic"
    assert tcp_cc_choice({"BENCH_TCP_CC": " "}) == "cubic"
    assert tcp_cc_choice({"BENCH_TCP_CC": "bbr"}) == "bbr"
    assert tcp_cc_choice({"BENCH_TCP_CC": "host"}) is None
