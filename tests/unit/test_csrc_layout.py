"""csrc/ shows the architecture: one folder per area, one public header per folder in csrc/include/gx/,
and no include cycle between folders (an area builds only on the areas below it)."""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

CSRC = Path(__file__).resolve().parents[2] / "csrc"
INCLUDE = CSRC / "include" / "gx"
# the areas, each with what it may build on (docs/architecture.md draws the same picture)
AREAS = {"base", "crypto", "tun", "tunnel", "faketcp", "proxy", "stack"}
GX_INCLUDE = re.compile(r'^\s*#\s*include\s+"gx/([a-z_0-9]+)\.h"', re.M)
LOCAL_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def area_files() -> dict[str, list[Path]]:
    return {p.name: sorted([*p.glob("*.c"), *p.glob("*.h")]) for p in CSRC.iterdir()
            if p.is_dir() and p.name != "include"}


def test_every_source_file_is_in_an_area_folder() -> None:
    loose = sorted(p.name for p in CSRC.iterdir() if p.is_file())
    assert loose == [], f"files directly in csrc/: {loose} (put them in an area folder)"
    assert set(area_files()) == AREAS


def test_one_public_header_per_area() -> None:
    headers = {p.stem for p in INCLUDE.glob("*.h")}
    assert headers == AREAS, f"csrc/include/gx/ holds {sorted(headers)}; expected one per area {sorted(AREAS)}"


def dependencies() -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {area: set() for area in AREAS}
    for area, files in area_files().items():
        for f in files:
            deps[area] |= set(GX_INCLUDE.findall(f.read_text())) - {area}
    for header in INCLUDE.glob("*.h"):
        deps[header.stem] |= set(GX_INCLUDE.findall(header.read_text())) - {header.stem}
    return deps


def test_no_include_cycle_between_areas() -> None:
    deps = dependencies()
    for area, used in deps.items():
        assert used <= AREAS, f"{area} includes unknown headers {sorted(used - AREAS)}"
    try:
        order = list(TopologicalSorter(deps).static_order())
    except CycleError as exc:
        raise AssertionError(f"include cycle between csrc folders: {exc.args[1]}") from None
    assert order.index("base") < order.index("crypto") < order.index("tunnel")


def test_no_folder_reaches_into_another_folders_private_headers() -> None:
    for area, files in area_files().items():
        for f in files:
            for inc in LOCAL_INCLUDE.findall(f.read_text()):
                if inc.startswith("gx/") or inc.startswith("lwip/"):
                    continue
                assert "/" not in inc and (CSRC / area / inc).exists(), \
                    f"{f.relative_to(CSRC)} includes {inc!r}: only its own folder's private headers or gx/<area>.h"


def test_the_check_sees_a_cycle() -> None:
    """The cycle check itself can fail: a made-up dependency of base on tunnel closes a loop."""
    deps = dependencies()
    deps["base"] = deps["base"] | {"tunnel"}
    try:
        list(TopologicalSorter(deps).static_order())
    except CycleError:
        return
    raise AssertionError("a cycle base -> tunnel -> base was not seen")
