"""The build prints nothing but problems: no setuptools beta/deprecation notes, no FutureWarning from
wheel's old bdist_wheel entry point, no Cython "Compiling ... because it changed" chatter."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOISE = ("running ", "copying ", "creating ")  # distutils' own progress lines (-q keeps some)
SOURCES = ("csrc/**/*.c", "csrc/**/*.h", "gostx/_engine.pyx", "gostx/*.pxi", "gostx/*.pxd")


def _stale_extension() -> str | None:
    """Why an in-place build would compile (and overwrite the extension this process has loaded)."""
    built = glob.glob(os.path.join(ROOT, "gostx", "_engine*.so"))
    if not built:
        return "the extension is not built"
    so_time = os.path.getmtime(built[0])
    for pattern in SOURCES:
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            if os.path.getmtime(path) > so_time:
                return f"{os.path.relpath(path, ROOT)} is newer than the extension"
    return None


def test_build_ext_prints_no_warning() -> None:
    # make test builds first, so this in-place build has nothing to compile: a few seconds, and it still
    # reads pyproject.toml, loads every setuptools command and runs cythonize, where the warnings came from.
    stale = _stale_extension()
    if stale:
        pytest.skip(f"{stale}: run `make build` (this test does not rebuild under a loaded extension)")
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line and not line.startswith(NOISE)]
    assert not lines, "the build printed (run `make deps` for setuptools >= 77):\n" + "\n".join(lines[:20])
