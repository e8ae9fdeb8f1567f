"""Per-dial costs that connection churn pays: the `interface` item's netlink address dump is cached
briefly (a failure more briefly still), and an IP literal is resolved without asyncio's thread pool."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from gostx.net import direct, iface
from gostx.net.direct import DialOptions, dial
from gostx.netlink.rtnl import Rtnl


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    c = Clock()
    monkeypatch.setattr(iface, "_clock", c)
    iface.clear_cache()
    yield c
    iface.clear_cache()


@pytest.fixture
def dumps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the netlink address dumps."""
    calls: list[int] = []
    real = Rtnl.addresses

    def counting(self: Rtnl, index: int = 0) -> list[tuple[int, str]]:
        calls.append(index)
        return real(self, index)

    monkeypatch.setattr(Rtnl, "addresses", counting)
    return calls


def test_a_burst_of_resolutions_pays_one_dump_until_the_answer_expires(clock: Clock, dumps: list[int]) -> None:
    async def burst() -> list[tuple[str, list[str]]]:
        return [await iface.resolve_interface("lo") for _ in range(50)]

    answers = asyncio.run(burst())
    assert len(dumps) == 1
    assert all(a == answers[0] for a in answers) and "127.0.0.1" in answers[0][1]
    answers[0][1].clear()  # a caller's list is its own: the cache is not changed through it
    assert "127.0.0.1" in asyncio.run(iface.resolve_interface("lo"))[1]
    clock.now += iface.CACHE_SECONDS - 0.01
    asyncio.run(iface.resolve_interface("lo"))
    assert len(dumps) == 1
    clock.now += 0.02
    asyncio.run(iface.resolve_interface("lo"))
    assert len(dumps) == 2
    assert asyncio.run(iface.resolve_interface("127.0.0.1")) == ("lo", ["127.0.0.1"])
    assert len(dumps) == 3  # an IP item is its own entry


def test_a_missing_interface_is_reported_each_time_and_its_answer_expires_quickly(
        clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    present = {"yes": False}

    def lookup(name: str) -> int | None:
        lookups.append(name)
        return socket.if_nametoindex("lo") if present["yes"] else None

    monkeypatch.setattr(iface, "link_lookup", lookup)
    for _ in range(3):
        with pytest.raises(OSError) as info:
            asyncio.run(iface.resolve_interface("gxnew0"))
        assert info.value.errno == 19 and "no such network interface: gxnew0" in str(info.value)
    assert len(lookups) == 1
    assert iface.MISSING_SECONDS <= 0.5
    present["yes"] = True  # the interface appears: used once the short negative answer expired
    clock.now += iface.MISSING_SECONDS + 0.01
    name, addresses = asyncio.run(iface.resolve_interface("gxnew0"))
    assert name == "gxnew0" and "127.0.0.1" in addresses and len(lookups) == 2


def test_a_missing_interface_fails_a_strict_dial_and_falls_back_otherwise(clock: Clock) -> None:
    async def run() -> None:
        with pytest.raises(OSError, match="no such network interface"):
            await dial("tcp", "127.0.0.1", 9, DialOptions(timeout=2, interfaces=["nosuchnic0!", "lo"]))
        server = socket.create_server(("127.0.0.1", 0))
        try:
            port = server.getsockname()[1]
            for _ in range(2):  # the second time from the cache: same behaviour
                sock = await dial("tcp", "127.0.0.1", port, DialOptions(timeout=2, interfaces=["nosuchnic0", "lo"]))
                sock.close()
        finally:
            server.close()

    asyncio.run(run())


@pytest.mark.parametrize(("host", "family", "sockaddr"), [
    ("127.0.0.1", socket.AF_INET, ("127.0.0.1", 80)),
    ("::1", socket.AF_INET6, ("::1", 80, 0, 0)),
    ("2001:db8::1", socket.AF_INET6, ("2001:db8::1", 80, 0, 0)),
])
def test_an_ip_literal_resolves_as_getaddrinfo_without_the_executor(
        monkeypatch: pytest.MonkeyPatch, host: str, family: int, sockaddr: tuple[Any, ...]) -> None:
    for sock_type in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        expected = socket.getaddrinfo(host, 80, type=sock_type)

        async def run(kind: int = sock_type) -> list[Any]:
            loop = asyncio.get_running_loop()

            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError("the thread pool was used")

            monkeypatch.setattr(loop, "getaddrinfo", refuse)
            monkeypatch.setattr(loop, "run_in_executor", refuse)
            return await direct._resolve(loop, host, 80, kind)

        got = asyncio.run(run())
        assert got == expected and got[0][0] == family and got[0][4] == sockaddr


def test_a_dial_to_an_ip_literal_connects_without_the_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the thread pool was used")

        monkeypatch.setattr(loop, "getaddrinfo", refuse)
        monkeypatch.setattr(loop, "run_in_executor", refuse)
        server = socket.create_server(("127.0.0.1", 0))
        try:
            sock = await dial("tcp", "127.0.0.1", server.getsockname()[1], DialOptions(timeout=2))
            assert sock.getpeername() == server.getsockname()
            sock.close()
        finally:
            server.close()

    asyncio.run(run())


@pytest.mark.parametrize("host", ["localhost", "127.1", "fe80::1%lo"])
def test_names_and_other_forms_still_go_to_getaddrinfo(host: str) -> None:
    async def run() -> list[Any]:
        loop = asyncio.get_running_loop()
        return await direct._resolve(loop, host, 80, socket.SOCK_STREAM)

    assert direct._literal_infos(host, 80, socket.SOCK_STREAM) is None
    assert asyncio.run(run())
