"""A throwaway PKI for the lab: one CA, a server certificate for 127.0.0.1, client certs.

Everything is generated fresh (EC P-256, valid for a day) and written to a temporary
directory: certificates 0644, private keys 0600 (atomically, via
:func:`tokenlib.jwk.write_private_key`). The CA private key is kept in memory only and
dropped after issuing, so nothing on disk can mint more certificates. The server
certificate names ``localhost`` and ``127.0.0.1`` in its subjectAltName (RFC 6125 §6:
clients match SANs, not the CN); client certificates carry ``clientAuth`` and are what
RFC 8705 ``tls_client_auth`` and ``cnf.x5t#S256`` bind to.

Not for production: there is no revocation, no key protection beyond file modes, and
the validity is deliberately short.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tokenlib._atomic import atomic_write_bytes
from tokenlib._time import Now, resolve_now
from tokenlib.jwk import write_private_key
from tokenlib.mtls import cert_thumbprint, format_client_cert_header

__all__ = ["DEFAULT_CLIENTS", "ClientIdentity", "LabPKI", "create_pki", "temporary_pki"]

#: The lab's clients: two legitimate ones and an attacker with a valid cert of its own.
DEFAULT_CLIENTS: Final = ("alice", "bob", "mallory")
ClientAuth = Literal["none", "optional", "required"]

_HOSTS: Final = ("localhost", "127.0.0.1")


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """One client's certificate and key file; ``x5t_s256`` is what tokens bind to."""

    name: str
    cert_file: Path
    key_file: Path = field(repr=False)
    certificate: x509.Certificate = field(repr=False)
    x5t_s256: str

    @property
    def client_cert_header(self) -> str:
        """This certificate as an RFC 9440 ``Client-Cert`` value (public data only)."""
        return format_client_cert_header(self.certificate)


@dataclass(frozen=True, slots=True)
class LabPKI:
    """Paths and objects of a generated lab PKI, plus ready TLS contexts."""

    directory: Path
    ca_cert_file: Path
    ca_certificate: x509.Certificate = field(repr=False)
    server_cert_file: Path
    server_key_file: Path = field(repr=False)
    clients: Mapping[str, ClientIdentity]

    def server_context(self, *, client_auth: ClientAuth = "optional") -> ssl.SSLContext:
        """A TLS server context with the lab server cert; ``client_auth`` sets whether a
        client certificate (from the lab CA) is requested, and whether it is required."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert_file, self.server_key_file)
        ctx.set_alpn_protocols(["http/1.1"])
        if client_auth != "none":
            ctx.load_verify_locations(cafile=self.ca_cert_file)
            ctx.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
        return ctx

    def client_context(self, client: str | None = None) -> ssl.SSLContext:
        """A TLS client context trusting only the lab CA, presenting ``client``'s cert."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert_file))
        ctx.set_alpn_protocols(["http/1.1"])
        if client is not None:
            identity = self.clients[client]
            ctx.load_cert_chain(identity.cert_file, identity.key_file)
        return ctx


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tokenlib lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    atomic_write_bytes(path, cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    *,
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer_name: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    start: dt.datetime,
    days: int,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    san: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    # A CA only signs certificates and CRLs; a leaf gets digital_signature + key_agreement.
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=not ca, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=not ca, key_cert_sign=ca,
            crl_sign=ca, encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )  # fmt: skip
    if not ca:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def create_pki(
    directory: str | Path,
    *,
    clients: Sequence[str] = DEFAULT_CLIENTS,
    days: int = 1,
    now: Now = None,
) -> LabPKI:
    """Generate a CA, a server cert for ``localhost``/``127.0.0.1`` and one client cert
    per name in ``clients`` into ``directory`` (which must exist)."""
    base = Path(directory)
    if not base.is_dir():
        raise ValueError(f"directory {str(base)!r} does not exist")
    if days <= 0:
        raise ValueError("days must be positive")
    names = list(clients)
    if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
        raise ValueError("client names must be unique identifiers, e.g. 'alice'")
    start = dt.datetime.fromtimestamp(resolve_now(now), dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("tokenlib lab CA (throwaway)")
    ca_cert = _issue(
        subject="tokenlib lab CA (throwaway)",
        public_key=ca_key.public_key(),
        issuer_name=ca_name,
        issuer_key=ca_key,
        start=start,
        days=days,
        ca=True,
    )
    ca_file = base / "ca.pem"
    _write_cert(ca_file, ca_cert)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(
        subject="localhost",
        public_key=server_key.public_key(),
        issuer_name=ca_name,
        issuer_key=ca_key,
        start=start,
        days=days,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=[
            x509.DNSName(_HOSTS[0]),
            x509.IPAddress(ipaddress.ip_address(_HOSTS[1])),
        ],
    )
    server_cert_file, server_key_file = base / "server.pem", base / "server.key"
    _write_cert(server_cert_file, server_cert)
    write_private_key(server_key_file, server_key)

    identities: dict[str, ClientIdentity] = {}
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(
            subject=name,
            public_key=key.public_key(),
            issuer_name=ca_name,
            issuer_key=ca_key,
            start=start,
            days=days,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        cert_file, key_file = base / f"client-{name}.pem", base / f"client-{name}.key"
        _write_cert(cert_file, cert)
        write_private_key(key_file, key)
        identities[name] = ClientIdentity(name, cert_file, key_file, cert, cert_thumbprint(cert))
    del ca_key
    return LabPKI(base, ca_file, ca_cert, server_cert_file, server_key_file, identities)


@contextmanager
def temporary_pki(*, clients: Sequence[str] = DEFAULT_CLIENTS, now: Now = None) -> Iterator[LabPKI]:
    """:func:`create_pki` in a fresh 0700 temporary directory, removed on exit."""
    directory = Path(tempfile.mkdtemp(prefix="tokenlib-lab-pki-"))
    try:
        yield create_pki(directory, clients=clients, now=now)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
