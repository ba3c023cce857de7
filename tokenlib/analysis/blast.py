"""Blast radius of a stolen token: what it reaches, weighted by data sensitivity (brief §2.3).

Graph: services are nodes; ``services.downstream`` gives directed edges ``s -> d`` (``s`` calls
``d``). They serve twice:

* **token forwarding**: a flow with ``forwards_token`` has its token presented downstream, so an
  audience-restricted token reaches the forwarding closure of its RS. A token that is not
  audience-restricted reaches every service trusting the issuer (all services of the
  inventory: one issuer is assumed), ``R_acc`` in the brief.
* **lateral movement**: data readable at ``s`` holds a credential for ``d`` with probability
  ``q`` (A10); up to ``k`` hops (A15). Reach probabilities add along paths (union bound,
  ``y = sum_h x0 M^h`` with ``M = q * A``) and are capped at 1 per service.

``P_rep(t, r)`` = 1 for bearer; for a sender-constrained token ``min(1, (1-e_r) + e_r * min(1,
p_key + p_inj))`` (the §1.4.6 mixture weight; the §2.3 sum is its upper bound). ``e_r`` is
``e_rs`` (A2) where ``r`` supports the mechanism and 0 where it does not (RFC 9449 §7.2: an RS
unaware of DPoP accepts the token as bearer); at the flow's own RS the replay model's
enforcement is used (observed ``binding_enforced``, path effects).

``BR(t) = sum_r v(r) * min(1, x0(r) + y(r))`` with ``x0(r) = 1[r in R_acc] * P_rep(t, r)`` and
``v`` = sensitivity 1..5. A refresh token carries the whole grant: its reach is the union over
all flows of the same ``client_id``; the attacker who can use it mints tokens bound to nothing it
lacks, so ``BR(RT) = P_use * V(union + lateral)``. An integrator's token store is the sum over
its flows.

Token Binding rows evaluate the protocol *as if* every service supported it (its per-RS binding
IDs act like audience restriction, RFC 9700 §4.10.2); ``deploy.py`` shows it cannot be deployed.
Tokens accepted everywhere share one dense row per (mechanism, P_rep); the own-RS override is
exact at that RS and first-order in its lateral influence.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tokenlib.analysis._paths import (
    FloatArray,
    as_str,
    channel_matrix,
    service_lookup,
    str_codes,
)
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.replay import (
    DPOP_MECHANISMS,
    MECHANISMS,
    _bypass,
    _components,
    _context,
    _Ctx,
    _key_term,
    _mixture_stats,
)

__all__ = [
    "blast_before_after",
    "blast_radius",
    "integrator_blast",
    "lateral_paths",
    "service_graph",
]


def service_graph(services: pd.DataFrame) -> sp.csr_matrix:
    """Sparse adjacency ``A[s, d] = 1`` for each ``d`` in ``services.downstream`` of ``s``.

    Unknown downstream ids raise ``KeyError`` naming the service.
    """
    ids = services["service_id"].astype(str).tolist()
    index = {s: i for i, s in enumerate(ids)}
    rows, cols = [], []
    for i, down in enumerate(services["downstream"].fillna("").astype(str).tolist()):
        for d in filter(None, (x.strip() for x in down.split(";"))):
            if d not in index:
                raise KeyError(f"services.downstream of {ids[i]!r} names unknown service {d!r}")
            rows.append(i)
            cols.append(index[d])
    n = len(ids)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def _closure(adj: sp.csr_matrix) -> sp.csr_matrix:
    """Reflexive-transitive closure (boolean) by repeated sparse products."""
    n = adj.shape[0]
    reach = sp.identity(n, format="csr")
    frontier = reach
    for _ in range(n):
        frontier = (frontier @ adj).sign()
        new = (reach + frontier).sign()
        if new.nnz == reach.nnz:
            break
        reach = new
    return reach.tocsr()


def _supports(svc: pd.DataFrame, mech: str) -> FloatArray:
    if mech == "bearer":
        return np.zeros(len(svc))
    if mech == "mtls":
        return np.asarray(svc["supports_mtls"].to_numpy(dtype=float))
    if mech in DPOP_MECHANISMS:
        return np.asarray(svc["supports_dpop"].to_numpy(dtype=float))
    return np.ones(len(svc))  # token_binding: evaluated as if deployed


def _p_key_term(ctx: _Ctx, mech: str) -> FloatArray:
    return _key_term(ctx, mech, "at_rest")


class _Graph:
    """Service graph with the sparse matrices the blast model needs."""

    def __init__(
        self,
        services: pd.DataFrame,
        params: ModelParameters,
        drop_edges: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.svc = services.reset_index(drop=True)
        adj = service_graph(self.svc).tolil()
        index = {s: i for i, s in enumerate(self.svc["service_id"].astype(str))}
        for a, b in drop_edges:
            adj[index[a], index[b]] = 0
        self.adj = adj.tocsr()
        self.adj.eliminate_zeros()
        self.S = self.adj.shape[0]
        self.closure = _closure(self.adj)
        self.v = self.svc["sensitivity"].to_numpy(dtype=float)
        m = (self.adj * params.q_secret).tocsr()
        lat = sp.csr_matrix((self.S, self.S))
        power = sp.identity(self.S, format="csr")
        for _ in range(round(params.lateral_hops)):
            power = (power @ m).tocsr()
            lat = (lat + power).tocsr()
        self.lat = lat  # sum_{h=1..k} (q A)^h
        eye = sp.identity(self.S, format="csr")
        ones = sp.csr_matrix(np.ones((1, self.S)))
        self.keys = sp.vstack([eye, self.closure, ones], format="csr")

    def value_sparse(self, x0: sp.csr_matrix) -> tuple[FloatArray, FloatArray]:
        """(direct, total) with total = sum_n v_n min(1, x0_n + (x0 lat)_n), rows of sparse x0."""
        direct = np.asarray(x0 @ self.v).ravel()
        t = (x0 + x0 @ self.lat).tocsr()
        t.data = np.minimum(1.0, t.data)
        return direct, np.asarray(t @ self.v).ravel()


def _reach_keys(ctx_rs: np.ndarray, fwd: np.ndarray, restricted: np.ndarray, S: int) -> np.ndarray:
    """0..S-1: only the RS; S..2S-1: forwarding closure of RS; 2S: every service."""
    return np.where(~restricted, 2 * S, np.where(fwd, S + ctx_rs, ctx_rs)).astype(np.int64)


def _flow_blast(
    ctx: _Ctx,
    g: _Graph,
    pos: np.ndarray,
    fwd: np.ndarray,
    restricted: np.ndarray,
    mech_code: np.ndarray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(n_reachable, direct, total) per flow for a per-flow mechanism array.

    Flows are reduced to distinct (reach, mechanism, P_rep at other RSs, P_rep at own RS)
    combinations. Restricted tokens are computed exactly on sparse rows; a token accepted
    everywhere shares one dense row per (mechanism, P_rep) and its own-RS override is added as a
    first-order correction (exact unless the per-service cap at 1 binds).
    """
    n = ctx.n
    S = g.S
    keys = _reach_keys(pos, fwd, restricted, S)
    gval = np.ones(n)
    bp = np.ones(n)
    for mi in np.unique(mech_code):
        m = MECHANISMS[int(mi)]
        sel = mech_code == mi
        if m == "bearer":
            continue
        k = _p_key_term(ctx, m)
        e = ctx.params.e_rs
        gval[sel] = np.minimum(1.0, (1.0 - e) + e * k)[sel]
        bp[sel] = _bypass(ctx, m)[sel]
    sup = np.stack([_supports(g.svc, m) for m in MECHANISMS])
    n_reach = np.zeros(n)
    direct = np.zeros(n)
    total = np.zeros(n)

    # --- restricted tokens: exact, sparse --------------------------------------------------
    r_idx = np.flatnonzero(restricted)
    if len(r_idx):
        combo = pd.DataFrame(
            {
                "k": keys[r_idx],
                "m": mech_code[r_idx],
                "g": np.round(gval[r_idx], 12),
                "b": np.round(bp[r_idx], 12),
            }
        )
        grp = combo.groupby(["k", "m", "g", "b"], sort=False).ngroup().to_numpy()
        uq = combo.drop_duplicates().reset_index(drop=True)
        kk = uq["k"].to_numpy(dtype=np.int64)
        mm = uq["m"].to_numpy(dtype=np.int64)
        gg = uq["g"].to_numpy(dtype=float)
        bb = uq["b"].to_numpy(dtype=float)
        rs = np.where(kk >= S, kk - S, kk)
        reach = g.keys[kk].tocsr()
        rows = np.repeat(np.arange(len(uq)), np.diff(reach.indptr))
        sv = sup[mm[rows], reach.indices]
        data = (1.0 - sv) + sv * gg[rows]
        data = np.where(reach.indices == rs[rows], bb[rows], data)
        x0 = sp.csr_matrix((data, reach.indices, reach.indptr), shape=reach.shape)
        d_u, t_u = g.value_sparse(x0)
        n_u = np.diff(reach.indptr).astype(float)
        n_reach[r_idx], direct[r_idx], total[r_idx] = n_u[grp], d_u[grp], t_u[grp]

    # --- tokens accepted everywhere: one dense row per (mechanism, g) -----------------------
    a_idx = np.flatnonzero(~restricted)
    if len(a_idx):
        combo = pd.DataFrame({"m": mech_code[a_idx], "g": np.round(gval[a_idx], 12)})
        grp = combo.groupby(["m", "g"], sort=False).ngroup().to_numpy()
        uq = combo.drop_duplicates().reset_index(drop=True)
        mm = uq["m"].to_numpy(dtype=np.int64)
        gg = uq["g"].to_numpy(dtype=float)
        base = (1.0 - sup[mm]) + sup[mm] * gg[:, None]
        x0 = sp.csr_matrix(base)
        d_u, t_u = g.value_sparse(x0)
        y = np.asarray((x0 @ g.lat).todense())
        open_ = (base + y) < 1.0  # services where the cap does not bind
        w_lat = np.asarray((g.lat @ (g.v[None, :] * open_).T).T)
        rsi = pos[a_idx]
        beta = base[grp, rsi]
        y_rs = y[grp, rsi]
        delta = bp[a_idx] - beta
        # own RS exactly (no self-loops), its lateral influence to first order
        corr = g.v[rsi] * (np.minimum(1.0, bp[a_idx] + y_rs) - np.minimum(1.0, beta + y_rs))
        corr = corr + delta * w_lat[grp, rsi]
        n_reach[a_idx] = S
        direct[a_idx] = d_u[grp] + delta * g.v[rsi]
        total[a_idx] = t_u[grp] + corr
    return n_reach, direct, total


