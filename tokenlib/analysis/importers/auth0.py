"""Auth0 Management API v2 JSON → canonical client records.

Pass the response bodies of ``GET /api/v2/clients``, ``GET /api/v2/resource-servers`` and
``GET /api/v2/client-grants`` (lists, paginated objects with ``clients`` /
``resource_servers`` / ``client_grants``, or single objects, in any number of files). Field
names: Auth0 Management API schemas as mirrored in node-auth0 and the Auth0 Terraform provider
(``../shared/research/ecosystem-2026-12.md`` §3.3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenlib.analysis.importers._common import (
    Audience,
    ClientRecord,
    Finding,
    MappingRow,
    Registrations,
    ServerRecord,
    Value,
    as_list,
    assumed,
    jobj,
    missing_error,
    read_json,
    registered,
    safe_id,
    seconds,
    shape_error,
    text,
    truthy,
)
from tokenlib.binding import Binding

__all__ = ["MAPPING", "SOURCE", "parse"]

#: Auth0's ``proof_of_possession.mechanism`` values and the binding each one names.
_POP_MECHANISMS: dict[str, Binding] = {"mtls": Binding.MTLS, "dpop": Binding.DPOP}

SOURCE = "auth0"

#: Auth0's default access-token lifetime (reference token_lifetimes auth0_at_default).
DEFAULT_ACCESS_TOKEN_S = 86400

APP_TYPES: Mapping[str, tuple[str, str]] = {
    "spa": ("browser_spa", "authorization_code"),
    "native": ("mobile_app", "authorization_code"),
    "regular_web": ("web_backend", "authorization_code"),
    "non_interactive": ("service", "client_credentials"),
}
_TLS_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")

MAPPING: tuple[MappingRow, ...] = (
    MappingRow(
        "client_id",
        "`clients[].client_id`",
        "as is; the tenant's global client (`global: true`) and SSO-integration app types are "
        "not flows",
    ),
    MappingRow(
        "client_kind",
        "`app_type` (`grant_types` when absent)",
        "`spa` → `browser_spa`, `native` → `mobile_app`, `regular_web` → `web_backend`, "
        "`non_interactive` → `service`; without `app_type`: only `client_credentials` → "
        "`service`, `token_endpoint_auth_method: none` → `browser_spa`, else `web_backend`",
    ),
    MappingRow(
        "client_type",
        "`token_endpoint_auth_method`, `client_authentication_methods`",
        "`none` → `public`, any credential → `confidential`",
    ),
    MappingRow(
        "grant_type",
        "`app_type`, `grant_types`",
        "`client_credentials` for M2M apps, else `authorization_code`",
    ),
    MappingRow(
        "resource_server",
        "`client-grants[] {client_id, audience, scope}`, resource server `identifier`",
        "one flow per client grant (the API's `identifier` is the service id); an interactive "
        "app names its audience at run time, so without a grant a placeholder service is used "
        "(finding `no_audience`)",
    ),
    MappingRow(
        "binding",
        "resource server `proof_of_possession {mechanism, required, required_for}`, client "
        "`require_proof_of_possession`, `client_authentication_methods`",
        "the API's `mechanism` (`mtls`/`dpop`) when it is `required` for the client "
        "(`required_for` `all_clients`, `public_clients`, `confidential_clients`); a client "
        "requiring proof of possession uses the API's mechanism, else `mtls` when it "
        "authenticates with `tls_client_auth` / `self_signed_tls_client_auth`, else `dpop`; "
        "otherwise `bearer`",
    ),
    MappingRow(
        "access_token_lifetime_s",
        "resource server `token_lifetime`, `token_lifetime_for_web`",
        "`token_lifetime_for_web` for SPAs when set, else `token_lifetime`; 86400 (Auth0 "
        "default, assumed) without a known API",
    ),
    MappingRow(
        "refresh_token",
        "`grant_types` (`refresh_token`), `refresh_token.rotation_type`, resource server "
        "`allow_offline_access`",
        "issued when the client has the `refresh_token` grant and the API allows offline "
        "access; `rotating` / `non-rotating` → `rotating` / `static`",
    ),
    MappingRow(
        "refresh_token_lifetime_s",
        "`refresh_token.{token_lifetime, infinite_token_lifetime, idle_token_lifetime, "
        "infinite_idle_token_lifetime}`",
        "`token_lifetime` when finite, else the idle lifetime when that is finite, else "
        "`token_lifetime` (Auth0's stored value; the provenance detail says it is infinite)",
    ),
    MappingRow("scopes", "`client-grants[].scope[]`", "space-separated"),
    MappingRow(
        "audience_restricted",
        "resource server `identifier`",
        "true for a flow to a known API (Auth0 sets `aud` to the API identifier)",
    ),
    MappingRow(
        "authorization_server",
        "`tenant` when present",
        "`auth0:<tenant>` or `auth0`",
    ),
)


def _records(doc: Any, file: str) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(kind, location, object) for every client / resource server / grant in a document."""
    if isinstance(doc, dict):
        for key, kind in (
            ("clients", "client"),
            ("resource_servers", "resource_server"),
            ("client_grants", "grant"),
        ):
            if isinstance(doc.get(key), list):
                return [
                    (kind, f"{key}[{i}]", obj)
                    for i, obj in enumerate(doc[key])
                    if _obj(obj, file, f"{key}[{i}]")
                ]
        items: list[tuple[str, Any]] = [("$", doc)]
    elif isinstance(doc, list):
        items = [(f"[{i}]", obj) for i, obj in enumerate(doc)]
    else:
        raise shape_error(SOURCE, file, "$", doc, "Auth0 Management API JSON (object or list)")
    out: list[tuple[str, str, Mapping[str, Any]]] = []
    for loc, obj in items:
        _obj(obj, file, loc)
        if "identifier" in obj and (
            "token_lifetime" in obj or "signing_alg" in obj or "scopes" in obj
        ):
            out.append(("resource_server", loc, obj))
        elif (
            "audience" in obj and "client_id" in obj and "app_type" not in obj and "name" not in obj
        ):
            out.append(("grant", loc, obj))
        elif "client_id" in obj or "app_type" in obj or "name" in obj:
            out.append(("client", loc, obj))
        else:
            raise shape_error(
                SOURCE,
                file,
                loc,
                obj,
                "an Auth0 client (client_id), resource server (identifier) or client grant "
                "(client_id + audience)",
            )
    return out


