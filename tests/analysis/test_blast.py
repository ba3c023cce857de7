"""Tests for tokenlib.analysis.blast: reach, P_rep, value, lateral movement, views, what-ifs.

Hand-built inventories whose answers are known by hand, a dense brute-force implementation of
the documented formula, and a few properties.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib.analysis.blast import (
    blast_before_after,
    blast_radius,
    edge_impact,
    integrator_blast,
    lateral_paths,
    service_graph,
)
from tokenlib.analysis.models import MECHANISMS, VIEWS, FlowContext, cell_statistics
from tokenlib.analysis.models.components import bypass, key_term
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
MECH_IDS = [m.id for m in MECHANISMS]
#: An AS that issues every binding it can (RFC 9449 §5, RFC 8705 §3).
AS_ALL = authorization_servers_frame(
    [{"as_id": "as-default", "issues_dpop": True, "issues_mtls": True}]
)


def _flows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Flows with write scopes (A24b = 1) and prod (factor 1), so values are sensitivities."""
    return flows_frame([{"scopes": "write", **r} for r in rows])


def _chain(**extra: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {"service_id": "a", "sensitivity": 1, "downstream": "b"},
        {"service_id": "b", "sensitivity": 2, "downstream": "c"},
        {"service_id": "c", "sensitivity": 5, "downstream": ""},
        {"service_id": "d", "sensitivity": 3, "downstream": ""},
    ]
    return services_frame([{**r, **extra.get(str(r["service_id"]), {})} for r in rows])


def _br(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters = P0,
    mech: str = "bearer",
    **kw: Any,
) -> pd.Series:
    return blast_radius(flows, services, params, mechanisms=[mech], **kw).iloc[0]


# --- graph and reach --------------------------------------------------------------------------


def test_service_graph_and_unknown_downstream() -> None:
    g = service_graph(_chain())
    assert g.nnz == 2
    bad = services_frame([{"service_id": "a", "downstream": "zzz"}])
    with pytest.raises(KeyError, match="zzz"):
        service_graph(bad)


def test_reach_by_audience_forwarding_and_token_exchange() -> None:
    s = _chain()
    p = P0.replace(q_secret=0.0)
    only = _br(_flows([{"resource_server": "a"}]), s, p)
    assert (only["n_reachable"], only["br_total"]) == (1, 1.0)
    fwd = _br(_flows([{"resource_server": "a", "forwards_token": True}]), s, p)
    assert (fwd["n_reachable"], fwd["br_total"]) == (3, 8.0)
    # RFC 8693: downstream services get exchanged tokens; the stolen one reaches only its RS
    tx = _br(
        _flows([{"resource_server": "a", "forwards_token": True, "token_exchange": True}]), s, p
    )
    assert (tx["n_reachable"], tx["br_total"]) == (1, 1.0)
    every = _br(_flows([{"resource_server": "a", "audience_restricted": False}]), s, p)
    assert (every["n_reachable"], every["br_total"]) == (4, 11.0)


def test_lateral_hops_with_q() -> None:
    s = _chain()
    p = P0.replace(q_secret=0.1, lateral_hops=1)
    r = _br(_flows([{"resource_server": "a"}]), s, p)
    assert r["br_direct"] == pytest.approx(1.0)
    assert r["br_lateral"] == pytest.approx(0.1 * 2)
    p2 = P0.replace(q_secret=0.1, lateral_hops=2)
    r2 = _br(_flows([{"resource_server": "a"}]), s, p2)
    assert r2["br_lateral"] == pytest.approx(0.1 * 2 + 0.01 * 5)


# --- inventory fields: supports_bearer, scopes, environment -----------------------------------


def test_bearer_token_at_rs_refusing_bearer_has_p_rep_zero() -> None:
    s = _chain(a={"supports_bearer": False})
    p = P0.replace(q_secret=0.0)
    r = _br(_flows([{"resource_server": "a"}]), s, p)
    assert (r["n_reachable"], r["br_direct"], r["br_total"]) == (0, 0.0, 0.0)
    # not audience-restricted: accepted everywhere except at the RS that refuses bearer
    every = _br(_flows([{"resource_server": "a", "audience_restricted": False}]), s, p)
    assert (every["n_reachable"], every["br_total"]) == (3, 10.0)
    every_b = _br(_flows([{"resource_server": "b", "audience_restricted": False}]), s, p)
    assert (every_b["n_reachable"], every_b["br_total"]) == (3, 10.0)


