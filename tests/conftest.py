"""Shared test fixtures for the whole suite.

Clock: ``NOW`` (also the ``now`` fixture) is a fixed epoch second; pass ``now=NOW`` to
every call so no test reads the system clock or sleeps.

Use the fixtures, not ``from conftest import ...``: pytest re-binds the module name
``conftest`` for every directory that has one, so such imports break in subfolders.

* ``now``, ``audience``, ``client_id`` - ``NOW``, ``AUDIENCE``, ``CLIENT_ID`` (``issuer.issuer``
  is ``ISSUER``; tokens from ``make_token`` have ``sub`` ``SUBJECT`` = ``"alice"``).
* ``keys`` - session dict ``alg -> private key`` for ES256, ES384, ES512, EdDSA, RS256,
  PS256 (RSA is 2048 bits and generated once per session). Per-alg fixtures:
  ``es256_key``, ``es384_key``, ``ed25519_key``, ``rsa_key``.
* ``issuer`` - an ES256 ``tokenlib.bearer.Issuer`` for ``ISSUER`` (300 s tokens);
  ``jwks`` - its public ``JWKSet``; ``make_token(**kw)`` - a factory issuing a token at
  ``NOW`` for ``AUDIENCE`` (keyword arguments override ``Issuer.issue`` defaults).
* ``ca`` - a throwaway P-256 CA (``CertBundle``); ``client_cert`` / ``other_client_cert``
  - end-entity client certificates it issued (``CertBundle`` with ``key``, ``cert``,
  ``der``, ``pem``, ``thumbprint`` = RFC 8705 ``x5t#S256``); ``make_cert(cn)`` - a factory.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, settings

from tokenlib.bearer import Issuer
from tokenlib.jwk import PrivateKey, generate_key
from tokenlib.jwks import JWKSet

# Property tests judge behaviour, never speed: a loaded 2-core CI box must not turn a slow
# example into a failure (speed lives in benchmarks/).
settings.register_profile(
    "tokenlib", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("tokenlib")

#: The fixed "current time" of the suite: 2023-11-14T22:13:20Z.
NOW = 1_700_000_000
ISSUER = "https://as.example.com"
AUDIENCE = "https://rs.example.com"
CLIENT_ID = "s6BhdRkqt3"
SUBJECT = "alice"
KEY_ALGS = ("ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256")


@pytest.fixture(scope="session")
def now() -> int:
    """The suite's fixed clock, ``NOW``."""
    return NOW


@pytest.fixture(scope="session")
def audience() -> str:
    """The resource server's identifier, ``AUDIENCE``."""
    return AUDIENCE


@pytest.fixture(scope="session")
def client_id() -> str:
    """The example client's ``client_id``, ``CLIENT_ID``."""
    return CLIENT_ID


@pytest.fixture(scope="session")
def keys() -> dict[str, PrivateKey]:
    """One private key per algorithm in ``KEY_ALGS`` (RS256 and PS256 share one RSA key)."""
    out: dict[str, PrivateKey] = {alg: generate_key(alg) for alg in ("ES256", "ES384", "ES512")}
    out["EdDSA"] = generate_key("EdDSA")
    rsa_key = generate_key("RS256")
    out["RS256"] = rsa_key
    out["PS256"] = rsa_key
    return out


@pytest.fixture(scope="session")
def es256_key(keys: dict[str, PrivateKey]) -> PrivateKey:
    """A P-256 private key."""
    return keys["ES256"]


@pytest.fixture(scope="session")
def es384_key(keys: dict[str, PrivateKey]) -> PrivateKey:
    """A P-384 private key."""
    return keys["ES384"]


@pytest.fixture(scope="session")
def ed25519_key(keys: dict[str, PrivateKey]) -> PrivateKey:
    """An Ed25519 private key."""
    return keys["EdDSA"]


@pytest.fixture(scope="session")
def rsa_key(keys: dict[str, PrivateKey]) -> PrivateKey:
    """A 2048-bit RSA private key."""
    return keys["RS256"]


@pytest.fixture(scope="session")
def issuer(keys: dict[str, PrivateKey]) -> Issuer:
    """An ES256 ``Issuer`` for ``ISSUER`` with 300 s tokens."""
    return Issuer(ISSUER, keys["ES256"], lifetime=300)


@pytest.fixture(scope="session")
def jwks(issuer: Issuer) -> JWKSet:
    """The public ``JWKSet`` of ``issuer``."""
    return JWKSet.from_dict(issuer.jwks())


@pytest.fixture(scope="session")
def make_token(issuer: Issuer) -> Callable[..., str]:
    """``make_token(**overrides)``: ``issuer.issue`` at ``NOW`` for ``AUDIENCE``."""

    def make(**overrides: Any) -> str:
        kwargs: dict[str, Any] = {
            "subject": SUBJECT,
            "client_id": CLIENT_ID,
            "audience": AUDIENCE,
            "scope": "read write",
            "now": NOW,
        }
        kwargs.update(overrides)
        return issuer.issue(**kwargs)

    return make


@dataclass(frozen=True)
class CertBundle:
    """A certificate with its private key and derived encodings."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def thumbprint(self) -> str:
        """RFC 8705 §3.1 ``x5t#S256``, computed independently of ``tokenlib.mtls``."""
        digest = hashlib.sha256(self.der).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tokenlib tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _build(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int,
) -> x509.Certificate:
    start = datetime.fromtimestamp(NOW, tz=UTC) - timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="session")
def ca() -> CertBundle:
    """A self-signed P-256 test CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build("tokenlib test CA", key, _name("tokenlib test CA"), key, ca=True, serial=1)
    return CertBundle(key, cert)


@pytest.fixture(scope="session")
def make_cert(ca: CertBundle) -> Callable[[str], CertBundle]:
    """``make_cert(cn)``: a fresh client certificate issued by ``ca``."""
    serials = iter(range(100, 10_000))

    def make(cn: str) -> CertBundle:
        key = ec.generate_private_key(ec.SECP256R1())
        return CertBundle(
            key, _build(cn, key, ca.cert.subject, ca.key, ca=False, serial=next(serials))
        )

    return make


@pytest.fixture(scope="session")
def client_cert(make_cert: Callable[[str], CertBundle]) -> CertBundle:
    """The client's certificate (CN ``CLIENT_ID``) issued by ``ca``."""
    return make_cert(CLIENT_ID)


@pytest.fixture(scope="session")
def other_client_cert(make_cert: Callable[[str], CertBundle]) -> CertBundle:
    """Another client's certificate, for mismatch tests."""
    return make_cert("someone-else")
