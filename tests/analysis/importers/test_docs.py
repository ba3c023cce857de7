"""data/IMPORTERS.md is generated from the importers' mapping tables and kept in step."""

from __future__ import annotations

from pathlib import Path

from tokenlib.analysis.importers import MAPPINGS, SOURCES
from tokenlib.analysis.importers._docs import render_importers_md

DATA = Path(__file__).resolve().parents[3] / "data"


def test_importers_md_is_up_to_date() -> None:
    assert (DATA / "IMPORTERS.md").read_text(encoding="utf-8") == render_importers_md(), (
        "data/IMPORTERS.md is stale: run python -m tokenlib.analysis.inventory bundle"
    )


def test_every_mapping_row_is_documented() -> None:
    text = render_importers_md()
    for source in SOURCES:
        assert f"(`{source}`)" in text
        for row in MAPPINGS[source]:
            assert f"| `{row.column}` |" in text
    for column in ("client_id", "client_kind", "binding", "access_token_lifetime_s"):
        for source in SOURCES:
            assert any(r.column == column for r in MAPPINGS[source]), (source, column)
