"""Shared pieces of the IdP importers: the canonical client record, JSON reading with typed
errors, id hygiene, documented defaults and the step from records to inventory tables.

Every importer maps its source into the same canonical, RFC 7591-shaped record
(:class:`ClientRecord`: client id, kind, type, grant, binding, lifetimes, audiences), as
``../shared/research/ecosystem-2026-12.md`` §3.6 recommends; :func:`build` turns records into
raw ``flows`` / ``services`` / ``authorization_servers`` rows plus one provenance row per cell.
Each value carries its source (:class:`Value`): ``registered`` when the export states it,
``assumed`` when the documented default stands in for what the source cannot say.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from tokenlib.analysis import schema as S
from tokenlib.analysis._validate import Problem
from tokenlib.binding import Binding

__all__ = [
    "MAX_FILE_BYTES",
    "Audience",
    "ClientRecord",
    "Draft",
    "Finding",
    "MappingRow",
    "Registrations",
    "ServerRecord",
    "ServiceRecord",
    "Value",
    "assumed",
    "build",
    "jobj",
    "read_json",
    "registered",
    "safe_client_id",
    "safe_id",
]

#: Largest export file read (bytes). A realm export with 10,000 clients is about 60 MB.
MAX_FILE_BYTES = 512 * 1024 * 1024

FLOW_COLUMNS = S.FLOWS.names
SERVICE_COLUMNS = S.SERVICES.names
SERVER_COLUMNS = S.AUTHORIZATION_SERVERS.names


@dataclass(frozen=True, slots=True)
class Value:
    """One cell value with its provenance (``source`` in :data:`provenance.SOURCES`)."""

    value: Any
    source: str
    detail: str


def registered(value: Any, detail: str) -> Value:
    """A value the identity provider's registration states (``detail`` names the field)."""
    return Value(value, "registered", detail)


def assumed(value: Any, detail: str) -> Value:
    """A documented default standing in for a value no source states."""
    return Value(value, "assumed", detail)


@dataclass(slots=True)
class Audience:
    """One resource server a client obtains tokens for, with per-API overrides
    (scopes, lifetime, binding, audience restriction)."""

    service_id: str
    fields: dict[str, Value] = field(default_factory=dict)


@dataclass(slots=True)
class ClientRecord:
    """A client registration in canonical form. ``fields`` holds flow columns; ``location``
    says where in the source it is (for messages and provenance)."""

    client_id: str
    location: str
    fields: dict[str, Value] = field(default_factory=dict)
    audiences: list[Audience] = field(default_factory=list)


@dataclass(slots=True)
class ServiceRecord:
    """A resource server (API) the source knows about."""

    service_id: str
    fields: dict[str, Value] = field(default_factory=dict)


