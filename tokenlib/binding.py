"""Binding kinds and the confirmation (``cnf``) of an access token, defined once.

:class:`Binding` names how a token is sender-constrained: not at all (``bearer``), to a
DPoP key (``dpop``, ``cnf.jkt``, RFC 9449 §6), to a client certificate (``mtls``,
``cnf.x5t#S256``, RFC 8705 §3), or both (``dpop+mtls``). Members are ``str`` values, so
they compare equal to the strings tokenlib used before (``Binding.DPOP == "dpop"``) and
serialise unchanged into CSV and JSON.

:class:`Confirmation` is the ``cnf`` claim (RFC 7800 §3.1) parsed once: the digests and
the binding they imply. Parsing is strict where it matters: ``jkt`` and ``x5t#S256``
must be base64url SHA-256 digests (43 characters); unknown members are tolerated next to
a known one (Keycloak adds ``kc-jkt-type``); a ``cnf`` with only unknown methods is
refused, because accepting it would silently turn a bound token into a bearer token.

The core, the lab, the probe, the CLI and the inventory schema use these names
(tests/test_binding.py keeps binding-kind literals out of their comparisons); ``Binding`` is a
``StrEnum``, so it compares equal to the plain values written in CSV and JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from tokenlib.errors import InvalidToken

__all__ = ["CNF_MEMBERS", "Binding", "Confirmation"]

_SHA256_B64URL: Final = re.compile(r"[A-Za-z0-9_-]{43}")


class Binding(StrEnum):
    """How an access token is sender-constrained (its ``cnf`` confirmation methods)."""

    BEARER = "bearer"
    DPOP = "dpop"
    MTLS = "mtls"
    DPOP_MTLS = "dpop+mtls"

    @staticmethod
    def of(*, jkt: str | None, x5t_s256: str | None) -> Binding:
        """The binding implied by ``cnf.jkt`` and ``cnf.x5t#S256`` (either may be absent)."""
        return _BY_FLAGS[(jkt is not None) << 1 | (x5t_s256 is not None)]

    @property
    def methods(self) -> frozenset[Binding]:
        """The single proof-of-possession methods this binding requires at a resource
        server (``DPOP_MTLS`` requires both; ``BEARER`` none)."""
        return _METHODS[self]


# index: (has jkt) << 1 | (has x5t#S256); built once, read on every request.
_BY_FLAGS: Final = (Binding.BEARER, Binding.MTLS, Binding.DPOP, Binding.DPOP_MTLS)
_METHODS: Final = {
    Binding.BEARER: frozenset(),
    Binding.DPOP: frozenset({Binding.DPOP}),
    Binding.MTLS: frozenset({Binding.MTLS}),
    Binding.DPOP_MTLS: frozenset({Binding.DPOP, Binding.MTLS}),
}

#: ``cnf`` member -> (binding method, defining RFC section).
CNF_MEMBERS: Final[Mapping[str, tuple[Binding, str]]] = {
    "jkt": (Binding.DPOP, "RFC 9449 §6.1"),
    "x5t#S256": (Binding.MTLS, "RFC 8705 §3.1"),
}


def _cnf_error(description: str, **details: object) -> InvalidToken:
    return InvalidToken(description, details={"check": "cnf", **details})


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A parsed ``cnf`` claim: ``jkt`` (RFC 7638 thumbprint of the DPoP key) and
    ``x5t_s256`` (SHA-256 of the client certificate), either possibly ``None``."""

    jkt: str | None = None
    x5t_s256: str | None = None

    @property
    def binding(self) -> Binding:
        return Binding.of(jkt=self.jkt, x5t_s256=self.x5t_s256)

    @classmethod
    def parse(cls, value: object) -> Confirmation:
        """Parse a ``cnf`` claim value (RFC 7800 §3.1); ``InvalidToken`` (``check``
        ``"cnf"``) when it is not an object, a known member is not a base64url SHA-256
        digest, or no member names a method tokenlib can enforce."""
        if type(value) is not dict and not isinstance(value, Mapping):
            raise _cnf_error(
                "the access token cnf claim is not a JSON object",
                problem="type",
                presented_type=type(value).__name__,
                rfc="RFC 7800 §3.1",
            )
        found: dict[str, str] = {}
        for name, (_, rfc) in CNF_MEMBERS.items():
            if name not in value:
                continue
            member = value[name]
            if not (isinstance(member, str) and _SHA256_B64URL.fullmatch(member)):
                raise _cnf_error(
                    f"the access token cnf.{name} is not a base64url SHA-256 thumbprint",
                    problem="syntax",
                    member=name,
                    presented_type=type(member).__name__,
                    presented_length=len(member) if isinstance(member, str) else None,
                    rfc=rfc,
                )
            found[name] = member
        if not found:
            raise _cnf_error(
                "the access token cnf claim names no confirmation method tokenlib can enforce",
                problem="unsupported",
                members=sorted(str(k) for k in value)[:10],
                rfc="RFC 7800 §3.1",
            )
        return cls(jkt=found.get("jkt"), x5t_s256=found.get("x5t#S256"))

    def to_cnf(self) -> dict[str, str]:
        """The ``cnf`` members to issue (RFC 7800 §3.1), empty for a bearer token."""
        out: dict[str, str] = {}
        if self.jkt is not None:
            out["jkt"] = self.jkt
        if self.x5t_s256 is not None:
            out["x5t#S256"] = self.x5t_s256
        return out
