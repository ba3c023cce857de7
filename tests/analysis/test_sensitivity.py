"""Tests for tokenlib.analysis.sensitivity: tornado, sweeps, conclusion robustness."""

from __future__ import annotations

import numpy as np
import pytest

from tokenlib.analysis.params import ModelParameters, parameter_specs
from tokenlib.analysis.sensitivity import (
    CONCLUSIONS,
    METRICS,
    conclusion_checks,
    conclusion_robustness,
    headline_metrics,
    sweep,
    tornado,
)

try:
    from tests.analysis.conftest_models import random_inventory
except ImportError:  # pragma: no cover
    from conftest_models import random_inventory  # type: ignore[no-redef]

P0 = ModelParameters.from_reference()
F, S = random_inventory(150, seed=7)


def test_headline_metrics_are_finite() -> None:
    h = headline_metrics(F, S, P0)
    assert set(h) == set(METRICS)
    assert all(np.isfinite(v) for v in h.values())
    assert 0 < h["dpop_nonce_reduction_vs_bearer"] < 1
    assert h["mean_proof_replay_window_s"] <= 300


def test_tornado_uses_register_ranges_and_sorts_by_swing() -> None:
    names = ["e_rs", "p_inj", "q_secret", "pi_persist"]
    t = tornado(F, S, P0, names=names)
    assert set(t["name"]) == set(names)
    assert (t["swing"].diff().dropna() <= 1e-12).all()
    specs = {s.name: s for s in parameter_specs()}
    for _, row in t.iterrows():
        assert (row["low"], row["high"]) == (specs[row["name"]].low, specs[row["name"]].high)
        assert row["status"] == "assumption"
    assert t["metric_base"].nunique() == 1
    # e_RS matters for a DPoP reduction metric; q (lateral movement) does not
    assert t.set_index("name").loc["e_rs", "swing"] > 0
    assert t.set_index("name").loc["q_secret", "swing"] == pytest.approx(0)


def test_sweep_e_rs_is_monotone() -> None:
    s = sweep(F, S, P0, name="e_rs", points=5)
    assert len(s) == 5
    assert (np.diff(s["result"].to_numpy()) >= -1e-12).all()
    with pytest.raises(ValueError, match="unknown parameter"):
        sweep(F, S, P0, name="nope")
    with pytest.raises(ValueError, match="unknown metric"):
        tornado(F, S, P0, metric="nope")


def test_conclusions_hold_at_base_and_robustness_table() -> None:
    c = conclusion_checks(F, S, P0)
    assert set(c) == set(CONCLUSIONS)
    assert c["bearer_replayable_by_design"]
    assert c["token_binding_never_deployable"]
    r = conclusion_robustness(F, S, P0, names=["e_rs", "p_key_software"])
    assert len(r) == 1 + 2 * 2 + 1
    last = r.iloc[-1]
    assert last["name"] == "all"
    for k in CONCLUSIONS:
        assert bool(last[k]) == bool(r.iloc[:-1][k].all())
