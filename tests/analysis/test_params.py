"""Tests for tokenlib.analysis.params: the parameter register and its file format."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from tokenlib.analysis.params import (
    STATUSES,
    ModelParameters,
    ParameterError,
    load_crypto_costs,
    parameter_specs,
    parameter_table,
)

REGISTER = [f"A{i}" for i in range(1, 11)]


def _rows() -> list[dict[str, str]]:
    path = Path(__file__).resolve().parents[2] / "data" / "reference" / "model_parameters.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write(tmp_path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    cols = columns or list(rows[0])
    p = tmp_path / "params.csv"
    with open(p, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return p


def test_every_register_assumption_is_present_with_metadata() -> None:
    specs = parameter_specs()
    ids = {s.id for s in specs}
    for rid in REGISTER:
        assert any(i == rid or (i.startswith(rid) and not i[len(rid)].isdigit()) for i in ids), rid
    for s in specs:
        assert s.status in STATUSES
        assert s.source
        assert s.low <= s.value <= s.high
        assert s.unit


def test_register_assumptions_are_tagged_assumption() -> None:
    for s in parameter_specs():
        if s.id[0] == "A":
            assert s.status == "assumption", s.id
        if s.id[0] == "S":
            assert s.status == "sourced", s.id
        if s.id[0] == "D":
            assert s.status == "derived", s.id


def test_reference_values_match_dataclass_defaults() -> None:
    ref = ModelParameters.from_reference()
    assert ref == ModelParameters()
    assert set(ModelParameters.names()) == {s.name for s in parameter_specs()}


def test_replace_returns_tuned_copy() -> None:
    p = ModelParameters.from_reference()
    q = p.replace(e_rs=0.5, p_inj=0.1)
    assert (q.e_rs, q.p_inj) == (0.5, 0.1)
    assert p.e_rs == 0.9
    assert dataclasses.is_dataclass(q)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.e_rs = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"no_such": 1.0}, "unknown_override"),
        ({"e_rs": -0.1}, "invalid_value"),
        ({"e_rs": 1.5}, "invalid_value"),
        ({"revocation_delay_s": float("inf")}, "invalid_value"),
        ({"q_secret": True}, "invalid_value"),
    ],
)
def test_replace_rejects_bad_values(overrides: dict[str, float], code: str) -> None:
    with pytest.raises(ParameterError) as info:
        ModelParameters.from_reference().replace(**overrides)
    assert info.value.code == code


def _mutate(kind: str, rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[str] | None]:
    rows = [dict(r) for r in rows]
    cols: list[str] | None = None
    if kind == "missing_column":
        cols = [c for c in rows[0] if c != "source"]
    elif kind == "bad_status":
        rows[0]["status"] = "guess"
    elif kind == "out_of_range":
        rows[0]["low"] = "0.99"
    elif kind == "unknown_name":
        rows[0]["name"] = "nope"
    elif kind == "duplicate":
        rows.append(dict(rows[0]))
    elif kind == "missing_parameter":
        rows = rows[1:]
    elif kind == "not_a_number":
        rows[0]["value"] = "abc"
    elif kind == "no_source":
        rows[0]["source"] = " "
    return rows, cols


@pytest.mark.parametrize(
    "code",
    [
        "missing_column",
        "bad_status",
        "out_of_range",
        "unknown_name",
        "duplicate",
        "missing_parameter",
        "not_a_number",
        "no_source",
    ],
)
def test_bad_parameter_files_fail_with_code(tmp_path: Path, code: str) -> None:
    rows, cols = _mutate(code, _rows())
    path = _write(tmp_path, rows, cols)
    with pytest.raises(ParameterError) as info:
        ModelParameters.from_reference(path)
    assert info.value.code == code
    assert "params.csv" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as info:
        ModelParameters.from_reference(tmp_path / "absent.csv")
    assert info.value.code == "not_found"


def test_custom_file_values_are_used(tmp_path: Path) -> None:
    rows = _rows()
    for r in rows:
        if r["name"] == "e_rs":
            r["value"] = "0.6"
    p = ModelParameters.from_reference(_write(tmp_path, rows))
    assert p.e_rs == 0.6


def test_parameter_table_marks_overrides() -> None:
    t = parameter_table(ModelParameters.from_reference().replace(q_secret=0.2))
    row = t.set_index("name").loc["q_secret"]
    assert row["overridden"]
    assert row["current"] == 0.2
    assert not t.set_index("name").loc["e_rs", "overridden"]
    assert {"id", "status", "source", "low", "high"} <= set(t.columns)


def test_crypto_costs_default_when_missing(tmp_path: Path) -> None:
    c = load_crypto_costs(tmp_path / "dpop.json")
    assert c.status == "assumption"
    assert c.sign_s == ModelParameters().dpop_sign_cost_s


@pytest.mark.parametrize(
    ("payload", "sign", "verify"),
    [
        ({"create_proof_us": 50.0, "verify_proof_us": 120.0}, 50e-6, 120e-6),
        ({"results": {"sign_ms": 0.2, "verify_ms": 0.4}}, 0.2e-3, 0.4e-3),
        ({"create_proof_ops_per_s": 1000.0, "verify_proof_ops_per_s": 500.0}, 1e-3, 2e-3),
    ],
)
def test_crypto_costs_from_benchmark(
    tmp_path: Path, payload: dict[str, object], sign: float, verify: float
) -> None:
    p = tmp_path / "dpop.json"
    p.write_text(json.dumps(payload), encoding="utf-8")
    c = load_crypto_costs(p)
    assert c.status == "sourced"
    assert c.sign_s == pytest.approx(sign)
    assert c.verify_s == pytest.approx(verify)
    tuned = ModelParameters().with_measured_costs(c)
    assert tuned.dpop_verify_cost_s == pytest.approx(verify)


def test_unusable_benchmark_file_falls_back(tmp_path: Path) -> None:
    p = tmp_path / "dpop.json"
    p.write_text("{not json", encoding="utf-8")
    assert load_crypto_costs(p).status == "assumption"
    assert ModelParameters().with_measured_costs(load_crypto_costs(p)) == ModelParameters()


def test_crypto_costs_from_tokenlib_benchmark_layout(tmp_path: Path) -> None:
    payload = {
        "unit": "microseconds per operation",
        "ratios": {"create_proof_vs_sign": 1.4},
        "timings": {
            "create_proof": {"best": 20.0, "median": 35.0},
            "verify_proof": {"best": 70.0, "median": 100.0},
        },
    }
    p = tmp_path / "dpop.json"
    p.write_text(json.dumps(payload), encoding="utf-8")
    c = load_crypto_costs(p)
    assert c.status == "sourced"
    assert (c.sign_s, c.verify_s) == (pytest.approx(35e-6), pytest.approx(100e-6))
