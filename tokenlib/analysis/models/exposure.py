"""Aggregation: per-cell statistics, per-flow exposure, and the tables the notebooks show.

Two exposure metrics, both per flow and mechanism, summed over the scenarios of one group
(``token_theft`` by default — the headline; ``credential_store`` and ``issuer`` are reported
separately because no binding addresses them):

* ``usable`` (default): ``value(f) * sum_s w_s(f) * P(T < W_{f,m,s})`` — expected usable
  thefts weighted by what is at stake (:attr:`FlowContext.value`), with ``T`` the attacker's
  time-to-use (:mod:`.time_to_use`);
* ``hours``: ``value(f) * sum_s w_s(f) * E[W_{f,m,s}] / 3600`` — sensitivity-weighted
  replay hours (linear in lifetimes: it rewards short tokens more than an attacker who acts
  within a minute would).

``w_s`` are the scenario weights A17a-f (:func:`components.scenario_weight`). Every mechanism
is evaluated under the same support view (``today`` or ``upgraded``, :mod:`.mechanisms`);
"current" is each flow's own mechanism today with the inventory's observed enforcement.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from tokenlib.analysis._groups import distinct_rows
from tokenlib.analysis._paths import as_str, categorical, str_codes
from tokenlib.analysis.models._math import (
    Component,
    ShiftedUniform,
    conditional_quantiles,
    mixture_mean,
    mixture_p_positive,
    mixture_survival,
)
from tokenlib.analysis.models.components import (
    cell_key,
    components,
    max_replays,
    scenario_weight,
)
from tokenlib.analysis.models.context import FlowContext
from tokenlib.analysis.models.mechanisms import (
    MECHANISMS,
    SCENARIOS,
    TOKEN_THEFT_SCENARIOS,
    VIEWS,
    Mechanism,
    Scenario,
    ScenarioGroup,
    View,
    mechanism,
    mechanisms,
    scenario,
    scenarios,
)
from tokenlib.analysis.models.time_to_use import TimeToUse
from tokenlib.analysis.params import ModelParameters

__all__ = [
    "Exposure",
    "Metric",
    "cell_statistics",
    "current_mechanism",
    "exposure_arrays",
    "exposure_by_mechanism",
    "exposure_by_scenario",
    "flow_exposure",
    "mechanism_comparison",
    "replay_by_client_path",
    "replay_windows",
    "usable_share",
    "window_survival",
]

FloatArray = npt.NDArray[np.floating[Any]]
Metric = Literal["usable", "hours"]
_MECH_IDS = [m.id for m in MECHANISMS]
_SCEN_IDS = [s.id for s in SCENARIOS]


def _view(view: str) -> View:
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    return view


def cell_statistics(
    ctx: FlowContext, mech: Mechanism | str, scen: Scenario | str, view: View = "today"
) -> dict[str, FloatArray]:
    """``p_replay`` (P(W > 0)), ``expected_window_s``, ``p_usable`` and ``max_replays`` of one
    cell for every flow."""
    comps = components(ctx, mech, scen, view)
    return {
        "p_replay": mixture_p_positive(comps),
        "expected_window_s": mixture_mean(comps),
        "p_usable": TimeToUse.from_params(ctx.params).p_usable(comps),
        "max_replays": max_replays(ctx, mech, scen, view),
    }


def current_mechanism(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    *,
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
) -> pd.Series:
    """The mechanism id each flow uses today (a categorical over every mechanism id)."""
    ctx = FlowContext.resolve(
        flows, services, None, authorization_servers=authorization_servers, context=context
    )
    cat = pd.Categorical.from_codes(ctx.current_code, categories=_MECH_IDS)
    return pd.Series(cat, index=flows.index, name="mechanism")


def replay_windows(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str | Mechanism] | None = None,
    scenarios: Iterable[str | Scenario] | None = None,
    view: View = "today",
    authorization_servers: pd.DataFrame | None = None,
    quantiles: bool = False,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    """Long table, one row per flow x mechanism x scenario (in one support view).

    Columns: ``flow_id, client_path, current_mechanism, mechanism, scenario, view,
    enforceable`` (the binding can be enforced on this flow in this view), ``weight`` (the
    scenario's likelihood weight, 0 where it cannot happen), ``possible``, ``p_replay``
    (P(W > 0)), ``expected_window_s`` (zeros included), ``expected_window_if_possible_s``,
    ``p_usable`` (P(T < W)), ``max_replays`` (``inf`` when unbounded) and, with
    ``quantiles=True``, ``p50_s``/``p90_s`` of W given W > 0 (NaN otherwise).
    """
    view = _view(view)
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    mechs = _resolve_mechs(mechanisms)
    scens = _resolve_scens(scenarios)
    cells = [(m, s) for m in mechs for s in scens]
    n, k = ctx.n, len(cells)
    names = [
        "weight",
        "p_replay",
        "expected_window_s",
        "expected_window_if_possible_s",
        "p_usable",
        "max_replays",
        "p50_s",
        "p90_s",
    ]
    cols = {name: np.empty(k * n) for name in names}
    enforce = np.empty(k * n, dtype=bool)
    ttu = TimeToUse.from_params(ctx.params)
    small, inverse = ctx.distinct()
    weights: dict[str, FloatArray] = {}  # per scenario, per mechanism: computed once
    enforced: dict[str, npt.NDArray[np.bool_]] = {}
    for i, (m, s) in enumerate(cells):
        comps, inner = _distinct_components(components(small, m, s, view))
        index = inner[inverse]
        mean, ppos = mixture_mean(comps), mixture_p_positive(comps)
        rows = slice(i * n, (i + 1) * n)
        if s.id not in weights:
            weights[s.id] = np.asarray(scenario_weight(small, s), dtype=float)[inverse]
        if m.id not in enforced:
            enforced[m.id] = np.asarray(small.enforcement(m, view) > 0)[inverse]
        cols["weight"][rows] = weights[s.id]
        cols["p_replay"][rows] = ppos[index]
        cols["expected_window_s"][rows] = mean[index]
        cond = np.divide(mean, ppos, out=np.zeros(len(mean)), where=ppos > 0)
        cols["expected_window_if_possible_s"][rows] = cond[index]
        cols["p_usable"][rows] = ttu.p_usable(comps)[index]
        cols["max_replays"][rows] = max_replays(small, m, s, view)[inverse]
        if quantiles:
            p50, p90 = conditional_quantiles(comps, ppos, (0.5, 0.9))
            cols["p50_s"][rows], cols["p90_s"][rows] = p50[index], p90[index]
        else:
            cols["p50_s"][rows] = np.nan
            cols["p90_s"][rows] = np.nan
        enforce[rows] = enforced[m.id]
    fcodes, fids = ctx.flow_codes, ctx.flow_ids
    pcodes, puniq = str_codes(ctx.client_path)
    m_codes = np.repeat(np.array([_MECH_IDS.index(m.id) for m, _ in cells], np.int8), n)
    s_codes = np.repeat(np.array([_SCEN_IDS.index(s.id) for _, s in cells], np.int8), n)
    data: dict[str, Any] = {
        "flow_id": pd.Categorical.from_codes(
            np.tile(fcodes.astype(np.int32), k), categories=pd.Index(fids, dtype=object)
        ),
        "client_path": pd.Categorical.from_codes(
            np.tile(pcodes.astype(np.int8), k), categories=pd.Index(puniq, dtype=object)
        ),
        "current_mechanism": pd.Categorical.from_codes(
            np.tile(ctx.current_code.astype(np.int8), k), categories=_MECH_IDS
        ),
        "mechanism": pd.Categorical.from_codes(m_codes, categories=_MECH_IDS),
        "scenario": pd.Categorical.from_codes(s_codes, categories=_SCEN_IDS),
        "view": pd.Categorical.from_codes(np.zeros(k * n, np.int8), categories=[view]),
        "enforceable": enforce,
        "possible": cols["p_replay"] > 0,
        **cols,
    }
    return pd.DataFrame(data, copy=False)


def _resolve_mechs(values: Iterable[str | Mechanism] | None) -> tuple[Mechanism, ...]:
    return mechanisms(values)


def _resolve_scens(values: Iterable[str | Scenario] | None) -> tuple[Scenario, ...]:
    return scenarios(values)


def _group_scenarios(
    group: ScenarioGroup | None, chosen: Iterable[str | Scenario] | None
) -> tuple[Scenario, ...]:
    scens = _resolve_scens(chosen)
    if group is None:
        return scens
    return tuple(s for s in scens if s.group == group)


class Exposure:
    """Per-flow exposure of one :class:`FlowContext`, every cell evaluated once.

    A cell (mechanism x scenario x view) is evaluated on the context's distinct flows
    (:meth:`FlowContext.distinct`) for both metrics at once and cached; cells with equal
    :func:`components.cell_key` share one evaluation. :meth:`per_flow` sums ``w_s x cell``
    over scenarios and multiplies by the flow's value. Every exposure table of this module,
    the recommendations and the sensitivity metrics go through it, so they agree exactly.
    """

    def __init__(self, ctx: FlowContext) -> None:
        self.ctx = ctx
        self.small, self.inverse = ctx.distinct()
        self.ttu = TimeToUse.from_params(ctx.params)
        self.value = ctx.value
        self._cells: dict[tuple[object, ...], tuple[FloatArray, FloatArray]] = {}
        self._weights: dict[str, FloatArray] = {}
        self._totals: dict[tuple[object, ...], FloatArray] = {}

    @classmethod
    def of(cls, ctx: FlowContext) -> Exposure:
        """The context's one ``Exposure``: every table, metric and recommendation computed
        from one context shares its cells (memoised on the immutable context)."""
        memo = ctx._memo
        if "exposure" not in memo:
            memo["exposure"] = cls(ctx)
        ev = memo["exposure"]
        assert isinstance(ev, Exposure)
        return ev

    def weight(self, scen: Scenario | str) -> FloatArray:
        """The scenario's likelihood weight per flow (A17a-f; 0 where it cannot happen)."""
        sid = scenario(scen).id
        if sid not in self._weights:
            self._weights[sid] = np.asarray(scenario_weight(self.ctx, sid), dtype=float)
        return self._weights[sid]

    def cell(
        self, mech: Mechanism | str, scen: Scenario | str, view: View
    ) -> tuple[FloatArray, FloatArray]:
        """``(P(T < W), E[W] / 3600)`` per flow for one cell."""
        m, s = mechanism(mech), scenario(scen)
        v: View = view if m.bound else "today"
        key = (*cell_key(m, s), v)
        if key not in self._cells:
            comps, inner = _distinct_components(components(self.small, m, s, v))
            index = inner[self.inverse]
            usable = self.ttu.p_usable(comps)[index]
            hours = (mixture_mean(comps) / 3600.0)[index]
            self._cells[key] = (np.asarray(usable), np.asarray(hours))
        return self._cells[key]

    def per_flow(
        self,
        mech: Mechanism | str,
        view: View,
        metric: Metric,
        scenarios: Iterable[Scenario | str] = TOKEN_THEFT_SCENARIOS,
        *,
        weighted_by_value: bool = True,
    ) -> FloatArray:
        """``value x sum_s w_s x cell`` per flow; ``mech="current"`` is each flow's own
        mechanism today (view today, observed enforcement)."""
        if metric not in ("usable", "hours"):
            raise ValueError(f"unknown metric {metric!r}; expected 'usable' or 'hours'")
        scens = tuple(scenario(x).id for x in scenarios)
        mid = mech if mech == "current" else mechanism(mech).id
        key = (mid, view, metric, scens, weighted_by_value)
        if key in self._totals:
            return self._totals[key]
        idx = 0 if metric == "usable" else 1
        acc = np.zeros(self.ctx.n)
        for sid in scens:
            w = self.weight(sid)
            if not np.any(w):
                continue
            cell: FloatArray
            if mid == "current":
                cell = np.zeros(self.ctx.n)
                for code in np.unique(self.ctx.current_code):
                    sel = self.ctx.current_code == code
                    cell[sel] = self.cell(MECHANISMS[int(code)], sid, "today")[idx][sel]
            else:
                cell = self.cell(mid, sid, view)[idx]
            acc += w * cell
        out = np.asarray(acc * self.value if weighted_by_value else acc)
        self._totals[key] = out
        return out


def exposure_arrays(
    ctx: FlowContext,
    mechanisms: Iterable[str | Mechanism] = (),
    *,
    view: View = "today",
    group: ScenarioGroup | None = "token_theft",
    metric: Metric = "usable",
    current: bool = True,
) -> dict[str, FloatArray]:
    """Per-flow exposure arrays keyed by mechanism id (and ``"current"``): the building block
    behind :func:`exposure_by_mechanism`, for callers that evaluate many counterfactual
    contexts (recommendations, uncertainty draws) and need no DataFrame."""
    view = _view(view)
    ev, scens = Exposure.of(ctx), _group_scenarios(group, None)
    out = {m.id: ev.per_flow(m, view, metric, scens) for m in _resolve_mechs(mechanisms)}
    if current:
        out["current"] = ev.per_flow("current", view, metric, scens)
    return out


def exposure_by_mechanism(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str | Mechanism] | None = None,
    scenarios: Iterable[str | Scenario] | None = None,
    group: ScenarioGroup | None = "token_theft",
    metric: Metric = "usable",
    view: View = "today",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    """Exposure per flow today and if the flow moved to each mechanism (module docstring).

    Columns: ``flow_id, client_path, current_mechanism, value, exposure_current`` and one
    ``exposure_<mechanism>`` column per mechanism (index of ``flows``). ``group`` restricts
    the sum to one scenario group (``None``: every scenario); ``scenarios`` to named ones.
    """
    view = _view(view)
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    ev, scens = Exposure.of(ctx), _group_scenarios(group, scenarios)
    data: dict[str, Any] = {
        "flow_id": flows["flow_id"].array,
        "client_path": categorical(ctx.client_path),
        "current_mechanism": pd.Categorical.from_codes(ctx.current_code, categories=_MECH_IDS),
        "value": ctx.value,
        "exposure_current": ev.per_flow("current", view, metric, scens),
    }
    for m in _resolve_mechs(mechanisms):
        data[f"exposure_{m.id}"] = ev.per_flow(m, view, metric, scens)
    return pd.DataFrame(data, index=flows.index)


def exposure_by_scenario(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str | Mechanism] = (
        "mtls",
        "dpop_shared_cache",
        "dpop_nonce_shared_cache",
    ),
    metric: Metric = "usable",
    view: View = "today",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    """Where today's exposure comes from, and how much of each part a mechanism removes.

    One row per scenario (index ``scenario``): ``label``, ``group``, ``exposure_current``
    (summed over flows), ``share_of_group``, and per mechanism ``removed_by_<mechanism>``: the
    share of that scenario's exposure removed if every flow moved to it (NaN where a scenario
    carries none). Token theft is what a binding addresses; the credential store and the
    issuer key are bearer-equivalent under every binding, so they are reported apart.
    """
    view = _view(view)
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    ev = Exposure.of(ctx)
    mechs = _resolve_mechs(mechanisms)
    rows = []
    for s in SCENARIOS:
        total = float(ev.per_flow("current", view, metric, (s,)).sum())
        row: dict[str, Any] = {
            "scenario": s.id,
            "label": s.label,
            "group": s.group,
            "exposure_current": total,
        }
        for m in mechs:
            after = float(ev.per_flow(m, view, metric, (s,)).sum())
            row[f"removed_by_{m.id}"] = 1.0 - after / total if total > 0 else np.nan
        rows.append(row)
    out = pd.DataFrame(rows).set_index("scenario")
    sums = out.groupby("group")["exposure_current"].transform("sum")
    out.insert(3, "share_of_group", np.where(sums > 0, out["exposure_current"] / sums, np.nan))
    return out


def mechanism_comparison(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str | Mechanism] | None = None,
    views: Iterable[View] = VIEWS,
    group: ScenarioGroup | None = "token_theft",
    metric: Metric = "usable",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    """Every mechanism under the same support view, views side by side (one row each).

    Columns: ``view, mechanism, label, family, enforceable_share`` (flows on which the binding
    can be enforced), ``exposure`` (summed), ``exposure_current`` (today's inventory, the one
    baseline), ``removed_share`` (``1 - exposure / exposure_current``; negative when the
    mechanism is worse than what flows use today) and ``usable_share`` (share of stolen tokens
    still usable when used, token-theft scenarios, weighted by likelihood).
    """
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    scens = _group_scenarios(group, None)
    ev = Exposure.of(ctx)
    base = float(ev.per_flow("current", "today", metric, scens).sum())
    rows = []
    for view in views:
        view = _view(view)
        for m in _resolve_mechs(mechanisms):
            total = float(ev.per_flow(m, view, metric, scens).sum())
            rows.append(
                {
                    "view": view,
                    "mechanism": m.id,
                    "label": m.label,
                    "family": m.family,
                    "enforceable_share": float(np.mean(ctx.enforceable(m, view)))
                    if m.bound
                    else 0.0,
                    "exposure": total,
                    "exposure_current": base,
                    "removed_share": 1.0 - total / base if base > 0 else np.nan,
                    "usable_share": usable_share(
                        flows, services, ctx.params, mechanism=m, view=view, context=ctx
                    ),
                }
            )
    return pd.DataFrame(rows)


def usable_share(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanism: str | Mechanism | None = None,
    view: View = "today",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
) -> float:
    """Share of stolen tokens (token-theft scenarios, weighted by likelihood A17) still
    usable when the attacker uses them; ``mechanism=None`` is today's inventory."""
    view = _view(view)
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    ev = Exposure.of(ctx)
    mech: str | Mechanism = "current" if mechanism is None else mechanism
    num = ev.per_flow(mech, view, "usable", TOKEN_THEFT_SCENARIOS, weighted_by_value=False)
    den = sum(float(ev.weight(s).sum()) for s in TOKEN_THEFT_SCENARIOS)
    return float(num.sum()) / den if den > 0 else float("nan")


def flow_exposure(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    view: View = "today",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    """The ``flow_exposure.csv`` export: one row per flow x mechanism x scenario.

    Columns (a user contract): ``flow_id, mechanism, scenario, scenario_group, view,
    enforceable, weight, expected_window_s, max_replays`` (``inf`` when unbounded),
    ``p_replay, p_usable``.
    """
    rw = replay_windows(
        flows,
        services,
        params,
        view=view,
        authorization_servers=authorization_servers,
        context=context,
    )
    groups = {s.id: s.group for s in SCENARIOS}
    cols = ["flow_id", "mechanism", "scenario", "view", "enforceable", "weight"]
    cols += ["expected_window_s", "max_replays", "p_replay", "p_usable"]
    out = rw[cols].copy()
    out.insert(3, "scenario_group", out["scenario"].map(groups).astype("category"))
    return out


def replay_by_client_path(windows: pd.DataFrame) -> pd.DataFrame:
    """Summary of :func:`replay_windows` by ``client_path x mechanism x scenario``.

    Columns: ``client_path, mechanism, scenario, n_flows, share_possible, mean_p_replay,
    mean_p_usable, mean_window_s, median_window_s, p90_window_s`` (over flows of the expected
    window) and ``is_current_share`` (share of the group's flows using that mechanism today).

    Speed: :func:`replay_windows` writes one contiguous block of rows per mechanism x
    scenario, so the summary walks those blocks and groups each by client path with small
    ``bincount`` and radix sorts, never sorting or copying all rows at once (21,000,000 rows:
    6.6 s with a pandas group-by, 4.6 s with one global sort, see
    benchmarks/results/models.json). Any other row order is first sorted by mechanism x
    scenario, with the same result.
    """
    cp = windows["client_path"]
    cp = cp if isinstance(cp.dtype, pd.CategoricalDtype) else cp.astype("category")
    cats = list(cp.cat.categories)

    def codes_of(col: str, names: list[str]) -> npt.NDArray[np.int16]:
        c = windows[col]
        if isinstance(c.dtype, pd.CategoricalDtype) and list(c.cat.categories) == names:
            return np.asarray(c.cat.codes.to_numpy(), dtype=np.int16)
        return np.asarray(pd.Categorical(c, categories=names).codes, dtype=np.int16)

    n_m, n_s, n_cp = len(_MECH_IDS), len(_SCEN_IDS), max(len(cats), 1)
    c_m = codes_of("mechanism", _MECH_IDS)
    c_cur = codes_of("current_mechanism", _MECH_IDS)
    ms = c_m * np.int16(n_s) + codes_of("scenario", _SCEN_IDS)
    c_cp = np.asarray(cp.cat.codes.to_numpy())
    values = {
        "possible": windows["possible"].to_numpy(dtype=bool),
        "p_replay": windows["p_replay"].to_numpy(dtype=float),
        "p_usable": windows["p_usable"].to_numpy(dtype=float),
        "window": windows["expected_window_s"].to_numpy(dtype=float),
    }
    cuts = np.flatnonzero(ms[1:] != ms[:-1]) + 1
    if len(cuts) >= n_m * n_s:  # rows not in blocks: sort them into blocks once
        order = np.argsort(ms, kind="stable")
        ms, c_m, c_cur, c_cp = ms[order], c_m[order], c_cur[order], c_cp[order]
        values = {k: v[order] for k, v in values.items()}
        cuts = np.flatnonzero(ms[1:] != ms[:-1]) + 1
    bounds = np.r_[0, cuts, len(ms)] if len(ms) else np.zeros(1, dtype=np.int64)
    n_ms = n_m * n_s
    counts = np.zeros((n_ms, n_cp))
    sums = {k: np.zeros((n_ms, n_cp)) for k in (*values, "current")}
    pieces: dict[tuple[int, int], list[FloatArray]] = {}
    for lo, hi in itertools.pairwise(bounds):
        k = int(ms[lo])
        g = np.asarray(c_cp[lo:hi], dtype=np.intp)
        per = np.bincount(g, minlength=n_cp)
        counts[k] += per
        for name, v in values.items():
            sums[name][k] += np.bincount(g, weights=v[lo:hi], minlength=n_cp)
        sums["current"][k] += np.bincount(g, weights=c_m[lo:hi] == c_cur[lo:hi], minlength=n_cp)
        by_cp = values["window"][lo:hi][np.argsort(g.astype(np.int16), kind="stable")]
        for ci, part in enumerate(np.split(by_cp, np.cumsum(per)[:-1])):
            if len(part):
                pieces.setdefault((ci, k), []).append(part)
    rows = []
    for (ci, k), parts in pieces.items():
        q50, q90 = np.quantile(np.concatenate(parts), [0.5, 0.9])
        n = counts[k, ci]
        mi, si = divmod(k, n_s)
        ids = (cats[ci], _MECH_IDS[mi], _SCEN_IDS[si], int(n))
        means = [sums[x][k, ci] / n for x in ("possible", "p_replay", "p_usable", "window")]
        rows.append((*ids, *means, q50, q90, sums["current"][k, ci] / n))
    out = pd.DataFrame(
        rows,
        columns=[
            "client_path",
            "mechanism",
            "scenario",
            "n_flows",
            "share_possible",
            "mean_p_replay",
            "mean_p_usable",
            "mean_window_s",
            "median_window_s",
            "p90_window_s",
            "is_current_share",
        ],
    )
    out["mechanism"] = pd.Categorical(out["mechanism"], categories=_MECH_IDS)
    out["scenario"] = pd.Categorical(out["scenario"], categories=_SCEN_IDS)
    return out.sort_values(["client_path", "mechanism", "scenario"], ignore_index=True)


def window_survival(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    scenario: str | Scenario = "at_rest_copy",
    mechanisms: Iterable[str | Mechanism] | None = None,
    view: View = "today",
    t: Sequence[float] | FloatArray | None = None,
    by: str | None = "client_path",
    authorization_servers: pd.DataFrame | None = None,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    """Mean survival ``P(W > t)`` over the flows of each group (closed form).

    Long rows ``group, mechanism, t_s, survival``; ``group`` is ``"all"`` when ``by`` is
    None; ``by`` may be ``client_path`` or any flows column. Default ``t``: log-spaced 1 s to
    30 days. Flows with identical component parameters share one evaluation.
    """
    view = _view(view)
    ctx = FlowContext.resolve(
        flows, services, params, authorization_servers=authorization_servers, context=context
    )
    tt = np.asarray(t if t is not None else np.logspace(0, np.log10(30 * 86400), 60), dtype=float)
    if by is None:
        groups = np.full(ctx.n, "all", dtype=object)
    elif by == "client_path":
        groups = ctx.client_path
    else:
        groups = as_str(flows[by])
    codes, uniq = pd.factorize(np.asarray(groups, dtype=object), sort=True)
    codes = np.asarray(codes, dtype=np.int64)
    counts = np.bincount(codes, minlength=len(uniq)).astype(float)
    rows = []
    for m in _resolve_mechs(mechanisms):
        comps = components(ctx, m, scenario, view)
        cols = [codes.astype(float)]
        for c in comps:
            cols += [np.asarray(getattr(c, f)) for f in c.__slots__ if f != "d"]
        frame = pd.DataFrame(np.column_stack(cols))
        inv = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
        first = np.unique(inv, return_index=True)[1]
        weight = np.bincount(inv).astype(float)
        acc = np.zeros((len(uniq), len(tt)))
        for start in range(0, len(first), 50_000):
            idx = first[start : start + 50_000]
            part = [_take(c, idx) for c in comps]
            surv = mixture_survival(part, tt)
            g = codes[idx]
            ind = sp.csr_matrix(
                (weight[start : start + len(idx)], (g, np.arange(len(g)))),
                shape=(len(uniq), len(g)),
            )
            acc += ind @ surv
        acc /= counts[:, None]
        for gi, name in enumerate(uniq):
            rows.append(
                pd.DataFrame({"group": name, "mechanism": m.id, "t_s": tt, "survival": acc[gi]})
            )
    return pd.concat(rows, ignore_index=True)


def _distinct_components(
    comps: Sequence[Component],
) -> tuple[list[Component], npt.NDArray[np.int64]]:
    """The mixture on its distinct parameter rows, and each row's index into them.

    Speed: a cell's mixture depends on a flow only through a few component parameters
    (lifetime, revocation, bypass weight...), which repeat far more than whole flows do, so
    the Laplace transforms run on the distinct rows only (1,000,000 flows, all mechanisms:
    about 4x fewer evaluations than on distinct flows; see benchmarks/results/models.json).
    """
    cols = [getattr(c, f) for c in comps for f in c.__slots__ if f != "d"]
    # broadcast constants (stride 0) are the same on every row: they cannot split rows
    varying = {id(a): a for a in cols if np.ndim(a) == 1 and a.strides != (0,)}
    if not varying:
        first = np.zeros(1, dtype=np.int64)
        return [_take(c, first) for c in comps], np.zeros(len(comps[0].w), dtype=np.int64)
    inverse, first = distinct_rows(list(varying.values()))
    return [_take(c, first) for c in comps], inverse


def _take(c: Any, idx: npt.NDArray[np.int64]) -> Any:
    if isinstance(c, ShiftedUniform):
        return ShiftedUniform(c.w[idx], c.c[idx], c.a[idx], c.rho[idx], c.d)
    return type(c)(c.w[idx], c.P[idx], c.Delta[idx], c.L[idx])