@dataclass(slots=True)
class ServerRecord:
    """The authorization server the registrations belong to."""

    as_id: str
    fields: dict[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finding:
    """Something an importer or the merge noticed and did not silently resolve.

    ``kind``: ``skipped_client`` (not an OAuth client of interest, e.g. a built-in),
    ``no_audience`` (the API is unknown: a placeholder service is used), ``unsupported_grant``,
    ``conflict`` (two sources disagree; ``values``/``sources`` list both), ``invalid_row``
    (the validator rejected the row; it is left out), ``unmatched_overlay`` (an overlay row
    matches nothing), ``note``.
    """

    kind: str
    table: str
    id: str
    column: str
    detail: str
    location: str = ""
    values: str = ""
    sources: str = ""
    resolution: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON form (``--json``) with the columns of ``conflicts.csv``."""
        return {
            "kind": self.kind,
            "table": self.table,
            "id": self.id,
            "column": self.column,
            "values": self.values,
            "sources": self.sources,
            "resolution": self.resolution,
            "detail": self.detail,
            "location": self.location,
        }


#: Columns of ``conflicts.csv`` (one row per finding).
FINDING_COLUMNS: tuple[str, ...] = (
    "kind",
    "table",
    "id",
    "column",
    "values",
    "sources",
    "resolution",
    "detail",
    "location",
)


@dataclass(slots=True)
class Registrations:
    """What one importer read from its files."""

    source: str
    files: tuple[str, ...]
    server: ServerRecord
    clients: list[ClientRecord] = field(default_factory=list)
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    extra_servers: list[ServerRecord] = field(default_factory=list)

    def service(self, service_id: str) -> ServiceRecord:
        """The service record for ``service_id`` (created on first use)."""
        if service_id not in self.services:
            self.services[service_id] = ServiceRecord(service_id)
        return self.services[service_id]


@dataclass(frozen=True, slots=True)
class MappingRow:
    """One line of an importer's mapping table (rendered into ``data/IMPORTERS.md``)."""

    column: str
    fields: str
    rule: str


# --- reading ----------------------------------------------------------------------------------


def _error(source: str, file: str, location: str, value: str, expected: str, code: str) -> Any:
    from tokenlib.analysis.inventory import InventoryError

    return InventoryError([Problem(source, file, None, location or None, value, expected, code)])


def read_json(path: str | Path, source: str) -> Any:
    """Parse one export file; any failure is an ``InventoryError`` naming the file and the
    line/column of a syntax error (code ``json``), or ``file`` when it cannot be read."""
    file = str(path)
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _error(
                source, file, "", f"{size} bytes", f"at most {MAX_FILE_BYTES} bytes", "file"
            )
        data = p.read_bytes()
    except FileNotFoundError:
        raise _error(source, file, "", "", "an existing file", "file") from None
    except IsADirectoryError:
        raise _error(source, file, "", "", "a file, not a directory", "file") from None
    except OSError as exc:
        raise _error(
            source, file, "", str(exc.strerror or exc), "a readable file", "file"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _error(source, file, f"byte {exc.start}", "", "UTF-8 JSON", "encoding") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(
            source, file, f"line {exc.lineno} column {exc.colno}", exc.msg, "valid JSON", "json"
        ) from None
    except RecursionError:
        raise _error(source, file, "", "nesting too deep", "valid JSON", "json") from None


def shape_error(source: str, file: str, location: str, value: Any, expected: str) -> Any:
    """``InventoryError`` for a document that parses but has the wrong shape (code ``shape``)."""
    return _error(source, file, location, _short(value), expected, "shape")


def missing_error(source: str, file: str, location: str, expected: str) -> Any:
    """``InventoryError`` for a record without its id (code ``missing_id``)."""
    return _error(source, file, location, "", expected, "missing_id")


def _short(value: Any) -> str:
    text = type(value).__name__ if isinstance(value, (dict, list)) else repr(value)
    return text[:80]


def jobj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty dict."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, ``[]`` for None, else a one-item list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def text(value: Any) -> str:
    """A JSON scalar as text ('' for None/containers)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def truthy(value: Any) -> bool | None:
    """JSON boolean or Keycloak-style string attribute (``"true"``) as bool; None if unset or
    not a boolean spelling."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "on", "yes", "1"):
            return True
        if low in ("false", "off", "no", "0", ""):
            return False if low else None
    return None


def seconds(value: Any) -> int | None:
    """A non-negative whole number of seconds from a JSON number or numeric string."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)) and value == value:
        return int(value) if value >= 0 else None
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNSAFE = re.compile("[>;\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _encode(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8"))


def safe_id(value: str) -> str:
    """``value`` stripped, with ``>`` (the path separator), ``;`` (the list separator) and
    control characters (C0, C1, U+2028/2029) percent-encoded, so the id survives every table,
    notebook and terminal (the loader refuses ids holding them)."""
    return _UNSAFE.sub(_encode, value.strip())


def safe_client_id(value: str) -> str:
    """A client id with control characters percent-encoded (``>`` and ``;`` are allowed in
    client ids and kept)."""
    return _CONTROL.sub(_encode, value)


_LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


def redirect_kinds(uris: Iterable[Any]) -> set[str]:
    """Kinds of redirect URIs (RFC 8252 §7): ``https``, ``http``, ``loopback``, ``custom``
    (private-use scheme such as ``com.example.app:/cb``), ``relative``."""
    kinds: set[str] = set()
    for raw in uris:
        uri = text(raw).strip()
        if not uri or uri in ("*", "+"):
            continue
        try:
            parts = urlsplit(uri)
        except ValueError:
            continue
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        if not scheme:
            kinds.add("relative")
        elif scheme in ("http", "https") and (host in _LOOPBACK or host.startswith("127.")):
            kinds.add("loopback")
        elif scheme in ("http", "https"):
            kinds.add(scheme)
        else:
            kinds.add("custom")
    return kinds


# --- defaults ---------------------------------------------------------------------------------

#: What an IdP registration cannot say, and the default every importer uses for it.
UNSTATED: Mapping[str, str] = {
    "environment": "prod: registrations do not record the environment",
    "path": "direct (empty): request-path hops are not in any IdP; declare them in the overlay",
    "key_storage": (
        "none for bearer, webcrypto_non_extractable for a DPoP browser_spa, else software: key "
        "storage is not in any IdP; declare it in the overlay"
    ),
    "cert_management": "manual for mtls, else none: not in any IdP",
    "binding_enforced": (
        "false: whether the resource server rejects the token without its proof is not in the "
        "IdP (unknown enforcement counts as not enforced)"
    ),
    "requests_per_day": "1000: volume comes from access logs (tokenlib inventory observe)",
    "exposure_channels": "by client_kind (schema default): where tokens of that kind leak",
    "forwards_token": "from services.downstream (schema default): not in any IdP",
    "rs_introspects": "false: resource-server validation is not in the IdP",
    "token_format": "jwt (schema default)",
    "token_exchange": "false (schema default)",
    "actor": "from client_kind (schema default)",
}


def default_detail(column: str) -> str:
    """The documented default of a flow column, as written into provenance."""
    if column in UNSTATED:
        return "default: " + UNSTATED[column]
    return "default: " + S.FLOWS.column(column).default_text()


# --- building tables --------------------------------------------------------------------------


@dataclass(slots=True)
class Draft:
    """Raw (text) inventory tables plus provenance rows and findings, before validation."""

    flows: pd.DataFrame
    services: pd.DataFrame
    servers: pd.DataFrame
    provenance: list[tuple[str, str, str, str, str]]
    findings: list[Finding]
    sources: tuple[str, ...]
    files: tuple[str, ...]


def cell(value: Any) -> str:
    """A value as inventory CSV text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def _default_key_storage(fields: Mapping[str, Value]) -> Value | None:
    binding = fields.get("binding")
    kind = fields.get("client_kind")
    if (
        binding is not None
        and kind is not None
        and binding.value == Binding.DPOP
        and kind.value == "browser_spa"
    ):
        return assumed(
            "webcrypto_non_extractable",
            "default: a DPoP browser SPA keeps a non-extractable WebCrypto key (RFC 9449 §2; "
            "the only browser key store the validator allows)",
        )
    return None


def build(reg: Registrations) -> Draft:
    """Rows of the three tables and one provenance row per cell (see module docstring).

    Columns a record leaves unset are written empty and filled by the loader's documented
    default (``provenance`` says ``assumed`` with the default's text); columns where an empty
    cell is itself a value (``scopes``, ``path``, ``exposure_channels``, ``downstream``) are
    filled here with the same default.
    """
    as_id = reg.server.as_id
    prov: list[tuple[str, str, str, str, str]] = []
    findings = list(reg.findings)
    flow_rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for client in reg.clients:
        owner = client.fields.get("authorization_server")
        client_as = str(owner.value) if owner is not None else as_id
        audiences = client.audiences or [
            Audience(
                safe_id(f"{client_as}:unknown-api"),
                {
                    "resource_server": assumed(
                        safe_id(f"{client_as}:unknown-api"),
                        "default: the registration names no API (audience); a placeholder "
                        "service stands in — declare the API in the overlay",
                    )
                },
            )
        ]
        if not client.audiences:
            findings.append(
                Finding(
                    "no_audience",
                    "flows",
                    client.client_id,
                    "resource_server",
                    f"{reg.source}: no API found for client {client.client_id!r}; placeholder "
                    f"service {audiences[0].service_id!r} used",
                    client.location,
                )
            )
            reg.service(audiences[0].service_id)
        cid_value = client.fields.get("client_id")
        clean = safe_client_id(client.client_id)
        if clean != client.client_id:
            detail = cid_value.detail if cid_value is not None else reg.source
            client.fields["client_id"] = registered(
                clean, detail + " (control characters percent-encoded)"
            )
        for aud in audiences:
            fields: dict[str, Value] = {**client.fields, **aud.fields}
            fields.setdefault(
                "resource_server",
                registered(aud.service_id, f"{reg.source}: API of {client.location}"),
            )
            fields.setdefault(
                "authorization_server",
                registered(as_id, f"{reg.source}: the exported {reg.source} authorization server"),
            )
            flow_id = safe_id(f"{client.client_id}@{aud.service_id}")
            if flow_id in seen:
                n = 2
                while f"{flow_id}#{n}" in seen:
                    n += 1
                flow_id = f"{flow_id}#{n}"
            seen.add(flow_id)
            key_storage = _default_key_storage(fields)
            if key_storage is not None and "key_storage" not in fields:
                fields["key_storage"] = key_storage
            row: dict[str, str] = {}
            for col in FLOW_COLUMNS:
                if col == "flow_id":
                    row[col] = flow_id
                    prov.append(
                        ("flows", flow_id, col, "registered", f"{reg.source}: {client.location}")
                    )
                    continue
                val = fields.get(col)
                if val is None:
                    column = S.FLOWS.column(col)
                    if column.empty_is_value:
                        kind = fields.get("client_kind")
                        if col == "exposure_channels" and kind is not None:
                            row[col] = S.DEFAULT_CHANNELS_BY_KIND.get(str(kind.value), "")
                        else:
                            row[col] = cell(column.default)
                    else:
                        row[col] = ""
                    prov.append(("flows", flow_id, col, "assumed", default_detail(col)))
                else:
                    row[col] = cell(val.value)
                    prov.append(("flows", flow_id, col, val.source, val.detail))
            flow_rows.append(row)

    # Services: every API a flow names; supports_<binding> follows the flows unless stated.
    used: dict[str, set[str]] = {}
    for row in flow_rows:
        used.setdefault(row["resource_server"], set()).add(row["binding"])
    service_rows: list[dict[str, str]] = []
    for service_id in sorted(set(reg.services) | set(used)):
        rec = reg.services.get(service_id) or ServiceRecord(service_id)
        srow: dict[str, str] = {}
        for col in SERVICE_COLUMNS:
            if col == "service_id":
                srow[col] = service_id
                prov.append(("services", service_id, col, "registered", f"{reg.source}: API"))
                continue
            val = rec.fields.get(col)
            if val is None and col in ("supports_mtls", "supports_dpop"):
                binding = col.removeprefix("supports_")
                if binding in used.get(service_id, set()):
                    val = assumed(
                        True,
                        f"default: a {binding}-bound flow calls it; whether it verifies the "
                        "binding is unknown (flows.binding_enforced)",
                    )
            if val is None:
                column = S.SERVICES.column(col)
                srow[col] = cell(column.default) if column.empty_is_value else ""
                prov.append(
                    ("services", service_id, col, "assumed", "default: " + column.default_text())
                )
            else:
                srow[col] = cell(val.value)
                prov.append(("services", service_id, col, val.source, val.detail))
        service_rows.append(srow)

    server_rows: list[dict[str, str]] = []
    for server in (reg.server, *reg.extra_servers):
        arow: dict[str, str] = {}
        sid = server.as_id
        bindings = {row["binding"] for row in flow_rows if row["authorization_server"] == sid}
        for col in SERVER_COLUMNS:
            if col == "as_id":
                arow[col] = sid
                prov.append(("authorization_servers", sid, col, "registered", reg.source))
                continue
            val = server.fields.get(col)
            if col in ("issues_dpop", "issues_mtls"):
                binding = Binding.DPOP if col == "issues_dpop" else Binding.MTLS
                if binding in bindings and (val is None or val.value is not True):
                    val = registered(True, f"{reg.source}: a client is registered {binding}-bound")
            if val is None:
                column = S.AUTHORIZATION_SERVERS.column(col)
                arow[col] = ""
                prov.append(
                    (
                        "authorization_servers",
                        sid,
                        col,
                        "assumed",
                        "default: " + column.default_text(),
                    )
                )
            else:
                arow[col] = cell(val.value)
                prov.append(("authorization_servers", sid, col, val.source, val.detail))
        server_rows.append(arow)

    return Draft(
        flows=pd.DataFrame(flow_rows, columns=list(FLOW_COLUMNS), dtype=object),
        services=pd.DataFrame(service_rows, columns=list(SERVICE_COLUMNS), dtype=object),
        servers=pd.DataFrame(server_rows, columns=list(SERVER_COLUMNS), dtype=object),
        provenance=prov,
        findings=findings,
        sources=(reg.source,),
        files=reg.files,
    )


def documents(
    files: Sequence[str | Path], source: str
) -> list[tuple[str, Any]]:  # pragma: no cover - trivial
    """``(file, parsed JSON)`` for each file, in order."""
    return [(str(f), read_json(f, source)) for f in files]
