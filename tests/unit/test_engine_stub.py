"""gostx/_engine.pyi matches the built extension: mypy's stubtest compares every name, function signature
and class member of gostx._engine with the stub (what mypy --strict in `make lint` trusts), so a C binding
added, renamed or given a new argument without its stub fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWLIST = Path(__file__).with_name("data") / "engine_stub_allowlist.txt"


def test_engine_stub_matches_the_extension() -> None:
    pytest.importorskip("mypy.stubtest", reason="mypy is not installed (make lint installs it)")
    import gostx._engine  # noqa: F401  # the built extension: stubtest imports it

    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "gostx._engine", "--allowlist", str(ALLOWLIST),
         "--mypy-config-file", str(ROOT / "pyproject.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
