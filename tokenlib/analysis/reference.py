"""Sourced reference tables under ``data/reference/``.

Every row of every reference table carries ``source`` (where the value comes from) and
``status`` (``sourced`` / ``derived`` / ``assumption``, the [S]/[D]/[A] tags of the domain
brief). :func:`load_reference` validates both for any table and, for the tables specified in
:data:`tokenlib.analysis.schema.REFERENCE_TABLES`, every column's type, enum and range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tokenlib.analysis import _validate as V
from tokenlib.analysis import schema as S
from tokenlib.analysis.inventory import InventoryError, _read, data_dir

__all__ = ["REFERENCE_TABLES", "load_reference", "reference_dir", "reference_names"]

REFERENCE_TABLES = S.REFERENCE_TABLES


def reference_dir() -> Path:
    """``data/reference`` of the source checkout."""
    return data_dir() / "reference"


def reference_names() -> tuple[str, ...]:
    """Names of the reference tables present (file stems), sorted."""
    return tuple(sorted(p.stem for p in reference_dir().glob("*.csv")))


def _generic_spec(name: str, frame: pd.DataFrame) -> S.TableSpec:
    known = {"source", "status"}
    cols = [
        S.Column(str(c), "string", "(documented by the table's owner)")
        for c in frame.columns
        if str(c).strip().lower() not in known
    ]
    status = S.Column(
        "status", "category", "sourced/derived/assumption", required=True, allowed=S.STATUSES
    )
    source = S.Column("source", "string", "where the value comes from", required=True)
    return S.TableSpec(name, f"reference/{name}.csv", name, "", (*cols, source, status))


def load_reference(name: str, *, path: str | Path | None = None) -> pd.DataFrame:
    """Reference table ``name`` (e.g. ``"token_lifetimes"``) as a typed DataFrame.

    Raises :class:`~tokenlib.analysis.inventory.InventoryError` listing every row whose
    ``source`` is empty or whose ``status`` is not sourced/derived/assumption, and (for tables
    in :data:`REFERENCE_TABLES`) every type, enum, range or uniqueness problem.
    """
    file = Path(path) if path is not None else reference_dir() / f"{name}.csv"
    if path is None and not file.is_file():
        raise ValueError(
            f"unknown reference table {name!r}; available: {', '.join(reference_names())}"
        )
    raw, rows, _ = _read(file, name)
    spec = S.REFERENCE_TABLES.get(name) or _generic_spec(name, raw)
    res = V.parse_table(raw, spec, file=str(file), rows=rows)
    errors = [p for p in res.problems if p.severity == "error"]
    if errors:
        raise InventoryError(errors)
    out: dict[str, object] = {}
    for col in spec.columns:
        values = res.frame[col.name]
        empty = res.needs_default[col.name]
        if col.kind == "category":
            codes = np.where(empty, -1, np.asarray(values, dtype=np.int64))
            out[col.name] = pd.Categorical.from_codes(codes, categories=list(col.allowed))
        elif col.kind == "integer":
            ints = pd.array(np.asarray(values, dtype=np.int64), dtype="Int64")
            ints[empty] = pd.NA
            out[col.name] = ints
        elif col.kind == "boolean":
            out[col.name] = np.asarray(values, dtype=bool)
        else:
            out[col.name] = pd.array(np.asarray(values, dtype=object), dtype="str")
    frame = pd.DataFrame(out)
    for extra in res.frame.columns:
        if extra not in frame.columns:
            frame[extra] = res.frame[extra].to_numpy()
    return frame
