"""The inventory check before any notebook runs, and the provenance banner's facts."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenlib.analysis.report._base import PROJECT_ROOT, InventoryValidationError, Provenance

# ---------------------------------------------------------------------------------------------
# The inventory: validation and provenance.


def _display_name(source: str) -> str:
    return "the bundled inventory" if source == "default" else Path(source).name


def _one_line(exc: BaseException, source: str) -> str:
    """The loader's error as one line, with file names instead of absolute paths."""
    problems = getattr(exc, "problems", None)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if problems:
        errors = [p for p in problems if getattr(p, "severity", "error") == "error"]
        text = lines[0] if lines else f"{len(errors)} problems"
        if len(lines) > 1:
            text += " " + lines[1].removeprefix("error:").strip()
        if len(errors) > 1:
            text += f" (and {len(errors) - 1} more: python -m tokenlib.analysis.inventory validate"
            text += f" {_display_name(source)})"
    else:
        text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return _hide_paths(text, source)


def _hide_paths(text: str, source: str) -> str:
    if source != "default":
        path = Path(source)
        for folder in {str(path.parent), str(path.resolve().parent)}:
            if folder not in {"", "."}:
                text = text.replace(folder.rstrip("/") + "/", "")
    return text.replace(str(PROJECT_ROOT) + "/", "")


def _bundle_metadata() -> dict[str, str]:
    """Profile, seed and flow count of the bundled inventory from data/datapackage.json."""
    from tokenlib.analysis.inventory import data_dir

    meta: dict[str, str] = {"profile": "saas"}
    with contextlib.suppress(OSError, ValueError, FileNotFoundError):
        package = json.loads((data_dir() / "datapackage.json").read_text(encoding="utf-8"))
        for src in package.get("sources") or ():
            title = str(src.get("title", "")) if isinstance(src, dict) else ""
            for key in ("profile", "flows", "seed"):
                match = re.search(rf"--{key}\s+(\S+)", title)
                if match:
                    meta[key] = match.group(1)
    return meta


def _is_bundled(source: str) -> bool:
    if source == "default":
        return True
    with contextlib.suppress(OSError, FileNotFoundError):
        from tokenlib.analysis.inventory import data_dir

        return Path(source).resolve() == (data_dir() / "flows.csv").resolve()
    return False


def _default_share(rep: Any) -> float | None:
    """Share of the inventory's cells the loader filled with documented defaults."""
    from tokenlib.analysis import schema as S

    cells = rep.flows_out * len(S.FLOWS.columns)
    if not rep.services_derived:
        cells += rep.services_out * len(S.SERVICES.columns)
    if not rep.authorization_servers_derived:
        cells += rep.authorization_servers_out * len(S.AUTHORIZATION_SERVERS.columns)
    if cells <= 0:
        return None
    filled = sum(int(n) for _table, _column, n in rep.defaults)
    return float(min(1.0, filled / cells))


def inspect_inventory(source: str) -> tuple[str, Provenance]:
    """Load ``source``; return the value to pass to the notebooks and its provenance.

    Raises :class:`InventoryValidationError` (one line, file names only) when the loader
    rejects the inventory or when it holds no flow.
    """
    try:
        from tokenlib.analysis.inventory import load_inventory

        inv = load_inventory(source)
    except Exception as exc:  # the loader's own error, surfaced to the user in one line
        raise InventoryValidationError(_one_line(exc, source)) from exc
    name = _display_name(source)
    if len(inv.flows) == 0:
        raise InventoryValidationError(
            f"{name} has no flows (a header without rows, or only comments): add at least one "
            "flow (see data/template_flows.csv)"
        )
    rep = inv.report
    n_servers = len(inv.authorization_servers)
    notes: list[str] = []
    if _is_bundled(source):
        meta = _bundle_metadata()
        prov = Provenance(
            kind="synthetic",
            name="bundled synthetic inventory",
            flows=len(inv.flows),
            services=len(inv.services),
            authorization_servers=n_servers,
            profile=meta.get("profile"),
            seed=meta.get("seed"),
        )
    else:
        path = Path(source)
        date = None
        with contextlib.suppress(OSError):
            date = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d")
        if rep is not None and rep.services_derived:
            notes.append("resource servers derived from the flows (no services file)")
        if rep is not None and rep.authorization_servers_derived:
            notes.append("authorization servers derived from the flows")
        found = _provenance_summary(inv, path)
        summary = found[0] if found is not None else None
        if found is not None and found[0].synthetic:
            return str(path.resolve()), _generated(inv, path, found[0], found[1], n_servers)
        prov = Provenance(
            kind="imported",
            name=path.name,
            flows=len(inv.flows),
            services=len(inv.services),
            authorization_servers=n_servers,
            date=date,
            default_share=(
                summary.assumed_share
                if summary is not None
                else (_default_share(rep) if rep is not None else None)
            ),
            notes=tuple(notes),
            sources=()
            if summary is None
            else tuple((src, summary.share(src)) for src in ("registered", "observed", "declared")),
        )
    if source != "default" and Path(source).exists():
        return str(Path(source).resolve()), prov
    return source, prov


def _provenance_summary(inv: Any, path: Path) -> tuple[Any, str] | None:
    """The provenance table beside the flows file, if any, read once: its summary and the
    detail of its first row (a generator's ``generated:<profile>:...:seed=<n>``)."""
    from tokenlib.analysis import provenance

    found = provenance.find_provenance(path)
    if found is None:
        return None
    table = provenance.load_provenance(found)
    detail = str(table["detail"].iloc[0]) if len(table) else ""
    return provenance.summarise_provenance(inv, table), detail


def _generated(inv: Any, path: Path, summary: Any, detail: str, n_servers: int) -> Provenance:
    """A user's file that ``tokenlib inventory generate`` wrote: synthetic, and said so."""
    fields = dict(part.split("=", 1) for part in detail.split(":") if "=" in part)
    profile = detail.split(":")[1] if detail.startswith("generated:") else None
    return Provenance(
        kind="synthetic",
        name=path.name,
        flows=len(inv.flows),
        services=len(inv.services),
        authorization_servers=n_servers,
        profile=profile,
        seed=fields.get("seed"),
        notes=(f"{summary.n_cells} cells, all generated",),
    )


def validate_inventory(source: str) -> str:
    """Load ``source`` with the inventory loader; return the value to pass to the notebooks.

    Raises :class:`InventoryValidationError` with the loader's message (one line) on failure.
    """
    return inspect_inventory(source)[0]
