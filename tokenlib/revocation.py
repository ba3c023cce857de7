"""Token revocation (RFC 7009) for sender-constrained tokens: revoke only for the holder.

RFC 7009 §2.1 lets a client revoke a token that was issued to it. For a token bound
with ``cnf`` (RFC 7800) that is not enough: a leaked DPoP-bound or certificate-bound
token is useless to a thief at a resource server, and it must stay useless at the
revocation endpoint too — otherwise the thief can at least log the victim out, and
a public client's token (no client authentication) could be revoked by anyone who
saw it. :func:`authorize_revocation` therefore also checks the presenter's proof of
possession against the token's ``cnf``, the same way a resource server would:

* ``cnf.jkt`` (RFC 9449 §6): the request must carry a DPoP proof, verified for the
  revocation endpoint (e.g. with ``TokenEndpoint(revocation_url).verify(...)``), whose
  key thumbprint equals ``cnf.jkt`` (constant-time compare);
* ``cnf.x5t#S256`` (RFC 8705 §3): the request's client certificate (or the thumbprint
  a trusted proxy forwarded) must match.

What the endpoint answers (RFC 7009 §2.2): a token the server does not know, or one
that is invalid or expired, is *not* an error — answer 200 and do nothing
(:func:`authorize_revocation` returns ``False`` for ``token=None``). A known token
presented by another client (RFC 7009 §2.1) is refused with ``unauthorized_client``; a
bound token presented without (or with the wrong) proof of possession with
``invalid_dpop_proof`` / ``invalid_token``. Errors are rendered for a token-style
endpoint (HTTP 400/401 with an RFC 6749 §5.2 JSON body, ``error.json_body()``).

Usage at a revocation endpoint::

    endpoint = TokenEndpoint(f"{issuer}/revoke")           # verifies the DPoP header
    checked = endpoint.check(headers, now=now)
    client_id = authenticate_client(form)                   # the AS's client auth
    endpoint.record(checked, client_id=client_id, now=now)  # jti only after auth
    token = lookup(form["token"])                           # None when unknown/invalid
    if authorize_revocation(token, client_id=client_id, proof=checked.proof):
        revoke(token)
    return 200
"""

from __future__ import annotations

import hmac

from tokenlib.claims import AccessToken
from tokenlib.dpop import DPoPProof
from tokenlib.errors import InvalidDPoPProof, TokenError, UnauthorizedClient
from tokenlib.mtls import CertificateInput, verify_certificate_binding, verify_thumbprint_binding

__all__ = ["authorize_revocation", "check_holder"]


def authorize_revocation(
    token: AccessToken | None,
    *,
    client_id: str,
    proof: DPoPProof | None = None,
    client_cert: CertificateInput | None = None,
    client_cert_thumbprint: str | None = None,
) -> bool:
    """Whether the request may revoke ``token`` (RFC 7009 §2.1, checked against ``cnf``).

    ``token``: the token looked up from the request's ``token`` parameter (signature and
    issuer verified; expiry need not be), or ``None`` when it is unknown or invalid —
    then ``False``: answer 200 and revoke nothing (RFC 7009 §2.2). ``client_id``: the
    client the request authenticated as (or named, for a public client). ``proof``: the
    request's verified DPoP proof, if any; ``client_cert``/``client_cert_thumbprint``:
    the mutual-TLS certificate or its forwarded ``x5t#S256`` (not both).

    Returns ``True`` when the token may be revoked; raises
    :class:`~tokenlib.errors.UnauthorizedClient` when it was issued to another client,
    and :class:`~tokenlib.errors.InvalidDPoPProof` / :class:`~tokenlib.errors.InvalidToken`
    when the presenter does not hold the key or certificate the token is bound to.
    """
    if client_cert is not None and client_cert_thumbprint is not None:
        raise ValueError("pass client_cert or client_cert_thumbprint, not both")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError("client_id must be a non-empty str")
    if token is None:
        return False
    try:
        if not hmac.compare_digest(token.client_id.encode(), client_id.encode()):
            raise UnauthorizedClient(
                "the token was not issued to the client requesting its revocation",
                details={"check": "client_id", "rfc": "RFC 7009 §2.1"},
            )
        check_holder(
            token,
            proof=proof,
            client_cert=client_cert,
            client_cert_thumbprint=client_cert_thumbprint,
        )
    except TokenError as err:
        raise err.with_context(endpoint="token") from None
    return True


def check_holder(
    token: AccessToken,
    *,
    proof: DPoPProof | None,
    client_cert: CertificateInput | None = None,
    client_cert_thumbprint: str | None = None,
) -> None:
    """Check that the presenter holds what ``token``'s ``cnf`` binds it to: the DPoP key
    (``jkt``, RFC 9449 §6) and/or the client certificate (``x5t#S256``, RFC 8705 §3),
    each compared in constant time. A bearer token passes."""
    confirmation = token.confirmation
    if confirmation.jkt is not None:
        if proof is None:
            raise InvalidDPoPProof(
                "the token is DPoP-bound: a DPoP proof made with its key is required",
                details={"check": "dpop_header", "rfc": "RFC 9449 §6, RFC 7009 §2.1"},
            )
        if not hmac.compare_digest(proof.jkt.encode(), confirmation.jkt.encode()):
            raise InvalidDPoPProof(
                "the DPoP proof key is not the key the token is bound to",
                details={
                    "check": "cnf.jkt",
                    "claimed": confirmation.jkt,
                    "computed": proof.jkt,
                    "rfc": "RFC 9449 §6",
                },
            )
    if confirmation.x5t_s256 is not None:
        if client_cert_thumbprint is not None:
            verify_thumbprint_binding(token, client_cert_thumbprint)
        else:
            verify_certificate_binding(token, client_cert)