def _rt_use(ctx: _Ctx, mech_code: np.ndarray) -> FloatArray:
    """Probability that a stolen refresh token can be redeemed (replay model weights)."""
    use = np.zeros(ctx.n)
    for mi in np.unique(mech_code):
        sel = mech_code == mi
        comps = _components(ctx, MECHANISMS[int(mi)], "refresh_token_theft_no_rotation")
        use[sel] = comps[0].w[sel]
    return use


def _client_union_value(g: _Graph, client_codes: np.ndarray, keys: np.ndarray) -> FloatArray:
    """Sensitivity-weighted reach (with lateral) of the union of each client's reach.

    A client with any token accepted everywhere reaches every service (value ``sum v``).
    """
    n_clients = int(client_codes.max()) + 1 if len(client_codes) else 0
    everywhere = np.zeros(n_clients, dtype=bool)
    everywhere[client_codes[keys == 2 * g.S]] = True
    sel = ~everywhere[client_codes]
    pairs = pd.DataFrame({"c": client_codes[sel], "k": keys[sel]}).drop_duplicates()
    out = np.where(everywhere, float(g.v.sum()), 0.0)
    if len(pairs):
        inc = sp.csr_matrix(
            (np.ones(len(pairs)), (pairs["c"].to_numpy(), pairs["k"].to_numpy())),
            shape=(n_clients, g.keys.shape[0]),
        )
        x0 = (inc @ g.keys).tocsr()
        x0.data = np.minimum(1.0, x0.data)
        vals = g.value_sparse(x0)[1]
        out = np.where(everywhere, out, vals)
    return out


