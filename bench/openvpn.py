"""OpenVPN peer-to-peer over UDP with AES-256-GCM: the userspace-VPN row of the bench.

OpenVPN 2.6 refuses AEAD ciphers in static-key mode, so this uses TLS mode between two peers
(--tls-server / --tls-client, --ifconfig, no pool or push) with a throwaway CA and two
certificates made here with the `cryptography` package. DCO is disabled: the row measures the
userspace data path, which is what gostx competes with.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CIPHER = "AES-256-GCM"
PORT = 1194


@dataclass(frozen=True)
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: str, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _write_cert(path: str, cert: x509.Certificate) -> None:
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(directory: str) -> Pki:
    """A CA and a server and a client certificate (EC P-256, valid one day) in directory."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("gostx bench CA"))
        .issuer_name(_name("gostx bench CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        common_name: str, usage: x509.ObjectIdentifier
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert, key

    server_cert, server_key = leaf("server", ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH)
    pki = Pki(
        ca=os.path.join(directory, "ca.crt"),
        server_cert=os.path.join(directory, "server.crt"),
        server_key=os.path.join(directory, "server.key"),
        client_cert=os.path.join(directory, "client.crt"),
        client_key=os.path.join(directory, "client.key"),
    )
    _write_cert(pki.ca, ca_cert)
    _write_cert(pki.server_cert, server_cert)
    _write_key(pki.server_key, server_key)
    _write_cert(pki.client_cert, client_cert)
    _write_key(pki.client_key, client_key)
    return pki


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _common(dev: str, local_ip: str, remote_ip: str) -> list[str]:
    return [
        "openvpn",
        "--dev", dev, "--dev-type", "tun", "--topology", "p2p",
        "--ifconfig", local_ip, remote_ip,
        "--proto", "udp", "--data-ciphers", CIPHER, "--disable-dco",
        "--verb", "3", "--suppress-timestamps",
    ]  # fmt: skip


def server_argv(pki: Pki, dev: str, local_ip: str, remote_ip: str, port: int = PORT) -> list[str]:
    return [
        *_common(dev, local_ip, remote_ip),
        "--lport", str(port), "--tls-server", "--dh", "none",
        "--ca", pki.ca, "--cert", pki.server_cert, "--key", pki.server_key,
        "--remote-cert-tls", "client",
    ]  # fmt: skip


def client_argv(
    pki: Pki, dev: str, local_ip: str, remote_ip: str, server: str, port: int = PORT
) -> list[str]:
    return [
        *_common(dev, local_ip, remote_ip),
        "--remote", server, str(port), "--nobind", "--tls-client",
        "--ca", pki.ca, "--cert", pki.client_cert, "--key", pki.client_key,
        "--remote-cert-tls", "server",
    ]  # fmt: skip