def _obj(obj: Any, file: str, loc: str) -> bool:
    if not isinstance(obj, dict):
        raise shape_error(SOURCE, file, loc, obj, "a JSON object")
    return True


def parse(files: Sequence[str | Path], *, as_id: str | None = None) -> Registrations:
    """Read Auth0 Management API files into canonical records (see :data:`MAPPING`)."""
    clients: list[tuple[str, Mapping[str, Any]]] = []
    servers: dict[str, tuple[str, Mapping[str, Any]]] = {}
    grants: list[tuple[str, Mapping[str, Any]]] = []
    for f in files:
        file = str(f)
        for kind, loc, obj in _records(read_json(f, SOURCE), file):
            where = f"{file}:{loc}"
            if kind == "client":
                if not text(obj.get("client_id")).strip():
                    raise missing_error(SOURCE, file, f"{loc}.client_id", "a non-empty client_id")
                clients.append((where, obj))
            elif kind == "resource_server":
                ident = text(obj.get("identifier")).strip()
                if not ident:
                    raise missing_error(SOURCE, file, f"{loc}.identifier", "a non-empty identifier")
                servers[ident] = (where, obj)
            else:
                if not text(obj.get("audience")).strip() or not text(obj.get("client_id")).strip():
                    raise missing_error(
                        SOURCE, file, loc, "a client grant with client_id and audience"
                    )
                grants.append((where, obj))
    tenant = next((text(c.get("tenant")) for _, c in clients if text(c.get("tenant"))), "")
    server_id = safe_id(as_id or (f"auth0:{tenant}" if tenant else "auth0"))
    regs = Registrations(SOURCE, tuple(str(f) for f in files), ServerRecord(server_id))
    regs.server.fields["product"] = registered("Auth0", "auth0 Management API export")
    regs.server.fields["issues_dpop"] = assumed(
        True, "default: Auth0 issues DPoP-bound tokens (GA 2026; ecosystem §2.2)"
    )
    mtls_seen = any(
        _POP_MECHANISMS.get(text((obj.get("proof_of_possession") or {}).get("mechanism")))
        is Binding.MTLS
        for _, obj in servers.values()
        if isinstance(obj.get("proof_of_possession"), dict)
    )
    if mtls_seen:
        regs.server.fields["issues_mtls"] = registered(
            True, "auth0 resource server proof_of_possession.mechanism mtls"
        )
    else:
        regs.server.fields["issues_mtls"] = assumed(
            False, "default: Auth0 mTLS sender constraining needs the HRI add-on (ecosystem §2.2)"
        )
    for ident, (where, obj) in servers.items():
        svc = regs.service(safe_id(ident))
        pop = obj.get("proof_of_possession")
        if isinstance(pop, dict) and text(pop.get("mechanism")) in _POP_MECHANISMS:
            mech = text(pop.get("mechanism"))
            svc.fields[f"supports_{_POP_MECHANISMS[mech]}"] = registered(
                True, f"auth0 {where} proof_of_possession.mechanism {mech}"
            )
    by_client: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for where, g in grants:
        by_client.setdefault(text(g.get("client_id")), []).append((where, g))
    for where, client in clients:
        _client(regs, where, client, servers, by_client.get(text(client.get("client_id")), []))
    known = {text(c.get("client_id")) for _, c in clients}
    for cid, gs in by_client.items():
        if cid not in known:
            regs.findings.append(
                Finding(
                    "note",
                    "flows",
                    cid,
                    "",
                    "client grant for a client not in the files (pass GET /api/v2/clients too)",
                    gs[0][0],
                )
            )
    return regs