def blast_radius(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str] = ("current", *MECHANISMS),
    drop_edges: Iterable[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Blast radius per flow x mechanism (``"current"`` = each flow's mechanism today).

    Columns: ``flow_id, client_id, resource_server, mechanism, n_reachable`` (services the token
    is accepted at), ``br_direct`` (sum of v * P_rep over them), ``br_lateral`` (added by
    secret-in-data hops), ``br_total``, ``br_rt`` (refresh token: redeem probability x value of
    the whole grant; 0 without RT) and ``br_time_weighted`` (``br_total`` x expected at-rest
    replay window in hours). ``drop_edges`` removes ``(service, downstream)`` edges (what-if).
    """
    params = params or ModelParameters.from_reference()
    ctx = _context(flows, services, params)
    g = _Graph(services, params, drop_edges)
    pos, _svc = service_lookup(flows, services)
    fwd = flows["forwards_token"].to_numpy(dtype=bool)
    restricted = flows["audience_restricted"].to_numpy(dtype=bool)
    keys = _reach_keys(pos, fwd, restricted, g.S)
    ccodes, cuniq = str_codes(flows["client_id"])
    union_v = _client_union_value(g, ccodes, keys)[ccodes]
    fcodes, funiq = str_codes(flows["flow_id"])
    rcodes, runiq = str_codes(flows["resource_server"])
    labels = ["current", *MECHANISMS]
    parts = []
    for m in mechanisms:
        mech = ctx.current_code if m == "current" else np.full(ctx.n, MECHANISMS.index(m))
        n_reach, direct, total = _flow_blast(ctx, g, pos, fwd, restricted, mech)
        br_rt = np.where(ctx.has_rt, _rt_use(ctx, mech) * union_v, 0.0)
        win = np.zeros(ctx.n)
        for mm in np.unique(mech):
            sel = mech == mm
            win[sel] = _mixture_stats(_components(ctx, MECHANISMS[int(mm)], "at_rest_copy"))[0][sel]
        # the at-rest mean already includes P_rep at the RS; use the window given replay instead
        bp = np.ones(ctx.n)
        for mm in np.unique(mech):
            sel = mech == mm
            bp[sel] = _bypass(ctx, MECHANISMS[int(mm)])[sel]
        win = np.where(bp > 0, win / np.where(bp > 0, bp, 1.0), 0.0)
        parts.append(
            pd.DataFrame(
                {
                    "flow_id": pd.Categorical.from_codes(fcodes, categories=pd.Index(funiq)),
                    "client_id": pd.Categorical.from_codes(ccodes, categories=pd.Index(cuniq)),
                    "resource_server": pd.Categorical.from_codes(
                        rcodes, categories=pd.Index(runiq)
                    ),
                    "mechanism": pd.Categorical.from_codes(
                        np.full(ctx.n, labels.index(m)), categories=labels
                    ),
                    "applied_mechanism": pd.Categorical.from_codes(
                        mech,
                        categories=list(MECHANISMS),
                    ),
                    "n_reachable": n_reach.astype(np.int64),
                    "br_direct": direct,
                    "br_lateral": total - direct,
                    "br_total": total,
                    "br_rt": br_rt,
                    "br_time_weighted": total * win / 3600.0,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def integrator_blast(blast: pd.DataFrame, flows: pd.DataFrame) -> pd.DataFrame:
    """Breach of an integrator's token store: sum of its flows' blast radius (brief §2.3).

    Integrators are ``client_kind == partner_integrator`` or flows with the
    ``integrator_storage`` channel, grouped by ``client_id`` and mechanism. Columns:
    ``client_id, mechanism, n_tokens, br_total, br_rt, br_store`` (= sum of ``br_total`` +
    ``br_rt``), sorted by ``br_store``.
    """
    is_int = (as_str(flows["client_kind"]) == "partner_integrator") | channel_matrix(flows)[
        "integrator_storage"
    ]
    ids = flows["flow_id"][is_int]
    b = blast[blast["flow_id"].isin(ids)]
    out = (
        b.groupby(["client_id", "mechanism"], sort=False, observed=True)
        .agg(n_tokens=("flow_id", "size"), br_total=("br_total", "sum"), br_rt=("br_rt", "sum"))
        .reset_index()
    )
    out["br_store"] = out["br_total"] + out["br_rt"]
    return out.sort_values(["mechanism", "br_store"], ascending=[True, False], ignore_index=True)


def lateral_paths(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanism: str = "current",
    max_edges: int | None = None,
    limit: int = 50,
) -> pd.DataFrame:
    """Ranked paths an attacker walks with *possession alone* (no key, no proof needed).

    A path starts at a service entered by flows whose token replays there with certainty
    (``P_rep == 1``: bearer, or a binding the RS does not enforce) and follows downstream edges:
    a ``fwd`` edge when such a flow forwards its token and the downstream accepts it without
    binding (probability 1), otherwise a ``secret`` edge (credential found in data, ``q``).
    Columns: ``mechanism, entry_service, path, hops, edges, p_path, value`` (sum of
    sensitivities after the entry), ``n_flows``, ``weight`` (traffic-weighted flows entering),
    ``score`` = weight * p_path * value; top ``limit`` rows by score.
    """
    params = params or ModelParameters.from_reference()
    ctx = _context(flows, services, params)
    svc = services.reset_index(drop=True)
    ids = svc["service_id"].astype(str).tolist()
    adj = service_graph(svc)
    mech = (
        ctx.current_code if mechanism == "current" else np.full(ctx.n, MECHANISMS.index(mechanism))
    )
    bp = np.ones(ctx.n)
    for m in np.unique(mech):
        sel = mech == m
        bp[sel] = _bypass(ctx, MECHANISMS[int(m)])[sel]
    alone = bp >= 1.0 - 1e-12
    pos = pd.Index(ids).get_indexer(flows["resource_server"].astype(str))
    fwd = flows["forwards_token"].to_numpy(dtype=bool)
    wt = (1.0 + ctx.rpd) ** params.traffic_exponent
    S = len(ids)
    n_in = np.bincount(pos[alone], minlength=S)
    w_in = np.bincount(pos[alone], weights=wt[alone], minlength=S)
    w_fwd = np.bincount(pos[alone & fwd], weights=wt[alone & fwd], minlength=S)
    # downstream binding is unknown per flow today: assume none accepts only bound tokens
    accepts = np.ones(S, dtype=bool) if mechanism == "current" else _supports(svc, mechanism) == 0
    v = svc["sensitivity"].to_numpy(dtype=float)
    q = params.q_secret
    k = int(max_edges if max_edges is not None else round(params.lateral_hops) + 1)
    rows: list[tuple[str, str, str, int, str, float, float, int, float]] = []
    indptr, indices = adj.indptr, adj.indices
    for s0 in np.flatnonzero(n_in > 0):
        share_fwd = w_fwd[s0] / w_in[s0] if w_in[s0] > 0 else 0.0
        stack: list[tuple[list[int], list[str], float, bool]] = [([int(s0)], [], 1.0, True)]
        while stack:
            path, edges, p_path, fwd_chain = stack.pop()
            if edges:
                value = float(v[path[1:]].sum())
                weight = float(w_in[s0])
                rows.append(
                    (
                        mechanism,
                        ids[s0],
                        ">".join(ids[i] for i in path),
                        len(edges),
                        ">".join(edges),
                        p_path,
                        value,
                        int(n_in[s0]),
                        weight * p_path * value,
                    )
                )
            if len(edges) >= k:
                continue
            last = path[-1]
            for d in indices[indptr[last] : indptr[last + 1]]:
                d = int(d)
                if d in path:
                    continue
                if fwd_chain and accepts[d] and share_fwd > 0:
                    # token forwarded by the share of entering flows that forward it
                    p_edge = share_fwd + (1.0 - share_fwd) * q
                    stack.append(([*path, d], [*edges, "fwd"], p_path * p_edge, True))
                else:
                    stack.append(([*path, d], [*edges, "secret"], p_path * q, False))
    cols = [
        "mechanism",
        "entry_service",
        "path",
        "hops",
        "edges",
        "p_path",
        "value",
        "n_flows",
        "score",
    ]
    out = pd.DataFrame(rows, columns=cols)
    out.insert(
        8, "weight", out["score"] / (out["p_path"] * out["value"]).where(lambda s: s > 0, 1.0)
    )
    return out.sort_values("score", ascending=False, ignore_index=True).head(limit)


def blast_before_after(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str] = MECHANISMS,
    blast: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """How each mechanism change shrinks the blast radius: every flow switched to it vs today.

    One row for ``current`` and one per mechanism: sums of ``br_direct``, ``br_lateral``,
    ``br_total``, ``br_rt``, ``br_time_weighted``, the number of possession-alone lateral paths
    and their score, and ``reduction_total`` / ``reduction_time_weighted`` relative to current.
    """
    params = params or ModelParameters.from_reference()
    mechs = ["current", *mechanisms]
    b = blast if blast is not None else blast_radius(flows, services, params, mechanisms=mechs)
    agg = (
        b.groupby("mechanism", sort=False, observed=True)[
            ["br_direct", "br_lateral", "br_total", "br_rt", "br_time_weighted"]
        ]
        .sum()
        .reindex(mechs)
    )
    n_paths, scores = [], []
    for m in mechs:
        lp = lateral_paths(flows, services, params, mechanism=m, limit=1_000_000)
        n_paths.append(len(lp))
        scores.append(float(lp["score"].sum()))
    agg["possession_paths"] = n_paths
    agg["possession_path_score"] = scores
    base = agg.loc["current"]
    agg["reduction_total"] = 1.0 - agg["br_total"] / base["br_total"] if base["br_total"] else 0.0
    agg["reduction_time_weighted"] = (
        1.0 - agg["br_time_weighted"] / base["br_time_weighted"]
        if base["br_time_weighted"]
        else 0.0
    )
    return agg.reset_index().rename(columns={"index": "mechanism"})
