"""Build the one C extension, gostx._engine: Cython binding + the C data plane in csrc/.

csrc/ is compiled with -Wall -Wextra -Werror. Every csrc/*.c file is part of the engine, so a new
data-plane module only needs a file in csrc/ and its declarations in gostx/_engine.pyx.
"""

from __future__ import annotations

import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
WARNINGS = ["-Wall", "-Wextra", "-Werror"]
C_FLAGS = ["-std=gnu11", "-O2", "-g", "-fno-strict-aliasing", "-D_GNU_SOURCE", *WARNINGS]


def engine_sources() -> list[str]:
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "csrc", "*.c")))


extension = Extension(
    "gostx._engine",
    sources=["gostx/_engine.pyx", *engine_sources()],
    include_dirs=["csrc/include"],
    libraries=["crypto", "pthread"],
    extra_compile_args=C_FLAGS,
    define_macros=[("NPY_NO_DEPRECATED_API", "0")],
)

setup(
    ext_modules=cythonize(
        [extension],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "embedsignature": True},
    ),
)
