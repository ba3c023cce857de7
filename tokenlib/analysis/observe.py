"""Observed usage from gateway and resource-server access logs (``tokenlib inventory observe``).

What a client is *registered* to do (an IdP export, see :mod:`tokenlib.analysis.importers`)
and what it *does* can differ: a client registered for DPoP (RFC 9449 §5.2
``dpop_bound_access_tokens``) that still sends ``Authorization: Bearer``, a client registered
for certificate-bound tokens (RFC 8705 §3.4) that connects without a certificate, a route that
accepts such a request. :func:`observe` reads access logs (Envoy JSON, NGINX with the
documented ``log_format``, AWS ALB, or tokenlib's plain JSON-lines form), aggregates them into
an *observed* inventory (one flow per client and resource server, with ``requests_per_day``
and the binding actually presented) and, given the registrations, lists the discrepancies.

The aggregation is the single SQL file ``tokenlib/analysis/sql/observe.sql`` run in an
embedded DuckDB with bounded memory (``memory_limit``, two threads, a spill directory); gzip
files and globs are streamed. Python only sets its variables and writes the results, so a team
whose logs live in a data lake can run the same SQL there.

Privacy: only the *scheme* of the Authorization header is used (its first word); requests whose
log line holds more than that are counted (``auth_value_logged``) and the value is ignored.
Client ids that look like a token (a JWT) are refused, counted and treated as unattributed. No
log value other than client ids, resource server names and route templates reaches the output.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tokenlib._atomic import atomic_file_set
from tokenlib.analysis._csv import write_csv
from tokenlib.analysis.inventory import Inventory, InventoryError, load_inventory
from tokenlib.analysis.provenance import PROVENANCE_FILE, provenance_frame, write_provenance

__all__ = [
    "DISCREPANCIES_FILE",
    "DISCREPANCY_COLUMNS",
    "DISCREPANCY_KINDS",
    "FORMATS",
    "LogSummary",
    "ObserveError",
    "ObserveResult",
    "observe",
    "sql_sections",
    "sql_text",
    "write_observed",
]

Format = Literal["envoy", "nginx", "alb", "jsonl"]
#: Log formats :func:`observe` reads (see observe.sql and README for the exact field lines).
FORMATS: tuple[str, ...] = ("envoy", "nginx", "alb", "jsonl")
#: Finding kinds in ``discrepancies.csv`` (documented in observe.sql, section discrepancies).
DISCREPANCY_KINDS: tuple[str, ...] = (
    "bound_client_presented_bearer",
    "route_accepted_bearer",
    "unregistered_flow",
    "unobserved_flow",
)
#: Columns of ``discrepancies.csv`` and of each finding in ``--json`` (a stable contract).
DISCREPANCY_COLUMNS: tuple[str, ...] = (
    "kind",
    "client_id",
    "resource_server",
    "route",
    "count",
    "registered_binding",
    "detail",
)
DISCREPANCIES_FILE = "discrepancies.csv"
#: Client kind given to a client seen only in logs (recorded as ``assumed`` in provenance).
UNREGISTERED_CLIENT_KIND = "service"
DEFAULT_MEMORY_LIMIT = "1GB"
DEFAULT_THREADS = 2
_SECTION = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
#: Flow columns copied from a client's registration onto its observed flows.
_CLIENT_COLUMNS = (
    "client_kind",
    "actor",
    "client_type",
    "environment",
    "grant_type",
    "authorization_server",
    "key_storage",
    "cert_management",
)


class ObserveError(ValueError):
    """Logs or registrations could not be read; the message says which file and why."""


def sql_text() -> str:
    """The documented aggregation (``tokenlib/analysis/sql/observe.sql``) as text."""
    return resources.files("tokenlib.analysis").joinpath("sql/observe.sql").read_text("utf-8")


def sql_sections() -> dict[str, str]:
    """``observe.sql`` split at its ``-- name: <section>`` lines: section name -> SQL."""
    text = sql_text()
    parts = _SECTION.split(text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


@dataclass(frozen=True, slots=True)
class LogSummary:
    """What was read: request count, days covered and what was refused or unattributed."""

    requests: int
    days: int
    first_day: str
    last_day: str
    unattributed: int
    no_resource_server: int
    client_id_refused: int
    auth_value_logged: int
    no_timestamp: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form (keys = field names)."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True, eq=False)
class ObserveResult:
    """Observed flows and services (inventory text tables), findings and provenance."""

    flows: pd.DataFrame
    services: pd.DataFrame
    discrepancies: pd.DataFrame
    provenance: pd.DataFrame
    summary: LogSummary
    format: str
    files: tuple[str, ...]
    registrations: str | None
    notes: tuple[str, ...] = field(default=())

    @property
    def inventory(self) -> Inventory:
        """The observed flows and services, validated by :func:`load_inventory`."""
        return load_inventory(self.flows, services=self.services)

    def findings(self) -> list[dict[str, Any]]:
        """Each discrepancy as a dict with :data:`DISCREPANCY_COLUMNS` keys."""
        records: list[dict[str, Any]] = []
        for row in self.discrepancies.itertuples(index=False):
            rec = dict(zip(DISCREPANCY_COLUMNS, row, strict=True))
            rec["count"] = int(rec["count"])
            records.append(rec)
        return records

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` payload: summary, counts and every finding."""
        kinds = dict.fromkeys(DISCREPANCY_KINDS, 0)
        for kind in self.discrepancies["kind"]:
            kinds[str(kind)] += 1
        return {
            "format": self.format,
            "files": list(self.files),
            "registrations": self.registrations,
            "summary": self.summary.to_dict(),
            "n_flows": len(self.flows),
            "n_services": len(self.services),
            "findings_by_kind": kinds,
            "findings": self.findings(),
            "notes": list(self.notes),
        }


