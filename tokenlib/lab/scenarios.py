"""The live lab's scenarios as data, with expectations taken from the probe catalogue.

A scenario is binding × proxy mode × attack × replay cache. What a *conforming* resource
server answers to each attack is the expectation of one row of
:data:`tokenlib.probe.catalogue.RS_CHECKS` (the same row ``tokenlib probe`` sends to a
live server): :data:`ATTACK_TABLE` names it. What the *path* changes — a proxy that drops
the client certificate, a forwarder that passes an injected ``Client-Cert``, caches that
do not see each other's proofs — is listed in :data:`PATH_EFFECTS`; the first matching
effect wins over the catalogue. Findings (``flag``) are data on the attack rows.

Attacks (the attacker is ``mallory``, who holds a valid certificate and DPoP key of her
own and has stolen alice's access token; certificates are public, so she also has
alice's certificate, but not alice's private keys):

``baseline``
    alice's legitimate request (the reference for latency).
``stolen_token``
    mallory presents alice's token with her own certificate / her own DPoP proof
    (RFC 9449 §11.1 "token replay", RFC 8705 §3 "sender-constrained").
``header_injection``
    mallory, without a TLS client certificate, sends alice's mTLS-bound token and a
    ``Client-Cert`` header carrying alice's certificate (RFC 9440 §4).
``proof_replay_same_instance`` / ``proof_replay_cross_instance``
    mallory captured alice's request (token and DPoP proof) and replays it unchanged to
    the same RS instance / to the other instance behind the same address. Within the
    ``iat`` window only a ``jti`` cache stops this (RFC 9449 §11.1); per-instance memory
    caches do not see each other's proofs, a shared Redis cache does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from tokenlib.binding import Binding
from tokenlib.lab.proxy import PROXY_MODES
from tokenlib.probe.catalogue import check_by_id

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ATTACKS",
    "ATTACK_TABLE",
    "BINDINGS",
    "CACHES",
    "PATH_EFFECTS",
    "AttackRow",
    "PathEffect",
    "check_outcomes",
    "expectation",
    "expected_outcomes",
    "flag_for",
    "scenarios",
]

#: The bindings the lab runs (:class:`tokenlib.binding.Binding` members; ``dpop+mtls`` is
#: not a lab scenario).
LabBinding = Literal[Binding.BEARER, Binding.MTLS, Binding.DPOP]
Attack = Literal[
    "baseline",
    "stolen_token",
    "header_injection",
    "proof_replay_same_instance",
    "proof_replay_cross_instance",
]
Cache = Literal["per_instance_memory", "shared_redis"]


@dataclass(frozen=True, slots=True)
class AttackRow:
    """One attack on one binding. ``check``: the probe catalogue row whose expectation a
    conforming RS meets (``None`` for bearer, which has nothing to enforce: ``accepted``
    and ``why`` say what happens). ``flag``: the finding recorded when the outcome is
    ``accepted == flag_when_accepted``."""

    binding: LabBinding
    attack: Attack
    why: str
    check: str | None = None
    accepted: bool | None = None
    flag: str = ""
    flag_when_accepted: bool = True

    def expected(self) -> tuple[bool, str]:
        if self.check is None:
            assert self.accepted is not None
            return self.accepted, self.why
        row = check_by_id(self.check)
        return row.expect == "accept", f"{self.why} ({row.rfc}; probe check {row.id})"


@dataclass(frozen=True, slots=True)
class PathEffect:
    """What a proxy mode or replay cache changes for one attack (``None`` matches any)."""

    binding: LabBinding
    attack: Attack
    accepted: bool
    why: str
    proxy_mode: str | None = None
    cache: Cache | None = None


BINDINGS: Final[tuple[LabBinding, ...]] = (Binding.BEARER, Binding.MTLS, Binding.DPOP)
CACHES: Final[tuple[Cache, ...]] = ("per_instance_memory", "shared_redis")

ATTACK_TABLE: Final[tuple[AttackRow, ...]] = (
    AttackRow(Binding.BEARER, "baseline", "legitimate request", accepted=True),
    AttackRow(
        Binding.BEARER,
        "stolen_token",
        "a bearer token works for whoever holds it (RFC 6750 §5)",
        accepted=True,
        flag="bearer_replay",
    ),
    AttackRow(
        Binding.MTLS,
        "baseline",
        "legitimate request",
        check="mtls.valid",
        flag="binding_broken",
        flag_when_accepted=False,
    ),
    AttackRow(
        Binding.MTLS,
        "stolen_token",
        "the attacker cannot present the bound certificate",
        check="mtls.other_cert",
        flag="stolen_token_accepted",
    ),
    AttackRow(
        Binding.MTLS,
        "header_injection",
        "the RS ignores Client-Cert from a peer it does not trust",
        check="mtls.injected_client_cert",
        flag="header_injection",
    ),
    AttackRow(Binding.DPOP, "baseline", "legitimate request", check="dpop.valid"),
    AttackRow(
        Binding.DPOP,
        "stolen_token",
        "the attacker's proof key does not match cnf.jkt",
        check="dpop.other_key",
        flag="stolen_token_accepted",
    ),
    AttackRow(
        Binding.DPOP,
        "proof_replay_same_instance",
        "the instance's jti cache has seen the proof",
        check="dpop.jti_replayed",
        flag="proof_replay",
    ),
    AttackRow(
        Binding.DPOP,
        "proof_replay_cross_instance",
        "the shared cache has seen the proof",
        check="dpop.jti_replayed",
        flag="proof_replay",
    ),
)

PATH_EFFECTS: Final[tuple[PathEffect, ...]] = (
    PathEffect(
        Binding.MTLS,
        "baseline",
        False,
        "the RS never sees the client certificate: mTLS binding breaks",
        proxy_mode="terminate",
    ),
    PathEffect(
        Binding.MTLS,
        "header_injection",
        True,
        "the proxy passes the injected Client-Cert to a trusting RS (RFC 9440 §4)",
        proxy_mode="misconfigured_forward",
    ),
    PathEffect(
        Binding.MTLS,
        "header_injection",
        False,
        "the proxy strips incoming Client-Cert and sets its own",
        proxy_mode="terminate_forward_cert",
    ),
    PathEffect(
        Binding.DPOP,
        "proof_replay_cross_instance",
        True,
        "the other instance's memory cache has not seen the proof",
        cache="per_instance_memory",
    ),
)

ATTACKS: Final[dict[LabBinding, tuple[Attack, ...]]] = {
    b: tuple(r.attack for r in ATTACK_TABLE if r.binding == b) for b in BINDINGS
}
#: With the shared cache only the DPoP scenarios differ, so only those are re-run.
REDIS_ATTACKS: Final[tuple[Attack, ...]] = (
    "baseline",
    "proof_replay_same_instance",
    "proof_replay_cross_instance",
)
_ROWS: Final = {(r.binding, r.attack): r for r in ATTACK_TABLE}


def _row(binding: str, attack: str) -> AttackRow:
    try:
        return _ROWS[(binding, attack)]  # type: ignore[index]
    except KeyError:
        raise ValueError(f"unknown attack {attack!r} for binding {binding!r}") from None


def expectation(binding: str, mode: str, attack: str, cache: str) -> tuple[bool, str]:
    """Whether the RS should accept, and why: the first matching :data:`PATH_EFFECTS`
    row, else the catalogue expectation of the attack's probe check."""
    row = _row(binding, attack)
    for effect in PATH_EFFECTS:
        if (
            (effect.binding, effect.attack) == (binding, attack)
            and effect.proxy_mode in (None, mode)
            and effect.cache in (None, cache)
        ):
            return effect.accepted, effect.why
    return row.expected()


