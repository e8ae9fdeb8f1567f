"""The Cython side declares C once: every `cdef extern` is in gostx/_engine.pxd, each C function appears
there once under its own name (no "cname" aliases), and no binding spells an address family as a number."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

GOSTX = Path(__file__).resolve().parents[2] / "gostx"
PXD = GOSTX / "_engine.pxd"
# a C function prototype inside an extern block: `    <type> name(...`
PROTOTYPE = re.compile(r"^\s+(?:const\s+)?[A-Za-z_][\w ]*[\s*]+\**(\w+)\s*\(", re.MULTILINE)
AF_LITERAL = re.compile(r"(family\s*(==|!=|=)\s*(2|10)\b)|(\b(2|10)\s*(==|!=)\s*\w*family)|(\bint family=(2|10)\b)")


def _bindings() -> list[Path]:
    return sorted([*GOSTX.glob("_*.pxi"), GOSTX / "_engine.pyx"])


def test_extern_blocks_live_only_in_the_pxd() -> None:
    offenders = [p.name for p in _bindings() if "cdef extern" in p.read_text()]
    assert not offenders, f"move these C declarations into gostx/_engine.pxd: {offenders}"
    assert "cdef extern" in PXD.read_text()


def test_each_c_function_is_declared_once_under_its_own_name() -> None:
    text = PXD.read_text()
    names = Counter(PROTOTYPE.findall(text))
    assert names["gx_tunnel_new"] == 1 and names["gx_batch_init"] == 1  # the pattern finds prototypes
    assert [n for n, k in names.items() if k > 1] == []
    aliased = re.findall(r'^[ \t]+[^#\n]*\w[ \t]+"\w+"', text, re.MULTILINE)
    assert aliased == [], "declare C names as they are, without a Cython-side alias"


def test_no_numeric_address_families() -> None:
    hits = [f"{p.name}: {m.group(0)}" for p in [PXD, *_bindings()] for m in AF_LITERAL.finditer(p.read_text())]
    assert hits == [], "use AF_INET / AF_INET6 (declared in gostx/_engine.pxd)"
