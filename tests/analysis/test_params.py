"""Tests for tokenlib.analysis.params: the parameter register and its file format."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from tokenlib.analysis.params import (
    DOCS_BEGIN,
    DOCS_END,
    LABELS,
    STATUSES,
    ModelParameters,
    ParameterError,
    load_crypto_costs,
    parameter_label,
    parameter_markdown,
    parameter_specs,
    parameter_table,
    write_parameter_docs,
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


# --- issue 8: new parameters, renamed and removed ones ------------------------------------------

NEW_PARAMETERS = {
    "A23a": ("ttu_fast_share", 0.5, 0.2, 0.9),
    "A23b": ("ttu_fast_mean_s", 60.0, 10.0, 600.0),
    "A23c": ("ttu_slow_mean_s", 86_400.0, 3_600.0, 1_209_600.0),
    "A24a": ("scope_factor_read", 0.5, 0.2, 1.0),
    "A24b": ("scope_factor_write", 1.0, 1.0, 1.0),
    "A24c": ("scope_factor_admin", 2.0, 1.0, 4.0),
    "A25a": ("env_factor_staging", 0.3, 0.1, 0.6),
    "A25b": ("env_factor_dev", 0.1, 0.0, 0.3),
    "A26": ("p_store_no_channel", 0.1, 0.0, 0.3),
    "A27a": ("cost_lifetime_days", 0.5, 0.25, 2.0),
    "A27b": ("cost_rt_rotation_days", 1.0, 0.5, 5.0),
    "A27c": ("cost_audience_days", 2.0, 0.5, 10.0),
    "A27d": ("cost_token_exchange_days", 5.0, 2.0, 20.0),
    "A27e": ("cost_key_storage_days", 3.0, 1.0, 15.0),
    "A27f": ("cost_bff_days", 15.0, 5.0, 40.0),
    "A27g": ("cost_enforcement_test_days", 0.5, 0.25, 2.0),
    "A28": ("short_lifetime_s", 300.0, 60.0, 900.0),
    "A29": ("revocation_delay_s", 432_000.0, 3_600.0, 2_764_800.0),
}


@pytest.mark.parametrize("pid", sorted(NEW_PARAMETERS))
def test_new_parameters_load_with_the_contract_values(pid: str) -> None:
    name, value, low, high = NEW_PARAMETERS[pid]
    spec = {s.id: s for s in parameter_specs()}[pid]
    assert (spec.name, spec.value, spec.low, spec.high) == (name, value, low, high)
    assert spec.status == "assumption"
    assert len(spec.source) > 20
    assert getattr(ModelParameters.from_reference(), name) == value
    assert getattr(ModelParameters(), name) == value


def test_new_probabilities_are_bounded() -> None:
    for name in ("ttu_fast_share", "p_store_no_channel"):
        with pytest.raises(ParameterError) as info:
            ModelParameters().replace(**{name: 1.5})
        assert info.value.code == "invalid_value"
    # factors may exceed 1
    assert ModelParameters().replace(scope_factor_admin=3.0).scope_factor_admin == 3.0


def test_time_to_use_sources_cite_breach_and_honeypot_reports() -> None:
    specs = {s.id: s for s in parameter_specs()}
    assert "Salesloft" in specs["A23a"].source
    assert "Okta" in specs["A23a"].source
    assert "honeypot" in specs["A23b"].source
    assert "model assumption" in specs["A23c"].source


def test_revocation_delay_is_an_anchored_assumption_not_sourced() -> None:
    ids = {s.id for s in parameter_specs()}
    assert "S1" not in ids
    a29 = {s.id: s for s in parameter_specs()}["A29"]
    assert a29.name == "revocation_delay_s"
    assert a29.status == "assumption"
    assert "GitHub/Heroku" in a29.source
    assert "one incident is not a distribution" in a29.source


def test_iat_future_default_is_removed() -> None:
    assert "dpop_iat_future_default_s" not in ModelParameters.names()
    assert "D2" not in {s.id for s in parameter_specs()}
    assert not hasattr(ModelParameters(), "dpop_iat_future_default_s")
    with pytest.raises(ParameterError) as info:
        ModelParameters().replace(dpop_iat_future_default_s=60.0)
    assert info.value.code == "unknown_override"


def test_proof_window_range_includes_curity() -> None:
    d1 = {s.id: s for s in parameter_specs()}["D1"]
    assert (d1.low, d1.value, d1.high) == (10.0, 60.0, 300.0)
    assert "Curity" in d1.source
    impl = _impl_rows()
    curity = impl["Curity"]
    assert float(curity["iat_past_s"]) == d1.low
    pasts = [float(r["iat_past_s"]) for r in impl.values() if r["iat_past_s"].strip()]
    assert (min(pasts), max(pasts)) == (d1.low, d1.high)


def _impl_rows() -> dict[str, dict[str, str]]:
    path = Path(__file__).resolve().parents[2] / "data" / "reference" / "dpop_implementations.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["implementation"]: r for r in csv.DictReader(fh)}


def test_every_parameter_is_a_field_with_a_register_comment() -> None:
    src = (Path(__file__).resolve().parents[2] / "tokenlib" / "analysis" / "params.py").read_text(
        encoding="utf-8"
    )
    for s in parameter_specs():
        assert f"    {s.name}: float = " in src, s.name
        line = next(x for x in src.splitlines() if x.startswith(f"    {s.name}: float = "))
        assert f"# {s.id}" in line, (s.name, line)


def test_model_parameters_doc_is_generated_from_the_csv() -> None:
    doc = Path(__file__).resolve().parents[2] / "data" / "reference" / "MODEL_PARAMETERS.md"
    text = doc.read_text(encoding="utf-8")
    start = text.index(DOCS_BEGIN) + len(DOCS_BEGIN) + 1
    end = text.index(DOCS_END)
    assert text[start:end] == parameter_markdown(), "run: python -m tokenlib.analysis.params"
    for s in parameter_specs():
        assert f"| {s.id} | `{s.name}` |" in text
    assert "dpop_iat_future_default_s" in text[end:]  # listed under "Removed parameters"


def test_write_parameter_docs_rewrites_only_the_generated_section(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{DOCS_BEGIN}\nstale\n{DOCS_END}\noutro\n", encoding="utf-8")
    assert write_parameter_docs(doc)
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("intro\n")
    assert text.endswith(f"{DOCS_END}\noutro\n")
    assert "stale" not in text
    assert "`ttu_fast_share`" in text
    assert not write_parameter_docs(doc)
    (tmp_path / "bad.md").write_text("no markers", encoding="utf-8")
    with pytest.raises(ParameterError):
        write_parameter_docs(tmp_path / "bad.md")


def test_every_parameter_has_a_label() -> None:
    assert set(LABELS) == set(ModelParameters.names())
    assert all(label and not label.endswith(".") for label in LABELS.values())


def test_label_names_the_register_id() -> None:
    assert parameter_label("e_rs") == "resource servers enforcing the binding (A2)"
    assert parameter_label("no_such_parameter") == "no_such_parameter"