def _expand(logs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Paths and globs as given (DuckDB expands globs); each must name at least one file."""
    if not logs:
        raise ObserveError("no log files given")
    out: list[str] = []
    for item in logs:
        text = os.fspath(item)
        if glob.has_magic(text):
            if not any(os.path.isfile(p) for p in glob.iglob(text, recursive=True)):
                raise ObserveError(f"{text}: no log file matches this pattern")
        elif not os.path.isfile(text):
            raise ObserveError(f"{text}: log file not found")
        out.append(text)
    return out


def _connect(memory_limit: str, threads: int, temp_directory: str) -> Any:
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = '{_setting(memory_limit)}'")
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET temp_directory = '{_quote(temp_directory)}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    return con


def _setting(value: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value.strip()):
        raise ObserveError(f"memory limit {value!r}: expected e.g. '1GB' or '512MiB'")
    return value.strip()


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _registrations(path: str | os.PathLike[str]) -> tuple[Inventory, str]:
    reg = Path(path)
    flows = reg / "flows.csv" if reg.is_dir() else reg
    if reg.is_dir() and not flows.is_file():
        for cand in ("flows.parquet", "flows.csv.gz"):
            if (reg / cand).is_file():
                flows = reg / cand
                break
    if not flows.is_file():
        raise ObserveError(f"{reg}: no registrations inventory (flows.csv) found")
    try:
        return load_inventory(flows), str(flows)
    except InventoryError as exc:
        raise ObserveError(f"registrations {flows} are not a valid inventory:\n{exc}") from None


def _duck_error(exc: Exception, files: Sequence[str]) -> ObserveError:
    text = str(exc).strip().splitlines()
    head = " ".join(line.strip() for line in text[:3])[:400]
    return ObserveError(f"cannot read the logs ({', '.join(files)}): {head}")


def observe(
    logs: Sequence[str | os.PathLike[str]],
    *,
    format: Format,
    registrations: str | os.PathLike[str] | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int = DEFAULT_THREADS,
    temp_directory: str | os.PathLike[str] | None = None,
) -> ObserveResult:
    """Aggregate access logs into observed flows and discrepancies.

    ``logs``: files or globs (``.gz`` streamed). ``format``: one of :data:`FORMATS`.
    ``registrations``: an inventory directory (or flows file) written by ``tokenlib inventory
    import``; without it only the observed inventory is built (no discrepancies can be judged).
    DuckDB runs with ``memory_limit`` and ``threads`` and spills to ``temp_directory`` (a fresh
    temporary folder by default). Raises :class:`ObserveError` for unreadable or malformed
    input, naming the file.
    """
    if format not in FORMATS:
        raise ObserveError(f"format {format!r}: expected one of {', '.join(FORMATS)}")
    files = _expand(logs)
    reg_inv, reg_file = (None, None) if registrations is None else _registrations(registrations)
    sections = sql_sections()
    with tempfile.TemporaryDirectory(
        prefix="tokenlib-observe-", dir=None if temp_directory is None else str(temp_directory)
    ) as spill:
        con = _connect(memory_limit, threads, spill)
        try:
            con.execute("SET VARIABLE logs = ?", [files])
            con.execute(sections[f"requests_{format}"])
            con.execute(sections["requests"])
            con.execute(sections["observations"])
            summary_row = con.execute(sections["log_summary"]).fetchone()
            flows = con.execute(sections["observed_flows"]).df()
            services = con.execute(sections["observed_services"]).df()
            if reg_inv is not None:
                reg = reg_inv.flows.loc[:, ["client_id", "resource_server", "binding"]].astype(str)
                con.register("registered_frame", reg)
                con.execute("CREATE TEMP TABLE registered AS SELECT * FROM registered_frame")
                found = con.execute(sections["discrepancies"]).df()
            else:
                found = pd.DataFrame({c: pd.Series(dtype=object) for c in DISCREPANCY_COLUMNS})
        except ObserveError:
            raise
        except Exception as exc:  # duckdb.Error subclasses; the message names the file
            import duckdb

            if isinstance(exc, duckdb.Error):
                raise _duck_error(exc, files) from None
            raise
        finally:
            con.close()
    assert summary_row is not None
    summary = LogSummary(
        requests=int(summary_row[0]),
        days=int(summary_row[1]),
        first_day="" if summary_row[2] is None else str(summary_row[2]),
        last_day="" if summary_row[3] is None else str(summary_row[3]),
        unattributed=int(summary_row[4]),
        no_resource_server=int(summary_row[5]),
        client_id_refused=int(summary_row[6]),
        auth_value_logged=int(summary_row[7]),
        no_timestamp=int(summary_row[8]),
    )
    notes = _notes(summary, format, reg_inv is not None)
    flow_table, svc_table, prov = _tables(flows, services, reg_inv, files, summary)
    found = found.loc[:, list(DISCREPANCY_COLUMNS)].reset_index(drop=True)
    found["count"] = found["count"].astype(np.int64)
    for col in DISCREPANCY_COLUMNS:
        if col != "count":
            found[col] = found[col].fillna("").astype(str).astype(object)
    return ObserveResult(
        flows=flow_table,
        services=svc_table,
        discrepancies=found,
        provenance=prov,
        summary=summary,
        format=format,
        files=tuple(files),
        registrations=reg_file,
        notes=tuple(notes),
    )


def _notes(summary: LogSummary, fmt: str, registered: bool) -> list[str]:
    notes: list[str] = []
    if summary.auth_value_logged:
        notes.append(
            f"{summary.auth_value_logged} request(s) logged more of the Authorization header "
            "than its scheme (a token, or part of one): only the scheme was used and the rest "
            "ignored. Fix the log format (README: Envoy %REQ(AUTHORIZATION):6%, NGINX map "
            "$tokenlib_auth_scheme) and treat those logs as holding credentials."
        )
    if summary.client_id_refused:
        notes.append(
            f"{summary.client_id_refused} request(s) logged a token-like or malformed value (a "
            "JWT, more than 256 characters, control characters) as the client id: refused and "
            "counted as unattributed; log the client_id or azp claim, never the token."
        )
    if summary.unattributed:
        why = (
            "ALB access logs carry no client id or Authorization scheme"
            if fmt == "alb"
            else "no client_id/azp logged"
        )
        notes.append(
            f"{summary.unattributed} request(s) without a client id ({why}): counted in the "
            "summary, not in any flow."
        )
    if summary.no_timestamp:
        notes.append(
            f"{summary.no_timestamp} request(s) without a readable timestamp: counted in the "
            "requests but not in the days that divide requests_per_day."
        )
    if not registered:
        notes.append(
            "no --registrations given: discrepancies (bound clients presenting Bearer, "
            "unregistered or unobserved flows) need the registered inventory; none judged."
        )
    return notes


def _tables(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    reg: Inventory | None,
    files: Sequence[str],
    summary: LogSummary,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Inventory text tables (flows, services) and provenance rows for the observed data."""
    n = len(flows)
    ids = [f"observed-{i + 1:06d}" for i in range(n)]
    src = f"{len(files)} log file(s), {summary.requests} requests over {summary.days} day(s)"
    table: dict[str, Any] = {
        "flow_id": ids,
        "client_id": flows["client_id"].astype(str).tolist(),
        "resource_server": flows["resource_server"].astype(str).tolist(),
        "binding": flows["binding"].astype(str).tolist(),
        "requests_per_day": flows["requests_per_day"].astype(np.int64).astype(str).tolist(),
    }
    enforced = flows["binding_enforced"]
    table["binding_enforced"] = ["false" if v is False else "" for v in enforced.tolist()]
    prov: list[tuple[str, str, str, str, str]] = []
    for i, fid in enumerate(ids):
        detail = (
            f"{int(flows['requests'].iat[i])} requests ({int(flows['dpop_requests'].iat[i])} "
            f"DPoP, {int(flows['bearer_requests'].iat[i])} Bearer, "
            f"{int(flows['cert_requests'].iat[i])} with a client certificate) in {src}"
        )
        for col in ("client_id", "resource_server", "binding", "requests_per_day"):
            prov.append(("flows", fid, col, "observed", detail))
        if table["binding_enforced"][i] == "false":
            prov.append(
                (
                    "flows",
                    fid,
                    "binding_enforced",
                    "observed",
                    f"{int(flows['unbound_accepted'].iat[i])} unbound presentation(s) accepted",
                )
            )
    by_client: dict[str, dict[str, str]] = {}
    if reg is not None:
        rf = reg.flows
        cols = [c for c in _CLIENT_COLUMNS if c in rf.columns]
        first = rf.drop_duplicates("client_id", keep="first")
        for rec in first.loc[:, ["client_id", *cols]].astype(str).itertuples(index=False):
            by_client[str(rec[0])] = dict(zip(cols, (str(v) for v in rec[1:]), strict=True))
    for col in _CLIENT_COLUMNS:
        values = []
        for i, client in enumerate(table["client_id"]):
            known = by_client.get(client)
            if known is not None and col in known:
                values.append(known[col])
                prov.append(("flows", ids[i], col, "registered", "client's registration"))
            elif col == "client_kind":
                values.append(UNREGISTERED_CLIENT_KIND)
                prov.append(
                    (
                        "flows",
                        ids[i],
                        col,
                        "assumed",
                        f"client only seen in logs: kind assumed {UNREGISTERED_CLIENT_KIND!r}",
                    )
                )
            else:
                values.append("")
        table[col] = values
    flow_table = pd.DataFrame(table, dtype=object)
    svc: dict[str, Any] = {"service_id": services["service_id"].astype(str).tolist()}
    for col in ("supports_bearer", "supports_mtls", "supports_dpop"):
        svc[col] = ["true" if bool(v) else "false" for v in services[col].tolist()]
    svc_table = pd.DataFrame(svc, dtype=object)
    if reg is not None and len(svc_table):
        rs = reg.services.set_index("service_id")
        for col in ("owner", "sensitivity", "internet_facing"):
            if col in rs.columns:
                svc_table[col] = [
                    str(rs.at[s, col]).lower() if s in rs.index else ""
                    for s in svc_table["service_id"]
                ]
    for sid, total in zip(svc_table["service_id"], services["requests"].tolist(), strict=True):
        for col in ("supports_bearer", "supports_mtls", "supports_dpop"):
            prov.append(
                ("services", sid, col, "observed", f"accepted presentations in {total} requests")
            )
    return flow_table, svc_table, provenance_frame(prov)


def write_observed(result: ObserveResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Validate the observed inventory, then write ``flows.csv``, ``services.csv``,
    ``discrepancies.csv`` and ``provenance.csv`` into ``out_dir`` (spreadsheet-safe, as one
    set: a failure while writing leaves every file as it was). Raises :class:`ObserveError`
    (nothing written) if the observed tables do not validate, e.g. a logged resource server
    name contains a path separator."""
    try:
        result.inventory  # noqa: B018 - validation before anything is written
    except InventoryError as exc:
        raise ObserveError(f"the observed inventory does not validate:\n{exc}") from None
    out = Path(out_dir)
    names = {
        "flows": "flows.csv",
        "services": "services.csv",
        "discrepancies": DISCREPANCIES_FILE,
        "provenance": PROVENANCE_FILE,
    }
    with atomic_file_set(out) as stage:
        write_csv(result.flows, stage(names["flows"]), lineterminator="\n")
        write_csv(result.services, stage(names["services"]), lineterminator="\n")
        write_csv(result.discrepancies, stage(names["discrepancies"]), lineterminator="\n")
        write_provenance(result.provenance, stage(names["provenance"]))
    return {key: out / name for key, name in names.items()}
