"""Tests for tokenlib.analysis.deploy: predicates, probabilities, timeline, adoption curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.analysis.conftest_models import flows_frame, random_inventory, services_frame
from tokenlib.analysis.deploy import (
    REASONS,
    adoption_curve,
    deployability,
    deployable_share,
    deployment_cost,
    family_of,
    load_adoption_timeline,
    load_component_support,
    reason_text,
    timeline_deployability,
    token_binding_counterfactual,
)
from tokenlib.analysis.params import CryptoCosts, ModelParameters
from tokenlib.analysis.schema import HOP_KINDS, HOP_MODES

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
    # Give Token Binding full client, AS and RS support so only the hops decide.
    table = load_component_support()
    tb = table["mechanism"] == "token_binding"
    table.loc[tb & table["component"].isin(["client", "rs", "as"]), "support"] = 1.0
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


# --- deployable today from the inventory (issue 8, point 5) ---------------------------------

ALL_AS = pd.DataFrame(
    {
        "as_id": ["as-default"],
        "product": [""],
        "issues_dpop": [True],
        "issues_mtls": [True],
        "binds_refresh_tokens": [True],
        "supports_token_exchange": [False],
    }
)


def test_family_of_uses_mechanism_objects() -> None:
    from tokenlib.analysis.models.mechanisms import MECHANISMS

    for m in MECHANISMS:
        assert family_of(m) == m.family
        assert family_of(m.id) == m.family
    assert family_of("dpop") == "dpop"
    with pytest.raises(ValueError, match="unknown mechanism"):
        family_of("dpop_magic")


def test_no_rs_supports_dpop_gives_zero_today() -> None:
    f, s = random_inventory(300, seed=7)
    s = s.assign(supports_dpop=False)
    assert deployable_share(f, s, ALL_AS, family="dpop") == 0.0
    assert deployable_share(f, s, ALL_AS, family="dpop_nonce", view="today") == 0.0
    d = deployability(f, s, P0, mechanisms=["dpop"], authorization_servers=ALL_AS)
    assert not d["deployable_today"].any()
    assert not d["rs_ok"].any()
    assert d["blocked_by"].astype(str).str.contains("resource server").all()
    # the industry timeline is context only: it does not change the inventory answer
    assert timeline_deployability(f, s, P0, mechanisms=["dpop"])["deployable_share"].max() > 0
    # if every RS were upgraded, DPoP is deployable everywhere (client, AS, path all fine)
    assert deployable_share(f, s, ALL_AS, family="dpop", view="upgraded") == 1.0


def test_all_supporting_inventory_gives_one() -> None:
    f = flows_frame(
        [
            {"client_kind": "browser_spa", "client_type": "public", "path": "cdn:terminate"},
            {"client_kind": "service", "path": "api_gateway:terminate_forward_cert"},
            {"client_kind": "mobile_app", "client_type": "public", "path": ""},
        ]
    )
    assert deployable_share(f, SVC, ALL_AS, family="dpop") == 1.0
    d = deployability(f, SVC, P0, mechanisms=["dpop"], authorization_servers=ALL_AS)
    assert d["deployable_today"].all()
    assert (d["blocked_by"].astype(str) == "").all()
    assert deployable_share(f, SVC, ALL_AS, family="bearer") == 1.0
    assert deployable_share(f, SVC, ALL_AS, family="token_binding") == 0.0


def test_as_without_dpop_blocks_its_flows() -> None:
    f = flows_frame([{}, {}])
    f["authorization_server"] = ["entra", "keycloak"]
    ast = pd.DataFrame(
        {
            "as_id": ["entra", "keycloak"],
            "issues_dpop": [False, True],
            "issues_mtls": [True, True],
        }
    )
    d = deployability(f, SVC, P0, mechanisms=["dpop"], authorization_servers=ast)
    blocked, ok = d.iloc[0], d.iloc[1]
    assert not blocked["deployable_today"]
    assert not blocked["as_ok"]
    assert all(bool(blocked[c]) for c in ("client_ok", "rs_ok", "path_ok"))
    assert blocked["as_change"]
    assert blocked["reason_bits"] & 2048
    assert REASONS[2048][0] == "as_unsupported"
    assert "authorization server does not issue DPoP-bound tokens" in blocked["reasons"]
    assert "RFC 9449 §5" in blocked["reasons"]
    assert str(blocked["blocked_by"]) == "authorization server"
    assert blocked["p_deploy_now"] == 0.0
    assert 0 < blocked["p_deploy"] < ok["p_deploy"]
    assert ok["deployable_today"]
    assert deployable_share(f, SVC, ast, family="dpop") == 0.5
    # mTLS: the same AS issues certificate-bound tokens, so only the client's PKI is missing
    m = deployability(f, SVC, P0, mechanisms=["mtls"], authorization_servers=ast)
    assert m["as_ok"].all()
    assert not m["deployable_today"].any()
    assert (m["blocked_by"].astype(str) == "certificate management").all()


def test_mtls_today_needs_certificate_management_and_forwarding_hops() -> None:
    f = flows_frame(
        [
            {"cert_management": "spiffe"},
            {"cert_management": "none"},
            {"cert_management": "spiffe", "path": "api_gateway:terminate"},
            {"cert_management": "manual", "path": "api_gateway:terminate_forward_cert"},
        ]
    )
    d = deployability(f, SVC, P0, mechanisms=["mtls"], authorization_servers=ALL_AS)
    assert d["deployable_today"].tolist() == [True, False, False, True]
    assert d["path_ok"].tolist() == [True, True, False, True]
    assert "path" in str(d["blocked_by"].iloc[2])
    assert deployable_share(f, SVC, ALL_AS, family="mtls") == 0.5


def test_token_binding_counterfactual_hops_drive_it_to_zero() -> None:
    f = flows_frame(
        [
            {"path": "load_balancer:passthrough"},
            {"path": "cdn:terminate"},
            {"path": "load_balancer:terminate_forward_cert>api_gateway:passthrough"},
            {"path": "cdn:passthrough>api_gateway:terminate"},
        ]
    )
    t = token_binding_counterfactual(f, SVC, ALL_AS).set_index("family")
    assert list(t.index) == ["token_binding", "dpop", "mtls"]
    tl = load_adoption_timeline()
    best_other = tl[(tl["mechanism"] == "token_binding") & (tl["component"] == "client_other")][
        "share"
    ].max()
    tb = t.loc["token_binding"]
    assert tb["client_share"] == pytest.approx(best_other)
    assert tb["hops_share"] == pytest.approx(0.25)
    assert tb["deployable_share"] == pytest.approx(0.25 * tb["client_share"] * tb["rs_share"])
    assert tb["deployable_share_today"] == 0.0
    dp = t.loc["dpop"]
    assert dp["hops_share"] == 1.0
    assert dp["deployable_share"] == pytest.approx(dp["client_share"] * dp["rs_share"])
    assert dp["deployable_share"] == pytest.approx(4 * tb["deployable_share"])
    # mTLS: only the hops that terminate without forwarding the certificate block it
    assert t.loc["mtls", "hops_share"] == pytest.approx(0.5)
    assert set(t["basis"]) == {"assumption"}
    for col in ("as_share", "rs_share"):
        assert (t[col] == 1.0).all()


def test_dpop_counterfactual_does_not_depend_on_hops() -> None:
    kinds = ["browser_spa", "service", "mobile_app", "cli_tool"]
    direct = flows_frame([{"client_kind": k, "path": ""} for k in kinds])
    proxied = flows_frame(
        [{"client_kind": k, "path": "cdn:terminate>load_balancer:terminate"} for k in kinds]
    )
    a = token_binding_counterfactual(direct, SVC, ALL_AS).set_index("family")
    b = token_binding_counterfactual(proxied, SVC, ALL_AS).set_index("family")
    assert a.loc["dpop", "deployable_share"] == b.loc["dpop", "deployable_share"] > 0
    assert b.loc["token_binding", "deployable_share"] == 0.0
    assert a.loc["token_binding", "deployable_share"] > 0
    # browsers get Token Binding's best browser share; mTLS excludes them structurally
    tl = load_adoption_timeline()
    tbtl = tl[tl["mechanism"] == "token_binding"]
    cb = tbtl[tbtl["component"] == "client_browser"]["share"].max()
    co = tbtl[tbtl["component"] == "client_other"]["share"].max()
    assert a.loc["dpop", "client_share"] == pytest.approx((cb + 3 * co) / 4)
    assert a.loc["mtls", "client_share"] == pytest.approx(3 * co / 4)


def test_counterfactual_on_random_inventory_tb_near_zero() -> None:
    f, s = random_inventory(400, seed=11)
    t = token_binding_counterfactual(f, s).set_index("family")
    assert t.loc["token_binding", "deployable_share"] < 0.05
    assert t.loc["token_binding", "deployable_share"] < t.loc["dpop", "deployable_share"]
    assert t.loc["token_binding", "hops_share"] < t.loc["dpop", "hops_share"] == 1.0


def test_context_outputs_are_labelled_assumption() -> None:
    f, s = random_inventory(120, seed=12)
    assert set(timeline_deployability(f, s, P0, dates=["2025-01-01"])["basis"]) == {"assumption"}
    c = adoption_curve(f, s, P0, mechanism="dpop_shared_cache")
    assert set(c["basis"]) == {"assumption"}


def test_deployability_new_columns_consistent() -> None:
    f, s = random_inventory(300, seed=13)
    d = deployability(f, s, P0)
    for fam in ("mtls", "dpop", "token_binding", "bearer"):
        sub = d[d["mechanism"].astype(str) == fam]
        expect = sub["client_ok"] & sub["cert_ok"] & sub["as_ok"] & sub["rs_ok"] & sub["path_ok"]
        assert (sub["deployable_today"] == expect).all()
        share = deployable_share(f, s, family=fam)
        assert sub["deployable_today"].mean() == pytest.approx(share)
        # deployable today implies the assumption-based form sees no blocker now
        assert (sub.loc[sub["deployable_today"], "p_deploy_now"] > 0).all()
    assert not d[d["mechanism"].astype(str) == "token_binding"]["deployable_today"].any()
    assert d[d["mechanism"].astype(str) == "bearer"]["deployable_today"].all()


def test_empty_inventory_share_is_nan() -> None:
    f = flows_frame([{}]).iloc[0:0]
    assert np.isnan(deployable_share(f, SVC, ALL_AS, family="dpop"))
