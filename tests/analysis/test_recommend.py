"""Tests for tokenlib.analysis.recommend: rules, reasons, priority, CSV export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.recommend import (
    CONTROLS,
    RECOMMEND_REASONS,
    RECOMMENDATIONS,
    export_recommendations,
    recommend,
    recommendation_summary,
)

try:
    from tests.analysis.conftest_models import flows_frame, random_inventory, services_frame
except ImportError:  # pragma: no cover
    from conftest_models import flows_frame, random_inventory, services_frame  # type: ignore[no-redef]

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
BACKEND_GW = {
    "key_storage": "hsm_tpm",
    "path": "cdn:terminate>api_gateway:terminate",
    "exposure_channels": "app_logs;proxy_logs",
}


def test_rules_follow_the_article() -> None:
    f = flows_frame([BROWSER, BACKEND_E2E, BACKEND_GW])
    r = recommend(f, SVC, P0)
    assert r["recommended"].astype(str).tolist() == ["dpop_nonce", "mtls", "dpop_nonce"]
    assert "browser client" in r["reasons"].iloc[0]
    assert "public client" in r["reasons"].iloc[0]
    assert "mTLS fits" in r["reasons"].iloc[1]
    assert "hop terminates TLS" in r["reasons"].iloc[2]
    assert "several instances" in r["reasons"].iloc[2]
    assert (r["exposure_after"] <= r["exposure_current"] + 1e-9).all()


def test_dpop_without_nonce_for_short_lived_tokens_and_shared_cache() -> None:
    svc = services_frame([{"service_id": "api", "instances": 3, "jti_cache": "shared"}])
    f = flows_frame([{**BACKEND_GW, "access_token_lifetime_s": 300}])
    assert recommend(f, svc, P0)["recommended"].astype(str).iloc[0] == "dpop"


def test_bearer_residual_with_compensating_controls() -> None:
    f = flows_frame(
        [{**BACKEND_GW, "access_token_lifetime_s": 86_400, "audience_restricted": False}]
    )
    r = recommend(f, SVC, P0.replace(min_p_deploy=1.0)).iloc[0]
    assert r["recommended"] == "bearer"
    assert r["exposure_removed"] == 0
    assert "residual risk" in r["reasons"]
    assert CONTROLS[1] in r["compensating_controls"]
    assert CONTROLS[2] in r["compensating_controls"]
    assert r["blockers"] != ""


def test_existing_binding_is_never_retired() -> None:
    f = flows_frame(
        [
            {**BACKEND_GW, "binding": "mtls", "binding_enforced": True},
            {**BACKEND_GW, "binding": "dpop", "binding_enforced": True},
        ]
    )
    r = recommend(f, SVC, P0.replace(min_p_deploy=1.0))
    assert r["recommended"].astype(str).tolist()[0] == "mtls"
    assert r["recommended"].astype(str).tolist()[1] in {"dpop", "dpop_nonce"}
    assert "sanitised forwarding" in r["reasons"].iloc[0]


def test_priority_is_a_ranking_with_bearer_last() -> None:
    f, s = random_inventory(300, seed=3)
    r = recommend(f, s, P0)
    assert sorted(r["priority"]) == list(range(1, len(r) + 1))
    assert set(r["recommended"].astype(str)) <= set(RECOMMENDATIONS)
    is_b = r["recommended"].astype(str) == "bearer"
    if is_b.any() and (~is_b).any():
        assert r.loc[is_b, "priority"].min() > r.loc[~is_b, "priority"].max()
    ranked = r[~is_b].sort_values("priority")
    assert (ranked["value_per_usd"].diff().dropna() <= 1e-9).all()
    assert r["reasons"].astype(str).str.len().gt(0).all()
    known = set(RECOMMEND_REASONS.values())
    for text in r["reasons"].astype(str).unique():
        assert all(part in known for part in text.split("; "))
    summ = recommendation_summary(r)
    assert summ["n_flows"].sum() == len(r)


def test_export_is_atomic_and_sorted(tmp_path: Path) -> None:
    f, s = random_inventory(50, seed=4)
    r = recommend(f, s, P0)
    out = export_recommendations(r, tmp_path / "sub" / "recs.csv")
    back = pd.read_csv(out)
    assert len(back) == len(r)
    assert back["priority"].is_monotonic_increasing
    assert [p.name for p in out.parent.iterdir()] == ["recs.csv"]


def test_export_failure_leaves_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "recs.csv"
    target.write_text("old\n", encoding="utf-8")

    class Boom(pd.DataFrame):
        def to_csv(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export_recommendations(Boom({"a": [1]}), target)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["recs.csv"]


def test_every_recommendation_has_reasons_on_generated_inventory() -> None:
    from tokenlib.analysis.inventory import generate_inventory

    inv = generate_inventory("saas", 2_000, seed=3)
    r = recommend(inv.flows, inv.services, P0)
    assert (r["reasons"].astype(str).str.len() > 0).all()
    bearer = r[r["recommended"].astype(str) == "bearer"]
    assert (bearer["compensating_controls"].astype(str).str.len() > 0).all()
