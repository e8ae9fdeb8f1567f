"""Which protocol a flow speaks, from its first 5 bytes (gost X:internal/util/sniffing/sniff.go).

TLS: a handshake record (byte 0 = 0x16) whose record version is 0x0301-0x0304. HTTP: the first bytes
spell one of the methods gost detects (GET, POST, PUT, DELET(E), OPTIO(NS), PATCH, HEAD, CONNE(CT),
TRACE) or the HTTP/2 preface "PRI *". SSH: "SSH-2". Anything else, and fewer than 5 bytes (gost's
5-byte peek failed), is None: the flow takes the normal path.
"""

from __future__ import annotations

PROTO_TLS = "tls"
PROTO_HTTP = "http"
PROTO_SSH = "ssh"

CLASSIFY_BYTES = 5  # gost peeks exactly this many (a TLS record header)

TLS_HANDSHAKE = 0x16
TLS_VERSION_MIN = 0x0301  # TLS 1.0
TLS_VERSION_MAX = 0x0304  # TLS 1.3

# gost compares 3, 4 or 5 bytes per method: "GET", "POST", "PUT", "HEAD" are whole; the longer
# names are cut at 5 bytes, so "DELET" matches whatever follows. "PRI *" is the h2 preface.
_HTTP_PREFIXES = (b"GET", b"POST", b"PUT", b"DELET", b"OPTIO", b"PATCH", b"HEAD", b"CONNE", b"TRACE",
                  b"PRI *")


def classify(first: bytes) -> str | None:
    """'tls', 'http', 'ssh' or None for the first bytes of a flow (at least 5 are needed)."""
    if len(first) < CLASSIFY_BYTES:
        return None
    head = bytes(first[:CLASSIFY_BYTES])
    version = (head[1] << 8) | head[2]
    if head[0] == TLS_HANDSHAKE and TLS_VERSION_MIN <= version <= TLS_VERSION_MAX:
        return PROTO_TLS
    if head.startswith(_HTTP_PREFIXES):
        return PROTO_HTTP
    if head == b"SSH-2":
        return PROTO_SSH
    return None