def flag_for(binding: str, attack: str, accepted: bool) -> str:
    """The finding an outcome records (``""`` when none)."""
    row = _row(binding, attack)
    return row.flag if row.flag and accepted == row.flag_when_accepted else ""


def scenarios(caches: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """``(cache, binding, proxy_mode, attack)`` in canonical order."""
    out: list[tuple[str, str, str, str]] = []
    for cache in caches:
        for binding in BINDINGS:
            for mode in PROXY_MODES:
                for attack in ATTACKS[binding]:
                    if cache == "shared_redis" and (
                        binding != Binding.DPOP or attack not in REDIS_ATTACKS
                    ):
                        continue
                    out.append((cache, binding.value, mode, attack))
    return out


def expected_outcomes(*, redis: bool = True) -> pd.DataFrame:
    """The outcome the lab expects for every scenario, with the reason in words."""
    import pandas as pd

    caches = CACHES if redis else CACHES[:1]
    rows = []
    for cache, binding, mode, attack in scenarios(caches):
        accepted, why = expectation(binding, mode, attack, cache)
        rows.append(
            {
                "replay_cache": cache,
                "binding": binding,
                "proxy_mode": mode,
                "attack": attack,
                "expected_accepted": accepted,
                "expectation": why,
            }
        )
    return pd.DataFrame(rows)


def check_outcomes(results: pd.DataFrame) -> list[str]:
    """One line per scenario whose outcome differs from :func:`expected_outcomes`."""
    bad = results[results["accepted"] != results["expected_accepted"]]
    return [
        f"{r.replay_cache}/{r.binding}/{r.proxy_mode}/{r.attack}: "
        f"accepted={r.accepted} (expected {r.expected_accepted}), "
        f"status {r.status} {r.error or ''}".rstrip()
        for r in bad.itertuples()
    ]
