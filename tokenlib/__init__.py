"""tokenlib: issue, verify and analyse sender-constrained OAuth access tokens.

Bearer JWT access tokens (RFC 9068), certificate-bound tokens (RFC 8705, ``cnf.x5t#S256``)
and DPoP-bound tokens (RFC 9449, ``cnf.jkt`` plus a proof per request). The core depends
only on ``cryptography`` and ``pyjwt``; ``tokenlib.analysis`` (pandas, matplotlib) models
replay windows, blast radius and deployability over OAuth flow inventories, and
``tokenlib.integrations`` (httpx client, ASGI middleware, Redis store) and ``tokenlib.lab``
(the ``lab`` extra) are the prototype kit. Submodules ``tokenlib.dpop`` and ``tokenlib.mtls``
hold the per-mechanism functions (``create_proof``, ``verify_proof``, ``cert_thumbprint``, ...).
"""

from __future__ import annotations

from tokenlib import dpop, mtls
from tokenlib._cache import clear_caches
from tokenlib.bearer import AccessTokenCache, Issuer, TokenVerifier, verify_access_token
from tokenlib.binding import Binding, Confirmation
from tokenlib.claims import AccessToken
from tokenlib.dpop import DPoPPolicy, DPoPProof
from tokenlib.errors import (
    InsufficientScope,
    InvalidDPoPProof,
    InvalidGrant,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ReplayDetected,
    ReplayQuotaExceeded,
    ReplayStateUnavailable,
    TokenError,
    UnauthorizedClient,
    UseDPoPNonce,
)
from tokenlib.introspection import introspect
from tokenlib.jwk import generate_key, jwk_thumbprint, public_jwk
from tokenlib.jwks import JWKSet
from tokenlib.nonce import NonceManager
from tokenlib.replay import NO_REPLAY_CHECK, AsyncReplayCache, MemoryReplayCache, ReplayCache
from tokenlib.revocation import authorize_revocation
from tokenlib.server import Grant, ResourceServer
from tokenlib.token_endpoint import TokenEndpoint, TokenRequest

__version__ = "0.1.0"

__all__ = [
    "NO_REPLAY_CHECK",
    "AccessToken",
    "AccessTokenCache",
    "AsyncReplayCache",
    "Binding",
    "Confirmation",
    "DPoPPolicy",
    "DPoPProof",
    "Grant",
    "InsufficientScope",
    "InvalidDPoPProof",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidToken",
    "Issuer",
    "JWKSet",
    "MemoryReplayCache",
    "MissingToken",
    "NonceManager",
    "ReplayCache",
    "ReplayDetected",
    "ReplayQuotaExceeded",
    "ReplayStateUnavailable",
    "ResourceServer",
    "TokenEndpoint",
    "TokenError",
    "TokenRequest",
    "TokenVerifier",
    "UnauthorizedClient",
    "UseDPoPNonce",
    "__version__",
    "authorize_revocation",
    "clear_caches",
    "dpop",
    "generate_key",
    "introspect",
    "jwk_thumbprint",
    "mtls",
    "public_jwk",
    "verify_access_token",
]
