"""RFC 7591 client metadata (dynamic client registration responses, RFC 7592 reads, or any
store of such documents) → canonical client records: the neutral format anyone can produce.

A file holds one registration document, a list of them, or ``{"clients": [...]}``. Fields are
taken exactly as specified — RFC 7591 §2 (``grant_types``, ``token_endpoint_auth_method``,
``redirect_uris``, ``scope``), OpenID Connect DCR ``application_type``, RFC 8705 §3.4
``tls_client_certificate_bound_access_tokens`` and RFC 9449 §5.2 ``dpop_bound_access_tokens``
— plus ``x_``-prefixed extensions for what DCR lacks (``../shared/research/
ecosystem-2026-12.md`` §3.6): ``x_client_kind``, ``x_access_token_lifetime_s``,
``x_refresh_token_lifetime_s``, ``x_refresh_token_rotation`` and ``x_audiences``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenlib.analysis import schema as S
from tokenlib.analysis.importers._common import (
    Audience,
    ClientRecord,
    MappingRow,
    Registrations,
    ServerRecord,
    Value,
    as_list,
    assumed,
    missing_error,
    read_json,
    redirect_kinds,
    registered,
    safe_id,
    seconds,
    shape_error,
    text,
    truthy,
)
from tokenlib.binding import Binding

__all__ = ["MAPPING", "SOURCE", "X_CLIENT_KINDS", "parse"]

SOURCE = "rfc7591"

#: ``x_client_kind`` values (ecosystem §3.6 spelling) → schema client kinds; schema names are
#: accepted too.
X_CLIENT_KINDS: Mapping[str, str] = {
    "spa": "browser_spa",
    "native": "mobile_app",
    "web": "web_backend",
    "service": "service",
    "ci": "batch_job",
    "device": "cli_tool",
    **{k: k for k in S.CLIENT_KINDS},
}
_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant URN
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_TLS = ("tls_client_auth", "self_signed_tls_client_auth")

MAPPING: tuple[MappingRow, ...] = (
    MappingRow("client_id", "`client_id`", "as is (a registration without one is an error)"),
    MappingRow(
        "client_kind",
        "`x_client_kind`, else `grant_types`, `token_endpoint_auth_method`, "
        "`application_type`, `redirect_uris`",
        "`x_client_kind` (`spa`, `native`, `web`, `service`, `ci`, `device` or a schema kind); "
        "else: device grant → `cli_tool`; only `client_credentials` → `service`; token-exchange "
        "grant → `ai_agent`; auth method `none` → `mobile_app` for `application_type: native` "
        "or a private-use-scheme redirect, else `browser_spa`; otherwise `web_backend`",
    ),
    MappingRow(
        "client_type",
        "`token_endpoint_auth_method` (default `client_secret_basic`, RFC 7591 §2)",
        "`none` → `public`, else `confidential`",
    ),
    MappingRow(
        "grant_type",
        "`grant_types` (default `authorization_code`, RFC 7591 §2)",
        "device / client credentials / token exchange / JWT bearer / authorization code, "
        "in that order of preference",
    ),
    MappingRow(
        "binding",
        "`tls_client_certificate_bound_access_tokens` (RFC 8705 §3.4), "
        "`dpop_bound_access_tokens` (RFC 9449 §5.2)",
        "true → `mtls` / `dpop` (both: `mtls` for `tls_client_auth` / "
        "`self_signed_tls_client_auth`, else `dpop`); else `bearer`",
    ),
    MappingRow(
        "access_token_lifetime_s",
        "`x_access_token_lifetime_s`",
        "as given; else the schema default 3600 (assumed)",
    ),
    MappingRow(
        "refresh_token",
        "`grant_types` (`refresh_token`), `x_refresh_token_rotation`",
        "issued with the `refresh_token` grant; rotation true → `rotating`, else `static`",
    ),
    MappingRow(
        "refresh_token_lifetime_s",
        "`x_refresh_token_lifetime_s`",
        "as given; else the schema default 7776000 (assumed)",
    ),
    MappingRow(
        "resource_server",
        "`x_audiences[]`",
        "one flow per audience; without it a placeholder service (finding `no_audience`)",
    ),
    MappingRow("scopes", "`scope`", "as is (space-separated, RFC 7591 §2)"),
    MappingRow(
        "audience_restricted", "`x_audiences[]`", "true when the registration names its audiences"
    ),
)


def _docs(doc: Any, file: str) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(doc, dict) and isinstance(doc.get("clients"), list):
        items, prefix = doc["clients"], "clients"
    elif isinstance(doc, dict):
        return [("$", doc)]
    elif isinstance(doc, list):
        items, prefix = doc, ""
    else:
        raise shape_error(
            SOURCE, file, "$", doc, "RFC 7591 client metadata (an object, a list or {clients})"
        )
    out: list[tuple[str, Mapping[str, Any]]] = []
    for i, obj in enumerate(items):
        if not isinstance(obj, dict):
            raise shape_error(SOURCE, file, f"{prefix}[{i}]", obj, "a client metadata object")
        out.append((f"{prefix}[{i}]", obj))
    return out


def parse(files: Sequence[str | Path], *, as_id: str | None = None) -> Registrations:
    """Read RFC 7591 metadata files into canonical records (see :data:`MAPPING`)."""
    regs = Registrations(
        SOURCE, tuple(str(f) for f in files), ServerRecord(safe_id(as_id or "rfc7591"))
    )
    for f in files:
        file = str(f)
        for loc, meta in _docs(read_json(f, SOURCE), file):
            cid = text(meta.get("client_id")).strip()
            if not cid:
                raise missing_error(SOURCE, file, f"{loc}.client_id", "a non-empty client_id")
            regs.clients.append(_client(regs, f"{file}:{loc}", cid, meta))
    return regs


def _grant(grants: Sequence[str]) -> str:
    for name, grant in (
        (_DEVICE, "device_code"),
        ("client_credentials", "client_credentials"),
        (_TOKEN_EXCHANGE, "token_exchange"),
        (_JWT_BEARER, "jwt_bearer"),
    ):
        if name in grants and (grant != "client_credentials" or "authorization_code" not in grants):
            return grant
    return "authorization_code"


def _client(regs: Registrations, where: str, cid: str, meta: Mapping[str, Any]) -> ClientRecord:
    grants = [text(g) for g in as_list(meta.get("grant_types"))] or ["authorization_code"]
    grants_src = "grant_types" if meta.get("grant_types") else "grant_types (default)"
    method = text(meta.get("token_endpoint_auth_method")) or "client_secret_basic"
    method_src = (
        "token_endpoint_auth_method"
        if meta.get("token_endpoint_auth_method")
        else "token_endpoint_auth_method (default client_secret_basic)"
    )
    grant = _grant(grants)
    x_kind = text(meta.get("x_client_kind")).strip().lower()
    if x_kind in X_CLIENT_KINDS:
        kind = X_CLIENT_KINDS[x_kind]
        kind_v = registered(kind, f"rfc7591 {where}.x_client_kind")
    else:
        app_type = text(meta.get("application_type")) or "web"
        if grant == "device_code":
            kind = "cli_tool"
        elif grant == "client_credentials":
            kind = "service"
        elif grant == "token_exchange":
            kind = "ai_agent"
        elif method == "none":
            custom = "custom" in redirect_kinds(as_list(meta.get("redirect_uris")))
            kind = "mobile_app" if app_type == "native" or custom else "browser_spa"
        else:
            kind = "web_backend"
        kind_v = registered(kind, f"rfc7591 {where}: {grants_src} {grants}, {method_src} {method}")
    rec = ClientRecord(cid, where)
    rec.fields["client_id"] = registered(cid, f"rfc7591 {where}.client_id")
    rec.fields["client_kind"] = kind_v
    rec.fields["grant_type"] = registered(grant, f"rfc7591 {where}.{grants_src}")
    rec.fields["client_type"] = registered(
        "public" if method == "none" else "confidential", f"rfc7591 {where}.{method_src}"
    )
    rec.fields["binding"] = _binding(meta, where, method, regs)
    life = seconds(meta.get("x_access_token_lifetime_s"))
    if life:
        rec.fields["access_token_lifetime_s"] = registered(
            life, f"rfc7591 {where}.x_access_token_lifetime_s"
        )
    if "refresh_token" in grants:
        rotating = truthy(meta.get("x_refresh_token_rotation"))
        rec.fields["refresh_token"] = (
            registered(
                "rotating" if rotating else "static", f"rfc7591 {where}.x_refresh_token_rotation"
            )
            if rotating is not None
            else assumed("static", "default: RFC 7591 does not say whether refresh tokens rotate")
        )
        rt_life = seconds(meta.get("x_refresh_token_lifetime_s"))
        if rt_life:
            rec.fields["refresh_token_lifetime_s"] = registered(
                rt_life, f"rfc7591 {where}.x_refresh_token_lifetime_s"
            )
    else:
        rec.fields["refresh_token"] = registered("none", f"rfc7591 {where}.{grants_src}")
    scope = text(meta.get("scope"))
    if scope:
        rec.fields["scopes"] = registered(scope, f"rfc7591 {where}.scope")
    for j, aud in enumerate(as_list(meta.get("x_audiences"))):
        name = text(aud).strip()
        if not name:
            continue
        sid = safe_id(name)
        regs.service(sid)
        detail = f"rfc7591 {where}.x_audiences[{j}]"
        rec.audiences.append(
            Audience(
                sid,
                {
                    "resource_server": registered(sid, detail),
                    "audience_restricted": registered(True, detail),
                },
            )
        )
    return rec


def _binding(meta: Mapping[str, Any], where: str, method: str, regs: Registrations) -> Value:
    mtls = truthy(meta.get("tls_client_certificate_bound_access_tokens")) is True
    dpop = truthy(meta.get("dpop_bound_access_tokens")) is True
    if mtls and dpop:
        chosen = Binding.MTLS if method in _TLS else Binding.DPOP
        return registered(
            chosen,
            f"rfc7591 {where}: both tls_client_certificate_bound_access_tokens and "
            f"dpop_bound_access_tokens true; {chosen} (token_endpoint_auth_method {method})",
        )
    if mtls:
        return registered(
            Binding.MTLS, f"rfc7591 {where}.tls_client_certificate_bound_access_tokens"
        )
    if dpop:
        return registered(Binding.DPOP, f"rfc7591 {where}.dpop_bound_access_tokens")
    return registered(
        Binding.BEARER,
        f"rfc7591 {where}: neither tls_client_certificate_bound_access_tokens nor "
        "dpop_bound_access_tokens is true",
    )
