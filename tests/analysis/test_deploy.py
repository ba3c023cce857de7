"""Tests for tokenlib.analysis.deploy: predicates, probabilities, timeline, adoption curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib.analysis._paths import HOP_KINDS, HOP_MODES
from tokenlib.analysis.deploy import (
    REASONS,
    adoption_curve,
    deployability,
    deployment_cost,
    load_adoption_timeline,
    load_component_support,
    reason_text,
    timeline_deployability,
)
from tokenlib.analysis.params import CryptoCosts, ModelParameters

try:
    from tests.analysis.conftest_models import flows_frame, random_inventory, services_frame
except ImportError:  # pragma: no cover
    from conftest_models import flows_frame, random_inventory, services_frame  # type: ignore[no-redef]

P0 = ModelParameters.from_reference()
SVC = services_frame([{"service_id": "api"}])
HOPS = [f"{k}:{m}" for k in HOP_KINDS for m in HOP_MODES]


def _row(d: pd.DataFrame, mech: str, i: int = 0) -> pd.Series:
    return d[d["mechanism"].astype(str) == mech].iloc[i]


def test_reference_tables_are_sourced() -> None:
    t = load_component_support()
    assert set(t["status"]) <= {"sourced", "derived", "assumption"}
    assert t["source"].str.len().gt(0).all()
    assert t["support"].between(0, 1).all()
    # every hop kind x mode has a factor for every mechanism
    for mech in ("bearer", "mtls", "dpop", "token_binding"):
        hops = set(t[(t["component"] == "hop") & (t["mechanism"] == mech)]["value"])
        assert hops == set(HOPS)
    tl = load_adoption_timeline()
    assert set(tl["status"]) <= {"sourced", "derived", "assumption"}


@settings(max_examples=40, deadline=None)
@given(
    path=st.lists(st.sampled_from(HOPS), min_size=0, max_size=4),
    kind=st.sampled_from(["browser_spa", "service", "mobile_app"]),
)
def test_token_binding_zero_whenever_any_hop_lacks_support(path: list[str], kind: str) -> None:
    # Give Token Binding full client and RS support so only the hops decide.
    table = load_component_support()
    tb = table["mechanism"] == "token_binding"
    table.loc[tb & table["component"].isin(["client", "rs"]), "support"] = 1.0
    f = flows_frame([{"path": ">".join(path), "client_kind": kind}])
    d = deployability(f, SVC, P0, mechanisms=["token_binding"], support=table)
    hop_support = table[tb & (table["component"] == "hop")].set_index("value")["support"]
    any_missing = any(hop_support[h] == 0 for h in path)
    r = d.iloc[0]
    if any_missing:
        assert r["p_deploy"] == 0.0
        assert not r["deployable"]
    else:
        assert r["p_deploy"] > 0
    # and with the real table Token Binding is never deployable
    real = deployability(f, SVC, P0, mechanisms=["token_binding"]).iloc[0]
    assert real["p_deploy"] == 0.0
    assert "Token Binding" in real["reasons"]


@settings(max_examples=30, deadline=None)
@given(path=st.lists(st.sampled_from(HOPS), min_size=0, max_size=3), extra=st.sampled_from(HOPS))
def test_adding_a_hop_never_increases_deployability(path: list[str], extra: str) -> None:
    f = flows_frame([{"path": ">".join(path)}, {"path": ">".join([*path, extra])}])
    d = deployability(f, SVC, P0)
    for mech in ("mtls", "dpop", "token_binding"):
        sub = d[d["mechanism"].astype(str) == mech]
        assert sub["p_deploy"].iloc[1] <= sub["p_deploy"].iloc[0] + 1e-12
        assert sub["p_deploy_now"].iloc[1] <= sub["p_deploy_now"].iloc[0] + 1e-12


def test_mtls_predicates() -> None:
    f = flows_frame(
        [
            {"client_kind": "browser_spa", "client_type": "public"},
            {"path": "api_gateway:terminate", "cert_management": "automated_pki"},
            {"path": "load_balancer:passthrough", "cert_management": "spiffe"},
        ]
    )
    d = deployability(f, SVC, P0, mechanisms=["mtls"])
    browser, term, e2e = (d.iloc[i] for i in range(3))
    assert not browser["deployable"]
    assert "browser clients cannot present client certificates" in browser["reasons"]
    assert term["p_deploy_now"] == 0.0
    assert term["deployable"]
    assert term["hop_changes"] == 1
    assert "terminates TLS without forwarding" in term["reasons"]
    assert e2e["p_deploy"] > term["p_deploy"]
    assert "end to end" in e2e["reasons"]


def test_dpop_passes_terminating_hops_and_flags_rs_upgrade() -> None:
    svc = services_frame([{"service_id": "api", "supports_dpop": False}])
    f = flows_frame(
        [
            {
                "client_kind": "browser_spa",
                "client_type": "public",
                "path": "cdn:terminate>api_gateway:terminate",
            }
        ]
    )
    r = deployability(f, svc, P0, mechanisms=["dpop"]).iloc[0]
    assert r["deployable"]
    assert r["p_deploy_now"] == 0.0
    assert r["rs_change"]
    assert "RFC 9449 §7.2" in r["reasons"]


def test_reason_text_is_generated_from_bits() -> None:
    bits = np.array([0, 1 | 16, 1 | 16, 8])
    texts = reason_text(bits)
    assert texts[0] == ""
    assert texts[1] == texts[2]
    assert REASONS[1][1] in texts[1]
    assert REASONS[16][1] in texts[1]


def test_timeline_token_binding_never_deployable_while_dpop_grows() -> None:
    f, s = random_inventory(200, seed=1)
    t = timeline_deployability(f, s, P0)
    tb = t[t["mechanism"] == "token_binding"]
    assert tb["deployable_share"].max() < 0.05
    assert tb["market_share"].max() < 0.05
    assert (tb[tb["date"] >= "2024-10-17"]["deployable_share"] == 0).all()
    dp = t[t["mechanism"] == "dpop"].sort_values("date")
    assert (np.diff(dp["deployable_share"].to_numpy()) >= -1e-12).all()
    assert dp["deployable_share"].iloc[-1] > 10 * tb["deployable_share"].max()
    assert (t[t["mechanism"] == "bearer"]["deployable_share"] == 1.0).all()


def test_timeline_terminating_hop_zeroes_token_binding() -> None:
    f = flows_frame(
        [{"client_kind": "browser_spa", "client_type": "public", "path": "cdn:terminate"}]
    )
    t = timeline_deployability(
        f, SVC, P0, mechanisms=["token_binding"], dates=["2017-06-01", "2019-01-01"]
    )
    assert (t["deployable_share"] == 0).all()
    g = flows_frame([{"client_kind": "browser_spa", "client_type": "public", "path": ""}])
    t2 = timeline_deployability(
        g, SVC, P0, mechanisms=["token_binding"], dates=["2017-06-01", "2025-01-01"]
    )
    assert t2["deployable_share"].iloc[0] > 0
    assert t2["deployable_share"].iloc[1] == 0


def test_deployment_cost_uses_measured_crypto_cost() -> None:
    f = flows_frame([{"requests_per_day": 1_000_000}, {"requests_per_day": 0}])
    slow = P0.with_measured_costs(CryptoCosts(0.01, 0.01, "sourced", "test"))
    a = deployment_cost(f, SVC, P0, mechanism="dpop_shared_cache")
    b = deployment_cost(f, SVC, slow, mechanism="dpop_shared_cache")
    assert b["per_request_usd"].iloc[0] > a["per_request_usd"].iloc[0] > 0
    assert a["per_request_usd"].iloc[1] == 0
    expected = 0.02 * 1_000_000 * P0.horizon_days * P0.cpu_usd_per_core_hour / 3600
    assert b["per_request_usd"].iloc[0] == pytest.approx(expected)
    nonce = deployment_cost(f, SVC, P0, mechanism="dpop_nonce")
    assert (nonce["one_off_usd"] > a["one_off_usd"]).all()
    assert (deployment_cost(f, SVC, P0, mechanism="bearer")["cost_usd"] == 0).all()


@pytest.mark.parametrize("order", ["cheapest", "value"])
def test_adoption_curve_is_monotone(order: str) -> None:
    f, s = random_inventory(300, seed=2)
    c = adoption_curve(f, s, P0, mechanism="dpop_shared_cache", order=order)
    assert c["step"].iloc[0] == 0
    for col in ("components_changed", "cost_usd", "exposure_removed", "share_removed"):
        assert (np.diff(c[col].to_numpy()) >= -1e-9).all(), col
    assert 0 < c["share_removed"].iloc[-1] <= 1
    if order == "cheapest":
        step_cost = np.diff(c["cost_usd"].to_numpy())
        assert (np.diff(step_cost) >= -1e-9).all()
    tb = adoption_curve(f, s, P0, mechanism="token_binding")
    assert len(tb) == 1
    assert tb["share_removed"].iloc[0] == 0
    with pytest.raises(ValueError, match="order"):
        adoption_curve(f, s, P0, order="random")
