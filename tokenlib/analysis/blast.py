"""Blast radius of a stolen access token: what it reaches and what that is worth (brief §2.3).

Every mechanism is evaluated under one RS-support view (``view``, see
:mod:`tokenlib.analysis.models.support`): ``today`` reads ``services.supports_mtls`` /
``supports_dpop`` from the inventory (no RS supports Token Binding), ``upgraded`` assumes every
RS supports every family. Client, authorization server and path are as today in both views, so
Token Binding -- which no client and no AS can carry -- is a bearer token in both.

**Graph.** Services are nodes; ``services.downstream`` gives directed edges ``s -> d`` (``s``
calls ``d``). The edges serve twice: token forwarding and lateral movement (below).

**Bound or not.** A token of flow ``f`` under mechanism ``m`` is *bound* when ``m`` is a
sender-constrained mechanism that is structurally enforceable on ``f`` in the view
(``FlowContext.enforceable``: the client can hold the key, the AS issues the binding, the RS
checks it, the path lets it through). Otherwise it is a bearer token (RFC 6750 §1.2), whatever
the mechanism's name: a client that cannot hold the key, or an AS that cannot issue the
binding, yields an unbound token (RFC 9449 §6, RFC 8705 §3).

**P_rep(t, r)**, the probability that the stolen token is accepted at service ``r`` by
possession alone (the thief holds the token, and the key only where it lay next to it):

* unbound token: 1 where ``r`` accepts bearer tokens (``services.supports_bearer``), 0 where it
  refuses them (RFC 6750 §2: a bearer-only check is what it would pass);
* bound token at the flow's own RS: ``bypass(ctx, m, view, "at_rest") = (1 - e) + e k``
  (``e``: the inventory's ``binding_enforced`` for the family in use, A2 ``e_rs`` for a new
  one, 1 where the RS refuses bearer; ``k``: the key was taken with the token, A4, plus for
  mTLS an injected ``Client-Cert`` header, A3, RFC 9440 §4);
* bound token at another service ``r``: ``e_r = A2 e_rs`` where ``r`` supports the family in
  the view, 0 where it does not; ``P_rep = (1 - e_r) [r accepts bearer] + e_r k``, with
  ``e_r = 1`` where ``r`` supports the family and refuses bearer (no fallback). So a service
  unaware of the binding accepts it as bearer if it accepts bearer at all (RFC 9449 §7.2,
  RFC 8705 §3), and refuses it otherwise.

**Reach** (RFC 9700 §2.3 audience restriction, RFC 8707 resource indicators, RFC 8693 token
exchange): an audience-restricted token that is not forwarded reaches its own RS; forwarded
without exchange (``forwards_token`` and not ``token_exchange``) it reaches the forwarding
closure of its RS (each downstream service accepts its ``aud``, or forwarding would not work);
forwarded with token exchange the stolen token itself reaches only its RS (downstream services
receive exchanged tokens, RFC 8693 §1, §2.1); a token that is not audience-restricted is
accepted by every service of the inventory (one trusted issuer assumed).

**Value.** ``v(r) = sensitivity(r)`` (1-5), scaled per flow by the privilege of its scopes
(A24a-c, read/write/admin, :func:`tokenlib.analysis.models.privilege_class`) and its
environment (A25a-b, prod 1): ``BR(t) = privilege(f) env(f) sum_r v(r) min(1, x0(r) + y(r))``
with ``x0(r) = 1[r reached] P_rep(t, r)``. The scaling covers the lateral part too: lateral
movement starts from the data the token can read [A].

**Lateral movement** (A10 ``q``, A15 hops): data readable at ``s`` holds a credential for a
downstream ``d`` with probability ``q``; ``y = sum_{h=1..k} x0 (q A)^h``, union bound, capped
at 1 per service. The credential found may be a key or client secret, so the lateral part of
the blast radius does not look at ``supports_bearer``; :func:`lateral_paths` (possession alone)
does.

**Refresh token** (RFC 6749 §6, RFC 9700 §4.14): a stolen refresh token carries the client's
grant; whoever can redeem it (probability = the weight of the
``refresh_token_theft_no_rotation`` component, which already charges for the key, A4, or the
client credentials, A13) presents fresh tokens as the client does, over the union of the reach
of all flows of the same ``client_id``: ``br_rt = P_use * privilege * env * V(union + lateral)``.

**Time-weighted** blast radius: ``br_total`` x the expected at-rest replay window given a replay
(``cell_statistics(..., "at_rest_copy")``: ``expected_window_s / p_replay``), in hours. The
at-rest cell of every mechanism is the token's remaining life ``R`` (revocation-capped, A1, A29)
with weight ``b`` = P_rep at the own RS, so the window given a replay is the same for every
mechanism and is read once from the bearer cell: a binding changes how likely a replay is
(already in ``P_rep``), not how long it lasts (RFC 9449 §7.1, RFC 6750 §1.2).

Tokens accepted everywhere share one dense row per (family, P_rep terms); the own-RS override is
exact at that RS and first-order in its lateral influence (exact unless a per-service cap binds).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from tokenlib.analysis._paths import (
    FloatArray,
    as_str,
    channel_matrix,
    service_lookup,
    str_codes,
)
from tokenlib.analysis.models import (
    MECHANISMS,
    VIEWS,
    FlowContext,
    Mechanism,
    View,
    cell_statistics,
    components,
    mechanism,
)
from tokenlib.analysis.models.components import bypass, key_term
from tokenlib.analysis.params import ModelParameters

__all__ = [
    "blast_before_after",
    "blast_radius",
    "edge_impact",
    "integrator_blast",
    "lateral_paths",
    "service_graph",
]

IntArray = npt.NDArray[np.int64]
_MECH_IDS: list[str] = [m.id for m in MECHANISMS]
#: Family rows of the per-view support matrix; row 0 (unbound) supports nothing.
_FAMILY_ROW = {"bearer": 0, "mtls": 1, "dpop": 2, "token_binding": 3}


# --------------------------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------------------------


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


def _check_view(view: str) -> View:
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    return view


def _support_rows(svc: pd.DataFrame, view: View) -> FloatArray:
    """``sup[family_row, r]``: service ``r`` checks the family's binding in ``view``.

    Row 0 (unbound token) is all zeros. ``today``: ``supports_mtls`` / ``supports_dpop``; no
    service supports Token Binding. ``upgraded``: every service supports every family.
    """
    s = len(svc)
    out = np.zeros((4, s))
    if view == "upgraded":
        out[1:] = 1.0
    else:
        out[1] = svc["supports_mtls"].to_numpy(dtype=bool)
        out[2] = svc["supports_dpop"].to_numpy(dtype=bool)
    return out


def _accepts_bearer(svc: pd.DataFrame) -> FloatArray:
    if "supports_bearer" not in svc.columns:
        return np.ones(len(svc))
    return np.asarray(svc["supports_bearer"].to_numpy(dtype=bool), dtype=float)


class _Graph:
    """Service graph with the sparse matrices the blast model needs (one support view)."""

    def __init__(
        self,
        services: pd.DataFrame,
        params: ModelParameters,
        view: View,
        drop_edges: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.svc = services.reset_index(drop=True)
        adj = service_graph(self.svc).tolil()
        index = {s: i for i, s in enumerate(self.svc["service_id"].astype(str))}
        for a, b in drop_edges:
            if a not in index or b not in index:
                raise KeyError(f"drop_edges names unknown service in ({a!r}, {b!r})")
            adj[index[a], index[b]] = 0
        self.adj = adj.tocsr()
        self.adj.eliminate_zeros()
        self.S = self.adj.shape[0]
        self.closure = _closure(self.adj)
        self.v = self.svc["sensitivity"].to_numpy(dtype=float)
        self.bear = _accepts_bearer(self.svc)
        self.sup = _support_rows(self.svc, view)
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

    def p_rep(self, fam: IntArray, g: FloatArray, kk: FloatArray, cols: IntArray) -> FloatArray:
        """P_rep at services ``cols`` (not the own RS) for tokens with terms ``fam, g, kk``.

        ``bear (sup g + 1 - sup) + (1 - bear) sup kk``; an unbound token has ``fam = 0``.
        """
        sv = self.sup[fam, cols]
        br = self.bear[cols]
        return np.asarray(br * (sv * g + (1.0 - sv)) + (1.0 - br) * sv * kk)

    def value_sparse(self, x0: sp.csr_matrix) -> tuple[FloatArray, FloatArray]:
        """(direct, total) with total = sum_n v_n min(1, x0_n + (x0 lat)_n), rows of sparse x0."""
        direct = np.asarray(x0 @ self.v).ravel()
        t = (x0 + x0 @ self.lat).tocsr()
        t.data = np.minimum(1.0, t.data)
        return direct, np.asarray(t @ self.v).ravel()


# --------------------------------------------------------------------------------------------
# per-flow terms
# --------------------------------------------------------------------------------------------


class _Cache:
    """Per-mechanism arrays of one context and view, computed once per public call.

    ``at_rest(m)``: (enforceable, key term ``k``, ``bypass`` at the own RS) of ``m``;
    ``rt_use(m)``: the redeem probability of a stolen refresh token (the weight of the
    ``refresh_token_theft_no_rotation`` component).
    """

    def __init__(self, ctx: FlowContext, view: View) -> None:
        self.ctx = ctx
        self.view = view
        self._at: dict[str, tuple[npt.NDArray[np.bool_], FloatArray, FloatArray]] = {}
        self._rt: dict[str, FloatArray] = {}
        self._win: FloatArray | None = None

    def at_rest(self, m: Mechanism) -> tuple[npt.NDArray[np.bool_], FloatArray, FloatArray]:
        if m.id not in self._at:
            ctx, view = self.ctx, self.view
            self._at[m.id] = (
                ctx.enforceable(m, view),
                key_term(ctx, m, "at_rest"),
                bypass(ctx, m, view, "at_rest"),
            )
        return self._at[m.id]

    def rt_use(self, m: Mechanism) -> FloatArray:
        if m.id not in self._rt:
            comps = components(self.ctx, m, "refresh_token_theft_no_rotation", self.view)
            self._rt[m.id] = np.asarray(comps[0].w, dtype=float)
        return self._rt[m.id]

    def window_given_replay(self) -> FloatArray:
        """Expected at-rest replay window given a replay, seconds (see the module docstring:
        the same for every mechanism, so it is read once from the bearer cell)."""
        if self._win is None:
            st = cell_statistics(self.ctx, MECHANISMS[0], "at_rest_copy", self.view)
            p, w = st["p_replay"], st["expected_window_s"]
            self._win = np.asarray(np.where(p > 0, w / np.where(p > 0, p, 1.0), 0.0))
        return self._win


class _Terms:
    """Per-flow P_rep terms of one (per-flow) mechanism assignment in one view.

    ``bound``: the token is sender-constrained on this flow; ``fam``: row into the support
    matrix (0 when unbound); ``g``: P_rep at a service that supports the family and accepts
    bearer; ``kk``: P_rep at one that supports it and refuses bearer (the key term);
    ``own``: P_rep at the flow's own RS.
    """

    def __init__(self, cache: _Cache, mech_code: IntArray) -> None:
        ctx = cache.ctx
        n = ctx.n
        self.bound = np.zeros(n, dtype=bool)
        self.fam = np.zeros(n, dtype=np.int64)
        self.g = np.ones(n)
        self.kk = np.zeros(n)
        self.own = ctx.supports_bearer.astype(float)
        e = ctx.params.e_rs
        codes = np.unique(mech_code)
        for mi in codes:
            m = MECHANISMS[int(mi)]
            if not m.bound:
                continue
            ok, k, b = cache.at_rest(m)
            sel = ok if len(codes) == 1 else (mech_code == mi) & ok
            if not sel.any():
                continue
            self.bound[sel] = True
            self.fam[sel] = _FAMILY_ROW[m.family]
            self.g[sel] = np.minimum(1.0, (1.0 - e) + e * k[sel])
            self.kk[sel] = k[sel]
            self.own[sel] = b[sel]


def _mech_codes(ctx: FlowContext, m: str | Mechanism) -> IntArray:
    if isinstance(m, str) and m == "current":
        return ctx.current_code
    return np.full(ctx.n, _MECH_IDS.index(mechanism(m).id), dtype=np.int64)


def _flag(flows: pd.DataFrame, col: str) -> npt.NDArray[np.bool_]:
    if col not in flows.columns:
        return np.zeros(len(flows), dtype=bool)
    return np.asarray(flows[col].fillna(False).to_numpy(dtype=bool), dtype=bool)


def _reach_keys(
    pos: IntArray, fwd: npt.NDArray[np.bool_], restricted: npt.NDArray[np.bool_], S: int
) -> IntArray:
    """Row of ``_Graph.keys``: 0..S-1 only the RS; S..2S-1 forwarding closure; 2S every service.

    ``fwd`` must already exclude flows whose forwarding hop exchanges the token (RFC 8693).
    """
    return np.asarray(np.where(~restricted, 2 * S, np.where(fwd, S + pos, pos)), dtype=np.int64)


def _forwards_own_token(flows: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """The stolen token itself is presented downstream: forwards_token and no token exchange."""
    return _flag(flows, "forwards_token") & ~_flag(flows, "token_exchange")


def _flow_blast(
    g: _Graph, pos: IntArray, keys: IntArray, t: _Terms
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(n_reachable, direct, total) per flow, before the privilege x environment scaling.

    Flows are reduced to distinct (reach, family, g, kk, own) combinations. Restricted tokens
    are computed exactly on sparse rows; a token accepted everywhere shares one dense row per
    (family, g, kk) and its own-RS override is added as a first-order correction.
    """
    n = len(pos)
    S = g.S
    n_reach = np.zeros(n)
    direct = np.zeros(n)
    total = np.zeros(n)
    everywhere = keys == 2 * S

    # --- restricted tokens: exact, sparse --------------------------------------------------
    r_idx = np.flatnonzero(~everywhere)
    if len(r_idx):
        combo = pd.DataFrame(
            {
                "k": keys[r_idx],
                "f": t.fam[r_idx],
                "g": np.round(t.g[r_idx], 12),
                "kk": np.round(t.kk[r_idx], 12),
                "o": np.round(t.own[r_idx], 12),
            }
        )
        grp = combo.groupby(list(combo.columns), sort=False).ngroup().to_numpy()
        uq = combo.drop_duplicates().reset_index(drop=True)
        kk_ = uq["k"].to_numpy(dtype=np.int64)
        rs = np.where(kk_ >= S, kk_ - S, kk_)
        reach = g.keys[kk_].tocsr()
        rows = np.repeat(np.arange(len(uq)), np.diff(reach.indptr))
        cols = np.asarray(reach.indices, dtype=np.int64)
        data = g.p_rep(
            uq["f"].to_numpy(dtype=np.int64)[rows],
            uq["g"].to_numpy(dtype=float)[rows],
            uq["kk"].to_numpy(dtype=float)[rows],
            cols,
        )
        data = np.where(cols == rs[rows], uq["o"].to_numpy(dtype=float)[rows], data)
        x0 = sp.csr_matrix((data, reach.indices, reach.indptr), shape=reach.shape)
        d_u, t_u = g.value_sparse(x0)
        n_u = np.bincount(rows[data > 0], minlength=len(uq)).astype(float)
        n_reach[r_idx], direct[r_idx], total[r_idx] = n_u[grp], d_u[grp], t_u[grp]

    # --- tokens accepted everywhere: one dense row per (family, g, kk) ---------------------
    a_idx = np.flatnonzero(everywhere)
    if len(a_idx):
        combo = pd.DataFrame(
            {
                "f": t.fam[a_idx],
                "g": np.round(t.g[a_idx], 12),
                "kk": np.round(t.kk[a_idx], 12),
            }
        )
        grp = combo.groupby(list(combo.columns), sort=False).ngroup().to_numpy()
        uq = combo.drop_duplicates().reset_index(drop=True)
        ff = uq["f"].to_numpy(dtype=np.int64)
        gg = uq["g"].to_numpy(dtype=float)[:, None]
        kq = uq["kk"].to_numpy(dtype=float)[:, None]
        sv = g.sup[ff]
        base = g.bear * (sv * gg + (1.0 - sv)) + (1.0 - g.bear) * sv * kq
        x0 = sp.csr_matrix(base)
        d_u, t_u = g.value_sparse(x0)
        y = np.asarray((x0 @ g.lat).todense())
        open_ = (base + y) < 1.0  # services where the cap does not bind
        w_lat = np.asarray((g.lat @ (g.v[None, :] * open_).T).T)
        rsi = pos[a_idx]
        own = t.own[a_idx]
        beta = base[grp, rsi]
        y_rs = y[grp, rsi]
        delta = own - beta
        # own RS exactly (no self-loops), its lateral influence to first order
        corr = g.v[rsi] * (np.minimum(1.0, own + y_rs) - np.minimum(1.0, beta + y_rs))
        corr = corr + delta * w_lat[grp, rsi]
        n_pos = (base > 0).sum(axis=1).astype(float)
        n_reach[a_idx] = n_pos[grp] - (beta > 0) + (own > 0)
        direct[a_idx] = d_u[grp] + delta * g.v[rsi]
        total[a_idx] = t_u[grp] + corr
    return n_reach, direct, total