def test_rs_refusing_bearer_is_on_no_possession_alone_path() -> None:
    s = services_frame(
        [
            {"service_id": "a", "sensitivity": 1, "downstream": "b;d"},
            {"service_id": "b", "sensitivity": 2, "downstream": "c", "supports_bearer": False},
            {"service_id": "c", "sensitivity": 5, "downstream": ""},
            {"service_id": "d", "sensitivity": 3, "downstream": ""},
        ]
    )
    f = _flows(
        [{"resource_server": "a", "forwards_token": True}] * 2
        + [{"resource_server": "b", "forwards_token": True}] * 2
    )
    for mech in ("current", "bearer", "dpop_nonce"):
        lp = lateral_paths(f, s, P0, mechanism=mech, limit=1000)
        assert not lp.empty
        assert set(lp["entry_service"]) == {"a"}, mech
        assert not lp["path"].str.split(">").apply(lambda ns: "b" in ns).any(), mech
        assert set(lp["path"]) == {"a>d"}


def test_scopes_differ_by_the_a24_ratio() -> None:
    s = _chain()
    f = flows_frame(
        [
            {"resource_server": "a", "forwards_token": True, "scopes": "admin"},
            {"resource_server": "a", "forwards_token": True, "scopes": "read"},
        ]
    )
    b = blast_radius(f, s, P0, mechanisms=["bearer"]).set_index("flow_id")
    ratio = P0.scope_factor_admin / P0.scope_factor_read
    for col in ("br_direct", "br_total", "br_time_weighted"):
        assert b.loc["f0", col] == pytest.approx(ratio * b.loc["f1", col])


def test_environment_differs_by_the_a25_factor() -> None:
    s = _chain()
    f = _flows(
        [
            {"resource_server": "a", "environment": "prod", "refresh_token": "static"},
            {"resource_server": "a", "environment": "dev", "refresh_token": "static"},
            {"resource_server": "a", "environment": "staging", "refresh_token": "static"},
        ]
    )
    b = blast_radius(f, s, P0, mechanisms=["bearer"]).set_index("flow_id")
    for col in ("br_total", "br_rt"):
        assert b.loc["f0", col] > 0
        assert b.loc["f1", col] == pytest.approx(P0.env_factor_dev * b.loc["f0", col])
        assert b.loc["f2", col] == pytest.approx(P0.env_factor_staging * b.loc["f0", col])


# --- P_rep of bound tokens and the support views ----------------------------------------------


def test_p_rep_of_a_bound_token_at_other_services() -> None:
    """Own RS a enforces DPoP; the token is forwarded to b, c, d with every support combination.

    No key-bearing channel (app_logs), so ``k = 0``: b supports DPoP and accepts bearer ->
    ``1 - e_rs``; c supports DPoP and refuses bearer -> 0; d knows no DPoP and accepts bearer ->
    1 (RFC 9449 §7.2); e neither -> 0.
    """
    s = services_frame(
        [
            {"service_id": "a", "sensitivity": 1, "downstream": "b;c;d;e"},
            {"service_id": "b", "sensitivity": 1},
            {"service_id": "c", "sensitivity": 1, "supports_bearer": False},
            {"service_id": "d", "sensitivity": 1, "supports_dpop": False},
            {"service_id": "e", "sensitivity": 1, "supports_dpop": False, "supports_bearer": False},
        ]
    )
    p = P0.replace(q_secret=0.0)
    f = _flows(
        [
            {
                "resource_server": "a",
                "forwards_token": True,
                "binding": "dpop",
                "binding_enforced": True,
            }
        ]
    )
    r = _br(f, s, p, "current", authorization_servers=AS_ALL)
    # own RS enforced with k = 0 -> 0; b: 1 - e_rs; c, e: 0; d: 1
    assert r["br_direct"] == pytest.approx((1 - p.e_rs) + 1.0)
    assert r["n_reachable"] == 2
    # with the key next to the token (config_files, software key): k = A4b
    fk = f.assign(exposure_channels="config_files", key_storage="software")
    k = p.p_key_software
    rk = _br(fk, s, p, "current", authorization_servers=AS_ALL)
    assert rk["br_direct"] == pytest.approx(k + ((1 - p.e_rs) + p.e_rs * k) + k + 1.0)
    # the AS cannot issue DPoP: the token is bearer, accepted where bearer is
    no_as = authorization_servers_frame([{"as_id": "as-default"}])
    rb = _br(f, s, p, "current", authorization_servers=no_as)
    assert rb["br_direct"] == pytest.approx(3.0)


