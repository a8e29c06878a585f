"""A CA, a server certificate and a token for the storage proxy, to start without a site CA."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Sequence

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")


@dataclass(frozen=True)
class WrittenCerts:
    """The files ``make_certificates`` wrote, for the command to show."""

    ca: Path
    cert: Path
    key: Path
    token: Path
    hosts: tuple[str, ...]
    expires: str


def make_certificates(folder: Path, hosts: Sequence[str], *, days: int = 825) -> WrittenCerts:
    """A new CA, a server certificate for ``hosts`` signed by it, and a random token.

    For a quick start without a site CA. The CA's key is not kept: nobody can
    sign another certificate with it; run again for new host names. Keys and
    the token are created with mode 0600, and nothing is overwritten.
    """
    import datetime
    import secrets

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            if not _HOST_NAME.fullmatch(host) or len(host) > 253:
                raise StorageError(
                    f"--cert-host: '{host}' is not a host name or IP address"
                ) from None
            names.append(x509.DNSName(host))
    if not names:
        raise StorageError("--cert-host: give at least one host name")
    paths = WrittenCerts(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "token",
        tuple(dict.fromkeys(hosts)),
        "",
    )
    existing = [str(p) for p in (paths.ca, paths.cert, paths.key, paths.token) if p.exists()]
    if existing:
        raise StorageError(f"--make-cert: {', '.join(existing)} exists; choose an empty folder")

    now = datetime.datetime.now(datetime.timezone.utc)
    until = now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hpo storage proxy CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, paths.hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _create(paths.ca, ca.public_bytes(pem), 0o644)
    _create(paths.cert, cert.public_bytes(pem), 0o644)
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _create(paths.key, key_pem, 0o600)
    _create(paths.token, (secrets.token_urlsafe(32) + "\n").encode(), 0o600)
    return WrittenCerts(
        paths.ca, paths.cert, paths.key, paths.token, paths.hosts, until.date().isoformat()
    )


def _key_usage(*, cert_sign: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _create(path: Path, data: bytes, mode: int) -> None:
    """Create with its final mode at once (no moment where a key is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # the umask may have removed bits from the public files
