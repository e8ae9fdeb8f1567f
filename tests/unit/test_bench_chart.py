"""bench.chart draws a run's JSON: gostx rows each beside its peer, and CPU per GB."""

from __future__ import annotations

import json

import pytest

from bench.chart import bars, draw, main


def _doc() -> dict:
    def row(key: str, gbps: float | None, cpu: float | None = None, peer: str | None = None) -> dict:
        tests = {} if gbps is None else {"tcp1": {"median": gbps, "cpu_percent": cpu}}
        return {"key": key, "title": key.upper(), "peer": peer, "tests": tests}

    return {"info": {"date": "2026-01-01", "cpu_model": "CPU", "cpus": 2, "reps": 1, "seconds": 1},
            "rows": [row("bare", 20.0), row("tun-aes", 2.0, 100.0, peer="wireguard-go"), row("openvpn", 0.5, 50.0),
                     row("wireguard-go", 1.0, 100.0), row("down", None)]}


def test_bars_put_each_peer_after_its_row_and_compute_cpu_per_gb() -> None:
    got = bars(_doc())
    assert [(b.title, b.kind) for b in got] == [
        ("BARE", "bare"), ("TUN-AES", "gostx"), ("WIREGUARD-GO", "peer"), ("OPENVPN", "peer")]
    assert got[1].cpu_s_per_gb == pytest.approx(4.0)  # 1 core-second per second at 0.25 GB/s
    assert got[1].peer == "WIREGUARD-GO"
    assert got[0].cpu_s_per_gb is None


def test_draw_writes_a_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    run = tmp_path / "bench-x.json"
    run.write_text(json.dumps(_doc()))
    assert main([str(run)]) == 0
    png = (tmp_path / "bench-x.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    with pytest.raises(ValueError, match="no row"):
        draw({"rows": []}, str(tmp_path / "empty.png"))
