"""The report's headline numbers, each with what it rests on and an interval.

:func:`headline_numbers` returns one row per number with the columns of
``exports/headline_numbers.csv`` (a user contract, :data:`HEADLINE_COLUMNS`):

* ``metric_id`` -- stable id (``deployable_share_dpop_today``, ``usable_share_today``...);
* ``finding`` -- a plain-language sentence with the number (and its range) in it;
* ``value`` -- the point value at the reference parameters;
* ``low``, ``high`` -- the central 90% interval over joint draws of every assumption
  (:func:`tokenlib.analysis.uncertainty.draw_parameters`), widened to contain ``value``;
  numbers that rest on the inventory alone have ``low == high == value``;
* ``unit`` -- ``share``, ``hours`` or ``count``;
* ``baseline`` -- ``today's inventory`` for changes relative to today, ``none`` for absolute
  numbers;
* ``basis`` -- ``inventory`` (the inventory's own columns only), ``sourced`` or ``assumption``
  (rests on at least one assumed parameter or share).

Token-theft metrics are the headline; the credential-store share is shown beside them because
no binding addresses it. The share of stolen tokens still usable when the attacker uses them
(attacker time-to-use, A23a-c) is shown beside expected exposure hours, which are linear in
lifetimes. Recommendations are costly, so their interval uses the first ``slow_draws`` draws
(said in the sentence).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from tokenlib.analysis import deploy
from tokenlib.analysis._csv import write_csv
from tokenlib.analysis._diskcache import cached
from tokenlib.analysis.models import VIEWS, mechanism
from tokenlib.analysis.params import ModelParameters, parameter_label
from tokenlib.analysis.sensitivity import (
    COMPARED_MECHANISMS,
    blast_radius_removed,
    credential_store_share,
    exposure_hours,
    recommendations_removed_share,
    shared_contexts,
    theft_removed,
    usable_share,
)
from tokenlib.analysis.uncertainty import (
    DEFAULT_DRAWS,
    draw_parameters,
    interval,
    most_influential,
)

__all__ = [
    "BASES",
    "HEADLINE_COLUMNS",
    "LEVEL",
    "SLOW_DRAWS",
    "UNITS",
    "export_headline_numbers",
    "headline_numbers",
]

#: Columns of ``exports/headline_numbers.csv``, in order.
HEADLINE_COLUMNS = ("metric_id", "finding", "value", "low", "high", "unit", "baseline", "basis")
#: Allowed ``basis`` values.
BASES = ("inventory", "sourced", "assumption")
#: Allowed ``unit`` values.
UNITS = ("share", "hours", "count")
#: Central interval level of ``low``/``high``.
LEVEL = 0.9
#: Default number of draws for the costly metric (recommendations).
SLOW_DRAWS = 20

TODAY = "today's inventory"
_FAMILY_TEXT = {"dpop": "DPoP", "mtls": "mTLS-bound tokens", "token_binding": "Token Binding"}
_VIEW_TEXT = {"today": "with today's RS support", "upgraded": "with every RS upgraded"}
_MECH_TEXT = {"mtls": "mTLS-bound tokens"}

Frame: TypeAlias = pd.DataFrame


def _pct(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{100 * x:.1f}%" if abs(x) < 0.1 and x != 0 else f"{100 * x:.0f}%"


def _num(x: float) -> str:
    return f"{x:,.0f}" if np.isfinite(x) else "n/a"


def _range(lo: float, hi: float, unit: str, n: int) -> str:
    fmt = _pct if unit == "share" else _num
    return f"90% range {fmt(lo)} to {fmt(hi)} over {n} joint draws of every assumption"


def _label(mech: str) -> str:
    return _MECH_TEXT.get(mech, mechanism(mech).label)


class _Rows:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        metric_id: str,
        finding: str,
        value: float,
        low: float,
        high: float,
        *,
        unit: str,
        baseline: str,
        basis: str,
    ) -> None:
        assert unit in UNITS, unit
        assert basis in BASES, basis
        assert baseline in (TODAY, "none"), baseline
        self.rows.append(
            {
                "metric_id": metric_id,
                "finding": finding,
                "value": float(value),
                "low": float(low),
                "high": float(high),
                "unit": unit,
                "baseline": baseline,
                "basis": basis,
            }
        )


def headline_numbers(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: Frame | None = None,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    inventory_label: str = "",
    slow_draws: int | None = None,
) -> pd.DataFrame:
    """The headline numbers of the report (module docstring for the columns).

    ``draws`` joint draws of every assumption give the intervals (``seed`` makes them
    reproducible); the recommendations (costly) use the first ``slow_draws`` of them
    (default ``min(draws, SLOW_DRAWS)``). ``inventory_label`` names the inventory in the
    sentences ("the bundled inventory"); empty: "this inventory". Cached on disk when
    ``TOKENLIB_CACHE_DIR`` is set (:mod:`tokenlib.analysis._diskcache`).
    """
    p = params or ModelParameters.from_reference()
    ases = authorization_servers
    return cached(
        "headline_numbers",
        lambda: _headline_numbers(
            flows,
            services,
            p,
            authorization_servers=ases,
            draws=draws,
            seed=seed,
            inventory_label=inventory_label,
            slow_draws=slow_draws,
        ),
        key_parts=(flows, services, p, ases, draws, seed, inventory_label, slow_draws),
    )


def _headline_numbers(
    flows: Frame,
    services: Frame,
    p: ModelParameters,
    *,
    authorization_servers: Frame | None,
    draws: int,
    seed: int,
    inventory_label: str,
    slow_draws: int | None,
) -> pd.DataFrame:
    ases = authorization_servers
    ps = draw_parameters(p, n=draws, seed=seed)
    n_slow = min(draws, SLOW_DRAWS) if slow_draws is None else min(slow_draws, draws)
    on = f"On {inventory_label or 'this inventory'}"
    n = len(flows)
    out = _Rows()

    # -- deployability: the inventory alone -------------------------------------------------
    for fam, what in (
        ("dpop", "its client, authorization server and resource server support DPoP"),
        (
            "mtls",
            "its client has certificate management and can present a certificate, its "
            "authorization server issues certificate-bound tokens, its resource server accepts "
            "them and every TLS-terminating hop forwards the certificate",
        ),
        (
            "token_binding",
            "every hop passes TLS through and its client, authorization server and resource "
            "server support Token Binding (no client can today)",
        ),
    ):
        v = deploy.deployable_share(flows, services, ases, family=fam, view="today")
        k = round(v * n) if np.isfinite(v) else 0
        out.add(
            f"deployable_share_{fam}_today",
            f"{on}, {_pct(v)} of flows ({k:,} of {n:,}) could enforce "
            f"{_FAMILY_TEXT[fam]} today: "
            f"{what}. From the inventory's own columns only; no industry adoption share enters.",
            v,
            v,
            v,
            unit="share",
            baseline="none",
            basis="inventory",
        )

    # -- model metrics: point value plus joint draws (draws outer: one context per draw) ----
    dn = "dpop_nonce_shared_cache"

    def fast(q: ModelParameters) -> dict[str, float]:
        kw: dict[str, Any] = {"authorization_servers": ases}
        vals = {
            "usable_share_today": usable_share(flows, services, q, **kw),
            "exposure_hours_today": exposure_hours(flows, services, q, **kw),
            "credential_store_share_today": credential_store_share(flows, services, q, **kw),
        }
        for view in VIEWS:
            vals[f"usable_share_{dn}_{view}"] = usable_share(
                flows,
                services,
                q,
                mechanism=dn,
                view=view,
                **kw,
            )
            for mech in COMPARED_MECHANISMS:
                vals[f"token_theft_removed_{mech}_{view}"] = theft_removed(
                    flows,
                    services,
                    q,
                    mechanism=mech,
                    view=view,
                    **kw,
                )
        vals[f"blast_radius_removed_{dn}_today"] = blast_radius_removed(
            flows, services, q, mechanism=dn, view="today", **kw
        )
        return vals

    def slow(q: ModelParameters) -> dict[str, float]:
        return {
            "recommendations_removed_share": recommendations_removed_share(
                flows, services, q, authorization_servers=ases
            ),
        }

    with shared_contexts():
        point = {**fast(p), **slow(p)}
        sampled: dict[str, list[float]] = {key: [] for key in point}
        for i, q in enumerate(ps):
            vals = fast(q) | (slow(q) if i < n_slow else {})
            for key, x in vals.items():
                sampled[key].append(x)

    def both(metric_id: str, unit: str = "share") -> tuple[float, float, float, str]:
        """Point value, interval and a phrase with the range and its main driver."""
        value, values = point[metric_id], sampled[metric_id]
        if not values:
            return value, value, value, "point value only: no joint draws were made"
        iv = interval(value, values, level=LEVEL)
        driver = most_influential(values, ps[: len(values)])
        text = _range(iv.low, iv.high, unit, len(values))
        if driver:
            text += f"; most sensitive to the {parameter_label(driver)}"
        return value, iv.low, iv.high, text

    v, lo, hi, rng = both("usable_share_today")
    usable_today = v
    out.add(
        "usable_share_today",
        f"{on}, {_pct(v)} of stolen access and refresh tokens would still be usable when the "
        f"attacker uses them ({rng}; token-theft scenarios weighted by "
        "likelihood, attacker time-to-use A23a-c).",
        v,
        lo,
        hi,
        unit="share",
        baseline="none",
        basis="assumption",
    )
    for view in VIEWS:
        v, lo, hi, rng = both(f"usable_share_{dn}_{view}")
        out.add(
            f"usable_share_{dn}_{view}",
            f"If every flow moved to {_label(dn)} {_VIEW_TEXT[view]}, {_pct(v)} of stolen tokens "
            f"would still be usable when used ({rng}; "
            f"today: {_pct(usable_today)}).",
            v,
            lo,
            hi,
            unit="share",
            baseline="none",
            basis="assumption",
        )

    for view in VIEWS:
        for mech in COMPARED_MECHANISMS:
            v, lo, hi, rng = both(f"token_theft_removed_{mech}_{view}")
            effect = (
                f"removes {_pct(v)} of today's token-theft exposure"
                if v >= 0
                else f"adds {_pct(-v)} to today's token-theft exposure instead of removing any "
                "(flows bound today would lose their binding and nothing new is bound)"
            )
            out.add(
                f"token_theft_removed_{mech}_{view}",
                f"Moving every flow to {_label(mech)} {_VIEW_TEXT[view]} {effect}; usable stolen "
                f"tokens weighted by what is at stake, share removed {rng}.",
                v,
                lo,
                hi,
                unit="share",
                baseline=TODAY,
                basis="assumption",
            )

    v, lo, hi, rng = both("exposure_hours_today", "hours")
    out.add(
        "exposure_hours_today",
        f"{on}, expected token-theft exposure is {_num(v)} hours weighted by what is at stake "
        f"({rng}). Hours grow linearly with token lifetimes, so read "
        f"them beside the {_pct(usable_today)} of stolen tokens still usable when used.",
        v,
        lo,
        hi,
        unit="hours",
        baseline="none",
        basis="assumption",
    )

    v, lo, hi, rng = both("credential_store_share_today")
    out.add(
        "credential_store_share_today",
        f"A copy of a client's credential store (private key, certificate or client secret) "
        f"makes up {_pct(v)} of today's total usable exposure ({rng}). "
        "No token binding addresses it; it is reported in its own section with its own "
        "controls.",
        v,
        lo,
        hi,
        unit="share",
        baseline="none",
        basis="assumption",
    )

    v, lo, hi, rng = both(f"blast_radius_removed_{dn}_today")
    out.add(
        f"blast_radius_removed_{dn}_today",
        f"Moving every flow to {_label(dn)} with today's RS support shrinks the blast radius "
        f"(services reachable with a stolen token, weighted by sensitivity, scopes and "
        f"environment) by {_pct(v)} ({rng}).",
        v,
        lo,
        hi,
        unit="share",
        baseline=TODAY,
        basis="assumption",
    )

    v, lo, hi, rng = both("recommendations_removed_share")
    out.add(
        "recommendations_removed_share",
        f"Following every recommendation removes {_pct(v)} of today's token-theft exposure "
        f"({rng}; fewer draws because the recommendations are costly "
        "to compute).",
        v,
        lo,
        hi,
        unit="share",
        baseline=TODAY,
        basis="assumption",
    )

    cf = deploy.token_binding_counterfactual(flows, services, ases)
    fams = cf.set_index(cf["family"].astype(str))
    tb = fams.loc["token_binding"]
    v = float(tb["deployable_share"])
    dpop_cf = float(fams.loc["dpop", "deployable_share"]) if "dpop" in fams.index else np.nan
    basis = str(tb.get("basis", "assumption"))
    out.add(
        "token_binding_counterfactual_share",
        f"Even at its best historical client support ({_pct(float(tb['client_share_browser']))} "
        f"of browsers from {tb['client_date_browser'] or 'n/a'}, "
        f"{_pct(float(tb['client_share_other']))} of other clients) and with every "
        f"authorization server and RS supporting it, Token Binding could be enforced on "
        f"{_pct(v)} of flows: it needs every hop to pass TLS through, which "
        f"{_pct(float(tb['hops_share']))} of paths do. DPoP, which needs only the client, the "
        f"RS and the authorization server, reaches {_pct(dpop_cf)} under the same client "
        "support. No range: the client shares are the best dated values of the adoption "
        "timeline, not drawn parameters.",
        v,
        v,
        v,
        unit="share",
        baseline="none",
        basis=basis if basis in BASES else "assumption",
    )
    return pd.DataFrame(out.rows, columns=list(HEADLINE_COLUMNS))


def export_headline_numbers(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` (the :data:`HEADLINE_COLUMNS`, in that order) to ``path`` as CSV,
    atomically, with text cells a spreadsheet would run as a formula neutralised
    (:func:`tokenlib.analysis._csv.write_csv`); return the path."""
    missing = [c for c in HEADLINE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"headline numbers lack column(s) {missing}")
    return write_csv(df.loc[:, list(HEADLINE_COLUMNS)], path)
