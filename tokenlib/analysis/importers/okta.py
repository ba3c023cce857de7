"""Okta Apps API and authorization-server API JSON → canonical client records.

Pass the response bodies of ``GET /api/v1/apps``, ``GET /api/v1/authorizationServers`` (or one
server), ``GET /api/v1/authorizationServers/{id}/policies`` and ``…/policies/{pid}/rules``
(lists or single objects, any number of files). Field names: Okta Management API
(okta-management-openapi-spec; ``../shared/research/ecosystem-2026-12.md`` §3.4).
"""

from __future__ import annotations

import re
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
    redirect_kinds,
    registered,
    safe_id,
    seconds,
    shape_error,
    text,
    truthy,
)
from tokenlib.binding import Binding

__all__ = ["MAPPING", "SOURCE", "parse"]

SOURCE = "okta"

#: Okta org authorization server lifetimes (reference token_lifetimes okta_org_at, okta_org_rt).
DEFAULT_ACCESS_TOKEN_S = 3600
DEFAULT_REFRESH_TOKEN_S = 7776000

APPLICATION_TYPES: Mapping[str, tuple[str, str]] = {
    "browser": ("browser_spa", "authorization_code"),
    "native": ("mobile_app", "authorization_code"),
    "web": ("web_backend", "authorization_code"),
    "service": ("service", "client_credentials"),
}
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

MAPPING: tuple[MappingRow, ...] = (
    MappingRow(
        "client_id",
        "`credentials.oauthClient.client_id`, else `id`",
        "apps with `signOnMode` other than `OPENID_CONNECT` are not OAuth clients",
    ),
    MappingRow(
        "client_kind",
        "`settings.oauthClient.application_type`, `grant_types`",
        "`browser` → `browser_spa`, `native` → `mobile_app` (`cli_tool` when its only grant is "
        "the device grant), `web` → `web_backend`, `service` → `service`",
    ),
    MappingRow(
        "client_type",
        "`credentials.oauthClient.token_endpoint_auth_method`",
        "`none` → `public`, else `confidential`",
    ),
    MappingRow(
        "grant_type",
        "`settings.oauthClient.grant_types`",
        "`client_credentials` for service apps, `device_code` for device-grant apps, else "
        "`authorization_code`",
    ),
    MappingRow(
        "binding",
        "`settings.oauthClient.dpop_bound_access_tokens`",
        "true → `dpop`, else `bearer` (Okta's RFC 8705 support is unconfirmed, ecosystem §8)",
    ),
    MappingRow(
        "resource_server",
        "authorization server `audiences[]`; policy `conditions.clients.include[]`",
        "one flow per audience of each authorization server whose policy includes the app (or "
        "`ALL_CLIENTS`); without servers in the files a placeholder service is used",
    ),
    MappingRow(
        "access_token_lifetime_s",
        "policy rule `actions.token.accessTokenLifetimeMinutes`",
        "× 60, from the first active rule (lowest `priority`) of the first policy that includes "
        "the app and whose rule allows its grant; else 3600 (Okta default, assumed)",
    ),
    MappingRow(
        "refresh_token",
        "`settings.oauthClient.grant_types` (`refresh_token`), "
        "`settings.oauthClient.refresh_token.rotation_type`",
        "issued with the `refresh_token` grant; `ROTATE` → `rotating`, else `static`",
    ),
    MappingRow(
        "refresh_token_lifetime_s",
        "rule `actions.token.refreshTokenLifetimeMinutes`, `refreshTokenWindowMinutes`",
        "lifetime × 60; 0 (unlimited) → the idle window × 60; else 7776000 (assumed)",
    ),
    MappingRow(
        "scopes",
        "rule `conditions.scopes.include[]`",
        "space-separated (`*` = all scopes)",
    ),
    MappingRow(
        "authorization_server",
        "authorization server `id`",
        "`okta:<id>`; `okta:org` without servers in the files",
    ),
)

_POLICY_HREF = re.compile(r"/authorizationServers/([^/]+)/policies/([^/]+)")


def _items(doc: Any, file: str) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(doc, dict):
        return [("$", doc)]
    if isinstance(doc, list):
        out: list[tuple[str, Mapping[str, Any]]] = []
        for i, obj in enumerate(doc):
            if not isinstance(obj, dict):
                raise shape_error(SOURCE, file, f"[{i}]", obj, "a JSON object")
            out.append((f"[{i}]", obj))
        return out
    raise shape_error(SOURCE, file, "$", doc, "Okta API JSON (an object or a list of objects)")


