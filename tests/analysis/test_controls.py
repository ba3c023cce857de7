"""Tests for tokenlib.analysis.controls: controls as data, effects, ranking, credential store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tokenlib.analysis.controls import (
    CONTROLS,
    CREDENTIAL_CONTROLS,
    control,
    control_cost,
    control_effects,
    credential_holders,
    credential_store_exposure,
    rank_controls,
    reach_ratio,
)
from tokenlib.analysis.models import exposure_by_mechanism
from tokenlib.analysis.models.support import resolve_authorization_servers
from tokenlib.analysis.params import ModelParameters

try:
    from tests.analysis.conftest_models import (
        authorization_servers_frame,
        flows_frame,
        random_inventory,
        services_frame,
    )
except ImportError:  # pragma: no cover
    from conftest_models import (  # type: ignore[no-redef]
        authorization_servers_frame,
        flows_frame,
        random_inventory,
        services_frame,
    )

P0 = ModelParameters.from_reference()
SVC = services_frame([{"service_id": "api"}, {"service_id": "down", "sensitivity": 5}])


def _row(eff: pd.DataFrame, ctrl: str, flow: str = "f0") -> pd.Series:
    sel = (eff["control"].astype(str) == ctrl) & (eff["flow_id"].astype(str) == flow)
    return eff[sel].iloc[0]


def test_controls_are_data_with_sources_and_cost_parameters() -> None:
    ids = [c.id for c in CONTROLS]
    assert len(ids) == len(set(ids))
    for c in CONTROLS:
        assert c.kind in ("binding", "hygiene")
        assert c.source
        assert c.cost_unit in ("client", "resource_server", "hop", "authorization_server", "flow")
        for item in c.costs:
            assert item.param in ModelParameters.names()
    short = control("short_lifetime")
    assert "RFC 6819 §5.1.5.3" in short.source
    assert "RFC 9700 §2.3" not in short.source
    assert "RFC 9700 §2.3" in control("audience_restriction").source
    assert control("dpop").mechanism == "dpop_nonce_shared_cache"
    assert {c.id for c in CREDENTIAL_CONTROLS} >= {"non_exportable_keys", "short_cert_lifetime"}
    with pytest.raises(ValueError, match="unknown control"):
        control("nope")


def test_a_control_that_does_not_apply_removes_nothing() -> None:
    f = flows_frame([{"audience_restricted": True, "refresh_token": "none"}])
    eff = control_effects(f, SVC, P0)
    for ctrl in ("audience_restriction", "rt_rotation", "bff", "verified_enforcement"):
        r = _row(eff, ctrl)
        assert not r["applicable"]
        assert r["removed"] == 0.0
        assert r["reach_removed"] == 0.0
        assert r["credential_removed"] == 0.0
        assert r["cost_usd"] == 0.0


def test_exposure_before_is_the_models_current_exposure() -> None:
    f, s = random_inventory(120, seed=5)
    eff = control_effects(f, s, P0, controls=["short_lifetime"])
    ref = exposure_by_mechanism(f, s, P0, mechanisms=[])["exposure_current"].to_numpy()
    assert np.allclose(eff["exposure_before"].to_numpy(), ref)


def test_shorter_lifetime_helps_hours_more_than_usable_for_a_fast_attacker() -> None:
    fast = P0.replace(ttu_fast_share=0.9, ttu_fast_mean_s=10.0)
    f = flows_frame([{"access_token_lifetime_s": 86_400, "exposure_channels": "app_logs"}])
    rel = {}
    for metric in ("usable", "hours"):
        r = _row(
            control_effects(f, SVC, fast, controls=["short_lifetime"], metric=metric),
            "short_lifetime",
        )
        rel[metric] = r["removed"] / r["exposure_before"]
    assert 0 < rel["usable"] < rel["hours"]
    assert rel["hours"] > 0.95  # 1 day -> 5 minutes removes nearly all exposure hours


def test_dpop_control_names_and_costs_the_authorization_server_change() -> None:
    ases = authorization_servers_frame([{"as_id": "entra"}, {"as_id": "kc", "issues_dpop": True}])
    svc = services_frame([{"service_id": "api", "supports_dpop": False}])
    f = flows_frame(
        [
            {"authorization_server": "entra", "client_id": "a"},
            {"authorization_server": "kc", "client_id": "b"},
        ]
    )
    eff = control_effects(f, svc, P0, authorization_servers=ases, controls=["dpop"])
    r0, r1 = _row(eff, "dpop", "f0"), _row(eff, "dpop", "f1")
    assert "authorization server" in r0["changes"]
    assert "authorization server" not in r1["changes"]
    assert r0["cost_usd"] > r1["cost_usd"]
    assert r0["removed"] > 0
    # the counterfactual frames enable DPoP at that AS
    _, s2, a2 = control("dpop").apply(f, svc, ases, P0)
    assert bool(a2.set_index("as_id").loc["entra", "issues_dpop"])
    assert bool(s2.set_index("service_id").loc["api", "supports_dpop"])
    # cost model by hand: client change per client, RS change + nonce/store split over 2 flows,
    # AS change once for entra, plus per-request CPU
    c = control_cost("dpop", f, svc, ases, P0)
    day = P0.engineer_day_usd
    one_off0 = (
        P0.cost_client_change_days
        + (P0.cost_rs_change_days + P0.cost_nonce_days) / 2
        + P0.cost_rs_change_days
    ) * day
    assert c["one_off_usd"].iloc[0] == pytest.approx(one_off0)
    cpu = (P0.dpop_sign_cost_s + P0.dpop_verify_cost_s) * 1000 * P0.horizon_days
    assert c["per_request_usd"].iloc[0] == pytest.approx(cpu * P0.cpu_usd_per_core_hour / 3600)


def test_shared_units_are_counted_once() -> None:
    f = flows_frame([{"audience_restricted": False, "client_id": f"c{i}"} for i in range(4)])
    eff = control_effects(f, SVC, P0, controls=["audience_restriction", "short_lifetime"])
    rank = rank_controls(eff).set_index("control")
    # one RS -> one audience change; four clients -> four lifetime changes
    assert rank.loc["audience_restriction", "cost_usd"] == pytest.approx(
        P0.cost_audience_days * P0.engineer_day_usd
    )
    assert rank.loc["short_lifetime", "cost_usd"] == pytest.approx(
        4 * P0.cost_lifetime_days * P0.engineer_day_usd
    )


def test_audience_restriction_and_exchange_act_on_reach() -> None:
    svc = services_frame(
        [
            {"service_id": "api", "downstream": "down"},
            {"service_id": "down", "sensitivity": 5},
        ]
    )
    ases = authorization_servers_frame([{"as_id": "as-default"}])
    f = flows_frame(
        [
            {"audience_restricted": False},
            {"forwards_token": True},
            {"forwards_token": True, "token_exchange": True},
        ]
    )
    ratio = reach_ratio(f, svc, ases)
    assert ratio[0] == pytest.approx(5 / 3)  # every service of the issuer: down
    assert ratio[1] == pytest.approx(5 / 3)  # forwarded downstream
    assert ratio[2] == pytest.approx(5 / 3)  # the AS does not support token exchange
    ases_tx = authorization_servers_frame(
        [{"as_id": "as-default", "supports_token_exchange": True}]
    )
    assert reach_ratio(f, svc, ases_tx)[2] == 0.0
    eff = control_effects(f, svc, P0, authorization_servers=ases)
    assert _row(eff, "audience_restriction", "f0")["reach_removed"] > 0
    assert _row(eff, "audience_restriction", "f0")["removed"] == pytest.approx(0.0)
    tx = _row(eff, "token_exchange", "f1")
    assert tx["reach_removed"] > 0
    assert "token exchange" in tx["changes"]
    ranked = rank_controls(eff, by="reach")
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))


def test_verified_enforcement_and_bff_remove_token_theft() -> None:
    f = flows_frame(
        [
            {"binding": "dpop", "binding_enforced": False, "exposure_channels": "app_logs"},
            {
                "client_kind": "browser_spa",
                "actor": "human",
                "client_type": "public",
                "grant_type": "authorization_code",
                "exposure_channels": "browser_storage;har_files",
            },
        ]
    )
    eff = control_effects(f, SVC, P0, controls=["verified_enforcement", "bff"])
    assert _row(eff, "verified_enforcement", "f0")["removed"] > 0
    assert not _row(eff, "verified_enforcement", "f1")["applicable"]
    bff = _row(eff, "bff", "f1")
    assert bff["applicable"]
    assert bff["removed"] > 0
    f2, _, _ = control("bff").apply(f, SVC, resolve_authorization_servers(f), P0)
    assert f2["client_type"].astype(str).iloc[1] == "confidential"
    assert "browser_storage" not in str(f2["exposure_channels"].iloc[1])


def test_rank_controls_orders_by_value_per_cost() -> None:
    f, s = random_inventory(300, seed=7)
    eff = control_effects(f, s, P0)
    assert len(eff) == len(f) * len(CONTROLS)
    r = rank_controls(eff)
    assert r["rank"].tolist() == list(range(1, len(CONTROLS) + 1))
    ok = r[(r["n_flows"] > 0) & (r["removed"] > 0)]
    assert (ok["removed_per_kusd"].diff().dropna() <= 1e-9).all()
    assert (r["removed_share"].fillna(0) <= 1.0 + 1e-9).all()
    rc = rank_controls(eff, by="credential_store")
    assert rc.iloc[0]["credential_removed"] > 0
    with pytest.raises(ValueError, match="by must be one of"):
        rank_controls(eff, by="nope")  # type: ignore[arg-type]


def test_key_storage_changes_credential_store_exposure() -> None:
    base = {"key_storage": "software", "exposure_channels": "config_files"}
    f = flows_frame([base, {**base, "key_storage": "hsm_tpm"}])
    cs = credential_store_exposure(f, SVC, P0)
    assert cs["exposure"].iloc[1] < cs["exposure"].iloc[0]
    assert cs["exposure"].iloc[1] > 0
    # the control moving the software key to an HSM removes the difference
    assert cs["removed_by_keys_instead_of_secrets"].iloc[0] == pytest.approx(
        cs["exposure"].iloc[0] - cs["exposure"].iloc[1]
    )
    assert cs["removed_by_keys_instead_of_secrets"].iloc[1] == 0.0
    assert cs["best_control"].astype(str).iloc[0] == "keys_instead_of_secrets"
    assert cs["holds"].astype(str).iloc[0] == "client secret"


def test_credential_holders() -> None:
    f = flows_frame(
        [
            {},
            {"cert_management": "spiffe", "binding": "mtls"},
            {"binding": "dpop", "client_type": "public", "refresh_token": "rotating"},
        ]
    )
    assert credential_holders(f).astype(str).tolist() == [
        "client secret",
        "certificate",
        "private key; refresh token",
    ]


def test_short_certificate_and_refresh_lifetimes_reduce_credential_exposure() -> None:
    f = flows_frame(
        [
            {"binding": "mtls", "cert_management": "manual", "exposure_channels": "config_files"},
            {
                "grant_type": "authorization_code",
                "refresh_token": "rotating",
                "refresh_token_lifetime_s": 7_776_000,
                "exposure_channels": "config_files",
            },
        ]
    )
    cs = credential_store_exposure(f, SVC, P0.replace(revocation_delay_s=2_764_800.0))
    assert cs["removed_by_short_cert_lifetime"].iloc[0] > 0
    assert cs["removed_by_short_rt_lifetime"].iloc[1] > 0
