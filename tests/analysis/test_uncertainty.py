"""Tests for tokenlib.analysis.uncertainty: joint draws, intervals, claims across draws."""

from __future__ import annotations

import numpy as np
import pytest

from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.uncertainty import (
    DEFAULT_DRAWS,
    Interval,
    draw_parameters,
    holds,
    interval,
    most_influential,
    uncertain_parameters,
)

P0 = ModelParameters.from_reference()


def test_draws_are_reproducible_per_seed() -> None:
    a = draw_parameters(P0, n=12, seed=3)
    b = draw_parameters(P0, n=12, seed=3)
    c = draw_parameters(P0, n=12, seed=4)
    assert [d.as_dict() for d in a] == [d.as_dict() for d in b]
    assert [d.as_dict() for d in a] != [d.as_dict() for d in c]
    assert len(draw_parameters(P0, seed=0)) == DEFAULT_DRAWS


def test_draws_stay_inside_each_assumption_range() -> None:
    specs = uncertain_parameters()
    assert specs, "there are assumptions to draw"
    assert {"e_rs", "ttu_fast_share", "nonce_lifetime_threshold_s"} <= {s.name for s in specs}
    draws = draw_parameters(P0, n=200, seed=11)
    for s in specs:
        values = np.array([getattr(d, s.name) for d in draws])
        assert values.min() >= s.low - 1e-9, s.name
        assert values.max() <= s.high + 1e-9, s.name
        assert values.std() > 0, s.name  # actually varied
    # parameters that are not assumptions keep the base value
    assert {d.nonce_lifetime_s for d in draws} == {P0.nonce_lifetime_s}


def test_interval_is_central_and_contains_the_point_value() -> None:
    iv = interval(5.0, list(range(101)), level=0.9)
    assert isinstance(iv, Interval)
    assert iv.low == pytest.approx(5.0)  # widened down to the point value
    assert iv.high == pytest.approx(95.0)
    assert iv.contains(50.0)
    assert not iv.contains(96.0)
    nan = interval(1.0, [float("nan")])
    assert np.isnan(nan.low)
    assert np.isnan(nan.high)


def test_holds_names_the_assumption_a_claim_depends_on() -> None:
    draws = draw_parameters(P0, n=60, seed=5)
    checks = [d.e_rs < 0.8 for d in draws]
    h = holds(checks, draws)
    assert 0 < h["share"] < 1
    assert h["finding"] is False
    assert h["depends_on"] == "e_rs"
    always = holds([True] * len(draws), draws)
    assert always == {"share": 1.0, "finding": True, "depends_on": ""}


def test_most_influential_parameter() -> None:
    draws = draw_parameters(P0, n=40, seed=2)
    assert most_influential([d.p_inj * 3.0 + 1.0 for d in draws], draws) == "p_inj"
    assert most_influential([1.0] * len(draws), draws) == ""
    with_nan = [float("nan")] + [d.e_rs for d in draws[1:]]
    assert most_influential(with_nan, draws) == "e_rs"