def _kind_of(obj: Mapping[str, Any]) -> str:
    if "signOnMode" in obj:
        return "app"
    if "audiences" in obj and ("issuer" in obj or "issuerMode" in obj):
        return "server"
    typ = text(obj.get("type"))
    if typ == "OAUTH_AUTHORIZATION_POLICY":
        return "policy"
    if typ == "RESOURCE_ACCESS" or isinstance((obj.get("actions") or {}).get("token"), dict):
        return "rule"
    return ""


def _href(obj: Mapping[str, Any]) -> str:
    links = obj.get("_links")
    if isinstance(links, dict) and isinstance(links.get("self"), dict):
        return text(links["self"].get("href"))
    return ""


def parse(files: Sequence[str | Path], *, as_id: str | None = None) -> Registrations:
    """Read Okta API files into canonical records (see :data:`MAPPING`)."""
    apps: list[tuple[str, Mapping[str, Any]]] = []
    servers: list[tuple[str, Mapping[str, Any]]] = []
    policies: list[tuple[str, Mapping[str, Any]]] = []
    rules: list[tuple[str, Mapping[str, Any]]] = []
    for f in files:
        file = str(f)
        for loc, obj in _items(read_json(f, SOURCE), file):
            kind = _kind_of(obj)
            where = f"{file}:{loc}"
            if kind == "app":
                apps.append((where, obj))
            elif kind == "server":
                if not text(obj.get("id")):
                    raise missing_error(SOURCE, file, f"{loc}.id", "an authorization server id")
                servers.append((where, obj))
            elif kind == "policy":
                policies.append((where, obj))
            elif kind == "rule":
                rules.append((where, obj))
            else:
                raise shape_error(
                    SOURCE,
                    file,
                    loc,
                    obj,
                    "an Okta app (signOnMode), authorization server (issuer, audiences), "
                    "policy (type OAUTH_AUTHORIZATION_POLICY) or policy rule (type "
                    "RESOURCE_ACCESS)",
                )
    one = as_id if as_id and len(servers) <= 1 else None
    idmap = {text(s.get("id")): safe_id(one or f"okta:{text(s.get('id'))}") for _, s in servers}
    ids = list(dict.fromkeys(idmap.values())) or [safe_id(one or "okta:org")]
    regs = Registrations(SOURCE, tuple(str(f) for f in files), ServerRecord(ids[0]))
    regs.extra_servers = [ServerRecord(i) for i in dict.fromkeys(ids[1:]) if i != ids[0]]
    for server in (regs.server, *regs.extra_servers):
        server.fields["product"] = registered("Okta", "okta API export")
        server.fields["issues_dpop"] = assumed(
            True, "default: Okta issues DPoP-bound tokens (ecosystem §2.2)"
        )
        server.fields["issues_mtls"] = assumed(
            False, "default: Okta RFC 8705 certificate-bound tokens unconfirmed (ecosystem §8)"
        )
    # Rules → policies (by the policy id in _links.self.href; the only policy otherwise).
    policy_ids = {text(p.get("id")): (w, p) for w, p in policies}
    rules_of: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for where, rule in rules:
        m = _POLICY_HREF.search(_href(rule))
        pid = m.group(2) if m and m.group(2) in policy_ids else ""
        if not pid and len(policy_ids) == 1:
            pid = next(iter(policy_ids))
            regs.findings.append(
                Finding(
                    "note",
                    "flows",
                    text(rule.get("id")),
                    "access_token_lifetime_s",
                    f"rule linked to the only policy {pid!r} (its _links name no known policy)",
                    where,
                )
            )
        rules_of.setdefault(pid, []).append((where, rule))
    for where, app in apps:
        _app(regs, where, app, servers, policies, rules_of, idmap)
    return regs


def _policy_server(
    policy: Mapping[str, Any], servers: Sequence[tuple[str, Mapping[str, Any]]]
) -> str:
    m = _POLICY_HREF.search(_href(policy))
    if m:
        return m.group(1)
    return text(servers[0][1].get("id")) if len(servers) == 1 else ""


