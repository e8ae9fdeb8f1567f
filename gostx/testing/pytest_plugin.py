"""pytest fixtures for gostx: namespaces joined by veth, created per test and removed on teardown.

A test marked `netns` skips with a clear reason when it cannot run here (not root, no TUN). With
CI=true such a skip is turned into a failure: CI runs as root and must run every netns test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from gostx.testing.netns import Lab, Pair, make_pair, netns_unavailable_reason


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_netns() -> None:
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    require_netns()
    with Lab() as made:
        yield made


@pytest.fixture
def pair(lab: Lab) -> Pair:
    """Namespaces a (10.200.1.1) and b (10.200.1.2) joined by veth."""
    return make_pair(lab)


@pytest.fixture
def gost_argv() -> list[str]:
    """How to run the gost command of this checkout."""
    return [sys.executable, "-m", "gostx"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and item.get_closest_marker("netns") is not None:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"netns test skipped under CI=true (CI must run it): {reason}"
