"""Tests for tokenlib.analysis.recommend: model-derived choice, policy flags, robustness, export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tokenlib.analysis._csv import neutralise_cell, neutralise_frame
from tokenlib.analysis.deploy import deployability
from tokenlib.analysis.models import exposure_by_mechanism
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.recommend import (
    OWASP_NHI_TOP10,
    POLICY_FLAGS,
    RECOMMENDATIONS,
    candidate_exposures,
    export_recommendations,
    recommend,
    recommendation_summary,
)

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
SVC = services_frame([{"service_id": "api", "instances": 3, "jti_cache": "per_instance"}])

BROWSER = {
    "client_kind": "browser_spa",
    "actor": "human",
    "client_type": "public",
    "grant_type": "authorization_code",
    "refresh_token": "rotating",
    "refresh_token_lifetime_s": 86_400,
    "exposure_channels": "browser_storage;har_files",
}
BACKEND_E2E = {
    "cert_management": "spiffe",
    "key_storage": "hsm_tpm",
    "path": "load_balancer:passthrough",
    "exposure_channels": "app_logs;config_files",
}


def test_candidates_scored_by_the_model() -> None:
    f, s = random_inventory(200, seed=3)
    ce = candidate_exposures(f, s, P0)
    ref = exposure_by_mechanism(f, s, P0, mechanisms=[])["exposure_current"].to_numpy()
    assert np.allclose(ce["exposure_keep"].to_numpy(), ref)
    r = recommend(f, s, P0, draws=0)
    assert np.allclose(r["exposure_current"].to_numpy(), ref)
    assert set(r["recommended"].astype(str)) <= set(RECOMMENDATIONS)
    # the choice never has more exposure than keeping today's mechanism
    assert (r["exposure_after"] <= r["exposure_current"] + 1e-9).all()


def test_dpop_is_never_recommended_without_naming_the_as_change() -> None:
    ases = authorization_servers_frame([{"as_id": "entra"}])
    f = flows_frame([{**BROWSER, "authorization_server": "entra"}])
    r = recommend(f, SVC, P0, authorization_servers=ases, draws=0).iloc[0]
    assert r["recommended"] in ("dpop", "dpop_nonce")
    assert "authorization server entra must issue DPoP-bound tokens" in r["reasons"]
    assert r["cost_usd"] > 0
    # on a random inventory with a non-issuing AS, every DPoP/mTLS change names the AS
    fr, sr = random_inventory(300, seed=11)
    fr["authorization_server"] = np.where(np.arange(len(fr)) % 2 == 0, "entra", "kc")
    ases2 = authorization_servers_frame(
        [{"as_id": "entra"}, {"as_id": "kc", "issues_dpop": True, "issues_mtls": True}]
    )
    rr = recommend(fr, sr, P0, authorization_servers=ases2, draws=0)
    moved = (rr["model_mechanism"].astype(str) != rr["current_mechanism"].astype(str)).to_numpy()
    on_entra = (fr["authorization_server"] == "entra").to_numpy()
    for text in rr.loc[moved & on_entra, "reasons"].astype(str):
        assert "authorization server entra must issue" in text


def test_model_choice_keep_and_residual_bearer() -> None:
    f = flows_frame([{**BACKEND_E2E, "access_token_lifetime_s": 300}])
    dep = deployability(f, SVC, P0, mechanisms=["mtls", "dpop"])
    dep["p_deploy"] = 0.0  # nothing deployable: keep is the only candidate
    r = recommend(f, SVC, P0, deploy=dep, draws=20).iloc[0]
    assert r["recommended"] == "bearer"
    assert r["exposure_removed"] == 0.0
    assert "residual risk" in r["reasons"]
    assert "not deployable" in r["reasons"]
    assert r["robustness"] == 1.0
    assert r["compensating_controls"] != ""
    assert r["blockers"] != ""


def test_policy_rule_nonce_for_long_lived_dpop_tokens() -> None:
    svc = services_frame([{"service_id": "api", "supports_mtls": False}])
    f = flows_frame([{**BROWSER, "access_token_lifetime_s": 86_400}])
    rec = recommend(f, svc, P0, draws=0)
    r = rec.iloc[0]
    # the model prefers the cheaper DPoP within A21; the policy rule adds nonces
    assert rec.attrs["model_choice"][0] == "dpop_shared_cache"
    assert r["recommended"] == "dpop_nonce"
    assert r["model_mechanism"] == "dpop_nonce_shared_cache"
    assert "policy (RFC 9449 §11.2)" in r["reasons"]
    assert "A20" in r["reasons"]
    short = recommend(flows_frame([{**BROWSER, "access_token_lifetime_s": 300}]), svc, P0, draws=0)
    assert "policy" not in short["reasons"].iloc[0]


def test_public_client_with_static_refresh_token_is_flagged() -> None:
    f = flows_frame(
        [
            {**BROWSER, "refresh_token": "static"},
            {**BROWSER, "refresh_token": "rotating"},
        ]
    )
    r = recommend(f, SVC, P0, draws=0)
    flags = r["policy_flags"].astype(str)
    assert "rfc9700_public_refresh_token_unprotected" in flags.iloc[0]
    assert "rfc9700_public_refresh_token_unprotected" not in flags.iloc[1]
    for flag in flags.str.split(";").explode():
        assert flag == "" or flag in POLICY_FLAGS or flag.startswith("owasp_nhi_")


def test_fapi_and_owasp_flags() -> None:
    svc = services_frame([{"service_id": "payments-core"}, {"service_id": "api", "sensitivity": 2}])
    f = flows_frame(
        [
            {"resource_server": "payments-core"},
            {
                "resource_server": "api",
                "binding": "mtls",
                "binding_enforced": True,
                "cert_management": "spiffe",
            },
            {"resource_server": "api", "scopes": "reports:read"},
        ]
    )
    flags = recommend(f, svc, P0, draws=0)["policy_flags"].astype(str)
    assert "fapi2_sender_constraining_required" in flags.iloc[0]
    assert "fapi2_sender_constraining_required" not in flags.iloc[1]
    assert "fapi2_sender_constraining_required" not in flags.iloc[2]
    # a workload authenticating with a client secret and an unbound token: NHI4
    assert "owasp_nhi_4" in flags.iloc[0]
    assert set(OWASP_NHI_TOP10) == set(range(1, 11))
    assert OWASP_NHI_TOP10[7] == "Long-Lived Secrets"


def test_robustness_is_a_share_and_draws_zero_gives_nan() -> None:
    f, s = random_inventory(150, seed=2)
    r = recommend(f, s, P0, draws=6, seed=1)
    rob = r["robustness"].to_numpy()
    assert ((rob >= 0) & (rob <= 1)).all()
    assert np.allclose(rob * 6, np.round(rob * 6))
    assert math.isnan(recommend(f, s, P0, draws=0)["robustness"].iloc[0])


def test_priority_is_a_ranking_with_bearer_last() -> None:
    f, s = random_inventory(300, seed=3)
    r = recommend(f, s, P0, draws=0)
    assert sorted(r["priority"]) == list(range(1, len(r) + 1))
    is_b = r["recommended"].astype(str) == "bearer"
    if is_b.any() and (~is_b).any():
        assert r.loc[is_b, "priority"].min() > r.loc[~is_b, "priority"].max()
    ranked = r[~is_b].sort_values("priority")
    assert (ranked["value_per_usd"].diff().dropna() <= 1e-9).all()
    assert r["reasons"].astype(str).str.startswith("model (token theft").all()
    summ = recommendation_summary(r)
    assert summ["n_flows"].sum() == len(r)


def test_csv_injection_is_neutralised_and_numbers_stay_numbers(tmp_path: Path) -> None:
    hostile = '=HYPERLINK("http://evil","x")'
    f = flows_frame([{**BACKEND_E2E, "client_id": hostile}, {"client_id": "-2+3", **BACKEND_E2E}])
    r = recommend(f, SVC, P0, draws=2)
    out = export_recommendations(r, tmp_path / "sub" / "recs.csv")
    back = pd.read_csv(out)
    assert set(back["client_id"]) == {"'" + hostile, "'-2+3"}
    for col in ("exposure_current", "exposure_after", "cost_usd", "robustness", "p_deploy"):
        assert back[col].dtype == float
    assert back["priority"].is_monotonic_increasing
    assert [p.name for p in out.parent.iterdir()] == ["recs.csv"]
    assert neutralise_cell("@SUM(A1)") == "'@SUM(A1)"
    assert neutralise_cell("\tx") == "'\tx"
    assert neutralise_cell(-1.5) == -1.5
    frame = neutralise_frame(pd.DataFrame({"a": pd.Categorical(["+1", "ok"]), "b": [-1.0, 2.0]}))
    assert frame["a"].astype(str).tolist() == ["'+1", "ok"]
    assert frame["b"].tolist() == [-1.0, 2.0]


def test_export_failure_leaves_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "recs.csv"
    target.write_text("old\n", encoding="utf-8")

    def boom(self: pd.DataFrame, *args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError, match="disk full"):
        export_recommendations(pd.DataFrame({"a": [1]}), target)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["recs.csv"]


def test_every_recommendation_has_reasons_on_generated_inventory() -> None:
    from tokenlib.analysis.inventory import generate_inventory

    inv = generate_inventory("saas", 2_000, seed=3)
    r = recommend(inv.flows, inv.services, P0, draws=0)
    assert (r["reasons"].astype(str).str.len() > 0).all()
    bearer = r[r["recommended"].astype(str) == "bearer"]
    assert (bearer["compensating_controls"].astype(str).str.len() > 0).all()


def test_a_callers_context_gives_the_same_recommendations() -> None:
    """``context=`` only saves work: the frame is the same as without it, also with draws
    (whose other parameters cannot reuse the context), and a context of other flows is
    refused."""
    from tokenlib.analysis.models import FlowContext

    f, s = random_inventory(300, seed=4)
    ctx = FlowContext.build(f, s, P0)
    for draws in (0, 3):
        plain = recommend(f, s, P0, draws=draws, seed=2)
        reused = recommend(f, s, P0, draws=draws, seed=2, context=ctx)
        pd.testing.assert_frame_equal(plain, reused)
    with pytest.raises(ValueError, match="context describes 300 flows"):
        recommend(f.iloc[:10], s, P0, draws=0, context=ctx)
