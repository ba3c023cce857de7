"""Aggregation: per-flow exposure, scenario split, symmetric comparison, exports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tokenlib.analysis.models import (
    MECHANISMS,
    SCENARIOS,
    VIEWS,
    current_mechanism,
    exposure_by_mechanism,
    exposure_by_scenario,
    flow_exposure,
    mechanism_comparison,
    replay_by_client_path,
    replay_windows,
    usable_share,
    window_survival,
)
from tokenlib.analysis.params import ModelParameters

try:
    from tests.analysis.conftest_models import (
        authorization_servers_frame,
        flows_frame,
        random_inventory,
        services_frame,
    )
except ImportError:  # pragma: no cover - depends on how pytest sets sys.path
    from conftest_models import (  # type: ignore[no-redef]
        authorization_servers_frame,
        flows_frame,
        random_inventory,
        services_frame,
    )

P0 = ModelParameters.from_reference()
AS_ALL = authorization_servers_frame(
    [
        {
            "as_id": "as-default",
            "issues_dpop": True,
            "issues_mtls": True,
            "binds_refresh_tokens": True,
        }
    ]
)


@pytest.fixture(scope="module")
def inventory() -> tuple[pd.DataFrame, pd.DataFrame]:
    return random_inventory(300, seed=3)


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("metric", ["usable", "hours"])
def test_binding_never_increases_token_theft_exposure(
    inventory: tuple[pd.DataFrame, pd.DataFrame], view: str, metric: str
) -> None:
    """Every bound mechanism is at most bearer, flow by flow (token theft): a stolen key or a
    missing enforcement makes it bearer-equivalent, never worse."""
    f, s = inventory
    e = exposure_by_mechanism(f, s, P0, view=view, metric=metric)  # type: ignore[arg-type]
    for m in MECHANISMS:
        assert (e[f"exposure_{m.id}"] <= e["exposure_bearer"] * (1 + 1e-9) + 1e-12).all(), m.id


def test_upgraded_view_is_never_worse_than_today(
    inventory: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    f, s = inventory
    today = exposure_by_mechanism(f, s, P0, view="today")
    up = exposure_by_mechanism(f, s, P0, view="upgraded")
    for m in MECHANISMS:
        col = f"exposure_{m.id}"
        assert (up[col] <= today[col] * (1 + 1e-9) + 1e-12).all(), m.id


def test_current_is_each_flows_own_mechanism(inventory: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f, s = inventory
    e = exposure_by_mechanism(f, s, P0)
    cur = current_mechanism(f, s)
    for m in np.unique(cur.astype(str)):
        sel = (cur.astype(str) == m).to_numpy()
        np.testing.assert_allclose(e["exposure_current"][sel], e[f"exposure_{m}"][sel])


def test_groups_partition_the_total(inventory: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f, s = inventory
    total = exposure_by_mechanism(f, s, P0, group=None)["exposure_current"].sum()
    parts = sum(
        exposure_by_mechanism(f, s, P0, group=g)["exposure_current"].sum()  # type: ignore[arg-type]
        for g in ("token_theft", "credential_store", "issuer")
    )
    assert parts == pytest.approx(total)


def test_exposure_by_scenario(inventory: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f, s = inventory
    t = exposure_by_scenario(f, s, P0, mechanisms=["mtls", "dpop_nonce_shared_cache"])
    assert list(t.index) == [sc.id for sc in SCENARIOS]
    theft = t[t["group"] == "token_theft"]
    assert theft["share_of_group"].sum() == pytest.approx(1.0)
    assert t.loc["issuer_key_compromise", "exposure_current"] == 0.0  # A17f off by default
    assert np.isnan(t.loc["issuer_key_compromise", "removed_by_mtls"])


def test_mechanism_comparison_one_baseline(inventory: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f, s = inventory
    cmp = mechanism_comparison(f, s, P0)
    assert set(cmp["view"]) == set(VIEWS)
    assert cmp["exposure_current"].nunique() == 1
    tb = cmp[cmp["mechanism"] == "token_binding"].set_index("view")
    bearer = cmp[cmp["mechanism"] == "bearer"].set_index("view")
    assert (tb["enforceable_share"] == 0).all()
    np.testing.assert_allclose(tb["exposure"], bearer["exposure"])
    assert ((cmp["usable_share"] >= 0) & (cmp["usable_share"] <= 1)).all()


def test_usable_share_all_bearer_equals_bearer_mechanism() -> None:
    f = flows_frame([{"exposure_channels": "app_logs"}, {"exposure_channels": "proxy_logs"}])
    s = services_frame([{"service_id": "api"}])
    today = usable_share(f, s, P0, authorization_servers=AS_ALL)
    assert today == pytest.approx(
        usable_share(f, s, P0, mechanism="bearer", authorization_servers=AS_ALL)
    )
    assert 0 < today <= 1


def test_flow_exposure_export_contract() -> None:
    f = flows_frame([{}, {}])
    s = services_frame(
        [{"service_id": "api", "instances": 3, "jti_cache": "per_instance", "requires_nonce": True}]
    )
    out = flow_exposure(f, s, P0, authorization_servers=AS_ALL)
    for col in ("flow_id", "mechanism", "scenario", "expected_window_s", "max_replays", "p_usable"):
        assert col in out.columns
    assert set(out["mechanism"].astype(str)) >= {
        "bearer",
        "mtls",
        "dpop_no_cache",
        "dpop_per_instance_cache",
        "dpop_shared_cache",
        "dpop_nonce",
        "token_binding",
    }
    row = out[
        (out["mechanism"] == "dpop_nonce") & (out["scenario"] == "in_transit_token_and_proof")
    ]
    assert (row["max_replays"] == 2).all()


def test_window_survival_and_path_summary(inventory: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f, s = inventory
    surv = window_survival(f, s, P0, mechanisms=["bearer", "dpop_shared_cache"], by=None)
    for _, g in surv.groupby("mechanism"):
        assert (np.diff(g["survival"].to_numpy()) <= 1e-12).all()
        assert ((g["survival"] >= 0) & (g["survival"] <= 1 + 1e-12)).all()
    rw = replay_windows(f, s, P0, mechanisms=["bearer", "dpop_nonce"])
    summ = replay_by_client_path(rw)
    assert summ["n_flows"].sum() == len(rw)
    assert ((summ["is_current_share"] >= 0) & (summ["is_current_share"] <= 1)).all()


@pytest.mark.parametrize("order", ["as_built", "shuffled", "every_third"])
def test_path_summary_matches_a_group_by(
    inventory: tuple[pd.DataFrame, pd.DataFrame], order: str
) -> None:
    """The block-walking summary equals a plain pandas group-by, whatever the row order."""
    f, s = inventory
    rw = replay_windows(f, s, P0, mechanisms=["bearer", "mtls", "dpop_nonce"])
    if order == "shuffled":
        rw = rw.sample(frac=1.0, random_state=7)
    elif order == "every_third":
        rw = rw.iloc[::3]
    got = replay_by_client_path(rw)
    frame = rw.assign(cur=(rw["mechanism"].astype(str) == rw["current_mechanism"].astype(str)))
    g = frame.groupby(["client_path", "mechanism", "scenario"], observed=True, sort=True)
    want = pd.DataFrame(
        {
            "n_flows": g.size(),
            "share_possible": g["possible"].mean(),
            "mean_p_replay": g["p_replay"].mean(),
            "mean_p_usable": g["p_usable"].mean(),
            "mean_window_s": g["expected_window_s"].mean(),
            "median_window_s": g["expected_window_s"].median(),
            "p90_window_s": g["expected_window_s"].quantile(0.9),
            "is_current_share": g["cur"].mean(),
        }
    ).reset_index()
    assert len(got) == len(want)
    keys = ["client_path", "mechanism", "scenario"]
    got, want = (
        x.assign(**{k: x[k].astype(str) for k in keys}).sort_values(keys, ignore_index=True)
        for x in (got, want)
    )
    for col in keys:
        assert got[col].astype(str).tolist() == want[col].astype(str).tolist()
    for col in want.columns[3:]:
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"view": "tomorrow"}, "unknown view"),
        ({"mechanisms": ["dpop_magic"]}, "unknown mechanism"),
        ({"metric": "dollars"}, "unknown metric"),
        ({"scenarios": ["alien"]}, "unknown scenario"),
    ],
)
def test_bad_arguments_are_named(
    inventory: tuple[pd.DataFrame, pd.DataFrame], kwargs: dict[str, object], match: str
) -> None:
    f, s = inventory
    with pytest.raises(ValueError, match=match):
        exposure_by_mechanism(f, s, P0, **kwargs)  # type: ignore[arg-type]
