"""The embedded Trino's TLS material: a self-signed certificate for 127.0.0.1 and localhost.

Made on the first start of a state dir (not at ``datong setup``, which fills the shared
download cache: a private key belongs to one state dir, never to a cache several checkouts
share). The keystore (key + certificate, one PEM file) is mode 0600; the certificate alone
is what clients pin (``verify=``), so it may be read by anyone.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

#: Long enough that an embedded platform never meets an expiry; a cluster brings its own.
VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class TlsFiles:
    keystore: Path  # private key + certificate (PEM), what Trino serves HTTPS with
    certificate: Path  # the certificate alone (PEM), what clients verify against


def tls_files(state_dir: Path) -> TlsFiles:
    directory = state_dir / "tls"
    return TlsFiles(directory / "trino-keystore.pem", directory / "trino-cert.pem")


def ensure_certificate(state_dir: Path) -> TlsFiles:
    """The state dir's Trino certificate, generated once (RSA 2048, SAN 127.0.0.1, localhost)."""
    files = tls_files(state_dir)
    if files.keystore.is_file() and files.certificate.is_file():
        return files
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "datong embedded trino")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        # A CA flag lets Python's ssl accept the self-signed certificate as its own anchor.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files.keystore.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(files.keystore.parent, 0o700)
    _write(files.keystore, key_pem + cert_pem, 0o600)
    _write(files.certificate, cert_pem, 0o644)
    return files


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
