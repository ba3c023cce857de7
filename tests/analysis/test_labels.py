"""Tests for tokenlib.analysis.labels: one label for every id, formats for reading."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tokenlib.analysis import labels as L
from tokenlib.analysis.controls import CONTROLS
from tokenlib.analysis.models import FAMILIES, MECHANISMS, SCENARIOS, VIEWS
from tokenlib.analysis.params import LABELS, parameter_specs
from tokenlib.analysis.schema import CLIENT_KINDS, CLIENT_PATHS, KEY_STORAGES

IDENT = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")
SCI = re.compile(r"\d[eE][+-]?\d")


def _is_human(text: str) -> bool:
    return (
        bool(text) and not IDENT.search(text) and (text[0] == text[0].upper() or text[:4] == "mTLS")
    )


@pytest.mark.parametrize("m", MECHANISMS, ids=lambda m: m.id)
def test_every_mechanism_has_its_model_label(m: object) -> None:
    assert L.label("mechanism", m.id) == m.label  # type: ignore[attr-defined]
    assert L.id_for("mechanism", m.label) == m.id  # type: ignore[attr-defined]
    assert L.id_for("mechanism", m.id) == m.id  # type: ignore[attr-defined]


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.id)
def test_every_scenario_has_its_model_label(s: object) -> None:
    assert L.label("scenario", s.id) == s.label  # type: ignore[attr-defined]
    assert _is_human(L.label("scenario", s.id))  # type: ignore[attr-defined]


def test_every_parameter_has_a_label_by_name_and_register_id() -> None:
    for spec in parameter_specs():
        text = L.label("parameter", spec.name)
        assert _is_human(text), (spec.name, text)
        assert L.label("parameter", spec.id) == text
        assert text.lower() == LABELS[spec.name].lower()


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("family", FAMILIES),
        ("view", VIEWS),
        ("client_path", CLIENT_PATHS),
        ("client_kind", CLIENT_KINDS),
        ("key_storage", KEY_STORAGES),
        ("basis", ("inventory", "sourced", "derived", "assumption")),
        ("metric", ("usable", "hours", "usable_share_today", "deployable_share_dpop_today")),
        ("control", tuple(c.id for c in CONTROLS)),
    ],
)
def test_every_kind_has_human_labels(kind: str, values: tuple[str, ...]) -> None:
    seen = [L.label(kind, v) for v in values]
    for v, text in zip(values, seen, strict=True):
        assert _is_human(text), (kind, v, text)
        assert text != v or (kind == "family" and v in {"DPoP"})
    assert len(set(seen)) == len(seen), seen


def test_control_labels_show_values_not_register_ids() -> None:
    for c in CONTROLS:
        assert not re.search(r"\bA\d+[a-z]?\b", L.label("control", c.id)), c.label
    assert L.label("control", "short_lifetime").endswith("5 min")


def test_metric_ids_are_parsed() -> None:
    text = L.label("metric", "token_theft_removed_dpop_nonce_shared_cache_upgraded")
    assert "DPoP with nonces and a shared jti store" in text
    assert "every RS upgraded" in text


def test_unknown_kind_raises_and_unknown_value_is_humanised() -> None:
    with pytest.raises(ValueError, match="unknown label kind"):
        L.label("colour", "x")
    assert L.label("client_kind", "quantum_fridge") == "Quantum fridge"
    with pytest.raises(ValueError, match="neither an id nor a label"):
        L.id_for("mechanism", "Carrier pigeon")
    # an existing label is returned unchanged
    assert L.label("mechanism", "Bearer token") == "Bearer token"


@pytest.mark.parametrize("exp", range(-6, 13))
@pytest.mark.parametrize("mantissa", [1.0, 2.592, 9.99])
def test_no_scientific_notation(exp: int, mantissa: float) -> None:
    x = mantissa * 10.0**exp
    for fn in (L.fmt_number, L.fmt_count, L.fmt_seconds, L.fmt_hours, L.fmt_usd, L.fmt_share):
        text = fn(x)
        assert not SCI.search(text), (fn.__name__, x, text)
        assert "e+" not in text
        assert "e-" not in text
        assert L.fmt_number(-x).startswith("\u2212")
    assert not SCI.search(L.fmt_value(x, "s"))
    assert not SCI.search(L.fmt_value(x, "USD"))


def test_shares_are_percentages() -> None:
    assert L.fmt_share(0.36) == "36%"
    assert L.fmt_share(0.881) == "88%"
    assert L.fmt_share(1) == "100%"
    assert L.fmt_share(0.0) == "0%"
    assert L.fmt_share(0.00098) == "0.1%"
    assert L.fmt_share(1e-7) == "<0.01%"
    assert L.fmt_share(0.3612, 1) == "36.1%"
    assert L.fmt_share(-0.046, 1) == "\u22124.6%"
    assert L.fmt_share(float("nan")) == "n/a"
    assert L.fmt_value(0.05, "probability") == "5%"
    assert L.fmt_value(0.012, "share") == "1.2%"


def test_durations_are_human() -> None:
    assert L.fmt_seconds(300) == "5 min"
    assert L.fmt_seconds(3600) == "1 h"
    assert L.fmt_seconds(86400) == "24 h"
    assert L.fmt_seconds(2_592_000) == "30 d"
    assert L.fmt_seconds(45) == "45 s"
    assert L.fmt_seconds(0) == "0 s"
    assert L.fmt_seconds(0.25) == "250 ms"
    assert L.fmt_seconds(1.5e-4) == "150 µs"
    assert L.fmt_hours(24) == "24 h"
    assert L.fmt_hours(0.5) == "30 min"
    assert L.fmt_value(2_592_000, "s") == "30 d"
    assert L.fmt_value(365, "days") == "365 d"


def test_counts_money_ranges() -> None:
    assert L.fmt_count(5000) == "5,000"
    assert L.fmt_count(np.int64(1234567)) == "1,234,567"
    assert L.fmt_count(None) == "n/a"
    assert L.fmt_usd(7_000_000) == "$7.0M"
    assert L.fmt_usd(12_500) == "$12.5k"
    assert L.fmt_usd(800) == "$800"
    assert L.fmt_usd(0.05) == "$0.05"
    assert L.fmt_range(0.45, 0.23, 0.72, "share") == "45% (23\u201372%)"
    assert L.fmt_range(0.45, 0.45, 0.45, "share") == "45%"
    assert L.fmt_range(5000, 4000, 6000, "count") == "5,000 (4,000\u20136,000)"
    assert L.fmt_value(2, "hops") == "2 hops"
    assert L.fmt_value(1, "engineer-days") == "1 engineer-day"


def _frame() -> pd.DataFrame:
    long = "a reason that is long enough to need wrapping " * 6
    return pd.DataFrame(
        {
            "mechanism": ["bearer", "dpop_shared_cache"],
            "usable": [0.53, 0.00098],
            "n_flows": [5000, 12],
            "reasons": [long, "short"],
            "ok": [True, False],
            "big": [2.592e6, 1.5e-4],
        },
        index=[7, 9],
    )


def test_present_human_headers_values_no_index_no_truncation() -> None:
    df = _frame()
    styled = L.present(
        df,
        {
            "mechanism": "Mechanism",
            "usable": "Still usable",
            "n_flows": "Flows",
            "reasons": "Why",
            "ok": "Holds",
            "big": "Value",
        },
        {"usable": L.fmt_share},
    )
    html = styled.to_html()
    assert "DPoP with a shared jti store" in html
    assert "dpop_shared_cache" not in html
    assert "Still usable" in html
    assert "53%" in html
    assert "0.1%" in html
    assert "5,000" in html
    assert "Yes" in html
    assert "2,592,000" in html
    assert df["reasons"].iloc[0].strip() in html  # the whole text, not truncated
    assert "…" not in html
    assert "..." not in html
    text = re.sub(r"<[^>]*>", " ", html.split("</style>")[-1])  # visible text, not element ids
    assert not SCI.search(text)
    assert ">7<" not in html
    assert ">9<" not in html
    assert "white-space: normal" in html
    plain = L.present(df, {"usable": "Still usable"}, {"Still usable": L.fmt_share}, styler=False)
    assert list(plain.columns) == ["Still usable"]
    assert list(plain.index) == [0, 1]
    assert plain.iloc[0, 0] == "53%"


def test_present_defaults_and_errors() -> None:
    out = L.present(_frame(), styler=False)
    assert "N flows" in out.columns
    assert out["Mechanism"].iloc[0] == "Bearer token"
    kinds = L.present(
        pd.DataFrame({"path": ["gateway_terminated"]}),
        {"path": "Client path"},
        kinds={"path": "client_path"},
        styler=False,
    )
    assert kinds.iloc[0, 0] == L.label("client_path", "gateway_terminated")
    with pytest.raises(KeyError, match="no column"):
        L.present(_frame(), {"nope": "Nope"})