def _rt_use(cache: _Cache, mech_code: IntArray) -> FloatArray:
    """Probability a stolen refresh token can be redeemed (0 without a refresh token)."""
    codes = np.unique(mech_code)
    if len(codes) == 1:
        return cache.rt_use(MECHANISMS[int(codes[0])])
    use = np.zeros(cache.ctx.n)
    for mi in codes:
        sel = mech_code == mi
        use[sel] = cache.rt_use(MECHANISMS[int(mi)])[sel]
    return use


def _client_union_value(g: _Graph, client_codes: IntArray, keys: IntArray) -> FloatArray:
    """Sensitivity-weighted reach (with lateral) of the union of each client's reach.

    A client with any token accepted everywhere reaches every service (value ``sum v`` plus
    nothing: the cap binds everywhere).
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
    return np.asarray(out)


def _mech_labels(mechanisms: Iterable[str | Mechanism]) -> list[str]:
    out: list[str] = []
    for m in mechanisms:
        label = "current" if isinstance(m, str) and m == "current" else mechanism(m).id
        if label not in out:
            out.append(label)
    return out


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def blast_radius(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str | Mechanism] = ("current", *_MECH_IDS),
    drop_edges: Iterable[tuple[str, str]] = (),
    view: View = "today",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    """Blast radius per flow x mechanism in one support view (module docstring: semantics).

    ``"current"`` is each flow's mechanism today (observed enforcement). Columns: ``flow_id,
    client_id, resource_server, mechanism, applied_mechanism`` (the mechanism id applied to the
    flow), ``view``, ``n_reachable`` (services where the token is accepted with probability
    above 0), ``br_direct`` (privilege x environment x sum of ``v * P_rep``), ``br_lateral``
    (added by secret-in-data hops), ``br_total``, ``br_rt`` (refresh token: redeem probability
    x value of the client's whole grant; 0 without a refresh token) and ``br_time_weighted``
    (``br_total`` x expected at-rest replay window given a replay, hours). ``drop_edges``
    removes ``(service, downstream)`` edges (what-if). ``context`` reuses a
    :class:`FlowContext` built from the same flows, services and parameters.
    """
    view = _check_view(view)
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    p = ctx.params
    g = _Graph(services, p, view, drop_edges)
    pos, _svc = service_lookup(flows, services)
    fwd = _forwards_own_token(flows)
    restricted = flows["audience_restricted"].to_numpy(dtype=bool)
    keys = _reach_keys(pos, fwd, restricted, g.S)
    scale = np.asarray(ctx.privilege * ctx.environment, dtype=float)
    ccodes, cuniq = str_codes(flows["client_id"])
    union_v = _client_union_value(g, ccodes, keys)[ccodes] * scale
    fcodes, funiq = str_codes(flows["flow_id"])
    rcodes, runiq = str_codes(flows["resource_server"])
    labels = _mech_labels(mechanisms)
    all_labels = ["current", *_MECH_IDS]
    flow_cat = pd.Categorical.from_codes(fcodes, categories=pd.Index(funiq))
    client_cat = pd.Categorical.from_codes(ccodes, categories=pd.Index(cuniq))
    rs_cat = pd.Categorical.from_codes(rcodes, categories=pd.Index(runiq))
    cache = _Cache(ctx, view)
    win_h = cache.window_given_replay() / 3600.0
    names = ("n_reachable", "br_direct", "br_lateral", "br_total", "br_rt", "br_time_weighted")
    cols: dict[str, list[npt.NDArray[Any]]] = {c: [] for c in ("applied", *names)}
    for m in labels:
        mech = _mech_codes(ctx, m)
        terms = _Terms(cache, mech)
        n_reach, direct, total = _flow_blast(g, pos, keys, terms)
        direct, total = direct * scale, total * scale
        for name, value in zip(
            ("applied", *names),
            (
                np.asarray(mech, dtype=np.int8),
                np.rint(n_reach).astype(np.int64),
                direct,
                total - direct,
                total,
                _rt_use(cache, mech) * union_v,
                total * win_h,
            ),
            strict=True,
        ):
            cols[name].append(value)
    k, n = len(labels), ctx.n

    def tiled(cat: pd.Categorical) -> pd.Categorical:
        return pd.Categorical.from_codes(np.tile(cat.codes, k), categories=cat.categories)

    def joined(name: str) -> npt.NDArray[Any]:
        return np.concatenate(cols[name]) if k else np.zeros(0)

    # one frame from the joined columns (concatenating k frames copied 4M rows twice)
    data: dict[str, Any] = {
        "flow_id": tiled(flow_cat),
        "client_id": tiled(client_cat),
        "resource_server": tiled(rs_cat),
        "mechanism": pd.Categorical.from_codes(
            np.repeat(np.array([all_labels.index(m) for m in labels], dtype=np.int8), n),
            categories=all_labels,
        ),
        "applied_mechanism": pd.Categorical.from_codes(
            joined("applied").astype(np.int8), categories=_MECH_IDS
        ),
        "view": pd.Categorical.from_codes(
            np.full(k * n, VIEWS.index(view), dtype=np.int8), categories=list(VIEWS)
        ),
    }
    for name in names:
        data[name] = joined(name).astype(np.int64) if name == "n_reachable" else joined(name)
    return pd.DataFrame(data, copy=False)


def integrator_blast(
    blast: pd.DataFrame, flows: pd.DataFrame, *, view: View | None = None
) -> pd.DataFrame:
    """Breach of an integrator's token store: sum of its flows' blast radius (brief §2.3).

    Integrators are ``client_kind == partner_integrator`` or flows with the
    ``integrator_storage`` channel, grouped by ``client_id`` and mechanism (rows of ``blast``
    in ``view`` only, when given). Columns: ``client_id, mechanism, n_tokens, br_total, br_rt,
    br_store`` (= sum of ``br_total`` + ``br_rt``), sorted by ``br_store``.
    """
    is_int = (as_str(flows["client_kind"]) == "partner_integrator") | channel_matrix(flows)[
        "integrator_storage"
    ]
    ids = flows["flow_id"][is_int]
    b = blast[blast["flow_id"].isin(ids)]
    if view is not None and "view" in b.columns:
        b = b[b["view"].astype(str) == _check_view(view)]
    out = (
        b.groupby(["client_id", "mechanism"], sort=False, observed=True)
        .agg(n_tokens=("flow_id", "size"), br_total=("br_total", "sum"), br_rt=("br_rt", "sum"))
        .reset_index()
    )
    out["br_store"] = out["br_total"] + out["br_rt"]
    return out.sort_values(["mechanism", "br_store"], ascending=[True, False], ignore_index=True)


_PATH_COLUMNS = [
    "mechanism",
    "view",
    "entry_service",
    "path",
    "hops",
    "edges",
    "p_path",
    "value",
    "n_flows",
    "weight",
    "score",
]


def lateral_paths(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanism: str | Mechanism = "current",
    max_edges: int | None = None,
    limit: int = 50,
    view: View = "today",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
    drop_edges: Iterable[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Ranked paths an attacker walks with *possession alone* (no key, no proof needed).

    A path starts at a flow's RS where the stolen token replays with certainty (``P_rep = 1``
    at its own RS: an unbound token at an RS that accepts bearer, or a binding the RS does not
    enforce) and follows downstream edges ``s -> d``:

    * ``fwd`` when entering flows forward their own token (``forwards_token`` and not
      ``token_exchange``: an exchanged token is not the stolen one, RFC 8693) and ``d`` accepts
      it by possession alone (``d`` accepts bearer and does not check the token's binding
      family in the view). Probability ``share + (1 - share) q``, ``share`` = traffic share of
      the entering flows whose forwarded token ``d`` accepts;
    * otherwise ``secret`` (a credential found in data, A10 ``q``).

    A service that refuses bearer tokens (``supports_bearer`` false) is on no path: neither
    entry nor later hop. Columns: ``mechanism, view, entry_service, path, hops, edges,
    p_path, value`` (sum of sensitivities after the entry), ``n_flows``, ``weight`` (entering
    flows weighted by traffic ``(1 + requests/day) ** A16`` x privilege A24 x environment A25),
    ``score`` = weight x p_path x value; top ``limit`` rows by score.
    """
    view = _check_view(view)
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    p = ctx.params
    label = "current" if isinstance(mechanism, str) and mechanism == "current" else None
    label = label or _mech_labels([mechanism])[0]
    g = _Graph(services, p, view, drop_edges)
    ids = g.svc["service_id"].astype(str).tolist()
    mech = _mech_codes(ctx, label)
    terms = _Terms(_Cache(ctx, view), mech)
    pos, _svc = service_lookup(flows, services)
    bear = g.bear > 0
    alone = (terms.own >= 1.0 - 1e-12) & bear[pos]
    fwd = _forwards_own_token(flows)
    wt = (1.0 + ctx.requests_per_day) ** p.traffic_exponent * ctx.privilege * ctx.environment
    S = g.S
    n_in = np.bincount(pos[alone], minlength=S)
    w_in = np.bincount(pos[alone], weights=wt[alone], minlength=S)
    # forwarded-token weight by the family row of the token (0: unbound)
    w_fwd = np.zeros((4, S))
    sel = alone & fwd
    np.add.at(w_fwd, (terms.fam[sel], pos[sel]), wt[sel])
    # accepts[f, d]: d accepts a forwarded token of family row f by possession alone
    accepts = bear[None, :] & (g.sup == 0)
    v = g.v
    q = p.q_secret
    k = int(max_edges if max_edges is not None else round(p.lateral_hops) + 1)
    rows: list[tuple[Any, ...]] = []
    indptr, indices = g.adj.indptr, g.adj.indices
    for entry in np.flatnonzero(n_in > 0):
        s0 = int(entry)
        fwd_w = w_fwd[:, s0]
        stack: list[tuple[list[int], list[str], float, bool]] = [([s0], [], 1.0, True)]
        while stack:
            path, edges, p_path, fwd_chain = stack.pop()
            if edges:
                value = float(v[path[1:]].sum())
                weight = float(w_in[s0])
                rows.append(
                    (
                        label,
                        view,
                        ids[s0],
                        ">".join(ids[i] for i in path),
                        len(edges),
                        ">".join(edges),
                        p_path,
                        value,
                        int(n_in[s0]),
                        weight,
                        weight * p_path * value,
                    )
                )
            if len(edges) >= k:
                continue
            last = path[-1]
            for d in indices[indptr[last] : indptr[last + 1]]:
                d = int(d)
                if d in path or not bear[d]:
                    continue
                share = float(fwd_w @ accepts[:, d]) / w_in[s0] if fwd_chain else 0.0
                if share > 0:
                    p_edge = share + (1.0 - share) * q
                    stack.append(([*path, d], [*edges, "fwd"], p_path * p_edge, True))
                elif q > 0:
                    stack.append(([*path, d], [*edges, "secret"], p_path * q, False))
    out = pd.DataFrame(rows, columns=_PATH_COLUMNS)
    return out.sort_values("score", ascending=False, ignore_index=True).head(limit)


def _sum_columns(b: pd.DataFrame) -> pd.Series:
    cols = ["br_direct", "br_lateral", "br_total", "br_rt", "br_time_weighted"]
    return b[cols].sum()


def blast_before_after(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str | Mechanism] = tuple(_MECH_IDS),
    blast: pd.DataFrame | None = None,
    view: View = "today",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
    paths: bool = True,
) -> pd.DataFrame:
    """Every flow switched to one mechanism (in ``view``) against ONE baseline: today's
    inventory (``current`` in view ``today``).

    One row for the baseline and one per mechanism: ``mechanism, view`` (the baseline row is
    always ``today``), ``baseline`` (``"current"``), sums of ``br_direct, br_lateral, br_total,
    br_rt, br_time_weighted``, with ``paths`` the number of possession-alone lateral paths
    (``possession_paths``) and their summed score (``possession_path_score``), and
    ``reduction_total`` / ``reduction_time_weighted`` = ``1 - value / baseline``. A reduction
    is negative when the mechanism is worse than today's mix (for example bearer everywhere
    when some flows are bound and enforced today); the sign is kept. ``blast`` reuses a
    :func:`blast_radius` table (rows of other views or missing mechanisms are recomputed).
    """
    view = _check_view(view)
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    labels = [m for m in _mech_labels(mechanisms) if m != "current"]
    have = blast if blast is not None else pd.DataFrame(columns=["mechanism", "view"])

    def rows_of(m: str, v: str) -> pd.DataFrame | None:
        if not len(have):
            return None
        vcol = (
            have["view"].astype(str)
            if "view" in have.columns
            else pd.Series("today", index=have.index)
        )
        sel = (have["mechanism"].astype(str) == m) & (vcol == v)
        return have[sel] if sel.any() else None

    def totals(m: str, v: View) -> pd.Series:
        b = rows_of(m, v)
        if b is None:
            b = blast_radius(flows, services, ctx.params, mechanisms=[m], view=v, context=ctx)
        return _sum_columns(b)

    records: list[tuple[str, View, pd.Series]] = [("current", "today", totals("current", "today"))]
    records += [(m, view, totals(m, view)) for m in labels]
    out = pd.DataFrame([r[2] for r in records])
    out.insert(0, "mechanism", [r[0] for r in records])
    out.insert(1, "view", [r[1] for r in records])
    out.insert(2, "baseline", "current")
    if paths:
        n_paths, scores = [], []
        for m, v, _ in records:
            lp = lateral_paths(
                flows,
                services,
                mechanism=m,
                view=v,
                limit=1_000_000,
                context=ctx,
            )
            n_paths.append(len(lp))
            scores.append(float(lp["score"].sum()))
        out["possession_paths"] = n_paths
        out["possession_path_score"] = scores
    base = out.iloc[0]
    for col, name in (
        ("br_total", "reduction_total"),
        ("br_time_weighted", "reduction_time_weighted"),
    ):
        denom = float(base[col])
        out[name] = 1.0 - out[col] / denom if denom else 0.0
    return out