def _app(
    regs: Registrations,
    where: str,
    app: Mapping[str, Any],
    servers: Sequence[tuple[str, Mapping[str, Any]]],
    policies: Sequence[tuple[str, Mapping[str, Any]]],
    rules_of: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    idmap: Mapping[str, str],
) -> None:
    app_id = text(app.get("id"))
    creds = jobj(jobj(app.get("credentials")).get("oauthClient"))
    creds = creds if isinstance(creds, dict) else {}
    settings = jobj(jobj(app.get("settings")).get("oauthClient"))
    settings = settings if isinstance(settings, dict) else {}
    cid = text(creds.get("client_id")) or app_id
    if not cid:
        raise missing_error(
            SOURCE,
            where.rsplit(":", 1)[0],
            f"{where.rsplit(':', 1)[1]}.id",
            "an app id or credentials.oauthClient.client_id",
        )
    if text(app.get("signOnMode")) != "OPENID_CONNECT":
        regs.findings.append(
            Finding(
                "skipped_client",
                "flows",
                cid,
                "",
                f"signOnMode {text(app.get('signOnMode'))}",
                where,
            )
        )
        return
    if text(app.get("status")) == "INACTIVE":
        regs.findings.append(Finding("skipped_client", "flows", cid, "", "app INACTIVE", where))
        return
    app_type = text(settings.get("application_type"))
    grants = [text(g) for g in as_list(settings.get("grant_types"))]
    if app_type not in APPLICATION_TYPES:
        regs.findings.append(
            Finding(
                "skipped_client", "flows", cid, "", f"application_type {app_type!r} unknown", where
            )
        )
        return
    kind, grant = APPLICATION_TYPES[app_type]
    rule_text = f"okta {where}.settings.oauthClient.application_type {app_type}"
    if (
        app_type == "native"
        and grants
        and all(g in (DEVICE_GRANT, "refresh_token") for g in grants)
    ):
        kind, grant = "cli_tool", "device_code"
        rule_text += " with only the device grant"
    elif (
        app_type == "native"
        and "custom" not in redirect_kinds(as_list(settings.get("redirect_uris")))
        and DEVICE_GRANT in grants
    ):
        kind, grant = "cli_tool", "device_code"
        rule_text += " with the device grant and no app redirect"
    rec = ClientRecord(cid, where)
    rec.fields["client_id"] = registered(cid, f"okta {where}.credentials.oauthClient.client_id")
    rec.fields["client_kind"] = registered(kind, rule_text)
    rec.fields["grant_type"] = registered(grant, rule_text)
    method = text(creds.get("token_endpoint_auth_method"))
    if method:
        rec.fields["client_type"] = registered(
            "public" if method == "none" else "confidential",
            f"okta {where}.credentials.oauthClient.token_endpoint_auth_method {method}",
        )
    dpop = truthy(settings.get("dpop_bound_access_tokens")) is True
    rec.fields["binding"] = registered(
        Binding.DPOP if dpop else Binding.BEARER,
        f"okta {where}.settings.oauthClient.dpop_bound_access_tokens "
        f"{'true' if dpop else 'not true'}",
    )
    wants_rt = "refresh_token" in grants and kind != "service"
    rot_cfg = jobj(settings.get("refresh_token"))
    rotation = text(rot_cfg.get("rotation_type")).upper()
    if not wants_rt:
        rec.fields["refresh_token"] = registered("none", f"okta {where}: no refresh_token grant")
    elif rotation:
        rec.fields["refresh_token"] = registered(
            "rotating" if rotation.startswith("ROTAT") else "static",
            f"okta {where}.settings.oauthClient.refresh_token.rotation_type {rotation}",
        )
    else:
        rec.fields["refresh_token"] = assumed("static", "default: no rotation_type in the app")

    matched = False
    ordered = sorted(policies, key=lambda wp: seconds(wp[1].get("priority")) or 0)
    for server_where, server in servers:
        sid = text(server.get("id"))
        as_ident = idmap[sid]
        applicable = [
            (pw, p)
            for pw, p in ordered
            if _policy_server(p, servers) in (sid, "")
            and text(p.get("status")) != "INACTIVE"
            and _includes(p, cid, app_id)
        ]
        if policies and not applicable:
            continue
        matched = True
        life, rt_life, scopes = _rule_values(applicable, rules_of, grant, where)
        for aud in as_list(server.get("audiences")):
            audience = text(aud)
            if not audience:
                continue
            service_id = safe_id(audience)
            regs.service(service_id)
            fields: dict[str, Value] = {
                "resource_server": registered(service_id, f"okta {server_where}.audiences"),
                "audience_restricted": registered(True, f"okta {server_where}.audiences"),
                "authorization_server": registered(as_ident, f"okta {server_where}.id"),
                "access_token_lifetime_s": life,
            }
            if scopes is not None:
                fields["scopes"] = scopes
            if wants_rt:
                fields["refresh_token_lifetime_s"] = rt_life
            rec.audiences.append(Audience(service_id, fields))
    if not matched or not rec.audiences:
        rec.fields["access_token_lifetime_s"] = assumed(
            DEFAULT_ACCESS_TOKEN_S,
            "default: Okta access tokens live 1 h (reference token_lifetimes okta_org_at); no "
            "authorization-server policy for this app in the files",
        )
        if wants_rt:
            rec.fields["refresh_token_lifetime_s"] = assumed(
                DEFAULT_REFRESH_TOKEN_S, "default: 90 d (reference token_lifetimes okta_org_rt)"
            )
    regs.clients.append(rec)


