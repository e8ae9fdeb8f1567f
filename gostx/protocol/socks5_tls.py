"""TLS contexts for proxy protocols that switch to TLS mid-stream (SOCKS5 methods 0x80/0x82).

Server: the configured cert/key, else gost's default: a self-signed ECDSA P-256 certificate (O=GOST,
CN=gost.run, one year), made once per process. Client: no certificate verification (gost's default,
`secure=false`).
"""

from __future__ import annotations

import datetime
import functools
import os
import ssl
import tempfile

from gostx.config.model import TLSConfig
from gostx.errors import GostError


def _write_default_cert(folder: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GOST"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "gost.run")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("gost.run")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


@functools.lru_cache(maxsize=1)
def _default_server_context() -> ssl.SSLContext:
    from gostx import _engine
    from gostx.net.tls import attach_c_context

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="gostx-tls-") as folder:
        cert, key = _write_default_cert(folder)
        ctx.load_cert_chain(cert, key)
        attach_c_context(ctx, _engine.TlsContext(True, cert, key))
    return ctx


def server_context(tls: TLSConfig | None = None) -> ssl.SSLContext:
    if not (tls and tls.cert_file and tls.key_file):
        return _default_server_context()
    from gostx import _engine
    from gostx.net.tls import attach_c_context

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
        attach_c_context(ctx, _engine.TlsContext(True, tls.cert_file, tls.key_file))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise GostError(f"tls: cannot load {tls.cert_file}: {exc}") from None
    return ctx


def client_context(tls: TLSConfig | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls is not None and tls.secure:
        ctx.load_default_certs()
        if tls.ca_file:
            ctx.load_verify_locations(tls.ca_file)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    from gostx import _engine
    from gostx.net.tls import attach_c_context

    secure = tls is not None and tls.secure
    ca = tls.ca_file if secure and tls is not None else None
    attach_c_context(ctx, _engine.TlsContext(False, ca_file=ca or None, verify=secure, default_paths=secure),
                     check_name=secure)
    return ctx
