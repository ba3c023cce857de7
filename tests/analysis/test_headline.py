"""Tests for tokenlib.analysis.headline: the headline_numbers.csv contract."""

from __future__ import annotations

import pandas as pd
import pytest

from tokenlib.analysis.headline import (
    BASES,
    HEADLINE_COLUMNS,
    UNITS,
    export_headline_numbers,
    headline_numbers,
)
from tokenlib.analysis.params import ModelParameters

try:
    from tests.analysis.conftest_models import (
        authorization_servers_frame,
        flows_frame,
        random_inventory,
        services_frame,
    )
except ImportError:  # pragma: no cover
    from conftest_models import (  # type: ignore[no-redef,import-not-found,unused-ignore]
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
REQUIRED = {
    "deployable_share_dpop_today",
    "deployable_share_mtls_today",
    "deployable_share_token_binding_today",
    "usable_share_today",
    "usable_share_dpop_nonce_shared_cache_today",
    "usable_share_dpop_nonce_shared_cache_upgraded",
    "exposure_hours_today",
    "credential_store_share_today",
    "blast_radius_removed_dpop_nonce_shared_cache_today",
    "recommendations_removed_share",
    "token_binding_counterfactual_share",
} | {
    f"token_theft_removed_{m}_{v}"
    for m in ("mtls", "dpop_shared_cache", "dpop_nonce_shared_cache", "token_binding")
    for v in ("today", "upgraded")
}


def _small(supports_dpop: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    flows = flows_frame(
        [
            {"exposure_channels": "app_logs;proxy_logs"},
            {
                "client_kind": "browser_spa",
                "client_type": "public",
                "actor": "human",
                "grant_type": "authorization_code",
                "refresh_token": "rotating",
                "refresh_token_lifetime_s": 86400,
                "exposure_channels": "browser_storage",
                "scopes": "read write",
            },
            {"client_kind": "batch_job", "exposure_channels": "config_files", "environment": "dev"},
        ]
    )
    services = services_frame(
        [{"service_id": "api", "supports_dpop": supports_dpop, "instances": 2}]
    )
    return flows, services


@pytest.fixture(scope="module")
def no_dpop() -> pd.DataFrame:
    f, s = _small(False)
    return headline_numbers(f, s, P0, authorization_servers=AS_ALL, draws=6, seed=1)


def test_columns_and_required_metric_ids(no_dpop: pd.DataFrame) -> None:
    assert list(no_dpop.columns) == list(HEADLINE_COLUMNS)
    assert set(no_dpop["metric_id"]) >= REQUIRED
    assert no_dpop["metric_id"].is_unique


def test_no_rs_supports_dpop_gives_zero_from_the_inventory(no_dpop: pd.DataFrame) -> None:
    row = no_dpop.set_index("metric_id").loc["deployable_share_dpop_today"]
    assert row["value"] == 0.0
    assert row["low"] == row["high"] == 0.0
    assert row["basis"] == "inventory"
    assert row["unit"] == "share"
    assert "0%" in row["finding"]
    # the same inventory with DPoP support at the RS: every flow can carry DPoP
    f, s = _small(True)
    yes = headline_numbers(f, s, P0, authorization_servers=AS_ALL, draws=3)
    assert yes.set_index("metric_id").loc["deployable_share_dpop_today", "value"] == 1.0


def test_every_row_is_well_formed(no_dpop: pd.DataFrame) -> None:
    assert (no_dpop["low"] <= no_dpop["value"]).all()
    assert (no_dpop["value"] <= no_dpop["high"]).all()
    assert set(no_dpop["basis"]) <= set(BASES)
    assert set(no_dpop["unit"]) <= set(UNITS)
    assert set(no_dpop["baseline"]) <= {"today's inventory", "none"}
    inv = no_dpop[no_dpop["basis"] == "inventory"]
    assert set(inv["metric_id"]) >= {
        "deployable_share_dpop_today",
        "deployable_share_mtls_today",
        "deployable_share_token_binding_today",
    }
    assert ((inv["low"] == inv["value"]) & (inv["high"] == inv["value"])).all()
    removed = no_dpop[no_dpop["metric_id"].str.contains("removed")]
    assert (removed["baseline"] == "today's inventory").all()
    assert no_dpop.set_index("metric_id").loc["exposure_hours_today", "unit"] == "hours"
    for _, row in no_dpop.iterrows():
        assert isinstance(row["finding"], str)
        assert len(row["finding"]) > 20


def test_intervals_are_reproducible_and_come_from_draws() -> None:
    f, s = random_inventory(120, seed=3)
    a = headline_numbers(f, s, P0, draws=8, seed=4, slow_draws=2)
    b = headline_numbers(f, s, P0, draws=8, seed=4, slow_draws=2)
    pd.testing.assert_frame_equal(a, b)
    assert (a["low"] <= a["value"]).all()
    assert (a["value"] <= a["high"]).all()
    by = a.set_index("metric_id")
    usable = by.loc["usable_share_today"]
    assert usable["low"] < usable["high"]  # rests on assumptions: a real range
    assert usable["basis"] == "assumption"
    assert "8 joint draws" in usable["finding"]
    assert "2 joint draws" in by.loc["recommendations_removed_share", "finding"]
    tb = by.loc["token_theft_removed_token_binding_today"]
    assert tb["value"] <= 0  # Token Binding binds nothing: it can only lose today's bindings


def test_export_is_atomic_and_neutralises_formulas(tmp_path: object, no_dpop: pd.DataFrame) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "exports" / "headline_numbers.csv"
    evil = no_dpop.copy()
    evil.loc[0, "finding"] = "=HYPERLINK(1)"
    path = export_headline_numbers(evil, out)
    assert path == out
    back = pd.read_csv(out)
    assert list(back.columns) == list(HEADLINE_COLUMNS)
    assert back.loc[0, "finding"] == "'=HYPERLINK(1)"
    assert back["value"].dtype.kind == "f"  # numbers (negative ones too) stay numbers
    assert back["value"].tolist() == pytest.approx(evil["value"].tolist())
    assert [p.name for p in out.parent.iterdir()] == ["headline_numbers.csv"]
    with pytest.raises(ValueError, match="lack column"):
        export_headline_numbers(evil.drop(columns="basis"), out)


def test_no_draws_gives_point_values() -> None:
    f, s = _small(True)
    df = headline_numbers(f, s, P0, authorization_servers=AS_ALL, draws=0)
    assert (df["low"] == df["value"]).all()
    assert (df["high"] == df["value"]).all()
    assert df["finding"].str.contains("no joint draws").sum() >= 10
