"""Tests for tokenlib.analysis.blast: reach, lateral movement, monotonicity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib.analysis.blast import (
    blast_before_after,
    blast_radius,
    integrator_blast,
    lateral_paths,
    service_graph,
)
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.replay import MECHANISMS

try:
    from tests.analysis.conftest_models import flows_frame, random_inventory, services_frame
except ImportError:  # pragma: no cover
    from conftest_models import flows_frame, random_inventory, services_frame  # type: ignore[no-redef]

P0 = ModelParameters.from_reference()


def _chain() -> pd.DataFrame:
    return services_frame(
        [
            {"service_id": "a", "sensitivity": 1, "downstream": "b"},
            {"service_id": "b", "sensitivity": 2, "downstream": "c"},
            {"service_id": "c", "sensitivity": 5, "downstream": ""},
            {"service_id": "d", "sensitivity": 3, "downstream": ""},
        ]
    )


def _br(
    flows: pd.DataFrame, services: pd.DataFrame, params: ModelParameters, mech: str = "bearer"
) -> pd.Series:
    return blast_radius(flows, services, params, mechanisms=[mech]).iloc[0]


def test_service_graph_and_unknown_downstream() -> None:
    g = service_graph(_chain())
    assert g.nnz == 2
    bad = services_frame([{"service_id": "a", "downstream": "zzz"}])
    with pytest.raises(KeyError, match="zzz"):
        service_graph(bad)


def test_reach_by_audience_and_forwarding() -> None:
    s = _chain()
    p = P0.replace(q_secret=0.0)
    only = _br(flows_frame([{"resource_server": "a"}]), s, p)
    assert (only["n_reachable"], only["br_total"]) == (1, 1.0)
    fwd = _br(flows_frame([{"resource_server": "a", "forwards_token": True}]), s, p)
    assert (fwd["n_reachable"], fwd["br_total"]) == (3, 8.0)
    every = _br(flows_frame([{"resource_server": "a", "audience_restricted": False}]), s, p)
    assert (every["n_reachable"], every["br_total"]) == (4, 11.0)


def test_lateral_hops_with_q() -> None:
    s = _chain()
    p = P0.replace(q_secret=0.1, lateral_hops=1)
    r = _br(flows_frame([{"resource_server": "a"}]), s, p)
    assert r["br_direct"] == pytest.approx(1.0)
    assert r["br_lateral"] == pytest.approx(0.1 * 2)
    p2 = P0.replace(q_secret=0.1, lateral_hops=2)
    r2 = _br(flows_frame([{"resource_server": "a"}]), s, p2)
    assert r2["br_lateral"] == pytest.approx(0.1 * 2 + 0.01 * 5)


def _brute_force(
    flows: pd.DataFrame, services: pd.DataFrame, p: ModelParameters, mech: str
) -> np.ndarray:
    """Independent dense implementation of the documented formula (per-flow loop, tests only)."""
    from tokenlib.analysis.replay import _bypass, _context, _key_term

    ctx = _context(flows, services, p)
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
    col = {"bearer": None, "mtls": "supports_mtls", "token_binding": "tb"}.get(
        mech, "supports_dpop"
    )
    sup = (
        np.zeros(S)
        if col is None
        else (np.ones(S) if col == "tb" else services[col].to_numpy(float))
    )
    k = _key_term(ctx, mech, "at_rest")
    bp = _bypass(ctx, mech)
    out = []
    for i in range(len(flows)):
        rs = ids.index(str(flows["resource_server"].iloc[i]))
        if not flows["audience_restricted"].iloc[i]:
            reach = np.ones(S)
        elif flows["forwards_token"].iloc[i]:
            reach = clo[rs]
        else:
            reach = np.eye(S)[rs]
        g = 1.0 if mech == "bearer" else min(1.0, (1 - p.e_rs) + p.e_rs * k[i])
        x0 = reach * ((1 - sup) + sup * g)
        x0[rs] = bp[i]
        out.append(np.minimum(1, x0 + x0 @ lat) @ v)
    return np.array(out)


@pytest.mark.parametrize("mech", ["bearer", "mtls", "dpop_nonce", "token_binding"])
def test_vectorised_matches_brute_force(mech: str) -> None:
    f, s = random_inventory(120, seed=8, n_services=10)
    f["audience_restricted"] = True  # the exact (sparse) branch
    got = blast_radius(f, s, P0, mechanisms=[mech])["br_total"].to_numpy()
    assert got == pytest.approx(_brute_force(f, s, P0, mech))


def test_tokens_accepted_everywhere_match_brute_force_when_cap_is_slack() -> None:
    f, s = random_inventory(60, seed=8, n_services=10)
    f["audience_restricted"] = False
    p = P0.replace(q_secret=0.05, lateral_hops=1)
    for mech in ("bearer", "dpop_shared_cache", "current"):
        got = blast_radius(f, s, p, mechanisms=[mech])["br_total"].to_numpy()
        if mech == "current":
            continue
        assert got == pytest.approx(_brute_force(f, s, p, mech), rel=1e-6)


def test_binding_never_increases_blast_radius() -> None:
    f, s = random_inventory(300, seed=1)
    b = blast_radius(f, s, P0)
    piv = b.pivot_table(index="flow_id", columns="mechanism", values="br_total", observed=True)
    for m in ["current", *MECHANISMS]:
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
    f, s = random_inventory(60, seed=seed, n_services=8)
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


def test_lateral_paths_need_possession_alone() -> None:
    s = _chain()
    f = flows_frame([{"resource_server": "a", "forwards_token": True}] * 3)
    lp = lateral_paths(f, s, P0, mechanism="bearer")
    assert lp["path"].tolist()[0].startswith("a>")
    assert (lp["score"].diff().dropna() <= 1e-9).all()
    assert set(lp["edges"]) <= {
        "fwd",
        "secret",
        "fwd>fwd",
        "fwd>secret",
        "secret>secret",
        "secret>fwd",
        "fwd>fwd>fwd",
        "fwd>fwd>secret",
        "fwd>secret>secret",
        "secret>secret>secret",
    }
    # enforced DPoP everywhere: the entry no longer accepts possession alone
    bound = lateral_paths(f, s, P0.replace(e_rs=1.0), mechanism="dpop_nonce")
    assert bound.empty


def test_integrator_store_and_before_after() -> None:
    f, s = random_inventory(200, seed=6)
    b = blast_radius(f, s, P0)
    integ = integrator_blast(b, f)
    assert (integ["br_store"] >= integ["br_total"]).all()
    ba = blast_before_after(f, s, P0, blast=b)
    row = ba.set_index("mechanism")
    assert row.loc["current", "reduction_total"] == 0.0
    assert row.loc["dpop_nonce", "br_total"] <= row.loc["bearer", "br_total"]
    assert row.loc["dpop_nonce", "possession_paths"] <= row.loc["bearer", "possession_paths"]
