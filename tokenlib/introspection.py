"""An RFC 7662 §2.2 introspection response for a verified access token.

Unlike peers that hard-code ``token_type: "Bearer"`` and drop ``cnf``, the response
keeps the confirmation claim (RFC 8705 §3.2, RFC 9449 §6.2) so that a resource server
relying on introspection can still enforce the binding, and reports ``token_type``
``"DPoP"`` for a DPoP-bound token (RFC 9449 §6.2). A certificate-bound token is used
with the ``Bearer`` scheme over mutual TLS (RFC 8705 §3), so its type stays ``Bearer``.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from tokenlib._time import Now, resolve_now
from tokenlib.claims import AccessToken

__all__ = ["INACTIVE", "introspect"]

#: RFC 7662 §2.2: an inactive token reveals nothing else.
INACTIVE: Final = {"active": False}
_PASSED_THROUGH: Final = ("nbf", "auth_time", "acr", "amr", "username")


def introspect(token: AccessToken | None, *, now: Now = None) -> dict[str, Any]:
    """The RFC 7662 §2.2 response for ``token`` at ``now``.

    ``None`` (unknown, revoked or invalid) and tokens expired or not yet valid at ``now``
    give ``{"active": false}``. Otherwise: ``active``, ``scope``, ``client_id``, ``sub``,
    ``aud``, ``iss``, ``exp``, ``iat``, ``jti``, ``token_type`` and ``cnf`` as issued,
    plus ``nbf``/``auth_time``/``acr``/``amr``/``username`` when the token has them.
    """
    if token is None:
        return dict(INACTIVE)
    moment = resolve_now(now)
    if moment >= token.expires_at:
        return dict(INACTIVE)
    if token.not_before is not None and token.not_before > moment:
        return dict(INACTIVE)
    claims = token.claims
    aud = claims.get("aud")
    out: dict[str, Any] = {"active": True}
    if token.scopes:
        scope = claims.get("scope")
        out["scope"] = scope if isinstance(scope, str) else " ".join(sorted(token.scopes))
    out["client_id"] = token.client_id
    out["sub"] = token.subject
    out["aud"] = aud if isinstance(aud, str) else list(token.audience)
    out["iss"] = token.issuer
    out["exp"] = token.expires_at
    out["iat"] = token.issued_at
    out["jti"] = token.jti
    out["token_type"] = "DPoP" if token.jkt is not None else "Bearer"
    cnf = token.cnf
    if cnf is not None:
        out["cnf"] = copy.deepcopy(cnf)
    for name in _PASSED_THROUGH:
        if name in claims:
            out[name] = copy.deepcopy(claims[name])
    return out
