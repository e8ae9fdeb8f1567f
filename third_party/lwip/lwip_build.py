"""Build helpers for lwIP inside gostx._engine (used by setup.py; also prints paths for the Makefile).

lwIP is never committed: `ensure_tree()` runs fetch.sh when third_party/lwip/src/ is missing (fetch.sh
takes LWIP_SRC=/an/lwip/tree or LWIP_TARBALL=/the/orig/tarball instead of apt, and applies our patches). lwIP's own sources are compiled with their own, relaxed flags (they are
not -Wextra -Werror clean); our glue in csrc/stack/ sees lwIP's headers as system headers, so it keeps
-Wall -Wextra -Werror.

    python3 third_party/lwip/lwip_build.py tree                     # fetch if needed; print the tree
    python3 third_party/lwip/lwip_build.py archive OUT.a CC [FLAGS...]   # a static lwIP for the C tests
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.join(HERE, "src")
PORT = os.path.join(HERE, "port")
FETCH = os.path.join(HERE, "fetch.sh")
T = TypeVar("T")

LWIP_CFLAGS = ["-std=gnu11", "-O2", "-g", "-fno-strict-aliasing", "-w"]


class LwipMissing(RuntimeError):
    """lwIP could not be obtained; str() says how to provide it."""


def tree() -> str:
    """The lwIP tree the build uses (fetched and patched by fetch.sh)."""
    return TREE


def _patch(patch: str, tree_dir: str, *args: str) -> bool:
    with open(patch, "rb") as f:
        return subprocess.run(["patch", "-s", "-p1", "-f", *args, "-d", tree_dir], stdin=f, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False).returncode == 0


def apply_new_patches(tree_dir: str) -> None:
    """Apply the patches/ that an existing tree does not have yet (one added after the tree was fetched):
    a patch that reverses cleanly is in; one that applies cleanly is applied. Raises LwipMissing when a
    patch does neither (delete third_party/lwip/src to fetch again)."""
    for patch in sorted(glob.glob(os.path.join(HERE, "patches", "*.patch"))):
        if _patch(patch, tree_dir, "--dry-run", "-R"):
            continue
        if not (_patch(patch, tree_dir, "--dry-run", "-N") and _patch(patch, tree_dir, "-N")):
            raise LwipMissing(f"{os.path.basename(patch)} does not apply to {tree_dir}; delete third_party/lwip/src "
                              "and build again to fetch lwIP anew")
        print(f"== lwIP: applied {os.path.basename(patch)}", flush=True)


def ensure_tree() -> str:
    """The lwIP tree, fetched first (fetch.sh, which honours LWIP_SRC and LWIP_TARBALL) when it is missing;
    patches added since it was fetched are applied. Raises LwipMissing. To fetch again, delete
    third_party/lwip/src."""
    if os.path.isdir(os.path.join(TREE, "src", "core")):
        apply_new_patches(TREE)
        return TREE
    print("== lwIP source is missing: running third_party/lwip/fetch.sh", flush=True)
    result = subprocess.run(["bash", FETCH], check=False)
    if result.returncode != 0 or not os.path.isdir(os.path.join(TREE, "src", "core")):
        raise LwipMissing(
            "could not obtain the lwIP source (third_party/lwip/fetch.sh failed, see above); set "
            "LWIP_SRC=/path/to/lwip-2.1.3 to use an unpacked lwIP tree, or LWIP_TARBALL=/path/to/the "
            "Debian orig tarball, then build again"
        )
    return TREE


def sources(root: str | None = None) -> list[str]:
    """lwIP core: IPv4, IPv6, TCP, UDP, ICMP (features switched off in lwipopts.h compile to nothing)."""
    core = os.path.join(root or tree(), "src", "core")
    skip = {"altcp.c", "altcp_alloc.c", "altcp_tcp.c", "dns.c", "dhcp.c", "autoip.c", "etharp.c", "igmp.c",
            "dhcp6.c", "mld6.c", "ethip6.c"}
    found = [*glob.glob(os.path.join(core, "*.c")), *glob.glob(os.path.join(core, "ipv4", "*.c")),
             *glob.glob(os.path.join(core, "ipv6", "*.c"))]
    return sorted(p for p in found if os.path.basename(p) not in skip)


def include_dirs(root: str | None = None) -> list[str]:
    return [PORT, os.path.join(root or tree(), "src", "include")]


def headers(root: str | None = None) -> list[str]:
    """Files whose change means every lwIP object is stale."""
    base = root or tree()
    return [*glob.glob(os.path.join(PORT, "**", "*.h"), recursive=True),
            *glob.glob(os.path.join(base, "src", "include", "**", "*.h"), recursive=True)]


def run_parallel(work: Callable[[T], object], items: list[T]) -> None:
    """work(item) for every item, on as many threads as the machine has cores (each runs a compiler
    process); the first exception is raised."""
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        for _ in pool.map(work, items):
            pass


def compile_objects(compiler, build_temp: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Compile lwIP with `compiler` (a distutils CCompiler) into build_temp/lwip; only stale objects are
    rebuilt. Returns the object paths."""
    root = ensure_tree()
    out_dir = os.path.join(build_temp, "lwip")
    newest_header = max((os.path.getmtime(h) for h in headers(root)), default=0.0)
    stale: list[tuple[str, str]] = []
    objects = []
    for src in sources(root):
        rel = os.path.relpath(src, os.path.join(root, "src"))
        obj = os.path.join(out_dir, os.path.splitext(rel)[0] + ".o")
        objects.append(obj)
        if os.path.exists(obj) and os.path.getmtime(obj) >= max(os.path.getmtime(src), newest_header):
            continue
        stale.append((src, obj))

    def compile_one(item: tuple[str, str]) -> None:
        src, obj = item
        os.makedirs(os.path.dirname(obj), exist_ok=True)
        tmp = os.path.join(out_dir, "_tmp", os.path.basename(obj) + ".d")  # one folder per source: no clash
        compiler.compile([src], output_dir=tmp, include_dirs=include_dirs(root), extra_postargs=LWIP_CFLAGS)
        os.replace(compiler.object_filenames([src], output_dir=tmp)[0], obj)

    run_parallel(compile_one, stale)
    return objects


def build_archive(out: str, cc: list[str]) -> None:
    """Compile lwIP with the command `cc` (compiler and flags) into the static library `out`."""
    root = ensure_tree()
    obj_dir = out + ".objs"
    os.makedirs(obj_dir, exist_ok=True)
    objects = []
    includes = [arg for inc in include_dirs(root) for arg in ("-I", inc)]
    jobs = []
    for src in sources(root):
        obj = os.path.join(obj_dir, os.path.relpath(src, os.path.join(root, "src")).replace(os.sep, "_") + ".o")
        jobs.append([*cc, *LWIP_CFLAGS, *includes, "-c", src, "-o", obj])
        objects.append(obj)
    run_parallel(lambda cmd: subprocess.run(cmd, check=True), jobs)
    if os.path.exists(out):
        os.remove(out)
    subprocess.run(["ar", "rcs", out, *objects], check=True)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        if what == "tree":
            print(ensure_tree())
        elif what == "archive" and len(sys.argv) >= 4:
            build_archive(sys.argv[2], sys.argv[3:])
        else:
            sys.exit("usage: lwip_build.py tree | archive OUT.a CC [FLAGS...]")
    except LwipMissing as exc:
        sys.exit(f"error: {exc}")
    except subprocess.CalledProcessError as exc:
        sys.exit(f"error: building lwIP failed: {exc}")
