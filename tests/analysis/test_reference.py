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


# --- issue 8: facts corrected in the model reference tables ------------------------------------


def _timeline() -> pd.DataFrame:
    return load_reference("adoption_timeline")


def _rows(tl: pd.DataFrame, mechanism: str, component: str) -> pd.DataFrame:
    sel = (tl["mechanism"] == mechanism) & (tl["component"] == component)
    return tl[sel].sort_values("date")


def test_every_timeline_row_has_a_source_and_status() -> None:
    tl = _timeline()
    assert tl["source"].str.strip().str.len().gt(10).all()
    assert set(tl["status"].astype(str)) <= set(S.STATUSES)
    # a share between 0 and 1 exclusive is never data: there is no usage survey
    mid = tl[(tl["share"].astype(float) > 0) & (tl["share"].astype(float) < 1)]
    assert (mid["status"] == "assumption").all(), mid[mid["status"] != "assumption"]
    assert mid["source"].str.contains("assumption").all()


def test_dpop_rs_events_carry_their_real_dates() -> None:
    rs = _rows(_timeline(), "dpop", "rs")
    by_date = dict(zip(rs["date"], rs["source"], strict=True))
    # no undifferentiated "Keycloak, Duende, Auth0, Curity support" row dated 2024-01-01
    assert "2024-01-01" not in by_date
    # Keycloak: preview from 23.0.0, officially supported from 26.4 (keycloak.org, 2025-10-09)
    assert "Keycloak 23.0.0" in by_date["2023-11-23"]
    assert "preview" in by_date["2023-11-23"]
    assert "Keycloak 26.4" in by_date["2025-10-09"]
    # Spring Security 6.5.0 was released on 2025-05-19, not 2025-01-01
    assert "Spring Security 6.5.0" in by_date["2025-05-19"]
    assert not any("Spring" in src for d, src in by_date.items() if d < "2025-05-19")
    # Auth0: "2024, no definite ETA" (Nov 2023), early access 2025, GA 2026-03-03
    assert "Early Access" in by_date["2025-06-19"]
    assert "no definite ETA" in by_date["2025-06-19"]
    assert "GA" in by_date["2026-03-03"]
    assert not any("Auth0" in src for d, src in by_date.items() if d < "2025-06-19")
    shares = rs["share"].astype(float).to_numpy()
    assert (shares[1:] >= shares[:-1]).all()


def test_windows_1607_is_not_credited_with_browser_token_binding() -> None:
    tl = _timeline()
    browser = _rows(tl, "token_binding", "client_browser")
    b = dict(zip(browser["date"], browser["share"].astype(float), strict=True))
    assert b["2016-08-02"] == 0.0  # caniuse: IE 11 and Edge 12-14 "n"
    assert b["2017-04-11"] > 0  # legacy Edge 15 on Windows 10 1703
    assert all(v == 0.0 for d, v in b.items() if d < "2017-04-11")
    other = _rows(tl, "token_binding", "client_other")
    o = dict(zip(other["date"], other["source"], strict=True))
    assert "WinINet/HTTP.SYS" in o["2016-08-02"]
    assert "1607" in o["2016-08-02"]
    tb = load_reference("token_binding_timeline").set_index("row_id")
    assert "not browser support" in tb.loc["tb02", "description"]
    assert (tb.loc["tb03", "date"], tb.loc["tb03", "date_precision"]) == ("2017-04-11", "day")
    assert "First browser support" in tb.loc["tb03", "description"]


def test_timeline_dpop_proxy_share_is_the_weakest_terminating_hop() -> None:
    """Rule: the timeline has one DPoP ``proxy`` share for every TLS-terminating hop; it equals
    the minimum DPoP support over the terminating hops (``*:terminate`` and
    ``*:terminate_forward_cert``) of component_support.csv, and is tagged assumption."""
    cs = load_reference("component_support")
    hops = cs[(cs["component"] == "hop") & (cs["mechanism"] == "dpop")]
    terminating = hops[~hops["value"].str.endswith(":passthrough")]
    proxy = _rows(_timeline(), "dpop", "proxy")
    assert len(proxy) == 1
    assert float(proxy["share"].iloc[0]) == terminating["support"].astype(float).min()
    assert proxy["status"].iloc[0] == "assumption"
    assert "component_support.csv" in proxy["source"].iloc[0]


def test_structural_zero_for_browser_mtls_is_derived_not_sourced() -> None:
    cs = load_reference("component_support")
    row = cs[(cs["value"] == "browser_spa") & (cs["mechanism"] == "mtls")].iloc[0]
    assert (float(row["support"]), row["status"]) == (0.0, "derived")
    tl = _rows(_timeline(), "mtls", "client_browser")
    assert (tl["status"] == "derived").all()


def test_curity_row_sets_the_shortest_proof_window() -> None:
    impl = load_reference("dpop_implementations").set_index("implementation")
    past = pd.to_numeric(impl["iat_past_s"], errors="coerce").dropna()
    assert past.min() == 10
    assert past.idxmin() == "Curity"
