"""Access-token verification speed: bearer (RFC 9068) and mTLS-bound (RFC 8705).

Per operation, in microseconds (best of interleaved rounds; medians are kept too), on
one machine in one run:

* ``ecdsa_p256_verify``: the floor, one bare ``cryptography`` ECDSA P-256 verify of a
  message the size of a token's signing input;
* ``bearer_verify``: ``verify_access_token`` with every RFC 9068 §4 check (parse, typ,
  allowlist, key selection, signature, claims, iss, aud, time), no cache;
* ``bearer_verify_cached``: the same through ``TokenVerifier`` (validated-token cache,
  time checks re-run on each hit);
* ``mtls_verify``: bearer verification plus ``verify_certificate_binding`` with the
  ``x509.Certificate`` from the TLS layer; ``mtls_verify_header`` takes the certificate
  from an RFC 9440 ``Client-Cert`` field instead (parse + DER load + thumbprint);
  ``mtls_verify_cached`` is the cached token path plus the binding check;
* ``pyjwt_decode``: naive ``jwt.decode`` with issuer/audience checks, for comparison.

``run(quick=False) -> dict`` writes ``benchmarks/results/tokens.json`` atomically.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from benchmarks._common import machine_info, measure, write_result
from tokenlib.bearer import Issuer, TokenVerifier, verify_access_token
from tokenlib.mtls import (
    cert_thumbprint,
    format_client_cert_header,
    parse_client_cert_header,
    verify_certificate_binding,
)

_ISS = "https://as.example.com"
_AUD = "https://rs.example.com"


def _client_certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-client")])
    start = datetime.now(tz=UTC) - timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and return ``{"machine": ..., "us_per_op": ..., "ratio_to_ecdsa_verify": ...}``."""
    number, repeat = (200, 7) if quick else (1000, 15)
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = Issuer(_ISS, key)
    jwks = issuer.jwk_set()
    cert = _client_certificate()
    header_value = format_client_cert_header(cert)
    now = time.time()
    token = issuer.issue(
        subject="alice",
        client_id="c",
        audience=_AUD,
        scope="read write",
        x5t_s256=cert_thumbprint(cert),
        now=now,
    )
    verifier = TokenVerifier(issuer=_ISS, audience=_AUD, jwks=jwks)

    signing_input = token.rsplit(".", 1)[0].encode()
    der_signature = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    pem_public = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def bare() -> None:
        public.verify(der_signature, signing_input, ec.ECDSA(hashes.SHA256()))

    def bearer() -> None:
        verify_access_token(token, issuer=_ISS, audience=_AUD, jwks=jwks, now=now)

    def bearer_cached() -> None:
        verifier.verify(token, now=now)

    def mtls() -> None:
        access = verify_access_token(token, issuer=_ISS, audience=_AUD, jwks=jwks, now=now)
        verify_certificate_binding(access, cert)

    def mtls_header() -> None:
        access = verify_access_token(token, issuer=_ISS, audience=_AUD, jwks=jwks, now=now)
        verify_certificate_binding(access, parse_client_cert_header(header_value))

    def mtls_cached() -> None:
        verify_certificate_binding(verifier.verify(token, now=now), cert)

    def naive_pyjwt() -> None:
        pyjwt.decode(token, pem_public, algorithms=["ES256"], audience=_AUD, issuer=_ISS)

    cases: dict[str, Callable[[], None]] = {
        "ecdsa_p256_verify": bare,
        "bearer_verify": bearer,
        "bearer_verify_cached": bearer_cached,
        "mtls_verify": mtls,
        "mtls_verify_header": mtls_header,
        "mtls_verify_cached": mtls_cached,
        "pyjwt_decode": naive_pyjwt,
    }
    measured = measure(cases, number=number, repeat=repeat, warm_up=True)
    timings = {name: value["best"] for name, value in measured.items()}
    floor = timings["ecdsa_p256_verify"]
    result: dict[str, Any] = {
        "benchmark": "tokens",
        "quick": quick,
        "measured_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "iterations": {"number": number, "repeat": repeat},
        "us_per_op": timings,
        "us_per_op_median": {name: value["median"] for name, value in measured.items()},
        "ratio_to_ecdsa_verify": {name: round(value / floor, 2) for name, value in timings.items()},
    }
    write_result("tokens", result)
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
