"""Shared helpers for the importer tests: sample paths, copies with documented edits, lookups."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tokenlib.analysis.importers import ImportResult

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample(name: str) -> Path:
    """Path of a sample file (``source/file.json``)."""
    path = SAMPLES / name
    assert path.is_file(), path
    return path


def edited(tmp_path: Path, name: str, edit: Callable[[Any], None]) -> Path:
    """A copy of sample ``name`` with ``edit`` applied to its parsed JSON (the sample itself
    stays byte for byte as the vendor published it)."""
    doc = json.loads(sample(name).read_text(encoding="utf-8"))
    edit(doc)
    out = tmp_path / Path(name).name
    out.write_text(json.dumps(doc), encoding="utf-8")
    return out


def flow(result: ImportResult, client_id: str) -> pd.Series:
    """The single flow of ``client_id``."""
    flows = result.inventory.flows
    rows = flows[flows["client_id"] == client_id]
    assert len(rows) == 1, (client_id, rows)
    return rows.iloc[0]


def prov(result: ImportResult, flow_id: str, column: str, table: str = "flows") -> tuple[str, str]:
    """(source, detail) of one cell."""
    p = result.provenance
    hit = p[(p["table"] == table) & (p["id"] == flow_id) & (p["column"] == column)]
    assert len(hit) == 1, (flow_id, column, hit)
    return str(hit.iloc[0]["source"]), str(hit.iloc[0]["detail"])


def kinds(result: ImportResult) -> dict[str, set[str]]:
    """Finding kind -> ids."""
    out: dict[str, set[str]] = {}
    for f in result.findings:
        out.setdefault(f.kind, set()).add(f.id)
    return out