def test_dpop_upgraded_is_lower_where_the_rs_lacks_dpop_today() -> None:
    s = _chain(a={"supports_dpop": False})
    f = _flows([{"resource_server": "a", "forwards_token": True}])
    today = _br(f, s, P0, "dpop_nonce", view="today", authorization_servers=AS_ALL)
    up = _br(f, s, P0, "dpop_nonce", view="upgraded", authorization_servers=AS_ALL)
    bearer = _br(f, s, P0, "bearer", authorization_servers=AS_ALL)
    assert today["br_total"] == pytest.approx(bearer["br_total"])  # not bound today
    assert up["br_total"] < today["br_total"] - 1e-9
    assert up["view"] == "upgraded"


@pytest.mark.parametrize("view", VIEWS)
def test_token_binding_equals_bearer_in_both_views(view: str) -> None:
    f, s = random_inventory(200, seed=3)
    f = f.assign(token_exchange=np.arange(len(f)) % 5 == 0)
    s = s.assign(supports_bearer=np.arange(len(s)) % 4 != 0)
    b = blast_radius(f, s, P0, mechanisms=["bearer", "token_binding"], view=view)  # type: ignore[arg-type]
    cols = ["n_reachable", "br_direct", "br_lateral", "br_total", "br_rt", "br_time_weighted"]
    tb = b[b["mechanism"] == "token_binding"][cols].to_numpy()
    be = b[b["mechanism"] == "bearer"][cols].to_numpy()
    assert tb == pytest.approx(be)


def test_window_given_replay_is_the_same_for_every_mechanism() -> None:
    """The shortcut behind br_time_weighted: the at-rest cell is ``R`` with weight b."""
    f, s = random_inventory(150, seed=4)
    ctx = FlowContext.build(f, s, P0)
    ref = cell_statistics(ctx, "bearer", "at_rest_copy", "upgraded")
    base = ref["expected_window_s"] / ref["p_replay"]
    for m in MECHANISMS:
        st_m = cell_statistics(ctx, m, "at_rest_copy", "upgraded")
        ok = st_m["p_replay"] > 0
        got = st_m["expected_window_s"][ok] / st_m["p_replay"][ok]
        assert got == pytest.approx(base[ok], rel=1e-9), m.id


# --- the vectorised computation against a dense brute force -----------------------------------


def _brute_force(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    p: ModelParameters,
    mech: str,
    view: str,
) -> np.ndarray:
    """Independent dense implementation of the documented formula (per-flow loop, tests only)."""
    from tokenlib.analysis.models import mechanism

    ctx = FlowContext.build(flows, services, p)
    m = mechanism(mech)
    ids = services["service_id"].astype(str).tolist()
    S = len(ids)
    A = np.zeros((S, S))
    for i, d in enumerate(services["downstream"].astype(str)):
        for x in filter(None, d.split(";")):
            A[i, ids.index(x)] = 1
    clo = np.eye(S)
    for _ in range(S):
        clo = np.minimum(1, clo + clo @ A)
    M = p.q_secret * A
    lat = sum(np.linalg.matrix_power(M, h) for h in range(1, round(p.lateral_hops) + 1))
    v = services["sensitivity"].to_numpy(float)
    bear = services["supports_bearer"].to_numpy(float)
    if view == "upgraded":
        sup = np.ones(S)
    else:
        col = {"mtls": "supports_mtls", "dpop": "supports_dpop"}.get(m.family)
        sup = services[col].to_numpy(float) if col else np.zeros(S)
    bound = ctx.enforceable(m, view)  # type: ignore[arg-type]
    k = key_term(ctx, m, "at_rest")
    own_b = bypass(ctx, m, view, "at_rest")  # type: ignore[arg-type]
    scale = ctx.privilege * ctx.environment
    out = []
    for i in range(len(flows)):
        rs = ids.index(str(flows["resource_server"].iloc[i]))
        fwd = bool(flows["forwards_token"].iloc[i]) and not bool(flows["token_exchange"].iloc[i])
        if not flows["audience_restricted"].iloc[i]:
            reach = np.ones(S)
        elif fwd:
            reach = clo[rs]
        else:
            reach = np.eye(S)[rs]
        if bound[i]:
            e_r = np.where(sup > 0, np.where(bear > 0, p.e_rs, 1.0), 0.0)
            prep = (1 - e_r) * bear + e_r * k[i]
            prep[rs] = own_b[i]
        else:
            prep = bear.copy()
        x0 = reach * prep
        out.append(scale[i] * (np.minimum(1, x0 + x0 @ lat) @ v))
    return np.array(out)


