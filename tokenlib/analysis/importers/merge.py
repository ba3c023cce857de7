"""Join registrations (IdP imports), observations (access logs) and the user's overlay into one
validated inventory, listing every conflict instead of resolving it silently.

**Precedence** per cell: ``observed`` > ``registered`` > ``declared`` > ``assumed``. A value
from a higher source replaces a lower one; when two *stated* values (anything but ``assumed``)
disagree, the higher one is kept and the disagreement becomes a ``conflict`` finding (table,
id, column, both values, both sources, resolution). Rows only one input knows are kept (an
observed flow nobody registered is a finding too: ``unregistered_flow``).

**Overlay** (:func:`read_overlay`): a CSV or JSON file the user keeps beside the import, one
row per declaration, columns ``table, match, column, value, note``:

- ``table``: ``flows`` (default when empty), ``services`` or ``authorization_servers``;
- ``match``: which rows — for flows ``client:<client_id>``, ``api:<service_id>`` (alias
  ``rs:``), ``flow:<flow_id>`` or ``*``; for the other tables the row id or ``*``;
- ``column``: an inventory column (aliases accepted, see ``data/README.md``);
- ``value``: the value, as it would be written in the inventory CSV;
- ``note``: free text, kept in the provenance detail.

A more specific match wins (``flow:`` > ``client:`` / ``api:`` > ``*``); two rows of equal
specificity that set the same cell differently are a conflict (the later row is kept). A row
that matches nothing is an ``unmatched_overlay`` finding. JSON: a list of objects with the same
keys (or ``{"overlay": [...]}``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tokenlib.analysis import schema as S
from tokenlib.analysis._validate import Problem
from tokenlib.analysis.importers._common import (
    FINDING_COLUMNS,
    Draft,
    Finding,
    cell,
    safe_id,
)
from tokenlib.analysis.provenance import PROVENANCE_COLUMNS, provenance_frame
from tokenlib.binding import Binding

__all__ = [
    "OVERLAY_COLUMNS",
    "PRECEDENCE",
    "ImportResult",
    "OverlayRow",
    "findings_frame",
    "merge",
    "read_overlay",
]

#: Higher wins.
PRECEDENCE: Mapping[str, int] = {"observed": 3, "registered": 2, "declared": 1, "assumed": 0}
OVERLAY_COLUMNS: tuple[str, ...] = ("table", "match", "column", "value", "note")
TABLES: Mapping[str, S.TableSpec] = {
    "flows": S.FLOWS,
    "services": S.SERVICES,
    "authorization_servers": S.AUTHORIZATION_SERVERS,
}
_KEYS = {"flows": "flow_id", "services": "service_id", "authorization_servers": "as_id"}

Cell = tuple[str, str, str]  # value, source, detail


@dataclass(frozen=True, slots=True)
class OverlayRow:
    """One declaration of the overlay file (``location`` = ``file:row``)."""

    table: str
    match: str
    column: str
    value: str
    note: str
    location: str

    @property
    def specificity(self) -> int:
        """2 for one row, 1 for a client's or API's rows, 0 for every row."""
        if self.match == "*":
            return 0
        if self.table == "flows" and self.match.startswith(("client:", "api:", "rs:")):
            return 1
        return 2


@dataclass(frozen=True, slots=True, eq=False)
class ImportResult:
    """A merged, validated inventory with provenance per cell and the findings.

    ``inventory``: the typed tables (``tokenlib.analysis.inventory.Inventory``);
    ``provenance``: one row per cell (:data:`provenance.PROVENANCE_COLUMNS`);
    ``findings``: conflicts, skipped clients, placeholders, rows the validator rejected.
    """

    inventory: Any
    provenance: pd.DataFrame
    findings: tuple[Finding, ...]
    sources: tuple[str, ...]
    files: tuple[str, ...]
    overlay: str | None = None

    @property
    def conflicts(self) -> tuple[Finding, ...]:
        """Findings of kind ``conflict``."""
        return tuple(f for f in self.findings if f.kind == "conflict")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``tokenlib inventory import --json``)."""
        from tokenlib.analysis.provenance import summarise_provenance

        inv = self.inventory
        prov = summarise_provenance(inv, self.provenance)
        kinds: dict[str, int] = {}
        for f in self.findings:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
        return {
            "sources": list(self.sources),
            "files": list(self.files),
            "overlay": self.overlay,
            "n_flows": len(inv.flows),
            "n_clients": int(inv.flows["client_id"].nunique()) if len(inv.flows) else 0,
            "n_services": len(inv.services),
            "n_authorization_servers": len(inv.authorization_servers),
            "by_binding": _counts(inv.flows["binding"]),
            "by_client_kind": _counts(inv.flows["client_kind"]),
            "provenance": prov.to_dict(),
            "findings_by_kind": kinds,
            "conflicts": [f.to_dict() for f in self.findings if f.kind == "conflict"],
            "findings": [f.to_dict() for f in self.findings],
        }