def _client(
    regs: Registrations,
    where: str,
    client: Mapping[str, Any],
    servers: Mapping[str, tuple[str, Mapping[str, Any]]],
    grants: Sequence[tuple[str, Mapping[str, Any]]],
) -> None:
    cid = text(client.get("client_id")).strip()
    if truthy(client.get("global")) is True or text(client.get("name")) == "All Applications":
        regs.findings.append(
            Finding("skipped_client", "flows", cid, "", "the tenant's global client", where)
        )
        return
    app_type = text(client.get("app_type"))
    grant_types = [text(g) for g in as_list(client.get("grant_types"))]
    auth_method = text(client.get("token_endpoint_auth_method"))
    methods = client.get("client_authentication_methods")
    method_names = set(methods) if isinstance(methods, dict) else set()
    if app_type in APP_TYPES:
        kind, grant = APP_TYPES[app_type]
        kind_v = registered(kind, f"auth0 {where}.app_type {app_type}")
        grant_v = registered(grant, f"auth0 {where}.app_type {app_type}")
    elif app_type:
        regs.findings.append(
            Finding(
                "skipped_client",
                "flows",
                cid,
                "",
                f"app_type {app_type!r} is an SSO integration, not an OAuth API client",
                where,
            )
        )
        return
    else:
        if grant_types == ["client_credentials"]:
            kind, grant = "service", "client_credentials"
        elif auth_method == "none":
            kind, grant = "browser_spa", "authorization_code"
        else:
            kind, grant = "web_backend", "authorization_code"
        rule = f"auth0 {where}: no app_type; from grant_types {grant_types} and auth method"
        kind_v, grant_v = registered(kind, rule), registered(grant, rule)
    rec = ClientRecord(cid, where)
    rec.fields["client_id"] = registered(cid, f"auth0 {where}.client_id")
    rec.fields["client_kind"] = kind_v
    rec.fields["grant_type"] = grant_v
    if auth_method or method_names:
        public = auth_method == "none" and not method_names
        rec.fields["client_type"] = registered(
            "public" if public else "confidential",
            f"auth0 {where}.token_endpoint_auth_method {auth_method or '(credentials)'}",
        )
    public_now = rec.fields.get("client_type", Value(None, "", "")).value == "public" or (
        "client_type" not in rec.fields and kind in ("browser_spa", "mobile_app")
    )
    tls_client = auth_method in _TLS_METHODS or bool(method_names & set(_TLS_METHODS))
    requires_pop = truthy(client.get("require_proof_of_possession")) is True
    rt_cfg = jobj(client.get("refresh_token"))
    wants_rt = "refresh_token" in grant_types and kind != "service"

    for gwhere, g in grants:
        ident = text(g.get("audience"))
        rs_where, rs = servers.get(ident, ("", None))
        aud = Audience(safe_id(ident))
        aud.fields["resource_server"] = registered(safe_id(ident), f"auth0 {gwhere}.audience")
        aud.fields["audience_restricted"] = registered(
            True, f"auth0 {gwhere}.audience (aud = API identifier)"
        )
        scope = " ".join(text(s) for s in as_list(g.get("scope")) if text(s))
        aud.fields["scopes"] = registered(scope, f"auth0 {gwhere}.scope")
        aud.fields["binding"] = _binding(rs, rs_where, requires_pop, tls_client, public_now, where)
        aud.fields["access_token_lifetime_s"] = _lifetime(rs, rs_where, kind)
        if rs is not None and truthy(rs.get("allow_offline_access")) is False and wants_rt:
            aud.fields["refresh_token"] = registered(
                "none", f"auth0 {rs_where}.allow_offline_access false"
            )
            aud.fields["refresh_token_lifetime_s"] = registered(
                0, f"auth0 {rs_where}.allow_offline_access false"
            )
        regs.service(safe_id(ident))
        rec.audiences.append(aud)
    if not rec.audiences:
        rec.fields["binding"] = _binding(None, "", requires_pop, tls_client, public_now, where)
        rec.fields["access_token_lifetime_s"] = _lifetime(None, "", kind)
    rec.fields.setdefault("refresh_token", _refresh(where, wants_rt, rt_cfg))
    if rec.fields["refresh_token"].value != "none":
        rec.fields["refresh_token_lifetime_s"] = _refresh_lifetime(where, rt_cfg)
    regs.clients.append(rec)


