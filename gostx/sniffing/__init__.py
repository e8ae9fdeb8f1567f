"""Sniffing (gost X:internal/util/sniffing): which protocol a flow speaks and which host it asks for.

Pure functions over bytes (no I/O): `classify`, `parse_tls_sni`, `parse_http_host`,
`parse_dns_question`; the handler options `SniffingOptions.from_metadata`; `sniff_stream`, the
asyncio helper built on "peek without consuming" that the handlers call (see gostx.sniffing.stream);
and `dial_targets`, where tungo dials a sniffed flow (name with the original port, fallback).
"""

from gostx.sniffing.classify import PROTO_HTTP, PROTO_SSH, PROTO_TLS, classify
from gostx.sniffing.dns import DnsQuestion, parse_dns_question
from gostx.sniffing.http import HTTP_DEFAULT_PORT, MAX_HTTP_HEAD_BYTES, parse_http_host
from gostx.sniffing.options import SniffingOptions
from gostx.sniffing.result import SniffResult, SniffState
from gostx.sniffing.route import dial_targets
from gostx.sniffing.stream import BytesPeeker, Peek, SniffOutcome, StreamPeeker, sniff_stream
from gostx.sniffing.tls import MAX_CLIENT_HELLO_BYTES, TLS_DEFAULT_PORT, is_grease, parse_tls_sni

__all__ = [
    "HTTP_DEFAULT_PORT",
    "MAX_CLIENT_HELLO_BYTES",
    "MAX_HTTP_HEAD_BYTES",
    "PROTO_HTTP",
    "PROTO_SSH",
    "PROTO_TLS",
    "TLS_DEFAULT_PORT",
    "BytesPeeker",
    "DnsQuestion",
    "Peek",
    "SniffOutcome",
    "SniffResult",
    "SniffState",
    "SniffingOptions",
    "StreamPeeker",
    "classify",
    "dial_targets",
    "is_grease",
    "parse_dns_question",
    "parse_http_host",
    "parse_tls_sni",
    "sniff_stream",
]
