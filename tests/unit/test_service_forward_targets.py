"""Forward targets and how they are picked."""

from __future__ import annotations

import collections

import pytest

from gostx.config.model import (
    Config,
    ForwarderConfig,
    ForwardNodeConfig,
    HopConfig,
    NodeConfig,
    SelectorConfig,
)
from gostx.errors import GostError
from gostx.handler.forward.targets import Target, TargetPicker, forward_targets


def fwd(*addrs: str, selector: SelectorConfig | None = None) -> ForwarderConfig:
    nodes = [ForwardNodeConfig(name=f"target-{i}", addr=a) for i, a in enumerate(addrs)]
    return ForwarderConfig(nodes=nodes, selector=selector)


def targets(*addrs: str) -> list[Target]:
    return forward_targets(fwd(*addrs), Config())


def test_targets_from_nodes() -> None:
    (t,) = targets("10.0.0.1:80")
    assert (t.name, t.host, t.port) == ("target-0", "10.0.0.1", 80)
    assert forward_targets(None, Config()) == []


def test_targets_from_a_top_level_hop() -> None:
    cfg = Config(hops=[HopConfig(name="hop-x", nodes=[NodeConfig(name="n", addr="[::1]:53")])])
    (t,) = forward_targets(ForwarderConfig(hop="hop-x"), cfg)
    assert (t.host, t.port) == ("::1", 53)
    with pytest.raises(GostError, match="hop 'nope' not found"):
        forward_targets(ForwarderConfig(hop="nope"), cfg)


@pytest.mark.parametrize("addr", ["10.0.0.1", "10.0.0.1:0"])
def test_target_without_port_is_refused(addr: str) -> None:
    with pytest.raises(GostError, match="has no port"):
        targets(addr)


def test_round_robin_is_the_default() -> None:
    picker = TargetPicker(targets("a:1", "b:2", "c:3"))
    assert [picker.pick().host for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_failed_target_is_skipped_until_fail_timeout() -> None:
    selector = SelectorConfig(strategy="round", max_fails=1, fail_timeout="1h")
    picker = TargetPicker(targets("a:1", "b:2"), selector)
    picker.mark_failed(picker.targets[0])
    assert {picker.pick().host for _ in range(4)} == {"b"}
    picker.mark_ok(picker.targets[0])
    assert {picker.pick().host for _ in range(4)} == {"a", "b"}


def test_all_failed_falls_back_to_all() -> None:
    picker = TargetPicker(targets("a:1", "b:2"))
    for t in picker.targets:
        picker.mark_failed(t)
    assert {picker.pick().host for _ in range(4)} == {"a", "b"}


def test_fifo_and_hash_and_random() -> None:
    fifo = TargetPicker(targets("a:1", "b:2"), SelectorConfig(strategy="fifo"))
    assert {fifo.pick().host for _ in range(5)} == {"a"}
    hashed = TargetPicker(targets("a:1", "b:2", "c:3"), SelectorConfig(strategy="hash"))
    assert len({hashed.pick("10.0.0.7").host for _ in range(10)}) == 1
    rnd = TargetPicker(targets("a:1", "b:2"), SelectorConfig(strategy="random"))
    counts = collections.Counter(rnd.pick().host for _ in range(400))
    assert counts["a"] > 100 and counts["b"] > 100


def test_unknown_strategy() -> None:
    with pytest.raises(GostError, match="unknown selector strategy 'best'"):
        TargetPicker(targets("a:1"), SelectorConfig(strategy="best"))