def _binding(
    rs: Mapping[str, Any] | None,
    rs_where: str,
    requires_pop: bool,
    tls_client: bool,
    public: bool,
    where: str,
) -> Value:
    pop = rs.get("proof_of_possession") if rs is not None else None
    mech = text(pop.get("mechanism")) if isinstance(pop, dict) else ""
    if isinstance(pop, dict) and mech in _POP_MECHANISMS and truthy(pop.get("required")) is True:
        applies_to = text(pop.get("required_for")) or "all_clients"
        applies = (
            applies_to == "all_clients"
            or (applies_to == "public_clients" and public)
            or (applies_to == "confidential_clients" and not public)
        )
        if applies:
            return registered(
                _POP_MECHANISMS[mech],
                f"auth0 {rs_where}.proof_of_possession (mechanism {mech}, required, "
                f"required_for {applies_to})",
            )
    if requires_pop:
        chosen = _POP_MECHANISMS.get(mech) or (Binding.MTLS if tls_client else Binding.DPOP)
        return registered(
            chosen,
            f"auth0 {where}.require_proof_of_possession true; mechanism "
            + (
                f"{mech} from the API"
                if mech in _POP_MECHANISMS
                else ("mtls (client authenticates with mTLS)" if tls_client else "dpop")
            ),
        )
    return registered(
        Binding.BEARER,
        f"auth0 {where}.require_proof_of_possession not true"
        + (f" and {rs_where}.proof_of_possession not required" if rs is not None else ""),
    )


def _lifetime(rs: Mapping[str, Any] | None, rs_where: str, kind: str) -> Value:
    if rs is not None:
        web = seconds(rs.get("token_lifetime_for_web"))
        if kind == "browser_spa" and web:
            return registered(web, f"auth0 {rs_where}.token_lifetime_for_web")
        life = seconds(rs.get("token_lifetime"))
        if life:
            return registered(life, f"auth0 {rs_where}.token_lifetime")
    return assumed(
        DEFAULT_ACCESS_TOKEN_S,
        "default: Auth0 access-token lifetime 86400 s (reference token_lifetimes "
        "auth0_at_default); no API of this client in the files",
    )


def _refresh(where: str, wants: bool, cfg: Mapping[str, Any]) -> Value:
    if not wants:
        return registered("none", f"auth0 {where}.grant_types has no refresh_token")
    rotation = text(cfg.get("rotation_type"))
    if rotation == "rotating":
        return registered("rotating", f"auth0 {where}.refresh_token.rotation_type rotating")
    if rotation == "non-rotating":
        return registered("static", f"auth0 {where}.refresh_token.rotation_type non-rotating")
    return assumed(
        "static", f"default: auth0 {where} has the refresh_token grant; no rotation_type"
    )


def _refresh_lifetime(where: str, cfg: Mapping[str, Any]) -> Value:
    life = seconds(cfg.get("token_lifetime"))
    idle = seconds(cfg.get("idle_token_lifetime"))
    infinite = truthy(cfg.get("infinite_token_lifetime")) is True
    infinite_idle = truthy(cfg.get("infinite_idle_token_lifetime")) is True
    if life and not infinite:
        return registered(life, f"auth0 {where}.refresh_token.token_lifetime")
    if infinite and idle and not infinite_idle:
        return registered(
            idle,
            f"auth0 {where}.refresh_token: infinite_token_lifetime; idle_token_lifetime bounds it",
        )
    if life:
        return registered(
            life,
            f"auth0 {where}.refresh_token.token_lifetime (infinite_token_lifetime true: the "
            "token never expires; the stored value is used)",
        )
    return assumed(
        2592000,
        "default: Auth0 refresh-token lifetime 2592000 s (reference token_lifetimes "
        "auth0_rt_absolute, an assumption)",
    )
