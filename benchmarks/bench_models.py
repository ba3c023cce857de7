"""Full model suite over a 1,000,000-flow inventory: target < 30 s on this 2-core machine.

Steps (each timed, wall clock, one process):

* ``exposure``: ``exposure_by_mechanism`` -- the closed form of every mechanism x scenario cell
  (7 x 7) for every flow, plus the token-theft split;
* ``replay_windows``: the tidy table for bearer, mTLS and DPoP+nonce x all scenarios
  (21 rows per flow, no quantiles) and ``replay_by_client_path`` on it;
* ``survival``: ``window_survival`` for all mechanisms, 60 time points, by client path;
* ``blast``: ``blast_radius`` for current, bearer, mTLS and DPoP+nonce, and ``lateral_paths``;
* ``deploy``: ``deployability`` (4 families), ``timeline_deployability``, ``adoption_curve``;
* ``recommend``: ``recommend`` reusing exposure and deployability;
* ``sensitivity``: ``headline_metrics`` on a 50,000-flow sample (sweeps re-run the models per
  setting, so they are sized for notebooks, not for 1M flows).

``models_total_s`` sums the 1M-flow steps (generation excluded). ``run(quick=False) -> dict``
writes ``benchmarks/results/models.json`` atomically; ``quick`` uses 100,000 flows.
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
from tokenlib.analysis import blast, deploy, recommend, replay, sensitivity
from tokenlib.analysis.inventory import generate_inventory
from tokenlib.analysis.params import ModelParameters, load_crypto_costs

TARGET_S = 30.0


def _machine() -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {**machine_info(), "load_average_1m": load}


def _timed(timings: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    out = fn()
    timings[name] = round(time.perf_counter() - start, 3)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Time the model suite and return the timings (seconds) and a few result sizes."""
    n = 100_000 if quick else 1_000_000
    t: dict[str, float] = {}
    inv = _timed(t, "generate_inventory", lambda: generate_inventory("saas", n, seed=20_251_125))
    flows, services = inv.flows, inv.services
    costs = load_crypto_costs()
    params = ModelParameters.from_reference().with_measured_costs(costs)
    gc.collect()

    exp = _timed(
        t,
        "exposure",
        lambda: replay.exposure_by_mechanism(flows, services, params, theft_columns=True),
    )
    win = _timed(
        t,
        "replay_windows",
        lambda: replay.replay_windows(
            flows, services, params, mechanisms=["bearer", "mtls", "dpop_nonce"], quantiles=False
        ),
    )
    summ = _timed(t, "replay_by_client_path", partial(replay.replay_by_client_path, win))
    n_window_rows = len(win)
    del win
    gc.collect()
    _timed(t, "window_survival", lambda: replay.window_survival(flows, services, params))
    br = _timed(
        t,
        "blast_radius",
        lambda: blast.blast_radius(
            flows, services, params, mechanisms=["current", "bearer", "mtls", "dpop_nonce"]
        ),
    )
    n_blast_rows = len(br)
    del br
    gc.collect()
    paths = _timed(t, "lateral_paths", lambda: blast.lateral_paths(flows, services, params))
    dep = _timed(t, "deployability", lambda: deploy.deployability(flows, services, params))
    _timed(t, "timeline", lambda: deploy.timeline_deployability(flows, services, params))
    curve = _timed(
        t,
        "adoption_curve",
        lambda: deploy.adoption_curve(flows, services, params, exposure=exp),
    )
    rec = _timed(
        t,
        "recommend",
        lambda: recommend.recommend(flows, services, params, exposure=exp, deploy=dep),
    )
    models_total = round(sum(v for k, v in t.items() if k != "generate_inventory"), 3)
    sample = flows.sample(n=min(50_000, n), random_state=1)
    head = _timed(
        t, "headline_metrics_50k", lambda: sensitivity.headline_metrics(sample, services, params)
    )
    result: dict[str, Any] = {
        "benchmark": "models",
        "machine": _machine(),
        "quick": quick,
        "n_flows": n,
        "n_services": len(services),
        "unit": "seconds (wall clock)",
        "timings": t,
        "models_total_s": models_total,
        "target_s": TARGET_S,
        "target_met": models_total < TARGET_S,
        "sizes": {
            "replay_window_rows": n_window_rows,
            "client_path_rows": len(summ),
            "blast_rows": n_blast_rows,
            "lateral_paths": len(paths),
            "adoption_steps": len(curve),
            "recommendations": len(rec),
        },
        "crypto_costs": {
            "sign_s": costs.sign_s,
            "verify_s": costs.verify_s,
            "status": costs.status,
        },
        "headline_metrics_50k": {k: round(v, 6) for k, v in head.items()},
    }
    write_result("models", result)
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
