"""Where every value of an inventory came from: registered, observed, declared, assumed, synthetic.

Numbers a user sees need a basis. An inventory imported from an identity provider mixes values
the IdP states (a client's binding, its lifetimes), values nobody wrote down (request-path hops,
key storage, request volume) that get a documented default, values the user declares in an
overlay file, and — later — values observed in access logs. The *provenance table* records,
for each column of each row, which of these it is:

``provenance.csv`` beside ``flows.csv`` (columns :data:`PROVENANCE_COLUMNS`):

=========  ==========================================================================
``table``  ``flows``, ``services`` or ``authorization_servers``
``id``     ``flow_id`` / ``service_id`` / ``as_id`` of the row, or ``*`` for every row
``column`` the inventory column, or ``*`` for every column
``source`` one of :data:`SOURCES`
``detail`` the source field or rule (e.g. ``keycloak clients[3].attributes.dpop.bound…``)
=========  ==========================================================================

``registered``
    stated by the identity provider's client registration (import);
``observed``
    measured in gateway or resource-server access logs;
``declared``
    written by the user in an overlay file kept beside the import;
``assumed``
    the documented default, because no source says it;
``synthetic``
    drawn by the synthetic generator (``tokenlib inventory generate``): describes no one.

A more specific row wins over a wildcard row (``id`` and ``column`` given > ``id`` given >
``column`` given > neither). :func:`summarise_provenance` counts the cells of an inventory by
source (the report shows the share of assumed values); without a provenance table it falls back
on the loader's report: cells the loader filled with a default are ``assumed``, the rest
``declared`` (a hand-written CSV).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tokenlib.analysis import schema as S
from tokenlib.analysis._csv import write_csv
from tokenlib.analysis._validate import Problem

if TYPE_CHECKING:  # pragma: no cover
    from tokenlib.analysis.inventory import Inventory

__all__ = [
    "PROVENANCE_COLUMNS",
    "PROVENANCE_FILE",
    "SOURCES",
    "ProvenanceSummary",
    "find_provenance",
    "load_provenance",
    "provenance_frame",
    "summarise_provenance",
    "synthetic_provenance",
    "write_provenance",
]

#: Where a value came from, most trusted first (merge precedence: observed > registered >
#: declared > assumed; synthetic never mixes with the others).
SOURCES: tuple[str, ...] = ("observed", "registered", "declared", "assumed", "synthetic")
PROVENANCE_COLUMNS: tuple[str, ...] = ("table", "id", "column", "source", "detail")
PROVENANCE_FILE = "provenance.csv"
TABLES: Mapping[str, S.TableSpec] = {
    "flows": S.FLOWS,
    "services": S.SERVICES,
    "authorization_servers": S.AUTHORIZATION_SERVERS,
}
WILDCARD = "*"


def provenance_frame(rows: Sequence[Sequence[str]] = ()) -> pd.DataFrame:
    """A provenance table (columns :data:`PROVENANCE_COLUMNS`, all text) from row tuples."""
    frame = pd.DataFrame(list(rows), columns=list(PROVENANCE_COLUMNS), dtype=object)
    return frame.fillna("")


def synthetic_provenance(detail: str) -> pd.DataFrame:
    """Provenance of a generated inventory: every cell of every table is ``synthetic``."""
    return provenance_frame([(t, WILDCARD, WILDCARD, "synthetic", detail) for t in TABLES])


def write_provenance(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a provenance table as spreadsheet-safe CSV (atomically)."""
    return write_csv(frame.loc[:, list(PROVENANCE_COLUMNS)], path, lineterminator="\n")


def find_provenance(flows_path: str | os.PathLike[str]) -> Path | None:
    """``provenance.csv`` beside a flows file (or ``<name with flows→provenance>.csv``)."""
    path = Path(flows_path)
    name = path.name
    candidates = []
    if "flows" in name:
        stem = name.split(".", 1)[0]
        candidates.append(path.with_name(stem.replace("flows", "provenance") + ".csv"))
    candidates.append(path.with_name(PROVENANCE_FILE))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def _problem(file: str, row: int | None, column: str | None, value: str, expected: str) -> Problem:
    return Problem("provenance", file, row, column, value[:200], expected, "provenance")