def _random_mixed(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    f, s = random_inventory(n, seed=seed, n_services=10)
    rng = np.random.default_rng(seed)
    f = f.assign(
        token_exchange=rng.random(len(f)) < 0.3,
        scopes=rng.choice(["read", "orders:write", "admin"], size=len(f)),
        environment=pd.Categorical(
            rng.choice(["prod", "staging", "dev"], size=len(f)),
            categories=["prod", "staging", "dev"],
        ),
    )
    s = s.assign(supports_bearer=rng.random(len(s)) < 0.7)
    return f, s


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("mech", ["bearer", "mtls", "dpop_nonce", "token_binding"])
def test_vectorised_matches_brute_force(mech: str, view: str) -> None:
    f, s = _random_mixed(120, seed=8)
    f["audience_restricted"] = True  # the exact (sparse) branch
    got = blast_radius(f, s, P0, mechanisms=[mech], view=view)["br_total"].to_numpy()  # type: ignore[arg-type]
    assert got == pytest.approx(_brute_force(f, s, P0, mech, view))


@pytest.mark.parametrize("view", VIEWS)
def test_tokens_accepted_everywhere_match_brute_force_when_cap_is_slack(view: str) -> None:
    f, s = _random_mixed(60, seed=8)
    f["audience_restricted"] = False
    p = P0.replace(q_secret=0.05, lateral_hops=1)
    for mech in ("bearer", "dpop_shared_cache", "mtls"):
        got = blast_radius(f, s, p, mechanisms=[mech], view=view)["br_total"].to_numpy()  # type: ignore[arg-type]
        assert got == pytest.approx(_brute_force(f, s, p, mech, view), rel=1e-6)


def test_current_is_the_per_flow_mechanism() -> None:
    f, s = _random_mixed(150, seed=2)
    b = blast_radius(f, s, P0, mechanisms=[*MECH_IDS, "current"])
    cur = b[b["mechanism"] == "current"].reset_index(drop=True)
    for m in set(cur["applied_mechanism"].astype(str)):
        sel = (cur["applied_mechanism"] == m).to_numpy()
        one = b[b["mechanism"] == m].reset_index(drop=True)
        assert cur["br_total"][sel].to_numpy() == pytest.approx(one["br_total"][sel].to_numpy())


def test_binding_never_increases_blast_radius_when_every_rs_accepts_bearer() -> None:
    f, s = random_inventory(300, seed=1)
    for view in VIEWS:
        b = blast_radius(f, s, P0, view=view)
        piv = b.pivot_table(index="flow_id", columns="mechanism", values="br_total", observed=True)
        for m in ["current", *MECH_IDS]:
            assert (piv[m] <= piv["bearer"] + 1e-9).all(), m
        rt = b.pivot_table(index="flow_id", columns="mechanism", values="br_rt", observed=True)
        assert (rt["dpop_nonce"] <= rt["bearer"] + 1e-9).all()


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    q=st.floats(0.0, 0.3),
    hops=st.integers(1, 3),
    pick=st.integers(0, 10_000),
)
def test_removing_a_downstream_edge_never_increases_blast(
    seed: int, q: float, hops: int, pick: int
) -> None:
    f, s = _random_mixed(60, seed=seed)
    edges = [
        (sid, d)
        for sid, down in zip(s["service_id"], s["downstream"], strict=True)
        for d in filter(None, down.split(";"))
    ]
    if not edges:
        return
    p = P0.replace(q_secret=q, lateral_hops=hops)
    edge = edges[pick % len(edges)]
    before = blast_radius(f, s, p, mechanisms=["bearer", "dpop_nonce"])
    after = blast_radius(f, s, p, mechanisms=["bearer", "dpop_nonce"], drop_edges=[edge])
    assert (after["br_total"].to_numpy() <= before["br_total"].to_numpy() + 1e-9).all()
    assert (after["br_rt"].to_numpy() <= before["br_rt"].to_numpy() + 1e-9).all()


# --- lateral paths ----------------------------------------------------------------------------


def test_lateral_paths_need_possession_alone() -> None:
    s = _chain()
    f = _flows([{"resource_server": "a", "forwards_token": True}] * 3)
    lp = lateral_paths(f, s, P0, mechanism="bearer")
    assert lp["path"].tolist()[0].startswith("a>")
    assert (lp["score"].diff().dropna() <= 1e-9).all()
    assert (lp["p_path"] > 0).all()
    assert set(lp["edges"]) == {"fwd", "fwd>fwd"}  # the bearer token is forwarded a>b>c
    assert set(lp["view"]) == {"today"}
    # enforced DPoP everywhere: the entry no longer accepts possession alone
    bound = lateral_paths(
        f, s, P0.replace(e_rs=1.0), mechanism="dpop_nonce", authorization_servers=AS_ALL
    )
    assert bound.empty
    # with token exchange the stolen token is not forwarded: only secret edges remain
    tx = lateral_paths(f.assign(token_exchange=True), s, P0, mechanism="bearer")
    assert set(tx["edges"]) == {"secret", "secret>secret"}
    assert tx["p_path"].max() == pytest.approx(P0.q_secret)


