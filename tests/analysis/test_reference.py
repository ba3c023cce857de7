"""Reference tables: every row sourced and tagged; the Token Binding facts are the sourced ones."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tokenlib.analysis import schema as S
from tokenlib.analysis.inventory import InventoryError
from tokenlib.analysis.reference import load_reference, reference_names

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize("name", sorted(S.REFERENCE_TABLES))
def test_table_loads_with_typed_columns(name: str) -> None:
    frame = load_reference(name)
    spec = S.REFERENCE_TABLES[name]
    assert list(frame.columns[: len(spec.columns)]) == list(spec.names)
    assert len(frame) > 0
    assert set(frame["status"].astype(str)) <= set(S.STATUSES)
    assert (frame["source"].str.len() > 10).all()
    for col in spec.columns:
        if col.kind == "integer":
            assert str(frame[col.name].dtype) == "Int64"


def test_every_reference_file_has_source_and_status() -> None:
    names = reference_names()
    assert set(S.REFERENCE_TABLES) <= set(names)
    for name in names:
        frame = load_reference(name)
        assert {"source", "status"} <= set(frame.columns), name


def test_token_binding_timeline_says_what_the_sources_show() -> None:
    tb = load_reference("token_binding_timeline")
    edge130 = tb[(tb["date"] == "2024-10-17") & (tb["event"] == "removed")]
    assert len(edge130) == 1
    assert edge130["actor"].iloc[0] == "Microsoft Edge"
    assert "130" in edge130["description"].iloc[0]
    assert "last browser support" in edge130["description"].iloc[0]
    chrome = tb[tb["actor"] == "Google Chrome"]
    assert "shipped" not in set(chrome["event"].astype(str))
    assert "implemented_flag" in set(chrome["event"].astype(str))
    assert "never on by default" in " ".join(chrome["description"])
    correction = tb[tb["event"] == "correction"]
    assert len(correction) == 1
    text = correction["description"].iloc[0]
    assert "Chrome 130" in text
    assert "Microsoft Edge" in text
    assert "not what the sources show" in text
    assert correction["status"].iloc[0] == "derived"
    unknown_chrome_removal = chrome[chrome["event"] == "removed"]
    assert (unknown_chrome_removal["date_precision"] == "unknown").all()


def test_lifetime_anchors() -> None:
    lt = load_reference("token_lifetimes").set_index("row_id")
    assert lt.loc["keycloak_at", "value_s"] == 300
    assert lt.loc["auth0_at_default", "value_s"] == 86400
    assert (lt.loc["entra_at_min", "value_s"], lt.loc["entra_at_max", "value_s"]) == (3600, 5400)
    assert lt.loc["entra_at_mean", "value_s"] == 4500
    assert lt.loc["entra_at_mean", "status"] == "derived"
    assert lt.loc["auth0_rt_absolute", "status"] == "assumption"
    assert pd.isna(lt.loc["github_oauth_app", "value_s"])


def test_breach_anchors() -> None:
    br = load_reference("breaches").set_index("incident_id")
    assert set(br.index) >= {
        "github_heroku_2022",
        "okta_support_2023",
        "storm0558_2023",
        "internet_archive_2024",
        "salesloft_drift_2025",
    }
    assert br.loc["storm0558_2023", "sender_constraint_helps"] == "no"
    for channels in br["exposure_channel"]:
        assert set(channels.split(";")) <= set(S.EXPOSURE_CHANNELS)


BAD_ROWS = [
    ("status", "x,2024,year,browser,Edge,removed,desc,some source,rumour", "status", "enum"),
    ("no_source", "x,2024,year,browser,Edge,removed,desc,,sourced", "source", "missing_value"),
    ("event", "x,2024,year,browser,Edge,vanished,desc,some source,sourced", "event", "enum"),
]


@pytest.mark.parametrize(
    ("row", "column", "code"), [b[1:] for b in BAD_ROWS], ids=[b[0] for b in BAD_ROWS]
)
def test_bad_reference_rows(tmp_path: Path, row: str, column: str, code: str) -> None:
    header = (DATA / "reference" / "token_binding_timeline.csv").read_text().splitlines()[0]
    path = tmp_path / "tb.csv"
    path.write_text(header + "\n" + row + "\n")
    with pytest.raises(InventoryError) as info:
        load_reference("token_binding_timeline", path=path)
    assert [(p.row, p.column, p.code) for p in info.value.problems] == [(2, column, code)]


def test_tables_without_a_spec_still_need_source_and_status(tmp_path: Path) -> None:
    path = tmp_path / "extra.csv"
    path.write_text("name,value,source,status\na,1,doc,sourced\nb,2,,guess\n")
    with pytest.raises(InventoryError) as info:
        load_reference("extra", path=path)
    assert {(p.row, p.column, p.code) for p in info.value.problems} == {
        (3, "source", "missing_value"),
        (3, "status", "enum"),
    }


def test_unknown_table() -> None:
    with pytest.raises(ValueError, match="unknown reference table 'nope'"):
        load_reference("nope")
