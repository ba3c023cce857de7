"""The lab's result rows without servers: parsing an answer, building the table, the CSV
(atomic) and the figures, from a synthetic run that matches the expectations."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from tokenlib.lab.results import COLUMNS, _frame, _Outcome, _outcome, _write_csv_atomic, plot_lab
from tokenlib.lab.scenarios import expectation, scenarios


def test_outcome_reads_error_from_challenge_or_body() -> None:
    refused = httpx.Response(
        401, headers={"WWW-Authenticate": 'DPoP error="invalid_dpop_proof", algs="ES256"'}
    )
    assert _outcome(refused, 1.0).error == "invalid_dpop_proof"
    body = httpx.Response(400, json={"error": "invalid_request", "error_description": "two"})
    parsed = _outcome(body, 2.0)
    assert (parsed.error, parsed.error_description) == ("invalid_request", "two")
    ok = httpx.Response(200, json={"instance": 1})
    assert _outcome(ok, 3.0).rs_instance == 1
    assert _outcome(httpx.Response(502, text="<html>"), 1.0).error == "http_502"


@pytest.fixture
def synthetic() -> pd.DataFrame:
    order = scenarios(["per_instance_memory", "shared_redis"])
    results = {}
    for i, (cache, binding, mode, attack) in enumerate(order):
        accepted, _ = expectation(binding, mode, attack, cache)
        results[i] = _Outcome(accepted, 200 if accepted else 401, None, None, 0, 5.0 + i % 3)
    bearer = {(c, m): 5.0 for c, _, m, _ in order}
    return _frame(order, results, bearer)


def test_frame_has_the_contract_columns(synthetic: pd.DataFrame) -> None:
    assert list(synthetic.columns) == list(COLUMNS)
    assert synthetic["matches_expected"].all()
    flagged = synthetic[synthetic.flag != ""]
    assert set(flagged.flag) == {"bearer_replay", "binding_broken", "header_injection",
                                 "proof_replay"}  # fmt: skip
    assert synthetic.loc[synthetic.attack != "baseline", "added_latency_ms"].isna().all()


def test_csv_round_trip(tmp_path: Path, synthetic: pd.DataFrame) -> None:
    path = tmp_path / "lab.csv"
    _write_csv_atomic(synthetic, path)
    back = pd.read_csv(path)
    assert list(back.columns) == list(COLUMNS)
    assert back["accepted"].tolist() == synthetic["accepted"].tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["lab.csv"]


def test_plot_lab_labels(synthetic: pd.DataFrame) -> None:
    matrix, latency = plot_lab(synthetic)
    for fig in (matrix, latency):
        ax = fig.axes[0]
        assert ax.get_title(loc="left")
        assert ax.get_xlabel()
        assert ax.get_ylabel()