def load_provenance(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check a provenance table; raises ``InventoryError`` naming file, row and column.

    Spreadsheet-safe quoting is undone for ids (a leading ``'`` added before ``=+-@``), so ids
    match the flows file written by the same writer.
    """
    from tokenlib.analysis.inventory import InventoryError

    file = str(path)
    try:
        frame = pd.read_csv(path, dtype=object, keep_default_na=False, na_filter=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InventoryError(
            [_problem(file, None, None, str(exc), "a readable provenance CSV")]
        ) from None
    missing = [c for c in PROVENANCE_COLUMNS if c not in frame.columns]
    if missing:
        raise InventoryError(
            [
                _problem(file, None, c, "", f"a column {c!r} ({', '.join(PROVENANCE_COLUMNS)})")
                for c in missing
            ]
        )
    problems: list[Problem] = []
    bad_table = ~frame["table"].isin(list(TABLES))
    bad_source = ~frame["source"].isin(list(SOURCES))
    for i in frame.index[bad_table]:
        problems.append(
            _problem(file, int(i) + 2, "table", str(frame.at[i, "table"]), " or ".join(TABLES))
        )
    for i in frame.index[bad_source]:
        problems.append(
            _problem(file, int(i) + 2, "source", str(frame.at[i, "source"]), "/".join(SOURCES))
        )
    if problems:
        raise InventoryError(problems)
    return frame.loc[:, list(PROVENANCE_COLUMNS)].reset_index(drop=True)


@dataclass(frozen=True, slots=True)
class ProvenanceSummary:
    """Cells of an inventory counted by source.

    ``counts``: source -> number of cells (row × column) over all three tables;
    ``by_column``: ``table.column`` -> {source: cells}; ``basis``: how it was determined
    (a provenance file, or the loader's default counts).
    """

    counts: Mapping[str, int]
    by_column: Mapping[str, Mapping[str, int]]
    basis: str
    n_cells: int = 0
    notes: tuple[str, ...] = field(default=())

    def share(self, source: str) -> float:
        """Share of cells from ``source`` (0 when the inventory is empty)."""
        return self.counts.get(source, 0) / self.n_cells if self.n_cells else 0.0

    @property
    def assumed_share(self) -> float:
        """Share of cells that hold a documented default rather than a stated value."""
        return self.share("assumed")

    @property
    def synthetic(self) -> bool:
        """True when the inventory is (wholly) generated."""
        return self.counts.get("synthetic", 0) == self.n_cells > 0

    def column_share(self, table: str, column: str, source: str = "assumed") -> float:
        """Share of ``table.column`` cells from ``source``."""
        cells = self.by_column.get(f"{table}.{column}", {})
        total = sum(cells.values())
        return cells.get(source, 0) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``--json`` outputs)."""
        return {
            "basis": self.basis,
            "n_cells": self.n_cells,
            "counts": dict(self.counts),
            "shares": {s: self.share(s) for s in SOURCES},
            "assumed_share": self.assumed_share,
            "synthetic": self.synthetic,
            "by_column": {k: dict(v) for k, v in self.by_column.items()},
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        parts = [f"{100 * self.share(s):.1f}% {s}" for s in SOURCES if self.counts.get(s)]
        return f"{self.n_cells} values: " + ", ".join(parts) + f" ({self.basis})"


def _ids(inventory: Inventory, table: str) -> pd.Series:
    frame = {
        "flows": inventory.flows,
        "services": inventory.services,
        "authorization_servers": inventory.authorization_servers,
    }[table]
    key = TABLES[table].primary_key[0]
    return pd.Series(frame[key], dtype=object).astype(str).reset_index(drop=True)


def summarise_provenance(
    inventory: Inventory, provenance: pd.DataFrame | str | os.PathLike[str] | None = None
) -> ProvenanceSummary:
    """Count the inventory's cells by source (see the module docstring).

    ``provenance`` is a table, a path, or ``None``: then ``provenance.csv`` beside the
    inventory's flows file is used if there is one; a generated inventory (``source`` starting
    with ``generated:``) counts as synthetic; otherwise the loader's default counts are used.
    Rows and columns the table does not mention count as ``assumed`` (an importer writes every
    cell, so a gap means nobody stated the value).
    """
    counts: dict[str, int] = dict.fromkeys(SOURCES, 0)
    by_column: dict[str, dict[str, int]] = {}
    notes: list[str] = []
    table = provenance
    if table is None and not inventory.source.startswith("generated:"):
        found = find_provenance(inventory.source) if inventory.source != "default" else None
        if inventory.source == "default":
            from tokenlib.analysis.inventory import data_dir

            found = find_provenance(data_dir() / "flows.csv")
        table = found
    basis: str
    if table is None and inventory.source.startswith("generated:"):
        table = synthetic_provenance(inventory.source)
    if isinstance(table, (str, os.PathLike)):
        basis = f"provenance file {table}"
        table = load_provenance(table)
    elif table is not None:
        basis = "provenance table"
    else:
        basis = "loader defaults (no provenance file: stated cells counted as declared)"
    n_cells = 0
    for name, spec in TABLES.items():
        ids = _ids(inventory, name)
        n = len(ids)
        for col in spec.columns:
            key = f"{name}.{col.name}"
            n_cells += n
            if table is None:
                filled = sum(
                    c for t, column, c in _defaults(inventory) if (t, column) == (name, col.name)
                )
                filled = min(filled, n)
                cells = {"assumed": filled, "declared": n - filled}
            else:
                cells = _column_sources(table, name, col.name, ids)
            by_column[key] = {k: v for k, v in cells.items() if v}
            for k, v in cells.items():
                counts[k] = counts.get(k, 0) + v
    return ProvenanceSummary(
        counts={k: v for k, v in counts.items() if v},
        by_column=by_column,
        basis=basis,
        n_cells=n_cells,
        notes=tuple(notes),
    )


def _defaults(inventory: Inventory) -> tuple[tuple[str, str, int], ...]:
    report = inventory.report
    return report.defaults if report is not None else ()


def _column_sources(table: pd.DataFrame, name: str, column: str, ids: pd.Series) -> dict[str, int]:
    """Cells of ``name.column`` by source, the most specific provenance row winning."""
    rows = table[table["table"] == name]
    ids_clean = rows["id"].astype(str)
    exact = rows[(rows["column"] == column) & (ids_clean != WILDCARD)]
    row_any = rows[(rows["column"] == WILDCARD) & (ids_clean != WILDCARD)]
    col_any = rows[(rows["column"] == column) & (ids_clean == WILDCARD)]
    all_any = rows[(rows["column"] == WILDCARD) & (ids_clean == WILDCARD)]
    default = "assumed"
    if len(all_any):
        default = str(all_any["source"].iloc[-1])
    if len(col_any):
        default = str(col_any["source"].iloc[-1])
    source = pd.Series(default, index=ids.index, dtype=object)
    for part in (row_any, exact):
        if len(part):
            lookup = dict(zip(part["id"].astype(str), part["source"], strict=True))
            mapped = ids.map(lookup)
            source = mapped.where(mapped.notna(), source)
    counts = source.value_counts()
    return {str(k): int(v) for k, v in counts.items()}
