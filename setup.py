"""Build the one C extension, gostx._engine: Cython binding + the C data plane in csrc/.

csrc/ is compiled with -Wall -Wextra -Werror. Every .c file under csrc/ (one folder per area: base, crypto,
tun, tunnel, faketcp, proxy, stack) is part of the engine, so a new data-plane module only needs a file
there, its C declarations in gostx/_engine.pxd and its binding in a gostx/_<area>.pxi included from
gostx/_engine.pyx.

lwIP (the tungo netstack, csrc/stack/) is compiled into the same extension with its own relaxed flags;
its source is fetched by third_party/lwip/fetch.sh when missing (third_party/lwip/lwip_build.py).
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Any

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "third_party", "lwip"))
import lwip_build  # noqa: E402

WARNINGS = ["-Wall", "-Wextra", "-Werror"]
C_FLAGS = ["-std=gnu11", "-O2", "-g", "-fno-strict-aliasing", "-D_GNU_SOURCE", *WARNINGS]
# GX_NO_SIMD=1 in the build's environment leaves our SIMD crypto out (csrc/include/gx/base.h): OpenSSL does
# AES-GCM and HKDF-SHA1, as on a CPU without VAES/SHA-NI/AVX-512.
NO_SIMD = os.environ.get("GX_NO_SIMD", "") not in ("", "0")


def engine_sources() -> list[str]:
    found = glob.glob(os.path.join(HERE, "csrc", "**", "*.c"), recursive=True)
    return sorted(os.path.relpath(p, HERE) for p in found)


def compile_in_parallel(compiler: Any) -> None:
    """Make `compiler.compile` build its sources on every core (setuptools compiles one file at a time;
    the extension has ~40 files of its own besides lwIP's). Same steps as CCompiler.compile: set up, then
    _compile each stale object."""

    def compile(sources: list[str], output_dir: str | None = None, macros: Any = None,
                include_dirs: Any = None, debug: bool = False, extra_preargs: Any = None,
                extra_postargs: Any = None, depends: Any = None) -> list[str]:
        macros, objects, extra, pp_opts, build = compiler._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs)
        cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)

        def one(obj: str) -> None:
            src, ext = build[obj]
            compiler._compile(obj, src, ext, cc_args, extra, pp_opts)

        lwip_build.run_parallel(one, list(build))
        return list(objects)

    compiler.compile = compile


class BuildExt(build_ext):
    """build_ext that compiles lwIP (relaxed flags, fetched when missing) into gostx._engine, every
    source on every core."""

    def build_extension(self, ext: Extension) -> None:
        compile_in_parallel(self.compiler)
        if ext.name == "gostx._engine":
            try:
                objects = lwip_build.compile_objects(self.compiler, self.build_temp)
            except lwip_build.LwipMissing as exc:
                sys.exit(f"error: {exc}")
            ext.extra_objects = [o for o in ext.extra_objects if "/lwip/" not in o] + objects
            ext.depends = [*ext.depends, *objects]
            for inc in lwip_build.include_dirs():
                if inc not in ext.extra_compile_args:
                    ext.extra_compile_args = [*ext.extra_compile_args, "-isystem", inc]
        super().build_extension(ext)


extension = Extension(
    "gostx._engine",
    sources=["gostx/_engine.pyx", *engine_sources()],
    include_dirs=["csrc/include"],
    libraries=["ssl", "crypto", "pthread"],
    extra_compile_args=C_FLAGS,
    define_macros=[("NPY_NO_DEPRECATED_API", "0"), *([("GX_NO_SIMD", "1")] if NO_SIMD else [])],
)

# GOSTX_EDITABLE_NO_EXT=1: the Makefile's `pip install -e .` installs the package and the `gost` command
# only; its own `setup.py build_ext --inplace` then builds the extension once, keeping its objects in
# build/ for the next incremental build (pip's editable build compiles in a temporary directory, so the
# extension would otherwise be compiled twice on a fresh checkout).
WITHOUT_EXTENSION = os.environ.get("GOSTX_EDITABLE_NO_EXT", "") not in ("", "0")

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[] if WITHOUT_EXTENSION else cythonize(
        [extension],
        language_level=3,
        quiet=True,  # no "Compiling ... because it changed" lines: a build prints only problems
        compiler_directives={"boundscheck": False, "wraparound": False, "embedsignature": True},
    ),
)
