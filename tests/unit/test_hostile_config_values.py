"""Hostile values for the config layer, checked where they are parsed: digit strings longer than int()
takes, `route=` values longer than a path, metadata of the wrong YAML type."""

from __future__ import annotations

import pytest

from gostx.addr import AddressError, parse_port, port_number
from gostx.config.dump import natural_key
from gostx.config.metadata import Metadata
from gostx.config.numbers import parse_int
from gostx.netlink.errors import NetConfigError
from gostx.netlink.routes import parse_nets, parse_route_option, parse_routes_option

DIGITS = "1" * 5000


def test_parse_int_refuses_long_digit_strings_before_int_does() -> None:
    assert parse_int("0" * 5000 + "42") == 42
    assert parse_int("-7") == -7 and parse_int("0x1F", 0) == 31
    for bad in (DIGITS, "²", "١٢", "", "1e3"):
        with pytest.raises(ValueError):
            parse_int(bad)


def test_ports_of_any_length() -> None:
    assert port_number("00080") == 80 and port_number("65535") == 65535
    assert port_number(DIGITS) is None and port_number("65536") is None and port_number("²") is None
    for bad in (DIGITS, "²", "http\x00", "x" * 300):
        with pytest.raises(AddressError):
            parse_port(bad)


def test_metadata_numbers_out_of_range_read_as_the_default() -> None:
    md = Metadata({"retries": DIGITS, "ttl": DIGITS, "on": DIGITS})
    assert md.get_int("retries", default=3) == 3
    assert md.get_duration("ttl", default=1.5) == 1.5
    assert md.get_bool("on") is False


def test_natural_key_orders_long_digit_runs_without_int() -> None:
    keys = [DIGITS, "a10", "a2", "9" * 30, "²"]
    assert sorted(keys, key=natural_key) == ["²", "9" * 30, DIGITS, "a2", "a10"]


def test_route_value_longer_than_a_path_is_a_list_not_an_oserror() -> None:
    assert parse_route_option("a" * 300) == []  # not a file (ENAMETOOLONG), not a CIDR: skipped
    assert [str(r) for r in parse_route_option("10.0.0.0/8," + "b" * 5000)] == ["10.0.0.0/8"]


def test_route_and_net_values_of_other_yaml_types_are_read_as_text() -> None:
    with pytest.raises(NetConfigError, match=r"'1\.5' is not an address"):
        parse_nets(1.5)
    with pytest.raises(NetConfigError, match=r"'True' is not an address"):
        parse_nets(True)
    assert [str(n) for n in parse_nets(["10.1.0.1/24", "fd00::1/64"])] == ["10.1.0.1/24", "fd00::1/64"]
    assert parse_route_option(42) == [] and parse_routes_option({"a": 1}) == []


def test_unknown_schemes_keep_gosts_fallback_and_leave_a_note() -> None:
    from gostx.config.cmd import build_config

    notes: list[str] = []
    cfg = build_config([":1080", "socks5://:2", "tcp://:3/h:1", "http+tls://:5", "auto://:6", "tunn://:8421",
                        "socks5+quicx://:7"], ["relay+wss://h:1", "vpn://h:2", "socks5+quicz://h:3"], notes)
    assert [s.handler.type for s in cfg.services if s.handler] == ["auto", "socks5", "tcp", "http", "auto", "auto",
                                                                    "socks5"]
    assert [n.connector.type for n in cfg.chains[0].hops[1].nodes if n.connector] == ["http"]
    assert notes == [
        "-F \"vpn://h:2\": unknown connector type 'vpn': using http instead",
        "-F \"socks5+quicz://h:3\": unknown dialer type 'quicz': dialing tcp instead",
        "-L \"tunn://:8421\": unknown handler type 'tunn': serving gost's auto proxy (SOCKS5 and HTTP, no "
        "authentication unless user:pass@ is given) instead",
        "-L \"socks5+quicx://:7\": unknown listener type 'quicx': listening on tcp instead",
    ]