def _includes(policy: Mapping[str, Any], cid: str, app_id: str) -> bool:
    conditions = jobj(policy.get("conditions"))
    clients = jobj(conditions.get("clients"))
    if "include" not in clients:
        return True
    include = [text(c) for c in as_list(clients.get("include"))]
    return "ALL_CLIENTS" in include or cid in include or app_id in include


def _rule_values(
    policies: Sequence[tuple[str, Mapping[str, Any]]],
    rules_of: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    grant: str,
    where: str,
) -> tuple[Value, Value, Value | None]:
    grant_names = {
        "authorization_code": "authorization_code",
        "client_credentials": "client_credentials",
        "device_code": DEVICE_GRANT,
    }
    candidates: list[tuple[str, Mapping[str, Any]]] = []
    for _, policy in policies:
        candidates.extend(rules_of.get(text(policy.get("id")), []))
    if not policies:
        candidates.extend(rules_of.get("", []))
    candidates.sort(key=lambda wr: seconds(wr[1].get("priority")) or 0)
    for rw, rule in candidates:
        if text(rule.get("status")) == "INACTIVE":
            continue
        cond = jobj(rule.get("conditions"))
        gt = jobj(cond.get("grantTypes"))
        include = [text(g) for g in as_list(gt.get("include"))]
        if include and grant_names.get(grant, grant) not in include:
            continue
        token = jobj(jobj(rule.get("actions")).get("token"))
        token = token if isinstance(token, dict) else {}
        minutes = seconds(token.get("accessTokenLifetimeMinutes"))
        life = (
            registered(minutes * 60, f"okta {rw}.actions.token.accessTokenLifetimeMinutes")
            if minutes
            else assumed(DEFAULT_ACCESS_TOKEN_S, "default: 1 h (Okta)")
        )
        rt_minutes = seconds(token.get("refreshTokenLifetimeMinutes"))
        window = seconds(token.get("refreshTokenWindowMinutes"))
        if rt_minutes:
            rt = registered(rt_minutes * 60, f"okta {rw}.actions.token.refreshTokenLifetimeMinutes")
        elif window:
            rt = registered(
                window * 60,
                f"okta {rw}.actions.token: refreshTokenLifetimeMinutes 0 (unlimited); the idle "
                "window refreshTokenWindowMinutes bounds an unused token",
            )
        else:
            rt = assumed(DEFAULT_REFRESH_TOKEN_S, "default: 90 d (Okta)")
        scopes_cond = jobj(cond.get("scopes"))
        scope_list = [text(s) for s in as_list(scopes_cond.get("include")) if text(s)]
        scopes = (
            registered(" ".join(scope_list), f"okta {rw}.conditions.scopes.include")
            if scope_list
            else None
        )
        return life, rt, scopes
    return (
        assumed(DEFAULT_ACCESS_TOKEN_S, "default: Okta access tokens live 1 h; no matching rule"),
        assumed(DEFAULT_REFRESH_TOKEN_S, "default: 90 d (Okta); no matching rule"),
        None,
    )
