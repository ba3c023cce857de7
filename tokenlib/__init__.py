"""tokenlib: issue, verify and analyse sender-constrained OAuth access tokens.

Bearer JWT access tokens (RFC 9068), certificate-bound tokens (RFC 8705, ``cnf.x5t#S256``)
and DPoP-bound tokens (RFC 9449, ``cnf.jkt`` plus a proof per request). The core depends
only on ``cryptography`` and ``pyjwt``; ``tokenlib.analysis`` (pandas, matplotlib) models
replay windows, blast radius and deployability over OAuth flow inventories.
"""

from __future__ import annotations

from tokenlib.errors import (
    InsufficientScope,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ReplayDetected,
    ReplayStateUnavailable,
    TokenError,
    UseDPoPNonce,
)
from tokenlib.jwk import generate_key, jwk_thumbprint, public_jwk

__version__ = "0.1.0"

__all__ = [
    "InsufficientScope",
    "InvalidDPoPProof",
    "InvalidRequest",
    "InvalidToken",
    "MissingToken",
    "ReplayDetected",
    "ReplayStateUnavailable",
    "TokenError",
    "UseDPoPNonce",
    "__version__",
    "generate_key",
    "jwk_thumbprint",
    "public_jwk",
]
