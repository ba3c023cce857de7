"""Tests for tokenlib.analysis.sensitivity: metrics, tornado, sweeps, conclusions under draws."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from tokenlib.analysis import models
from tokenlib.analysis.params import ModelParameters, parameter_specs
from tokenlib.analysis.sensitivity import (
    CONCLUSIONS,
    FAST_ATTACKER,
    METRICS,
    conclusion_checks,
    conclusion_robustness,
    credential_store_share,
    exposure_hours,
    headline_metrics,
    mean_captured_proof_window,
    shared_contexts,
    sweep,
    theft_removed,
    tornado,
    usable_share,
)

try:
    from tests.analysis.conftest_models import (
        authorization_servers_frame,
        flows_frame,
        random_inventory,
        services_frame,
    )
except ImportError:  # pragma: no cover
    from conftest_models import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        authorization_servers_frame,
        flows_frame,
        random_inventory,
        services_frame,
    )

P0 = ModelParameters.from_reference()
F, S = random_inventory(150, seed=7)
AS_ALL = authorization_servers_frame(
    [
        {
            "as_id": "as-default",
            "issues_dpop": True,
            "issues_mtls": True,
            "binds_refresh_tokens": True,
        }
    ]
)
CHEAP = [m for m in METRICS if not m.startswith("blast")]


def test_metric_names_and_finite_values() -> None:
    for mech in ("mtls", "dpop_shared_cache", "dpop_nonce_shared_cache", "token_binding"):
        for view in ("today", "upgraded"):
            assert f"theft_removed_{mech}_{view}" in METRICS
            assert f"hours_removed_{mech}_{view}" in METRICS
    assert {
        "usable_share_today",
        "blast_removed_dpop_nonce_shared_cache_today",
        "credential_store_share_today",
        "mean_captured_proof_window_s",
    } <= set(METRICS)
    h = headline_metrics(F, S, P0, metrics=CHEAP)
    assert all(np.isfinite(v) for v in h.values())
    assert 0 < h["usable_share_today"] < 1
    assert 0 <= h["credential_store_share_today"] < 1
    assert h["theft_removed_dpop_nonce_shared_cache_upgraded"] > 0
    # Token Binding binds nothing here, so it can only lose today's bindings
    assert h["theft_removed_token_binding_today"] <= 1e-12


def test_metrics_agree_with_the_models_package() -> None:
    assert usable_share(F, S, P0) == pytest.approx(models.usable_share(F, S, P0))
    assert usable_share(F, S, P0, mechanism="dpop_nonce", view="upgraded") == pytest.approx(
        models.usable_share(F, S, P0, mechanism="dpop_nonce", view="upgraded")
    )
    cmp = models.mechanism_comparison(F, S, P0, mechanisms=["mtls", "dpop_shared_cache"])
    for _, row in cmp.iterrows():
        got = theft_removed(F, S, P0, mechanism=row["mechanism"], view=row["view"])
        assert got == pytest.approx(row["removed_share"])
    hours = models.exposure_by_mechanism(F, S, P0, metric="hours", mechanisms=["bearer"])
    assert exposure_hours(F, S, P0) == pytest.approx(hours["exposure_current"].sum())
    assert exposure_hours(F, S, P0, mechanism="bearer") == pytest.approx(
        hours["exposure_bearer"].sum()
    )


def test_credential_store_share_known_answer() -> None:
    # one bearer flow: only at-rest copy (app_logs), live compromise and the credential store
    f = flows_frame([{"exposure_channels": "app_logs", "key_storage": "software"}])
    s = services_frame([{"service_id": "api"}])
    p = P0.replace(w_issuer_key_compromise=0.0)
    ctx = models.FlowContext.build(f, s, p)
    usable = {}
    for scen in ("at_rest_copy", "live_client_compromise", "key_exfiltration"):
        st = models.cell_statistics(ctx, "bearer", scen)
        usable[scen] = float(models.scenario_weight(ctx, scen)[0] * st["p_usable"][0])
    expected = usable["key_exfiltration"] / sum(usable.values())
    assert credential_store_share(f, s, p) == pytest.approx(expected)


def test_mean_captured_proof_window_known_answer() -> None:
    # P = 60 s iat window, capture delay U(0, 60), token life far longer: E[W | W > 0] = 30 s
    f = flows_frame([{"access_token_lifetime_s": 10**7}])
    s = services_frame([{"service_id": "api", "iat_past_s": 60}])
    p = P0.replace(proof_leak_delay_max_s=60.0)
    assert mean_captured_proof_window(f, s, p) == pytest.approx(30.0, rel=1e-3)


def test_tornado_uses_register_ranges_and_sorts_by_swing() -> None:
    names = ["e_rs", "p_inj", "q_secret", "ttu_fast_share"]
    t = tornado(F, S, P0, names=names)
    assert set(t["name"]) == set(names)
    assert (t["swing"].diff().dropna() <= 1e-12).all()
    specs = {s.name: s for s in parameter_specs()}
    for _, row in t.iterrows():
        assert (row["low"], row["high"]) == (specs[row["name"]].low, specs[row["name"]].high)
        assert row["status"] == "assumption"
    assert t["metric_base"].nunique() == 1
    by = t.set_index("name")
    assert by.loc["e_rs", "swing"] > 0  # enforcement matters for DPoP
    assert by.loc["q_secret", "swing"] == pytest.approx(0)  # lateral movement does not
    hours = tornado(F, S, P0, names=["ttu_fast_share"], metric="hours_removed_mtls_today")
    assert hours.loc[0, "swing"] == pytest.approx(0)  # hours ignore the time-to-use


def test_sweep_e_rs_is_monotone() -> None:
    s = sweep(F, S, P0, name="e_rs", points=5)
    assert len(s) == 5
    assert (np.diff(s["result"].to_numpy()) >= -1e-12).all()
    with pytest.raises(ValueError, match="unknown parameter"):
        sweep(F, S, P0, name="nope")
    with pytest.raises(ValueError, match="unknown metric"):
        tornado(F, S, P0, metric="nope")


def test_conclusions_are_frozen_dataclasses() -> None:
    ids = [c.id for c in CONCLUSIONS]
    assert len(ids) == len(set(ids))
    assert {
        "dpop_beats_bearer_browser_mobile",
        "mtls_at_least_as_good_backend_e2e",
        "token_binding_removes_nothing",
        "shared_store_beats_nonces_multi_instance",
        "time_to_use_flips_short_bearer",
        "recommendations_remove_floor",
    } <= set(ids)
    with pytest.raises(FrozenInstanceError):
        CONCLUSIONS[0].text = "x"  # type: ignore[misc]


def test_conclusions_on_random_inventory() -> None:
    c = conclusion_checks(F, S, P0, conclusions=[x.id for x in CONCLUSIONS[:5]])
    assert c["token_binding_removes_nothing"]
    assert c["dpop_beats_bearer_browser_mobile"]
    assert c["shared_store_beats_nonces_multi_instance"]


def test_shared_store_beats_nonces_on_multi_instance_rs() -> None:
    # 3 instances, per-instance jti stores, nonces required: a captured proof is accepted on
    # another instance (kappa 1) under dpop_nonce, but only if the attacker is first (A11)
    # under a shared store
    f = flows_frame([{"exposure_channels": "proxy_logs"}])
    s = services_frame(
        [{"service_id": "api", "instances": 3, "jti_cache": "per_instance", "requires_nonce": True}]
    )
    cid = "shared_store_beats_nonces_multi_instance"
    assert conclusion_checks(f, s, P0, authorization_servers=AS_ALL, conclusions=[cid])[cid]
    # an RS that already has a shared store and nonces: "nonces alone" then runs with that
    # store and a 180 s nonce window, shorter than a 300 s iat window -- the claim fails
    s2 = s.assign(jti_cache="shared", iat_past_s=300)
    s2["jti_cache"] = s2["jti_cache"].astype(s["jti_cache"].dtype)
    assert not conclusion_checks(f, s2, P0, authorization_servers=AS_ALL, conclusions=[cid])[cid]
    # no RS with several instances: nothing to claim, vacuously true
    s1 = s.assign(instances=1)
    assert conclusion_checks(f, s1, P0, authorization_servers=AS_ALL, conclusions=[cid])[cid]


def test_token_binding_removes_nothing_known_answer() -> None:
    f = flows_frame([{}, {"client_kind": "browser_spa", "client_type": "public"}])
    s = services_frame([{"service_id": "api"}])
    cid = "token_binding_removes_nothing"
    assert conclusion_checks(f, s, P0, authorization_servers=AS_ALL, conclusions=[cid])[cid]
    assert theft_removed(
        f, s, P0, mechanism="token_binding", view="upgraded", authorization_servers=AS_ALL
    ) == pytest.approx(0.0)


# One service flow, token only in app logs (no key channel), key in an HSM, 1 h lifetime.
FLIP_F = flows_frame(
    [{"key_storage": "hsm_tpm", "exposure_channels": "app_logs", "access_token_lifetime_s": 3600}]
)
FLIP_S = services_frame([{"service_id": "api", "jti_cache": "shared"}])
FLIP = "time_to_use_flips_short_bearer"


def test_time_to_use_flips_the_ranking_known_answer() -> None:
    fast = P0.replace(**FAST_ATTACKER)
    short = FLIP_F.assign(access_token_lifetime_s=300)
    kw = {"authorization_servers": AS_ALL}
    # 5-minute bearer token: R ~ U(0, 300), T ~ Exp(60): P(T < R) = 1 - (60/300)(1 - e^-5)
    u_bearer = usable_share(short, FLIP_S, fast, mechanism="bearer", **kw)
    assert u_bearer == pytest.approx(1 - 0.2 * (1 - math.exp(-5)))
    u_dpop = usable_share(
        FLIP_F, FLIP_S, fast, mechanism="dpop_nonce_shared_cache", view="upgraded", **kw
    )
    # at rest (w 0.4): b = 1 - e_rs = 0.1; live (w 0.2): b = 0.1 + 0.9 * 0.01, else the nonce
    # window min(U(0, 180), R) -- about 0.30 in all
    assert u_dpop == pytest.approx(0.30, abs=0.01)
    assert u_bearer > u_dpop  # the fast attacker: DPoP wins on usable stolen tokens
    # expected hours: short bearer 0.6 * 150 s; DPoP 0.4 * 0.1 * 1800 s + 0.2 * (0.109 * 1800
    # + 0.891 * ~90 s): the short bearer token "wins"
    value = models.FlowContext.build(FLIP_F, FLIP_S, P0, authorization_servers=AS_ALL).value[0]
    h_bearer = exposure_hours(short, FLIP_S, P0, mechanism="bearer", **kw)
    assert h_bearer == pytest.approx(value * 0.6 * 150 / 3600)
    h_dpop = exposure_hours(
        FLIP_F, FLIP_S, P0, mechanism="dpop_nonce_shared_cache", view="upgraded", **kw
    )
    assert h_dpop == pytest.approx(value * 127.0 / 3600, rel=0.02)
    assert h_bearer < h_dpop
    assert conclusion_checks(FLIP_F, FLIP_S, P0, authorization_servers=AS_ALL, conclusions=[FLIP])[
        FLIP
    ]
    # with perfect enforcement and a key that never leaves the HSM the hours side flips back
    strict = P0.replace(e_rs=1.0, p_key_hsm=0.0)
    assert not conclusion_checks(
        FLIP_F, FLIP_S, strict, authorization_servers=AS_ALL, conclusions=[FLIP]
    )[FLIP]


def test_claim_holding_at_defaults_but_not_in_every_draw_is_not_a_finding() -> None:
    r = conclusion_robustness(
        FLIP_F, FLIP_S, P0, authorization_servers=AS_ALL, draws=40, seed=0, conclusions=[FLIP]
    )
    assert list(r.columns) == ["id", "text", "holds_at_defaults", "share", "finding", "depends_on"]
    row = r.iloc[0]
    assert row["holds_at_defaults"]
    assert 0 < row["share"] < 0.95
    assert not row["finding"]
    assert row["depends_on"] in {s.name for s in parameter_specs()}
    again = conclusion_robustness(
        FLIP_F, FLIP_S, P0, authorization_servers=AS_ALL, draws=40, seed=0, conclusions=[FLIP]
    )
    assert again.equals(r)


def test_conclusion_robustness_table_on_random_inventory() -> None:
    ids = [c.id for c in CONCLUSIONS if c.id != "recommendations_remove_floor"]
    r = conclusion_robustness(F, S, P0, draws=10, seed=1, conclusions=ids)
    assert list(r["id"]) == ids
    assert r["share"].between(0, 1).all()
    assert (r["finding"] == (r["share"] >= 0.95)).all()
    tb = r.set_index("id").loc["token_binding_removes_nothing"]
    assert tb["finding"]
    assert tb["depends_on"] == ""
    with pytest.raises(ValueError, match="unknown conclusion"):
        conclusion_robustness(F, S, P0, draws=2, conclusions=["nope"])


def test_contexts_are_shared_only_inside_the_scope() -> None:
    f = flows_frame([{"exposure_channels": "app_logs"}])
    s = services_frame([{"service_id": "api"}])
    before = exposure_hours(f, s, P0)
    f.loc[:, "access_token_lifetime_s"] = 7200  # modified in place: no stale cached context
    assert exposure_hours(f, s, P0) > before
    with shared_contexts():
        a = usable_share(f, s, P0)
        assert usable_share(f, s, P0) == a
