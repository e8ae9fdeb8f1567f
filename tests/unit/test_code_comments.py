"""Code comments neither point at files outside the repository nor quote measured numbers (numbers go
stale in comments: they live, dated, in bench/README.md "Figures behind design choices")."""

from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = (".c", ".h", ".py", ".pyx", ".pxi", ".pxd", ".pyi")
OUTSIDE = re.compile(r"shared/|spec/|\b(?:v2|v3|tuntap|performance)\.md\b")
MEASURED = re.compile(
    r"\d+(?:\.\d+)? ?[GM]bit/s"  # a throughput
    r"|\d+(?:\.\d+)? ?x (?:faster|slower|as much)"  # a speed-up
    r"|\d+(?:\.\d+)? ?% (?:faster|slower|less time|more time)"
    r"|\d+ ?(?:ns|µs) a (?:salt|packet|flow|dial|connect)"  # a per-item cost
    r"|\d+(?:\.\d+)? ?Mi?B of RSS"  # a memory cost
)
GENERATED = {"gostx/_engine.c"}


def _files() -> list[str]:
    found = []
    for top in ("csrc", "gostx"):
        for base, _, names in os.walk(os.path.join(ROOT, top)):
            for name in names:
                rel = os.path.relpath(os.path.join(base, name), ROOT)
                if name.endswith(SOURCES) and rel not in GENERATED:
                    found.append(rel)
    return sorted(found)


def offending_lines(text: str, pattern: re.Pattern[str]) -> list[str]:
    return [line.strip() for line in text.splitlines() if pattern.search(line)]


def test_the_patterns_catch_what_they_are_for() -> None:
    assert offending_lines("/* see spec tuntap.md 2.2 */", OUTSIDE)
    assert offending_lines("# (spec: shared/spec/v3.md 1.3)", OUTSIDE)
    assert offending_lines(" * AES-GCM +8% (3.94 against 3.66 Gbit/s)", MEASURED)
    assert offending_lines(" * makes it about 3x faster.", MEASURED)
    assert offending_lines(" * 121 ns a salt at sixteen lanes", MEASURED)
    assert offending_lines("costs ~11 MB of RSS", MEASURED)
    assert not offending_lines("gbps: float  # receiver-side goodput, Gbit/s", MEASURED)


@pytest.mark.parametrize(("what", "pattern"), [("spec files outside the repository", OUTSIDE),
                                               ("measured numbers", MEASURED)], ids=["outside", "numbers"])
def test_no_comment_points_outside_or_quotes_numbers(what: str, pattern: re.Pattern[str]) -> None:
    bad = []
    for rel in _files():
        with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
            bad += [f"{rel}: {line}" for line in offending_lines(f.read(), pattern)]
    assert not bad, f"comments quoting {what} (move numbers to bench/README.md):\n" + "\n".join(bad[:20])
