"""The catalogue of sender-constraint checks, as data: what is sent, what a conforming server
answers, the RFC section that says so, and how much it matters.

One :class:`Check` per row. The probe (:mod:`tokenlib.probe.runner`) sends each applicable
check to a live resource server; the live lab (:mod:`tokenlib.lab.scenarios`) takes the
expectations of its attacks from the same rows. Nothing here sends traffic.

Severity: ``must`` — the RFC (or RFC 9110 / RFC 7519 for the HTTP and JWT rules the RFC
builds on) says MUST, and getting it wrong lets a stolen or replayed credential through or
breaks every conforming client; ``should`` — a SHOULD, or a MUST whose failure only costs
interoperability with some clients; ``info`` — recorded, never a failure of the server.

Sources: RFC 9449 (DPoP), RFC 8705 (mTLS-bound tokens), RFC 9440 (Client-Cert header),
RFC 6750 (Bearer), RFC 9110 (HTTP semantics), RFC 7519/7515 (JWT/JWS), RFC 9126 (PAR),
and the list of DPoP resource-server negatives in the OpenID FAPI 2.0 conformance suite
(``fapi=True`` marks the rows that correspond to one of its tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from tokenlib.binding import Binding

__all__ = [
    "AS_CHECKS",
    "CHECKS",
    "RS_CHECKS",
    "Binding",
    "Check",
    "CheckBinding",
    "Expect",
    "Severity",
    "check_by_id",
]

Severity = Literal["must", "should", "info"]
#: What a check needs: a DPoP-bound or a certificate-bound token
#: (:class:`tokenlib.binding.Binding` members), or ``"any"`` token.
CheckBinding = Literal["any", Binding.DPOP, Binding.MTLS]
#: ``accept``: a 2xx answer; ``reject``: a 4xx answer (an exception or a 5xx is not a
#: refusal); ``nonce_challenge``: 401 (RS) or 400 (AS) with ``use_dpop_nonce`` and a
#: ``DPoP-Nonce`` header; ``unauthorized``: 401 with a ``WWW-Authenticate`` challenge.
Expect = Literal["accept", "reject", "nonce_challenge", "unauthorized"]
Target = Literal["rs", "as"]

SEVERITIES: Final[tuple[Severity, ...]] = ("must", "should", "info")


@dataclass(frozen=True, slots=True)
class Check:
    """One probe check. ``id`` is stable (JSON, JUnit and CSV users key on it)."""

    id: str
    title: str
    rfc: str
    severity: Severity
    binding: CheckBinding
    sends: str
    expects: str
    expect: Expect
    target: Target = "rs"
    fapi: bool = False

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.id}: severity must be one of {SEVERITIES}")
        if not self.rfc or not self.title or not self.sends or not self.expects:
            raise ValueError(f"{self.id}: every check names its RFC section, title and texts")


def _dpop(
    id_: str,
    title: str,
    rfc: str,
    sends: str,
    *,
    accept: bool = False,
    severity: Severity = "must",
    fapi: bool = True,
) -> Check:
    expects = "accepted (2xx)" if accept else "refused (401 invalid_token / invalid_dpop_proof)"
    return Check(
        id=f"dpop.{id_}",
        title=title,
        rfc=rfc,
        severity=severity,
        binding=Binding.DPOP,
        sends=sends,
        expects=expects,
        expect="accept" if accept else "reject",
        fapi=fapi,
    )


_S43: Final = "RFC 9449 §4.3"

#: Resource-server checks, in the order the probe sends them.
RS_CHECKS: Final[tuple[Check, ...]] = (
    Check(
        "rs.no_token",
        "Request without any token is refused",
        "RFC 6750 §3.1; RFC 9449 §7.1",
        "must",
        "any",
        "the request with no Authorization header and no proof",
        "401 with a WWW-Authenticate challenge (an endpoint that answers is unprotected)",
        "unauthorized",
    ),
    # -- DPoP (RFC 9449) ---------------------------------------------------------------
    _dpop(
        "valid",
        "Valid DPoP request is accepted",
        "RFC 9449 §7.1",
        "the token with the DPoP scheme and a fresh, correct proof",
        accept=True,
        fapi=False,
    ),
    _dpop(
        "bearer_downgrade",
        "DPoP-bound token sent as Bearer is refused",
        "RFC 9449 §7.2",
        "Authorization: Bearer <token>, no DPoP header",
    ),
    _dpop(
        "bearer_downgrade_with_proof",
        "DPoP-bound token sent as Bearer next to a valid proof is refused",
        "RFC 9449 §7.2",
        "Authorization: Bearer <token> plus a valid DPoP proof",
    ),
    _dpop("no_proof", "DPoP scheme without a proof is refused", "RFC 9449 §7.1", "no DPoP header"),
    _dpop(
        "duplicate_header",
        "Two DPoP headers are refused",
        f"{_S43} check 1",
        "two DPoP header fields, each a valid proof",
    ),
    _dpop("malformed", "Malformed proof is refused", f"{_S43} check 2", "DPoP: not-a-jwt"),
    _dpop("typ_missing", "Proof without typ is refused", f"{_S43} check 4", "header without typ"),
    _dpop(
        "typ_wrong", "Proof with typ other than dpop+jwt is refused", f"{_S43} check 4", 'typ "JWT"'
    ),
    _dpop("alg_missing", "Proof without alg is refused", f"{_S43} check 5", "header without alg"),
    _dpop(
        "alg_none",
        "Unsigned proof (alg none) is refused",
        f"{_S43} check 5; RFC 7518 §3.6",
        'alg "none", empty signature',
    ),
    _dpop(
        "alg_symmetric",
        "Proof with a symmetric alg is refused",
        f"{_S43} check 5",
        'alg "HS256", HMAC over the proof',
    ),
    _dpop(
        "alg_mismatch",
        "Proof whose alg does not fit its key is refused",
        f"{_S43} check 5",
        "alg names another curve than the key's",
    ),
    _dpop("jwk_missing", "Proof without jwk is refused", f"{_S43} check 7", "header without jwk"),
    _dpop(
        "jwk_private",
        "Proof carrying a private key in jwk is refused",
        f"{_S43} check 7",
        "jwk includes the private member d",
    ),
    _dpop(
        "signature_wrong",
        "Proof with a broken signature is refused",
        f"{_S43} check 6",
        "the last signature byte flipped",
    ),
    _dpop(
        "jwk_other_key",
        "Proof signed by another key than its jwk is refused",
        f"{_S43} check 6",
        "jwk of a fresh key, signature by the token's key",
    ),
    _dpop(
        "other_key",
        "Valid proof from another key (stolen token) is refused",
        "RFC 9449 §6.1, §7.1",
        "a correct proof made with a fresh key, not cnf.jkt",
    ),
    _dpop(
        "jti_missing", "Proof without jti is refused", f"{_S43} check 3; §4.2", "claims without jti"
    ),
    _dpop(
        "jti_replayed",
        "Replayed proof (same jti) is refused",
        "RFC 9449 §11.1",
        "the same valid proof a second time",
        severity="should",
    ),
    _dpop("htm_missing", "Proof without htm is refused", f"{_S43} check 8", "claims without htm"),
    _dpop(
        "htm_wrong",
        "Proof for another method is refused",
        f"{_S43} check 8",
        "htm of another method (POST for GET, GET otherwise)",
    ),
    _dpop("htu_missing", "Proof without htu is refused", f"{_S43} check 9", "claims without htu"),
    _dpop(
        "htu_wrong_path",
        "Proof for another path is refused",
        f"{_S43} check 9",
        "htu with /tokenlib-probe-other appended to the path",
    ),
    _dpop(
        "htu_wrong_host",
        "Proof for another host is refused",
        f"{_S43} check 9",
        "htu naming host probe.invalid (only inside the proof)",
    ),
    _dpop(
        "htu_wrong_scheme",
        "Proof for the other scheme is refused",
        f"{_S43} check 9",
        "htu with http/https swapped",
    ),
    _dpop(
        "htu_query",
        "Request with a query is accepted (htu without it)",
        f"{_S43} check 9; §4.2",
        "?tokenlib-probe=1 on the request, htu without query",
        accept=True,
    ),
    _dpop(
        "htu_fragment",
        "Proof whose htu has a fragment is accepted",
        f"{_S43} check 9",
        "htu with #tokenlib-probe appended",
        accept=True,
    ),
    _dpop(
        "htu_default_port",
        "Proof whose htu spells the default port differently is accepted",
        f"{_S43} (RFC 3986 §6.2.3 normalisation)",
        "htu with the default port written out (or removed)",
        accept=True,
        severity="should",
    ),
    _dpop(
        "htu_case",
        "Proof whose htu has an upper-case scheme and host is accepted",
        f"{_S43} (RFC 3986 §6.2.2.1 normalisation)",
        "htu with scheme and host in upper case",
        accept=True,
        severity="should",
    ),
    _dpop("iat_missing", "Proof without iat is refused", f"{_S43} check 11", "claims without iat"),
    _dpop(
        "iat_past",
        "Proof minted an hour ago is refused",
        f"{_S43} check 11; §11.1",
        "iat one hour in the past",
    ),
    _dpop(
        "iat_future",
        "Proof minted an hour ahead is refused",
        f"{_S43} check 11; §11.1",
        "iat one hour in the future",
    ),
    _dpop(
        "exp_past",
        "Proof with an exp in the past is refused",
        "RFC 7519 §4.1.4",
        "an exp claim one hour in the past",
        severity="should",
    ),
    _dpop(
        "ath_missing",
        "Proof without ath is refused",
        f"{_S43} check 12; §7.1",
        "claims without ath",
    ),
    _dpop(
        "ath_wrong",
        "Proof with the hash of another token is refused",
        f"{_S43} check 12; §7.1",
        "ath of another token",
    ),
    _dpop(
        "extra_claims",
        "Proof with unknown claims and header parameters is accepted",
        "RFC 7519 §4; RFC 9449 §4.2",
        "an unknown claim and an unknown header parameter",
        accept=True,
    ),
    _dpop(
        "scheme_case",
        "Authorization scheme is case-insensitive",
        "RFC 9110 §11.1; RFC 9449 §7.1",
        "Authorization: dPoP <token> with a valid proof",
        accept=True,
    ),
    # -- server nonces (RFC 9449 §8, §9): only when the server asks for one -------------
    Check(
        "dpop.nonce_challenge",
        "Nonce demand uses 401 use_dpop_nonce with a DPoP-Nonce header",
        "RFC 9449 §9",
        "should",
        Binding.DPOP,
        "a valid proof without nonce to a server that demands nonces",
        "401, WWW-Authenticate error=use_dpop_nonce, a DPoP-Nonce header",
        "nonce_challenge",
    ),
    Check(
        "dpop.nonce_retry",
        "Retry with the server's nonce is accepted",
        "RFC 9449 §9",
        "must",
        Binding.DPOP,
        "a fresh proof carrying the nonce from the server's DPoP-Nonce header",
        "accepted (2xx)",
        "accept",
    ),
    Check(
        "dpop.nonce_unknown",
        "Proof with a nonce the server never issued is refused",
        "RFC 9449 §9, §11.3",
        "must",
        Binding.DPOP,
        "a fresh proof carrying a made-up nonce",
        "refused (401; §9 asks for use_dpop_nonce with a fresh DPoP-Nonce)",
        "reject",
    ),
    # -- mTLS (RFC 8705) --------------------------------------------------------------------
    Check(
        "mtls.valid",
        "Certificate-bound token with its certificate is accepted",
        "RFC 8705 §3",
        "must",
        Binding.MTLS,
        "the token over TLS with the bound client certificate",
        "accepted (2xx)",
        "accept",
    ),
    Check(
        "mtls.no_cert",
        "Certificate-bound token without a certificate is refused",
        "RFC 8705 §3",
        "must",
        Binding.MTLS,
        "the token over TLS without a client certificate",
        "refused (401 invalid_token)",
        "reject",
    ),
    Check(
        "mtls.other_cert",
        "Certificate-bound token with another certificate is refused",
        "RFC 8705 §3",
        "must",
        Binding.MTLS,
        "the token over TLS with a fresh self-signed certificate",
        "refused (401 invalid_token, or the TLS handshake fails)",
        "reject",
    ),
    Check(
        "mtls.injected_client_cert",
        "Client-Cert header injected by the caller is ignored",
        "RFC 9440 §4; RFC 8705 §3",
        "must",
        Binding.MTLS,
        "the token without a TLS certificate, the bound certificate in a Client-Cert header",
        "refused (401 invalid_token): only a trusted proxy may set Client-Cert",
        "reject",
    ),
)

#: Authorization-server (token endpoint) checks: DPoP at the token request (RFC 9449 §5),
#: the nonce answer there (§8: 400, not 401), ``dpop_jkt`` at PAR (§10.1, RFC 9126 §2.3) and
#: refresh-token binding for public clients (§5).
AS_CHECKS: Final[tuple[Check, ...]] = (
    Check(
        "as.refresh_same_key",
        "Public client's refresh token with its key is accepted",
        "RFC 9449 §5",
        "must",
        Binding.DPOP,
        "the refresh-token grant with a proof from the bound key",
        "200 with a new DPoP-bound token",
        "accept",
        "as",
    ),
    Check(
        "as.dpop_htu_wrong",
        "Token request with a proof for another URL is refused",
        "RFC 9449 §4.3 check 9, §5",
        "must",
        Binding.DPOP,
        "the grant, proof htu of another path",
        "400 invalid_dpop_proof",
        "reject",
        "as",
    ),
    Check(
        "as.dpop_htm_wrong",
        "Token request with a proof for GET is refused",
        "RFC 9449 §4.3 check 8, §5",
        "must",
        Binding.DPOP,
        "the grant, proof htm GET",
        "400 invalid_dpop_proof",
        "reject",
        "as",
    ),
    Check(
        "as.dpop_malformed",
        "Token request with a malformed proof is refused",
        "RFC 9449 §4.3 check 2, §5",
        "must",
        Binding.DPOP,
        "the grant, DPoP: not-a-jwt",
        "400 invalid_dpop_proof",
        "reject",
        "as",
    ),
    Check(
        "as.dpop_iat_past",
        "Token request with an hour-old proof is refused",
        "RFC 9449 §4.3 check 11, §5",
        "must",
        Binding.DPOP,
        "the grant, proof iat one hour ago",
        "400 invalid_dpop_proof",
        "reject",
        "as",
    ),
    Check(
        "as.nonce_status",
        "Nonce demand at the token endpoint is 400 use_dpop_nonce",
        "RFC 9449 §8",
        "must",
        Binding.DPOP,
        "a valid proof without nonce to a server that demands nonces",
        "400 (not 401), error use_dpop_nonce, a DPoP-Nonce header",
        "nonce_challenge",
        "as",
    ),
    Check(
        "as.par_dpop_jkt_mismatch",
        "PAR with dpop_jkt not matching the proof is refused",
        "RFC 9449 §10.1; RFC 9126 §2.3",
        "must",
        Binding.DPOP,
        "a pushed authorization request with dpop_jkt of another key and a valid proof",
        "400 invalid_request or invalid_dpop_proof",
        "reject",
        "as",
    ),
    Check(
        "as.refresh_other_key",
        "Public client's refresh token with another key is refused",
        "RFC 9449 §5",
        "must",
        Binding.DPOP,
        "the refresh-token grant with a proof from a fresh key",
        "400 invalid_grant / invalid_dpop_proof",
        "reject",
        "as",
    ),
)

CHECKS: Final[tuple[Check, ...]] = RS_CHECKS + AS_CHECKS


def _index(checks: Iterable[Check]) -> dict[str, Check]:
    out: dict[str, Check] = {}
    for check in checks:
        if check.id in out:
            raise ValueError(f"duplicate check id {check.id!r}")
        out[check.id] = check
    return out


_BY_ID: Final = _index(CHECKS)


def check_by_id(check_id: str) -> Check:
    """The catalogue row ``check_id``; ``KeyError`` naming it when unknown."""
    try:
        return _BY_ID[check_id]
    except KeyError:
        raise KeyError(f"no probe check {check_id!r}") from None
