"""The build prints nothing but problems: no setuptools beta/deprecation notes, no FutureWarning from
wheel's old bdist_wheel entry point, no Cython "Compiling ... because it changed" chatter."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOISE = ("running ", "copying ", "creating ")  # distutils' own progress lines (-q keeps some)


def test_build_ext_prints_no_warning() -> None:
    # An up-to-date in-place build (make test builds first) takes a few seconds and still reads
    # pyproject.toml, loads every setuptools command and runs cythonize: where the warnings came from.
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line and not line.startswith(NOISE)]
    assert not lines, "the build printed (run `make deps` for setuptools >= 77):\n" + "\n".join(lines[:20])