def edge_impact(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    edges: Iterable[tuple[str, str]] | None = None,
    view: View = "today",
    top: int = 10,
    mechanism: str | Mechanism = "current",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    """Measured blast-radius reduction of removing each lateral edge, to choose what to fix first.

    Candidate edges: ``edges`` if given, else the ``top`` edges of the possession-alone lateral
    paths (:func:`lateral_paths`) ranked by the summed score of the paths through them. Each
    edge is removed on its own (stop forwarding the token there, exchange it, or remove the
    credential from the data) and :func:`blast_radius` is recomputed for ``mechanism``.
    Columns: ``source, target, path_score`` (0 for an edge on no path), ``path_rank``,
    ``br_total_before, br_total_after, reduction_total`` (absolute), ``reduction_share``
    (of ``br_total_before``), ``br_rt_after, reduction_rt``, ``rank`` (by
    ``reduction_total``); sorted by ``reduction_total`` then ``path_score``, descending.
    """
    view = _check_view(view)
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    label = "current" if isinstance(mechanism, str) and mechanism == "current" else None
    label = label or _mech_labels([mechanism])[0]
    lp = lateral_paths(flows, services, mechanism=label, view=view, limit=10_000_000, context=ctx)
    edge_score: dict[tuple[str, str], float] = {}
    for path, score in zip(lp["path"].tolist(), lp["score"].tolist(), strict=True):
        nodes = str(path).split(">")
        for a, b in itertools.pairwise(nodes):
            edge_score[(a, b)] = edge_score.get((a, b), 0.0) + float(score)
    ranked = sorted(edge_score.items(), key=lambda kv: -kv[1])
    path_rank = {e: i + 1 for i, (e, _) in enumerate(ranked)}
    if edges is None:
        cand = [e for e, _ in ranked[: max(int(top), 0)]]
    else:
        cand = list(dict.fromkeys((str(a), str(b)) for a, b in edges))
    cols = [
        "source",
        "target",
        "path_score",
        "path_rank",
        "br_total_before",
        "br_total_after",
        "reduction_total",
        "reduction_share",
        "br_rt_after",
        "reduction_rt",
        "rank",
    ]
    if not cand:
        return pd.DataFrame(columns=cols)

    def run(drop: list[tuple[str, str]]) -> tuple[float, float]:
        b = blast_radius(
            flows, services, ctx.params, mechanisms=[label], view=view, context=ctx, drop_edges=drop
        )
        return float(b["br_total"].sum()), float(b["br_rt"].sum())

    before, rt_before = run([])
    recs = []
    for e in cand:
        after, rt_after = run([e])
        recs.append(
            {
                "source": e[0],
                "target": e[1],
                "path_score": edge_score.get(e, 0.0),
                "path_rank": path_rank.get(e, 0),
                "br_total_before": before,
                "br_total_after": after,
                "reduction_total": before - after,
                "reduction_share": (before - after) / before if before else 0.0,
                "br_rt_after": rt_after,
                "reduction_rt": rt_before - rt_after,
            }
        )
    out = pd.DataFrame(recs)
    out = out.sort_values(
        ["reduction_total", "path_score"], ascending=[False, False], ignore_index=True
    )
    out["rank"] = np.arange(1, len(out) + 1)
    return out[cols]