def test_lateral_paths_forward_only_where_the_downstream_accepts_the_token() -> None:
    # a bound but unenforced DPoP token (binding_enforced false) enters a; b checks DPoP
    s = _chain()
    f = _flows([{"resource_server": "a", "forwards_token": True, "binding": "dpop"}])
    lp = lateral_paths(f, s, P0, mechanism="current", authorization_servers=AS_ALL)
    assert set(lp["edges"]) == {"secret", "secret>secret"}
    lp_b = lateral_paths(f, s.assign(supports_dpop=False), P0, mechanism="current")
    assert "fwd" in set(lp_b["edges"])  # a knows no DPoP: bearer everywhere


# --- before/after, edge impact, integrators ---------------------------------------------------


def test_before_after_has_one_baseline_and_keeps_negative_reductions() -> None:
    s = _chain()
    f = _flows(
        [
            {
                "resource_server": "a",
                "forwards_token": True,
                "binding": "dpop",
                "binding_enforced": True,
            },
            {"resource_server": "b", "client_kind": "browser_spa", "client_type": "public"},
        ]
    )
    today = blast_before_after(f, s, P0, authorization_servers=AS_ALL).set_index("mechanism")
    up = blast_before_after(f, s, P0, view="upgraded", authorization_servers=AS_ALL)
    up = up.set_index("mechanism")
    assert (today["baseline"] == "current").all()
    assert (up["baseline"] == "current").all()
    assert today.loc["current", "view"] == "today"
    assert up.loc["current", "view"] == "today"
    assert up.loc["dpop_nonce", "view"] == "upgraded"
    # one baseline: today's inventory, in both tables
    assert up.loc["current", "br_total"] == pytest.approx(today.loc["current", "br_total"])
    assert today.loc["current", "reduction_total"] == 0.0
    # bearer everywhere is worse than today's enforced DPoP flow: the sign is kept
    assert today.loc["bearer", "reduction_total"] < 0
    assert today.loc["token_binding", "reduction_total"] == pytest.approx(
        today.loc["bearer", "reduction_total"]
    )
    # mTLS cannot be held by the browser client: bearer for it, and worse than today
    assert today.loc["mtls", "reduction_total"] < 0
    assert today.loc["dpop_nonce", "br_total"] <= today.loc["bearer", "br_total"]
    assert today.loc["dpop_nonce", "possession_paths"] <= today.loc["bearer", "possession_paths"]


def test_before_after_reuses_a_blast_table() -> None:
    f, s = random_inventory(200, seed=6)
    b = blast_radius(f, s, P0)
    ba = blast_before_after(f, s, P0, blast=b, paths=False)
    fresh = blast_before_after(f, s, P0, paths=False)
    assert ba["br_total"].to_numpy() == pytest.approx(fresh["br_total"].to_numpy())
    integ = integrator_blast(b, f)
    assert (integ["br_store"] >= integ["br_total"]).all()


def test_edge_impact_measures_the_reduction_of_each_edge() -> None:
    s = _chain()
    p = P0.replace(q_secret=0.1)
    f = _flows(
        [{"resource_server": "a", "forwards_token": True}] * 2
        + [{"resource_server": "d", "forwards_token": True}]
    )
    ei = edge_impact(f, s, p)
    assert set(zip(ei["source"], ei["target"], strict=True)) == {("a", "b"), ("b", "c")}
    before = blast_radius(f, s, p, mechanisms=["current"])["br_total"].sum()
    for src, dst, red in zip(ei["source"], ei["target"], ei["reduction_total"], strict=True):
        after = blast_radius(f, s, p, mechanisms=["current"], drop_edges=[(src, dst)])
        assert red == pytest.approx(before - after["br_total"].sum())
    assert (ei["reduction_total"].diff().dropna() <= 1e-12).all()
    assert ei["rank"].tolist() == [1, 2]
    # cutting a>b also cuts the forwarded token's way to c: the bigger reduction
    assert (ei.iloc[0]["source"], ei.iloc[0]["target"]) == ("a", "b")
    given = edge_impact(f, s, p, edges=[("b", "c")])
    assert len(given) == 1
    assert given.iloc[0]["reduction_total"] > 0
    assert edge_impact(f, s, p, top=0).empty


def test_unknown_view_is_rejected() -> None:
    f, s = random_inventory(20, seed=1)
    with pytest.raises(ValueError, match="view"):
        blast_radius(f, s, P0, view="tomorrow")  # type: ignore[arg-type]
