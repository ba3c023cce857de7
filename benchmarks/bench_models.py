"""The model suite: point estimates over 1,000,000 flows (< 30 s) and the suite with joint
uncertainty over the bundled 5,000-flow inventory (< 60 s), on this 2-core machine.

Part 1, ``point`` (a generated ``saas`` inventory of 1,000,000 flows, one process, wall clock;
generation excluded from the total):

* ``context``: ``FlowContext.build`` (joins, path parsing, support per family and view);
* ``exposure``: ``exposure_by_mechanism`` for every mechanism in both support views
  (token theft, metric ``usable``) and once with metric ``hours``; ``exposure_by_scenario``;
* ``replay_windows``: the tidy table for bearer, mTLS and DPoP + nonces + shared store x all
  scenarios (21 rows per flow) and ``replay_by_client_path``; ``window_survival``;
* ``blast``: ``blast_radius`` for current, bearer, mTLS and DPoP + nonces + shared store, and
  ``lateral_paths``;
* ``deploy``: ``deployability`` (4 families), ``deployable_share``,
  ``token_binding_counterfactual``, ``timeline_deployability``;
* ``recommend``: ``recommend`` without uncertainty draws.

Part 2, ``uncertainty`` (the bundled inventory, everything a report shows with ranges):
``headline_numbers`` with ``DEFAULT_DRAWS`` joint draws, ``recommend`` with robustness over the
same number of draws, ``conclusion_robustness``, ``control_effects`` + ``rank_controls``.

``run(quick=False) -> dict`` writes ``benchmarks/results/models.json`` atomically; ``quick``
uses 100,000 flows and 20 draws.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks._common import machine_info, write_result
from tokenlib.analysis import blast, controls, deploy, headline, models, recommend, sensitivity
from tokenlib.analysis.inventory import generate_inventory, load_inventory
from tokenlib.analysis.params import ModelParameters, load_crypto_costs
from tokenlib.analysis.uncertainty import DEFAULT_DRAWS

TARGET_POINT_S = 30.0
TARGET_UNCERTAINTY_S = 60.0
DPOP = "dpop_nonce_shared_cache"


def _machine() -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {**machine_info(), "load_average_1m": load}


def _timed(timings: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    out = fn()
    timings[name] = round(time.perf_counter() - start, 3)
    return out


def _point(n: int, params: ModelParameters) -> tuple[dict[str, float], dict[str, int]]:
    t: dict[str, float] = {}
    inv = _timed(t, "generate_inventory", lambda: generate_inventory("saas", n, seed=20_251_125))
    flows, services, ases = inv.flows, inv.services, inv.authorization_servers
    gc.collect()
    ctx = _timed(
        t,
        "context",
        lambda: models.FlowContext.build(flows, services, params, authorization_servers=ases),
    )
    kw: dict[str, Any] = {"authorization_servers": ases, "context": ctx}
    for view in models.VIEWS:
        _timed(
            t,
            f"exposure_{view}",
            lambda view=view: models.exposure_by_mechanism(flows, services, view=view, **kw),
        )
    _timed(
        t,
        "exposure_hours",
        lambda: models.exposure_by_mechanism(flows, services, metric="hours", **kw),
    )
    _timed(t, "exposure_by_scenario", lambda: models.exposure_by_scenario(flows, services, **kw))
    win = _timed(
        t,
        "replay_windows",
        lambda: models.replay_windows(flows, services, mechanisms=["bearer", "mtls", DPOP], **kw),
    )
    summ = _timed(t, "replay_by_client_path", partial(models.replay_by_client_path, win))
    n_window_rows = len(win)
    del win
    gc.collect()
    _timed(t, "window_survival", lambda: models.window_survival(flows, services, **kw))
    br = _timed(
        t,
        "blast_radius",
        lambda: blast.blast_radius(
            flows, services, params, mechanisms=["current", "bearer", "mtls", DPOP], **kw
        ),
    )
    n_blast_rows = len(br)
    del br
    gc.collect()
    paths = _timed(t, "lateral_paths", lambda: blast.lateral_paths(flows, services, params, **kw))
    dep = _timed(
        t,
        "deployability",
        lambda: deploy.deployability(flows, services, params, authorization_servers=ases),
    )
    _timed(
        t,
        "deployable_share",
        lambda: [deploy.deployable_share(flows, services, ases, family=f) for f in models.FAMILIES],
    )
    _timed(
        t,
        "token_binding_counterfactual",
        lambda: deploy.token_binding_counterfactual(flows, services, ases),
    )
    _timed(t, "timeline", lambda: deploy.timeline_deployability(flows, services, params))
    rec = _timed(
        t,
        "recommend",
        lambda: recommend.recommend(
            flows, services, params, authorization_servers=ases, deploy=dep, draws=0, context=ctx
        ),
    )
    sizes = {
        "replay_window_rows": n_window_rows,
        "client_path_rows": len(summ),
        "blast_rows": n_blast_rows,
        "lateral_paths": len(paths),
        "recommendations": len(rec),
        "distinct_flow_contexts": ctx.distinct()[0].n,
    }
    return t, sizes


def _uncertainty(draws: int, params: ModelParameters) -> dict[str, float]:
    t: dict[str, float] = {}
    inv = load_inventory("default")
    flows, services, ases = inv.flows, inv.services, inv.authorization_servers
    _timed(
        t,
        "headline_numbers",
        lambda: headline.headline_numbers(
            flows, services, params, authorization_servers=ases, draws=draws
        ),
    )
    _timed(
        t,
        "recommend_robustness",
        lambda: recommend.recommend(
            flows, services, params, authorization_servers=ases, draws=draws
        ),
    )
    _timed(
        t,
        "conclusion_robustness",
        lambda: sensitivity.conclusion_robustness(
            flows, services, params, authorization_servers=ases, draws=draws
        ),
    )
    _timed(
        t,
        "controls",
        lambda: controls.rank_controls(
            controls.control_effects(flows, services, params, authorization_servers=ases)
        ),
    )
    return t


def run(quick: bool = False) -> dict[str, Any]:
    """Time both parts and return the timings (seconds) and a few result sizes."""
    n = 100_000 if quick else 1_000_000
    draws = 20 if quick else DEFAULT_DRAWS
    costs = load_crypto_costs()
    params = ModelParameters.from_reference().with_measured_costs(costs)
    point, sizes = _point(n, params)
    point_total = round(sum(v for k, v in point.items() if k != "generate_inventory"), 3)
    gc.collect()
    unc = _uncertainty(draws, params)
    unc_total = round(sum(unc.values()), 3)
    result: dict[str, Any] = {
        "benchmark": "models",
        "machine": _machine(),
        "quick": quick,
        "n_flows": n,
        "draws": draws,
        "unit": "seconds (wall clock)",
        "timings": point,
        "models_total_s": point_total,
        "target_s": TARGET_POINT_S,
        "target_met": point_total < TARGET_POINT_S,
        "uncertainty_timings": unc,
        "uncertainty_total_s": unc_total,
        "uncertainty_target_s": TARGET_UNCERTAINTY_S,
        "uncertainty_target_met": unc_total < TARGET_UNCERTAINTY_S,
        "sizes": sizes,
        "crypto_costs": {
            "sign_s": costs.sign_s,
            "verify_s": costs.verify_s,
            "status": costs.status,
        },
    }
    write_result("models", result)
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