def _counts(series: pd.Series) -> dict[str, int]:
    vc = pd.Series(series).astype(str).value_counts(sort=False)
    return {str(k): int(v) for k, v in vc.items() if v}


def findings_frame(findings: Iterable[Finding]) -> pd.DataFrame:
    """Findings as the ``conflicts.csv`` table (columns ``FINDING_COLUMNS``)."""
    rows = [f.to_dict() for f in findings]
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS), dtype=object).fillna("")


# --- overlay ----------------------------------------------------------------------------------


def _overlay_error(problems: Sequence[Problem]) -> Any:
    from tokenlib.analysis.inventory import InventoryError

    return InventoryError(problems)


def read_overlay(path: str | os.PathLike[str]) -> list[OverlayRow]:
    """Parse an overlay file (``.csv`` or ``.json``); any problem is an ``InventoryError``
    naming the file, row and column (code ``overlay``)."""
    file = str(path)
    p = Path(path)
    try:
        data = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise _overlay_error(
            [Problem("overlay", file, None, None, "", "an existing file", "file")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _overlay_error(
            [Problem("overlay", file, None, None, str(exc)[:200], "a UTF-8 CSV or JSON", "file")]
        ) from None
    records: list[tuple[str, Mapping[str, Any]]] = []
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as exc:
            raise _overlay_error(
                [
                    Problem(
                        "overlay",
                        file,
                        exc.lineno,
                        None,
                        exc.msg,
                        "valid JSON",
                        "json",
                    )
                ]
            ) from None
        if isinstance(doc, dict) and isinstance(doc.get("overlay"), list):
            doc = doc["overlay"]
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise _overlay_error(
                [
                    Problem(
                        "overlay",
                        file,
                        None,
                        "$",
                        type(doc).__name__,
                        "a list of objects with table, match, column, value, note",
                        "shape",
                    )
                ]
            )
        records = [(f"[{i}]", r) for i, r in enumerate(doc)]
    else:
        reader = csv.DictReader(
            io.StringIO(data),
            skipinitialspace=True,
        )
        if reader.fieldnames is None:
            raise _overlay_error(
                [Problem("overlay", file, None, None, "", "a header line", "empty")]
            )
        header = [h.strip().lower() for h in reader.fieldnames]
        missing = [c for c in ("match", "column", "value") if c not in header]
        if missing:
            raise _overlay_error(
                [
                    Problem("overlay", file, 1, c, "", f"a column {c!r}", "missing_column")
                    for c in missing
                ]
            )
        for raw in reader:
            line = reader.line_num
            row = {str(k).strip().lower(): v for k, v in raw.items() if k is not None}
            first = next(iter(raw.values()), "") or ""
            if not any((v or "").strip() for v in raw.values()) or first.lstrip().startswith("#"):
                continue
            if None in raw:
                raise _overlay_error(
                    [
                        Problem(
                            "overlay",
                            file,
                            line,
                            None,
                            "",
                            "as many fields as the header",
                            "csv_syntax",
                        )
                    ]
                )
            records.append((str(line), row))
    rows: list[OverlayRow] = []
    problems: list[Problem] = []
    for where, rec in records:
        row_no = int(where) if where.isdigit() else None
        loc = f"{file}:{where}"

        def val(key: str, rec: Mapping[str, Any] = rec) -> str:
            v = rec.get(key)
            return "" if v is None else (cell(v) if not isinstance(v, str) else v).strip()

        table = val("table").lower() or "flows"
        match = val("match")
        column = val("column")
        if table not in TABLES:
            problems.append(
                Problem("overlay", file, row_no, "table", table, " or ".join(TABLES), "overlay")
            )
            continue
        spec = TABLES[table]
        canonical = spec.alias_map().get(column.lower().replace(" ", "_").replace("-", "_"))
        if canonical is None or canonical == _KEYS[table]:
            problems.append(
                Problem(
                    "overlay",
                    file,
                    row_no,
                    "column",
                    column,
                    f"a {table} column other than {_KEYS[table]}",
                    "overlay",
                )
            )
            continue
        if not match:
            problems.append(
                Problem(
                    "overlay",
                    file,
                    row_no,
                    "match",
                    "",
                    "client:ID, api:ID, flow:ID or *",
                    "overlay",
                )
            )
            continue
        if (
            table == "flows"
            and match != "*"
            and not match.startswith(("client:", "api:", "rs:", "flow:"))
        ):
            problems.append(
                Problem(
                    "overlay",
                    file,
                    row_no,
                    "match",
                    match,
                    "client:<client_id>, api:<service_id>, flow:<flow_id> or *",
                    "overlay",
                )
            )
            continue
        rows.append(OverlayRow(table, match, canonical, val("value"), val("note"), loc))
    if problems:
        raise _overlay_error(problems)
    return rows


# --- merge ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tables:
    rows: dict[str, dict[str, dict[str, Cell]]] = field(
        default_factory=lambda: {t: {} for t in TABLES}
    )


def _from_draft(draft: Draft) -> _Tables:
    tables = _Tables()
    prov: dict[tuple[str, str, str], tuple[str, str]] = {
        (t, i, c): (s, d) for t, i, c, s, d in draft.provenance
    }
    for name, frame in (
        ("flows", draft.flows),
        ("services", draft.services),
        ("authorization_servers", draft.servers),
    ):
        key = _KEYS[name]
        for rec in frame.to_dict(orient="records"):
            rid = str(rec[key])
            cells: dict[str, Cell] = {}
            for col in TABLES[name].names:
                source, detail = prov.get((name, rid, col), ("assumed", "default"))
                cells[col] = (cell(rec.get(col)), source, detail)
            tables.rows[name][rid] = cells
    return tables


def _stated(source: str) -> bool:
    return source != "assumed"


def _merge_into(base: _Tables, other: _Tables, findings: list[Finding], label: str) -> None:
    for name in TABLES:
        for rid, cells in other.rows[name].items():
            mine = base.rows[name].get(rid)
            if mine is None:
                base.rows[name][rid] = dict(cells)
                if (
                    name == "flows"
                    and any(s == "observed" for _, s, _ in cells.values())
                    and not any(s == "registered" for _, s, _ in cells.values())
                ):
                    findings.append(
                        Finding(
                            "unregistered_flow",
                            name,
                            rid,
                            "",
                            f"{label}: flow seen only in observations",
                        )
                    )
                continue
            for col, new in cells.items():
                old = mine.get(col)
                if old is None:
                    mine[col] = new
                    continue
                _resolve(name, rid, col, mine, old, new, findings)


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def _resolve(
    name: str,
    rid: str,
    col: str,
    mine: dict[str, Cell],
    old: Cell,
    new: Cell,
    findings: list[Finding],
    *,
    later_wins_on_tie: bool = False,
) -> None:
    if _same(old[0], new[0]):
        if PRECEDENCE.get(new[1], 0) > PRECEDENCE.get(old[1], 0):
            mine[col] = new
        return
    p_old, p_new = PRECEDENCE.get(old[1], 0), PRECEDENCE.get(new[1], 0)
    keep_new = p_new > p_old or (p_new == p_old and later_wins_on_tie)
    kept = new if keep_new else old
    if _stated(old[1]) and _stated(new[1]):
        findings.append(
            Finding(
                "conflict",
                name,
                rid,
                col,
                f"{old[2]} | {new[2]}",
                values=f"{old[0]} | {new[0]}",
                sources=f"{old[1]} | {new[1]}",
                resolution=f"kept the {kept[1]} value {kept[0]!r}"
                + (" (later overlay row)" if p_new == p_old and later_wins_on_tie else ""),
            )
        )
    mine[col] = kept


def _apply_overlay(tables: _Tables, overlay: Sequence[OverlayRow], findings: list[Finding]) -> None:
    # Most general first, so more specific rows override without being conflicts.
    by_cell: dict[tuple[str, str, str], int] = {}
    for row in sorted(overlay, key=lambda r: r.specificity):
        targets = _targets(tables, row)
        if not targets:
            findings.append(
                Finding(
                    "unmatched_overlay",
                    row.table,
                    row.match,
                    row.column,
                    "the overlay row matches no row of the imported inventory",
                    row.location,
                    values=row.value,
                    sources="declared",
                )
            )
            continue
        detail = f"overlay {row.location}" + (f": {row.note}" if row.note else "")
        for rid in targets:
            cells = tables.rows[row.table][rid]
            key = (row.table, rid, row.column)
            new: Cell = (row.value, "declared", detail)
            old = cells.get(row.column, ("", "assumed", "default"))
            prev = by_cell.get(key)
            if prev is not None and old[1] == "declared":
                if prev < row.specificity or _same(old[0], row.value):
                    cells[row.column] = new  # the more specific declaration wins
                else:  # equal specificity, different values: listed, later row kept
                    _resolve(
                        row.table,
                        rid,
                        row.column,
                        cells,
                        old,
                        new,
                        findings,
                        later_wins_on_tie=True,
                    )
            else:
                _resolve(row.table, rid, row.column, cells, old, new, findings)
            by_cell[key] = row.specificity


def _targets(tables: _Tables, row: OverlayRow) -> list[str]:
    rows = tables.rows[row.table]
    if row.match == "*":
        return list(rows)
    if row.table != "flows":
        rid = safe_id(row.match)
        return [rid] if rid in rows else []
    prefix, _, ident = row.match.partition(":")
    if prefix == "flow":
        rid = safe_id(ident)
        return [rid] if rid in rows else []
    column = "client_id" if prefix == "client" else "resource_server"
    return [rid for rid, cells in rows.items() if cells.get(column, ("",))[0] == ident]


def _ensure_references(tables: _Tables) -> None:
    """Add default rows for services / authorization servers a flow names but no input has."""
    flows = tables.rows["flows"]
    services = tables.rows["services"]
    bindings: dict[str, set[str]] = {}
    for cells in flows.values():
        rs = cells.get("resource_server", ("",))[0]
        bindings.setdefault(rs, set()).add(cells.get("binding", ("",))[0])
    for sid in [s for s in services if s.endswith(":unknown-api") and s not in bindings]:
        del services[sid]  # a placeholder the overlay replaced everywhere
    for rs, used in bindings.items():
        if rs and rs not in services:
            new: dict[str, Cell] = {}
            for col in S.SERVICES.columns:
                if col.name == "service_id":
                    new[col.name] = (rs, "declared", "named by a flow's resource_server")
                elif (
                    col.name in ("supports_mtls", "supports_dpop")
                    and col.name.removeprefix("supports_") in used
                ):
                    new[col.name] = (
                        "true",
                        "assumed",
                        "default: a flow with this binding calls it",
                    )
                else:
                    new[col.name] = (
                        cell(col.default) if col.empty_is_value else "",
                        "assumed",
                        "default: " + col.default_text(),
                    )
            services[rs] = new
        elif rs:
            for b in used:
                name = f"supports_{b}"
                cur = services[rs].get(name, ("", "assumed", ""))
                if b != Binding.BEARER and cur[0] in ("", "false") and cur[1] == "assumed":
                    services[rs][name] = (
                        "true",
                        "assumed",
                        "default: a flow with this binding calls it",
                    )


def _fit_defaults(tables: _Tables) -> None:
    """Assumed exposure channels name ``proxy_logs`` only where the path has a terminating hop
    (the validator's ``proxy_logs_without_proxy`` rule), once the overlay has set the paths."""
    for cells in tables.rows["flows"].values():
        value, source, detail = cells.get("exposure_channels", ("", "assumed", ""))
        if source != "assumed" or "proxy_logs" not in value.split(";"):
            continue
        if "terminate" in cells.get("path", ("",))[0]:
            continue
        kept = ";".join(c for c in value.split(";") if c and c != "proxy_logs")
        cells["exposure_channels"] = (
            kept,
            "assumed",
            detail + "; proxy_logs dropped: no TLS-terminating hop on the path",
        )


def _frames(
    tables: _Tables,
) -> tuple[dict[str, pd.DataFrame], list[tuple[str, str, str, str, str]]]:
    frames: dict[str, pd.DataFrame] = {}
    prov: list[tuple[str, str, str, str, str]] = []
    for name, spec in TABLES.items():
        records = []
        for rid, cells in tables.rows[name].items():
            rec = {col: cells.get(col, ("", "assumed", ""))[0] for col in spec.names}
            rec[_KEYS[name]] = rid
            records.append(rec)
            for col in spec.names:
                _, source, detail = cells.get(col, ("", "assumed", "default"))
                prov.append((name, rid, col, source, detail))
        frames[name] = pd.DataFrame(records, columns=list(spec.names), dtype=object)
    return frames, prov


def merge(
    drafts: Sequence[Draft],
    overlay: Sequence[OverlayRow] | None = None,
    *,
    overlay_file: str | None = None,
) -> ImportResult:
    """Merge drafts (imports, observations) and an overlay into a validated inventory.

    Rows the validator rejects are left out and listed as ``invalid_row`` findings (with the
    validator's code and message) — the other rows stay usable; nothing is dropped silently.
    """
    from tokenlib.analysis.inventory import load_inventory

    if not drafts:
        raise ValueError("merge needs at least one draft")
    findings: list[Finding] = []
    base = _Tables()
    for draft in drafts:
        findings.extend(draft.findings)
        _merge_into(base, _from_draft(draft), findings, "+".join(draft.sources))
    if overlay:
        _apply_overlay(base, overlay, findings)
    _ensure_references(base)
    _fit_defaults(base)
    frames, prov = _frames(base)
    inv = load_inventory(
        frames["flows"],
        services=frames["services"],
        authorization_servers=frames["authorization_servers"],
        on_error="drop",
    )
    report = inv.report
    dropped: dict[str, set[str]] = {t: set() for t in TABLES}
    if report is not None:
        for problem in report.problems:
            if problem.severity != "error" or problem.row is None:
                continue
            frame = frames.get(problem.table)
            if frame is None:
                continue
            idx = problem.row - 2
            if 0 <= idx < len(frame):
                rid = str(frame.iloc[idx][_KEYS[problem.table]])
                dropped[problem.table].add(rid)
                findings.append(
                    Finding(
                        "invalid_row",
                        problem.table,
                        rid,
                        problem.column or "",
                        f"{problem.expected} [{problem.code}]; the row is left out",
                        values=problem.value,
                    )
                )
    prov_frame = provenance_frame([p for p in prov if p[1] not in dropped.get(p[0], set())])
    sources: list[str] = []
    files: list[str] = []
    for d in drafts:
        sources.extend(s for s in d.sources if s not in sources)
        files.extend(d.files)
    if overlay:
        sources.append("overlay")
    return ImportResult(
        inventory=inv,
        provenance=prov_frame.loc[:, list(PROVENANCE_COLUMNS)],
        findings=tuple(findings),
        sources=tuple(sources),
        files=tuple(files),
        overlay=overlay_file,
    )
