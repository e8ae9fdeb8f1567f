"""gost's net=, route= and routes= parameters parsed into addresses and Route values."""

from __future__ import annotations

import logging
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path

import pytest

from gostx.netlink import NetConfigError, Route, parse_nets, parse_route_option, parse_routes_option
from gostx.netlink.routing import route_spec


def R(dst: str, gw: str | None = None) -> Route:
    return Route(ip_network(dst), ip_address(gw) if gw else None)


# ---- net= ----

def test_nets_v4_and_v6_in_order() -> None:
    want = [ip_interface("192.168.123.1/24"), ip_interface("fd::1/64")]
    assert parse_nets("192.168.123.1/24,fd::1/64") == want


def test_nets_list_spaces_empty_items_and_duplicates() -> None:
    assert parse_nets([" 10.0.0.1/8 ", "", "10.0.0.1/8", "10.0.0.2/32"]) == [
        ip_interface("10.0.0.1/8"), ip_interface("10.0.0.2/32")]
    assert parse_nets("") == [] and parse_nets(None) == [] and parse_nets(" , ") == []


def test_nets_keep_host_bits() -> None:
    (net,) = parse_nets("192.168.123.7/24")
    assert str(net.ip) == "192.168.123.7" and net.network == ip_network("192.168.123.0/24")


@pytest.mark.parametrize("bad", ["192.168.123.1", "192.168.123.1/33", "fd::1/129", "tun0/24", "1.2.3/24"])
def test_nets_invalid_entry_is_an_error_naming_it(bad: str) -> None:
    with pytest.raises(NetConfigError) as err:
        parse_nets(f"10.0.0.1/24,{bad}")
    assert f"'{bad}'" in str(err.value) and "\n" not in str(err.value)


# ---- route= (v2 and v3 comma list, v2 file) ----

def test_route_comma_list_takes_gw() -> None:
    assert parse_route_option("172.10.0.0/16,10.138.0.0/16", "192.168.123.2") == [
        R("172.10.0.0/16", "192.168.123.2"), R("10.138.0.0/16", "192.168.123.2")]


def test_route_without_gw_and_normalised_like_parsecidr() -> None:
    assert parse_route_option("10.100.1.2/16, 1.2.3.4/32,fd01::5/64") == [
        R("10.100.0.0/16"), R("1.2.3.4/32"), R("fd01::/64")]


def test_route_bad_entries_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        routes = parse_route_option("10.0.0.0/8,bogus,1.2.3.4,10.0.0.0/40,172.16.0.0/12")
    assert routes == [R("10.0.0.0/8"), R("172.16.0.0/12")]
    warned = caplog.text
    assert "'bogus'" in warned and "'1.2.3.4'" in warned and "'10.0.0.0/40'" in warned


def test_route_bad_gw_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse_route_option("10.0.0.0/8", "nope") == [R("10.0.0.0/8")]
    assert "'nope'" in caplog.text


def test_route_yaml_list_and_empty() -> None:
    assert parse_route_option(["10.1.0.0/16", "10.2.0.0/16"], "10.9.0.1") == [
        R("10.1.0.0/16", "10.9.0.1"), R("10.2.0.0/16", "10.9.0.1")]
    assert parse_route_option("") == [] and parse_route_option(None) == []


def test_route_file(tmp_path: Path) -> None:
    path = tmp_path / "route.txt"
    path.write_text(
        "# routes for the tunnel\n"
        "10.100.0.0/16\n"
        "\n"
        "172.20.1.0/24\t192.168.123.9\n"
        "   1.2.3.4/32   192.168.123.8  trailing words are ignored\n"
        "#10.9.9.0/24\n"
        "fd01::/64 fd00::2\n"
    )
    assert parse_route_option(str(path), "192.168.123.1") == [
        R("10.100.0.0/16", "192.168.123.1"),
        R("172.20.1.0/24", "192.168.123.9"),
        R("1.2.3.4/32", "192.168.123.8"),
        R("fd01::/64", "fd00::2"),
    ]


def test_route_file_bad_lines_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "routes"
    path.write_text("10.0.0.0/8\nnot-a-cidr 1.2.3.4\n10.1.0.0/16 not-an-ip\n")
    with caplog.at_level(logging.WARNING):
        routes = parse_route_option(str(path), "192.168.0.1")
    assert routes == [R("10.0.0.0/8", "192.168.0.1"), R("10.1.0.0/16", "192.168.0.1")]
    assert f"{path}:2" in caplog.text and f"{path}:3" in caplog.text


def test_route_file_empty_gives_no_routes(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("# nothing\n\n")
    assert parse_route_option(str(path)) == []


def test_route_missing_file_is_read_as_a_list(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse_route_option("/nonexistent/route.txt") == []
    assert "/nonexistent/route.txt" in caplog.text


# ---- routes= (v3) ----

def test_routes_items_with_and_without_gateway() -> None:
    assert parse_routes_option(["10.0.0.0/8 192.168.123.2", "172.16.0.0/12"], "192.168.123.1") == [
        R("10.0.0.0/8", "192.168.123.2"), R("172.16.0.0/12", "192.168.123.1")]


def test_routes_cli_string_split_on_commas() -> None:
    want = [R("10.0.0.0/8", "10.9.0.2"), R("fd01::/64")]
    assert parse_routes_option("10.0.0.0/8 10.9.0.2, fd01::/64") == want


def test_routes_bad_item_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        routes = parse_routes_option(["x 1.2.3.4", "10.0.0.0/8 bad"], "10.9.0.1")
    assert routes == [R("10.0.0.0/8", "10.9.0.1")]
    assert "'x'" in caplog.text and "'bad'" in caplog.text


# ---- Route -> OS route ----

def test_route_spec_gateway_of_the_same_family_only() -> None:
    want = {"dst": "10.0.0.0/8", "oif": 7, "gateway": "10.9.0.2"}
    assert route_spec(R("10.0.0.0/8", "10.9.0.2"), 7) == want
    assert route_spec(R("fd01::/64", "10.9.0.2"), 7) == {"dst": "fd01::/64", "oif": 7}
    assert route_spec(R("0.0.0.0/0"), 3) == {"dst": "0.0.0.0/0", "oif": 3}


def test_route_str() -> None:
    assert str(R("10.0.0.0/8", "10.9.0.2")) == "10.0.0.0/8 via 10.9.0.2" and str(R("::/0")) == "::/0"
