"""Tests for tokenlib.analysis.replay: closed forms, Monte Carlo agreement, monotonicity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib.analysis.inventory import generate_inventory
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.replay import (
    MECHANISMS,
    SCENARIOS,
    current_mechanism,
    exposure_by_mechanism,
    exposure_by_scenario,
    proof_replay_window,
    replay_by_client_path,
    replay_windows,
    sample_windows,
    simulate_windows,
    window_survival,
)

try:
    from tests.analysis.conftest_models import flows_frame, random_inventory, services_frame
except ImportError:  # pragma: no cover - depends on how pytest sets sys.path
    from conftest_models import flows_frame, random_inventory, services_frame  # type: ignore[no-redef]

P0 = ModelParameters.from_reference()
SVC = services_frame([{"service_id": "api", "instances": 4, "jti_cache": "per_instance"}])


def _cell(
    flows: pd.DataFrame, services: pd.DataFrame, params: ModelParameters, mech: str, scen: str
) -> pd.Series:
    w = replay_windows(flows, services, params, mechanisms=[mech], scenarios=[scen])
    return w.iloc[0]


@pytest.mark.parametrize("lifetime", [300, 3600, 86_400])
def test_bearer_at_rest_is_half_the_lifetime(lifetime: int) -> None:
    f = flows_frame([{"access_token_lifetime_s": lifetime}])
    row = _cell(f, SVC, P0.replace(rho_jwt=0.0), "bearer", "at_rest_copy")
    assert row["p_replay"] == 1.0
    assert row["expected_window_s"] == pytest.approx(lifetime / 2)
    assert row["p50_s"] == pytest.approx(lifetime / 2, rel=1e-6)
    assert row["p90_s"] == pytest.approx(0.9 * lifetime, rel=1e-6)


def test_bearer_revocation_mixture() -> None:
    L, D, rho = 3600.0, 600.0, 0.2
    f = flows_frame([{"access_token_lifetime_s": int(L)}])
    p = P0.replace(rho_jwt=rho, revocation_delay_s=D)
    row = _cell(f, SVC, p, "bearer", "at_rest_copy")
    expected = (1 - rho) * L / 2 + rho * (D - D * D / (2 * L))
    assert row["expected_window_s"] == pytest.approx(expected)


def test_survival_is_one_minus_t_over_l() -> None:
    f = flows_frame([{"access_token_lifetime_s": 1000}])
    s = window_survival(
        f,
        SVC,
        P0.replace(rho_jwt=0.0),
        mechanisms=["bearer"],
        t=[0.0, 250.0, 500.0, 1000.0, 2000.0],
        by=None,
    )
    assert s["survival"].to_numpy() == pytest.approx([1.0, 0.75, 0.5, 0.0, 0.0])


def test_proof_replay_closed_form_matches_brief_example() -> None:
    # Keycloak: P_past = 25 s; a proof read instantly is replayable for at most 25 s.
    mean, ppos = proof_replay_window(25.0, 0.0, 300.0)
    assert mean[0] == pytest.approx(25 - 25**2 / 600)
    assert ppos[0] == 1.0
    mean, ppos = proof_replay_window(25.0, 100.0, 1e9)
    # E[max(0, P - delta)] with delta ~ U(0, 100): integral of (25 - d)/100 over [0, 25]
    assert mean[0] == pytest.approx(25**2 / 200, rel=1e-6)
    assert ppos[0] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("mech", "max_replays"),
    [
        ("dpop_no_cache", np.inf),
        ("dpop_per_instance_cache", 3.0),
        ("dpop_shared_cache", 1.0),
        ("dpop_nonce", 1.0),
    ],
)
def test_proof_replay_counts(mech: str, max_replays: float) -> None:
    f = flows_frame([{"binding": "dpop", "binding_enforced": True}])
    row = _cell(f, SVC, P0, mech, "in_transit_token_and_proof")
    assert row["max_proof_replays"] == max_replays
    assert np.isnan(_cell(f, SVC, P0, "bearer", "at_rest_copy")["max_proof_replays"])


def test_dpop_in_transit_only_inside_tolerance() -> None:
    f = flows_frame(
        [{"binding": "dpop", "binding_enforced": True, "access_token_lifetime_s": 3600}]
    )
    svc = services_frame([{"service_id": "api", "iat_past_s": 25, "jti_cache": "none"}])
    row = _cell(
        f,
        svc,
        P0.replace(proof_leak_delay_max_s=60.0),
        "dpop_no_cache",
        "in_transit_token_and_proof",
    )
    mean, ppos = proof_replay_window(25.0, 60.0, 3600.0)
    assert row["expected_window_s"] == pytest.approx(mean[0])
    assert row["p_replay"] == pytest.approx(ppos[0])
    assert row["expected_window_if_possible_s"] <= 25.0
    shared = _cell(
        f, svc, P0.replace(p_attacker_first=0.0), "dpop_shared_cache", "in_transit_token_and_proof"
    )
    assert shared["p_replay"] == 0.0


def test_rotation_expectation_is_one_and_a_half_lifetimes() -> None:
    f = flows_frame(
        [
            {
                "client_type": "public",
                "client_kind": "browser_spa",
                "grant_type": "authorization_code",
                "refresh_token": "rotating",
                "refresh_token_lifetime_s": 86_400,
                "access_token_lifetime_s": 600,
            }
        ]
    )
    p = P0.replace(pi_persist=0.0, rho_introspection=0.0)
    assert _cell(f, SVC, p, "bearer", "refresh_token_theft_rotation")[
        "expected_window_s"
    ] == pytest.approx(900.0)
    p = P0.replace(pi_persist=1.0, rho_introspection=0.0)
    assert _cell(f, SVC, p, "bearer", "refresh_token_theft_rotation")[
        "expected_window_s"
    ] == pytest.approx(600 + 43_200)
    no_rot = _cell(f, SVC, p, "bearer", "refresh_token_theft_no_rotation")
    assert no_rot["expected_window_s"] == pytest.approx(600 + 43_200)


def test_no_refresh_token_means_no_refresh_replay() -> None:
    f = flows_frame([{}])
    for scen in ("refresh_token_theft_no_rotation", "refresh_token_theft_rotation"):
        assert not _cell(f, SVC, P0, "bearer", scen)["possible"]


def test_issuer_key_compromise_is_mechanism_independent() -> None:
    f, s = random_inventory(40, seed=3)
    w = replay_windows(f, s, P0, scenarios=["issuer_key_compromise"], quantiles=False)
    assert w["expected_window_s"].nunique() == 1
    assert w["p_replay"].eq(1.0).all()


def test_binding_never_lengthens_token_theft_windows() -> None:
    f, s = random_inventory(150, seed=5)
    w = replay_windows(
        f, s, P0, scenarios=["at_rest_copy", "in_transit_token_and_proof"], quantiles=False
    )
    piv = w.pivot_table(
        index=["flow_id", "scenario"],
        columns="mechanism",
        values="expected_window_s",
        observed=True,
    )
    for m in MECHANISMS:
        assert (piv[m] <= piv["bearer"] + 1e-9).all(), m


@pytest.mark.parametrize(
    ("mech", "scen"),
    [
        ("bearer", "at_rest_copy"),
        ("dpop_no_cache", "in_transit_token_and_proof"),
        ("mtls", "at_rest_copy"),
        ("dpop_nonce", "live_client_compromise"),
        ("bearer", "refresh_token_theft_no_rotation"),
        ("mtls", "key_exfiltration"),
    ],
)
def test_monte_carlo_matches_closed_form(mech: str, scen: str) -> None:
    f = flows_frame(
        [
            {
                "client_kind": "browser_spa",
                "client_type": "public",
                "grant_type": "authorization_code",
                "binding": "dpop",
                "binding_enforced": True,
                "exposure_channels": "browser_storage;har_files",
                "refresh_token": "static",
                "refresh_token_lifetime_s": 86_400,
                "path": "cdn:terminate_forward_cert",
            },
            {
                "grant_type": "client_credentials",
                "cert_management": "spiffe",
                "access_token_lifetime_s": 600,
            },
        ]
    )
    svc = services_frame([{"service_id": "api", "jti_cache": "none", "iat_past_s": 60}])
    p = P0.replace(proof_leak_delay_max_s=30.0)
    r = simulate_windows(f, svc, p, mechanism=mech, scenario=scen, n=200_000, seed=11)
    for _, row in r.iterrows():
        if row["expected_window_s"] == 0:
            assert row["mc_mean_s"] == 0
            continue
        assert abs(row["mc_mean_s"] - row["expected_window_s"]) / row["expected_window_s"] < 0.02
        assert row["mc_p_replay"] == pytest.approx(row["p_replay"], abs=0.005)


def test_monte_carlo_is_seeded_and_agrees_everywhere() -> None:
    f, s = random_inventory(12, seed=9)
    a = sample_windows(
        f,
        s,
        P0,
        mechanism="dpop_shared_cache",
        scenario="in_transit_token_and_proof",
        n=500,
        seed=4,
    )
    b = sample_windows(
        f,
        s,
        P0,
        mechanism="dpop_shared_cache",
        scenario="in_transit_token_and_proof",
        n=500,
        seed=4,
    )
    assert np.array_equal(a, b)
    for mech in MECHANISMS:
        for scen in SCENARIOS:
            r = simulate_windows(f, s, P0, mechanism=mech, scenario=scen, n=20_000, seed=1)
            draws = sample_windows(f, s, P0, mechanism=mech, scenario=scen, n=20_000, seed=1)
            se = draws.std(axis=1) / np.sqrt(draws.shape[1])
            assert (np.abs(r["mc_mean_s"] - r["expected_window_s"]) <= 5 * se + 1e-9).all(), (
                mech,
                scen,
            )


@settings(max_examples=30, deadline=None)
@given(
    lifetime=st.integers(60, 200_000),
    extra=st.integers(1, 200_000),
    rt_life=st.integers(3600, 10_000_000),
    mech=st.sampled_from(MECHANISMS),
    scen=st.sampled_from(SCENARIOS),
    t=st.floats(0, 1e6),
)
def test_longer_lifetimes_never_shrink_a_window(
    lifetime: int, extra: int, rt_life: int, mech: str, scen: str, t: float
) -> None:
    base = {
        "refresh_token": "static",
        "client_type": "public",
        "client_kind": "mobile_app",
        "grant_type": "authorization_code",
        "exposure_channels": "app_logs;proxy_logs",
    }
    short = flows_frame(
        [{**base, "access_token_lifetime_s": lifetime, "refresh_token_lifetime_s": rt_life}]
    )
    long = flows_frame(
        [
            {
                **base,
                "access_token_lifetime_s": lifetime + extra,
                "refresh_token_lifetime_s": rt_life + extra,
            }
        ]
    )
    a = _cell(short, SVC, P0, mech, scen)
    b = _cell(long, SVC, P0, mech, scen)
    assert b["expected_window_s"] >= a["expected_window_s"] - 1e-9
    sa = window_survival(short, SVC, P0, scenario=scen, mechanisms=[mech], t=[t], by=None)[
        "survival"
    ].iloc[0]
    sb = window_survival(long, SVC, P0, scenario=scen, mechanisms=[mech], t=[t], by=None)[
        "survival"
    ].iloc[0]
    assert sb >= sa - 1e-12


def test_current_mechanism_mapping() -> None:
    f = flows_frame(
        [
            {"binding": "bearer"},
            {"binding": "mtls", "binding_enforced": True},
            {"binding": "dpop", "binding_enforced": True, "resource_server": "n"},
            {"binding": "dpop", "binding_enforced": True},
        ]
    )
    s = services_frame(
        [
            {"service_id": "api", "jti_cache": "per_instance"},
            {"service_id": "n", "requires_nonce": True},
        ]
    )
    assert current_mechanism(f, s).astype(str).tolist() == [
        "bearer",
        "mtls",
        "dpop_nonce",
        "dpop_per_instance_cache",
    ]


def test_exposure_current_column_matches_mechanism_column() -> None:
    f, s = random_inventory(120, seed=2)
    e = exposure_by_mechanism(f, s, P0, theft_columns=True)
    for m in MECHANISMS:
        sel = e["current_mechanism"].astype(str) == m
        assert np.allclose(e.loc[sel, "exposure_current"], e.loc[sel, f"exposure_{m}"])
    assert (e["theft_exposure_bearer"] <= e["exposure_bearer"] + 1e-9).all()
    only = exposure_by_mechanism(f, s, P0, scenarios=["at_rest_copy"])
    assert (only["exposure_bearer"] <= e["exposure_bearer"] + 1e-9).all()
    with pytest.raises(ValueError, match="unknown scenario"):
        exposure_by_mechanism(f, s, P0, scenarios=["nope"])


def test_unknown_resource_server_and_mechanism() -> None:
    f = flows_frame([{"resource_server": "ghost"}])
    with pytest.raises(KeyError, match="ghost"):
        replay_windows(f, SVC, P0)
    with pytest.raises(ValueError, match="unknown mechanism"):
        replay_windows(flows_frame([{}]), SVC, P0, mechanisms=["token_magic"])


def test_by_client_path_summary() -> None:
    f, s = random_inventory(80, seed=4)
    w = replay_windows(f, s, P0, quantiles=False)
    summ = replay_by_client_path(w)
    assert set(summ["client_path"].astype(str)) <= {
        "browser",
        "mobile",
        "gateway_terminated",
        "backend_e2e",
    }
    assert summ["n_flows"].sum() == len(w)
    assert summ["share_possible"].between(0, 1).all()


def test_models_run_on_generated_inventory() -> None:
    from tokenlib.analysis.inventory import generate_inventory

    inv = generate_inventory("saas", 1_000, seed=2)
    e = exposure_by_mechanism(inv.flows, inv.services, P0)
    assert np.isfinite(e.filter(like="exposure_").to_numpy()).all()
    assert e["exposure_dpop_nonce"].sum() < e["exposure_bearer"].sum()


@pytest.mark.parametrize(
    ("drop_from", "column"),
    [
        ("flows", "binding"),
        ("flows", "path"),
        ("services", "supports_dpop"),
        ("services", "downstream"),
    ],
)
def test_missing_columns_are_named(drop_from: str, column: str) -> None:
    from tokenlib.analysis.deploy import deployability

    f, s = random_inventory(10, seed=1)
    if drop_from == "flows":
        f = f.drop(columns=[column])
    else:
        s = s.drop(columns=[column])
    with pytest.raises(ValueError, match=f"{drop_from} is missing column.*{column}"):
        exposure_by_mechanism(f, s, P0)
    with pytest.raises(ValueError, match=column):
        deployability(f, s, P0)
    with pytest.raises(TypeError, match="DataFrame"):
        replay_windows(f.to_dict(), s, P0)  # type: ignore[arg-type]


def test_exposure_by_scenario_adds_up_and_key_exfiltration_is_not_fixed_by_binding() -> None:
    inv = generate_inventory("saas", 400, seed=11)
    table = exposure_by_scenario(inv.flows, inv.services, mechanisms=("mtls", "dpop_nonce"))
    assert list(table.index) == list(SCENARIOS)
    totals = exposure_by_mechanism(inv.flows, inv.services, mechanisms=("mtls", "dpop_nonce"))
    assert table["exposure_current"].sum() == pytest.approx(totals["exposure_current"].sum())
    assert table["share_of_today"].sum() == pytest.approx(1.0)
    for mech in ("mtls", "dpop_nonce"):
        after = (1 - table[f"removed_by_{mech}"].fillna(0)) * table["exposure_current"]
        assert after.sum() == pytest.approx(totals[f"exposure_{mech}"].sum())
    # A stolen key is bearer-equivalent under every binding (domain brief §1.2): no DPoP
    # variant removes any of it (moving an mTLS client-credentials flow off its certificate
    # even lengthens it).
    assert table.loc["key_exfiltration", "removed_by_dpop_nonce"] <= 1e-9
    assert table.loc["at_rest_copy", "removed_by_dpop_nonce"] > 0.2
    assert not table.loc["key_exfiltration", "token_theft"]
    assert table.loc["at_rest_copy", "token_theft"]
