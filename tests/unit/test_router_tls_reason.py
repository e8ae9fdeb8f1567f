"""A TLS failure of a hop is named as one (its OpenSSL error code is not an errno: code 1 read as an errno
gave "operation not permitted" for a certificate that failed verification)."""

from __future__ import annotations

import ssl

from gostx.chain.router import reason


def test_verify_failure_names_the_certificate_problem() -> None:
    exc = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc.verify_message = "certificate has expired"
    assert reason(exc) == "tls: certificate verify failed: certificate has expired"


def test_other_ssl_errors_use_openssl_reason() -> None:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"
    assert reason(exc) == "tls: wrong version number"


def test_plain_os_errors_unchanged() -> None:
    assert reason(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
