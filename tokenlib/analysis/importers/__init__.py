"""Inventories from where flows are already written down: identity-provider client registrations.

``import_files(source, files, overlay=...)`` reads exports of one source — ``keycloak`` (realm
export), ``auth0`` (Management API v2 JSON), ``okta`` (Apps and authorization-server API JSON),
``entra`` (Microsoft Graph ``application`` / ``servicePrincipal`` JSON) or ``rfc7591`` (client
metadata documents, RFC 7591 §2) — maps every client to flows with the importer's mapping
table (``data/IMPORTERS.md``), fills what the source cannot say with documented defaults,
applies the user's overlay (:func:`merge.read_overlay`), validates the result with the
inventory loader and records the provenance of every cell. :func:`write_import` writes
``flows.csv``, ``services.csv``, ``authorization_servers.csv``, ``provenance.csv`` and
``conflicts.csv``; ``tokenlib inventory import`` is the command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tokenlib._atomic import atomic_file_set
from tokenlib.analysis._csv import write_csv
from tokenlib.analysis.importers import auth0 as auth0
from tokenlib.analysis.importers import entra as entra
from tokenlib.analysis.importers import keycloak as keycloak
from tokenlib.analysis.importers import okta as okta
from tokenlib.analysis.importers import rfc7591 as rfc7591
from tokenlib.analysis.importers._common import (
    FINDING_COLUMNS,
    Draft,
    Finding,
    MappingRow,
    Registrations,
    build,
)
from tokenlib.analysis.importers.merge import (
    ImportResult,
    OverlayRow,
    findings_frame,
    merge,
    read_overlay,
)
from tokenlib.analysis.provenance import PROVENANCE_FILE, write_provenance

__all__ = [
    "FINDING_COLUMNS",
    "IMPORTERS",
    "MAPPINGS",
    "SOURCES",
    "Finding",
    "ImportResult",
    "OverlayRow",
    "draft",
    "findings_frame",
    "import_files",
    "merge",
    "read_overlay",
    "write_import",
]

Parser = Callable[..., Registrations]

#: source name -> parser (``parse(files, as_id=None) -> Registrations``).
IMPORTERS: Mapping[str, Parser] = {
    "keycloak": keycloak.parse,
    "auth0": auth0.parse,
    "okta": okta.parse,
    "entra": entra.parse,
    "rfc7591": rfc7591.parse,
}
SOURCES: tuple[str, ...] = tuple(IMPORTERS)

#: source name -> its mapping table (rendered into data/IMPORTERS.md).
MAPPINGS: Mapping[str, tuple[MappingRow, ...]] = {
    "keycloak": keycloak.MAPPING,
    "auth0": auth0.MAPPING,
    "okta": okta.MAPPING,
    "entra": entra.MAPPING,
    "rfc7591": rfc7591.MAPPING,
}

#: Files written by :func:`write_import`, in order.
OUTPUT_FILES: tuple[str, ...] = (
    "flows.csv",
    "services.csv",
    "authorization_servers.csv",
    PROVENANCE_FILE,
    "conflicts.csv",
)


def draft(
    source: str, files: Sequence[str | os.PathLike[str]], *, as_id: str | None = None
) -> Draft:
    """Raw tables, provenance and findings of one source's files (before merge/validation).

    Bad input raises ``InventoryError`` naming the file and the JSON location.
    """
    if source not in IMPORTERS:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    if not files:
        raise ValueError("at least one export file is needed")
    return build(IMPORTERS[source]([Path(f) for f in files], as_id=as_id))


def import_files(
    source: str,
    files: Sequence[str | os.PathLike[str]],
    *,
    overlay: str | os.PathLike[str] | Sequence[OverlayRow] | None = None,
    as_id: str | None = None,
) -> ImportResult:
    """Import one source's export files, apply ``overlay`` (a path or parsed rows) and validate.

    ``as_id`` overrides the authorization-server id the importer derives (e.g. to give two
    tenants stable names). Returns an :class:`ImportResult` (inventory, provenance, findings).
    """
    rows: Sequence[OverlayRow] | None
    overlay_file: str | None = None
    if overlay is None:
        rows = None
    elif isinstance(overlay, (str, os.PathLike)):
        rows = read_overlay(overlay)
        overlay_file = str(overlay)
    else:
        rows = overlay
    return merge([draft(source, files, as_id=as_id)], rows, overlay_file=overlay_file)


def _text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == bool:
            out[name] = np.where(out[name].to_numpy(), "true", "false")
    return out


def write_import(result: ImportResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the inventory, its provenance and the findings into ``out_dir``.

    Every file goes through the spreadsheet-safe CSV writer (values from an IdP export are
    attacker-controllable: a client named ``=HYPERLINK(...)`` is written as text) and is
    replaced as one set (:func:`tokenlib._atomic.atomic_file_set`): if any table fails to
    render or write, no file in ``out_dir`` has changed.
    """
    out = Path(out_dir)
    inv = result.inventory
    frames: dict[str, pd.DataFrame] = {
        "flows.csv": _text_frame(inv.flows),
        "services.csv": _text_frame(inv.services),
        "authorization_servers.csv": _text_frame(inv.authorization_servers),
        "conflicts.csv": findings_frame(result.findings),
    }
    with atomic_file_set(out) as stage:
        for name, frame in frames.items():
            write_csv(frame, stage(name), lineterminator="\n")
        write_provenance(result.provenance, stage(PROVENANCE_FILE))
    return {name: out / name for name in OUTPUT_FILES}
