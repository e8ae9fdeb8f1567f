"""gost's climiter lines as gostx reads them (gostx/listener/limits.py): `$ N` for the service, `$$ N` per
client IP, `IP N` / `CIDR N` for those clients; and the default cap without a `$` line."""

from __future__ import annotations

import resource

import pytest

from gostx.config.model import LimiterConfig
from gostx.errors import GostError
from gostx.listener.limits import DEFAULT_MAX_CONNS, MIN_DEFAULT_CONNS, ConnLimiter, default_max_conns


def limiter(*limits: str) -> ConnLimiter:
    return ConnLimiter.from_config(LimiterConfig(name="c", limits=list(limits)))


def test_service_cap_refuses_the_next_and_a_release_frees_a_slot() -> None:
    lim = limiter("$ 2")
    assert lim.acquire("10.0.0.1:1") and lim.acquire("10.0.0.2:1")
    assert not lim.acquire("10.0.0.3:1")
    assert lim.refused == 1 and lim.active == 2
    lim.release("10.0.0.1:1")
    assert lim.acquire("10.0.0.3:1")


def test_per_client_and_network_caps() -> None:
    lim = limiter("$ 100", "$$ 1", "192.168.0.0/16 3", "::1 2")
    assert lim.acquire("10.0.0.1:1") and not lim.acquire("10.0.0.1:2")  # $$ 1
    assert lim.acquire("10.0.0.2:1")  # another client has its own count
    assert all(lim.acquire(f"192.168.1.1:{p}") for p in range(3)) and not lim.acquire("192.168.1.1:9")
    assert lim.acquire("[::1]:1") and lim.acquire("[::1]:2") and not lim.acquire("[::1]:3")
    assert lim.acquire("[::ffff:10.0.0.3]:1") and not lim.acquire("10.0.0.3:5")  # v4-mapped is that v4 client
    lim.release("10.0.0.1:1")
    assert lim.acquire("10.0.0.1:3")


@pytest.mark.parametrize("line", ["$", "$ x", "$ 0", "$$ -1", "nothost 5", "$ 1 2"])
def test_bad_lines_are_one_line_errors(line: str) -> None:
    with pytest.raises(GostError, match="climiter c"):
        limiter(line)


def test_default_cap_follows_the_open_file_limit() -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = DEFAULT_MAX_CONNS if soft == resource.RLIM_INFINITY else max(MIN_DEFAULT_CONNS,
                                                                            min(DEFAULT_MAX_CONNS, soft // 4))
    assert default_max_conns() == expected
    assert ConnLimiter.from_config(None).total == expected
    assert limiter("$$ 5").total == expected  # no `$` line: still the default service cap
