"""The lab's scenario table is data: attacks take their expectation from the probe
catalogue, path effects override it, findings are flagged from the rows."""

from __future__ import annotations

import pytest

from tokenlib.lab.proxy import PROXY_MODES
from tokenlib.lab.scenarios import (
    ATTACK_TABLE,
    ATTACKS,
    PATH_EFFECTS,
    expectation,
    flag_for,
    scenarios,
)
from tokenlib.probe.catalogue import check_by_id


def test_every_bound_attack_names_a_catalogue_check() -> None:
    for row in ATTACK_TABLE:
        if row.binding == "bearer":
            assert row.check is None
            assert row.accepted is not None
        else:
            assert row.check is not None
            check = check_by_id(row.check)
            assert check.binding == row.binding


def test_conforming_path_takes_the_catalogue_answer() -> None:
    for row in ATTACK_TABLE:
        if row.check is None:
            continue
        accepted, why = expectation(row.binding, "passthrough", row.attack, "shared_redis")
        assert accepted is (check_by_id(row.check).expect == "accept")
        assert row.check in why  # the reason names the probe check and its RFC section
        assert check_by_id(row.check).rfc in why


@pytest.mark.parametrize("effect", PATH_EFFECTS, ids=lambda e: f"{e.attack}-{e.proxy_mode}")
def test_each_path_effect_applies_only_where_it_says(effect: object) -> None:
    from tokenlib.lab.scenarios import PathEffect

    assert isinstance(effect, PathEffect)
    mode = effect.proxy_mode or "passthrough"
    cache = effect.cache or "per_instance_memory"
    assert expectation(effect.binding, mode, effect.attack, cache) == (effect.accepted, effect.why)


def test_unknown_attack_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown attack"):
        expectation("dpop", "passthrough", "header_injection", "per_instance_memory")


@pytest.mark.parametrize(
    ("binding", "attack", "accepted", "flag"),
    [
        ("bearer", "stolen_token", True, "bearer_replay"),
        ("bearer", "baseline", True, ""),
        ("mtls", "baseline", False, "binding_broken"),
        ("mtls", "baseline", True, ""),
        ("mtls", "header_injection", True, "header_injection"),
        ("mtls", "header_injection", False, ""),
        ("dpop", "proof_replay_cross_instance", True, "proof_replay"),
        ("dpop", "stolen_token", True, "stolen_token_accepted"),
        ("dpop", "stolen_token", False, ""),
        ("dpop", "baseline", False, ""),
    ],
)
def test_flags(binding: str, attack: str, accepted: bool, flag: str) -> None:
    assert flag_for(binding, attack, accepted) == flag


def test_scenario_order_and_redis_subset() -> None:
    memory = scenarios(["per_instance_memory"])
    assert len(memory) == sum(map(len, ATTACKS.values())) * len(PROXY_MODES)
    shared = scenarios(["shared_redis"])
    assert {b for _, b, _, _ in shared} == {"dpop"}
    assert {a for *_, a in shared} == {
        "baseline",
        "proof_replay_same_instance",
        "proof_replay_cross_instance",
    }
