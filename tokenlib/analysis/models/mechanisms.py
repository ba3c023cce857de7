"""The mechanisms and theft scenarios the models compare: one typed definition of each.

A :class:`Mechanism` is a way an access token can be presented (bearer, certificate-bound,
DPoP with a given replay defence, Token Binding); a :class:`Scenario` is what an attacker
stole or controls. Ids are a user contract (exported CSV columns, notebook parameters);
``label`` is what people see. Every other module reads attributes from these objects instead
of comparing id strings or slicing tuples.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BEARER",
    "DPOP_MECHANISMS",
    "FAMILIES",
    "MECHANISMS",
    "SCENARIOS",
    "SCENARIO_GROUPS",
    "TOKEN_THEFT_SCENARIOS",
    "VIEWS",
    "Family",
    "JtiStore",
    "Mechanism",
    "Scenario",
    "ScenarioGroup",
    "View",
    "mechanism",
    "mechanisms",
    "scenario",
    "scenarios",
]

Family = Literal["bearer", "mtls", "dpop", "token_binding"]
#: Deployment families in presentation order.
FAMILIES: tuple[Family, ...] = ("bearer", "mtls", "dpop", "token_binding")
JtiStore = Literal["none", "per_instance", "shared", "inventory"]
ScenarioGroup = Literal["token_theft", "credential_store", "issuer"]
SCENARIO_GROUPS: tuple[ScenarioGroup, ...] = ("token_theft", "credential_store", "issuer")
View = Literal["today", "upgraded"]
#: Support views: RS support as the inventory says, or every RS upgraded to every mechanism.
VIEWS: tuple[View, ...] = ("today", "upgraded")


@dataclass(frozen=True, slots=True)
class Mechanism:
    """One way of presenting an access token.

    ``jti_store`` is the DPoP proof replay store the mechanism assumes (RFC 9449 §11.1):
    ``none``, ``per_instance``, ``shared``, or ``inventory`` (whatever the RS has, from the
    services table); ``None`` for mechanisms without proofs. ``nonce``: server-provided
    nonces are required (RFC 9449 §8, §9), which bound the acceptance window and stop
    pre-generated proofs (§11.2) but do not stop a captured proof being used again (§11.1).
    """

    id: str
    label: str
    family: Family
    rfc: str
    jti_store: JtiStore | None = None
    nonce: bool = False

    @property
    def bound(self) -> bool:
        """True for sender-constrained mechanisms (anything but bearer)."""
        return self.family != "bearer"

    @property
    def proofs(self) -> bool:
        """True when every request carries a signed per-request proof (DPoP)."""
        return self.family == "dpop"

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True)
class Scenario:
    """What the attacker obtained. ``group`` decides which section reports it:
    ``token_theft`` (the headline: what a binding addresses), ``credential_store`` (the
    client's key, certificate or secret store; its own controls) or ``issuer`` (the signing key
    of the authorization server; no client-side control helps)."""

    id: str
    label: str
    group: ScenarioGroup
    rfc: str

    @property
    def token_theft(self) -> bool:
        return self.group == "token_theft"

    def __str__(self) -> str:
        return self.id


BEARER = Mechanism("bearer", "Bearer token", "bearer", "RFC 6750 §1.2")
MECHANISMS: tuple[Mechanism, ...] = (
    BEARER,
    Mechanism("mtls", "mTLS-bound token", "mtls", "RFC 8705 §3"),
    Mechanism(
        "dpop_no_cache", "DPoP without a jti store", "dpop", "RFC 9449 §11.1", jti_store="none"
    ),
    Mechanism(
        "dpop_per_instance_cache",
        "DPoP, one jti store per instance",
        "dpop",
        "RFC 9449 §11.1",
        jti_store="per_instance",
    ),
    Mechanism(
        "dpop_shared_cache",
        "DPoP with a shared jti store",
        "dpop",
        "RFC 9449 §11.1",
        jti_store="shared",
    ),
    Mechanism(
        "dpop_nonce",
        "DPoP with server nonces (the RS's own jti store)",
        "dpop",
        "RFC 9449 §8, §9, §11.1",
        jti_store="inventory",
        nonce=True,
    ),
    Mechanism(
        "dpop_nonce_shared_cache",
        "DPoP with nonces and a shared jti store",
        "dpop",
        "RFC 9449 §8, §9, §11.1",
        jti_store="shared",
        nonce=True,
    ),
    Mechanism("token_binding", "Token Binding", "token_binding", "RFC 8471-8473"),
)
DPOP_MECHANISMS: tuple[Mechanism, ...] = tuple(m for m in MECHANISMS if m.family == "dpop")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("at_rest_copy", "Token copied from storage or logs", "token_theft", "RFC 9700 §4.9"),
    Scenario(
        "in_transit_token_and_proof",
        "Token and proof captured in transit",
        "token_theft",
        "RFC 9449 §11.1",
    ),
    Scenario(
        "live_client_compromise",
        "Client taken over while online",
        "token_theft",
        "RFC 9449 §11.2, §11.4",
    ),
    Scenario(
        "key_exfiltration",
        "Client credential store copied",
        "credential_store",
        "RFC 9700 §4.10.1",
    ),
    Scenario(
        "refresh_token_theft_no_rotation",
        "Refresh token stolen (no rotation)",
        "token_theft",
        "RFC 9700 §4.14",
    ),
    Scenario(
        "refresh_token_theft_rotation",
        "Refresh token stolen (rotation)",
        "token_theft",
        "RFC 9700 §4.14.2",
    ),
    Scenario(
        "issuer_key_compromise",
        "Authorization server signing key stolen",
        "issuer",
        "RFC 9700 §4.9",
    ),
)
TOKEN_THEFT_SCENARIOS: tuple[Scenario, ...] = tuple(s for s in SCENARIOS if s.token_theft)

_MECH = {m.id: m for m in MECHANISMS}
_SCEN = {s.id: s for s in SCENARIOS}


def mechanism(value: str | Mechanism) -> Mechanism:
    """The mechanism with this id; ``ValueError`` naming the valid ids otherwise."""
    if isinstance(value, Mechanism):
        return value
    try:
        return _MECH[value]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown mechanism {value!r}; expected one of {', '.join(_MECH)}"
        ) from None


def scenario(value: str | Scenario) -> Scenario:
    """The scenario with this id; ``ValueError`` naming the valid ids otherwise."""
    if isinstance(value, Scenario):
        return value
    try:
        return _SCEN[value]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown scenario {value!r}; expected one of {', '.join(_SCEN)}"
        ) from None


def mechanisms(values: Iterable[str | Mechanism] | None = None) -> tuple[Mechanism, ...]:
    """Resolve ids (all mechanisms when ``None``), keeping order and dropping repeats."""
    if values is None:
        return MECHANISMS
    return tuple(dict.fromkeys(mechanism(v) for v in values))


def scenarios(values: Iterable[str | Scenario] | None = None) -> tuple[Scenario, ...]:
    """Resolve ids (all scenarios when ``None``), keeping order and dropping repeats."""
    if values is None:
        return SCENARIOS
    return tuple(dict.fromkeys(scenario(v) for v in values))
