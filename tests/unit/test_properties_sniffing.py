"""Property tests (hypothesis) of the sniffers (gostx.sniffing): TLS ClientHello SNI, HTTP Host, DNS
question. They never raise: any bytes, random or a mutated valid header, give a SniffResult (or None);
a host they report is one a resolver takes; the incremental contract holds (NEED_MORE for a prefix of
a header they later find, the same answer for the same bytes with more appended)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from propertytest import PROPS, mutated
from sniff_builders import client_hello, dns_answer_a, dns_query, records, sni_ext, tls13_extensions

from gostx.sniffing.classify import classify
from gostx.sniffing.dns import parse_dns_question
from gostx.sniffing.http import parse_http_host
from gostx.sniffing.result import SniffResult, SniffState
from gostx.sniffing.tls import parse_tls_sni

LABELS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
NAMES = st.one_of(st.lists(LABELS, min_size=1, max_size=4).map(".".join),
                  st.sampled_from(["a" * 64, "xn--", "1.2.3.4", "::1", "", ".", "a..b"]))
HELLOS = st.builds(
    lambda name, sizes: records(client_hello(tls13_extensions(name.encode("utf-8", "surrogatepass") or None)),
                                sizes),
    st.one_of(NAMES, st.text(max_size=10)), st.lists(st.integers(1, 300), max_size=3))
HTTP_HEADS = st.builds(
    lambda method, target, host: f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode(
        "utf-8", "surrogatepass"),
    st.sampled_from(["GET", "POST", "CONNECT", "HEAD", "OPTIONS"]),
    st.sampled_from(["/", "http://example.com:8080/x", "example.com:443", "*", "http://[::1]/", "http://[::1/"]),
    st.one_of(NAMES, st.sampled_from(["[::1]:80", "h:99999", "h:" + "1" * 5000, "[::1"]), st.text(max_size=12)))
DNS = st.one_of(st.builds(dns_query, NAMES.filter(lambda n: all(0 < len(x) < 64 for x in n.split("."))),
                          st.integers(0, 65535)),
                st.builds(dns_answer_a, st.sampled_from(["example.com", "a.b"]), st.binary(min_size=4, max_size=4)))


def check(result: SniffResult) -> None:
    assert isinstance(result, SniffResult)
    if result.state is SniffState.FOUND and result.host is not None:
        result.host.encode("idna")
        assert result.port is None or 0 <= result.port <= 65535
        assert result.address is not None or result.port is None


@PROPS
@given(st.one_of(st.binary(max_size=400), mutated(HELLOS), HELLOS))
def test_tls_sni_sniffer(data: bytes) -> None:
    result = parse_tls_sni(data)
    check(result)
    classify(data)
    if result.state is SniffState.FOUND:
        assert 0 < result.consumed <= len(data)
        assert parse_tls_sni(data + b"\x17\x03\x03\x00\x01x") == result  # bytes after it change nothing
        for cut in (1, result.consumed // 2, result.consumed - 1):
            assert parse_tls_sni(data[:cut]).state is SniffState.NEED_MORE


@PROPS
@given(st.one_of(st.binary(max_size=300), mutated(HTTP_HEADS), HTTP_HEADS))
def test_http_host_sniffer(data: bytes) -> None:
    result = parse_http_host(data)
    check(result)
    classify(data)
    if result.state is SniffState.FOUND:
        assert 0 < result.consumed <= len(data)
        assert parse_http_host(data + b"body") == result


@PROPS
@given(st.one_of(st.binary(max_size=300), mutated(DNS), DNS))
def test_dns_question_sniffer(data: bytes) -> None:
    question = parse_dns_question(data)
    if question is not None:
        assert 0 <= question.qtype <= 0xFFFF and 0 <= question.qclass <= 0xFFFF
        assert isinstance(question.name, str)


@PROPS
@given(st.binary(max_size=64), st.text(max_size=30))
def test_sni_extension_with_any_name(prefix: bytes, name: str) -> None:
    data = records(client_hello([sni_ext(name.encode("utf-8", "surrogatepass"))]))
    check(parse_tls_sni(data))
    check(parse_tls_sni(prefix + data))
