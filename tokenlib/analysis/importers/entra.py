"""Microsoft Entra ID (Microsoft Graph ``application`` / ``servicePrincipal`` JSON) → canonical
client records.

Pass the response bodies of ``GET /v1.0/applications`` (ideally with
``$expand=federatedIdentityCredentials,tokenLifetimePolicies``) and optionally
``GET /v1.0/servicePrincipals`` (to name the scopes and app roles an app requests; with
``$expand=appRoleAssignments``, its managed identities become clients too) or
``GET /v1.0/servicePrincipals/{id}/appRoleAssignments``. Graph list
responses (``{"value": [...]}``), single objects and plain lists are accepted. Field names:
learn.microsoft.com/graph/api/resources/application and …/federatedidentitycredential
(``../shared/research/ecosystem-2026-12.md`` §3.5). Entra issues no RFC 9449 DPoP-bound or
RFC 8705 certificate-bound access tokens, so every flow is ``bearer``.
"""

from __future__ import annotations

import json
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
    missing_error,
    read_json,
    redirect_kinds,
    registered,
    safe_id,
    shape_error,
    text,
    truthy,
)
from tokenlib.binding import Binding

__all__ = ["MAPPING", "SOURCE", "parse"]

SOURCE = "entra"

#: Entra defaults (reference token_lifetimes): access token mean of the random 60-90 min
#: (entra_at_mean, derived), refresh tokens 24 h for SPA redirect URIs (entra_rt_spa) and
#: 90 d otherwise (entra_rt_default).
DEFAULT_ACCESS_TOKEN_S = 4500
SPA_REFRESH_TOKEN_S = 86400
DEFAULT_REFRESH_TOKEN_S = 7776000
#: Managed identity tokens: cached per resource for around 24 h (reference token_lifetimes
#: entra_mi_at).
MANAGED_IDENTITY_TOKEN_S = 86400

#: Issuers of CI workload identities (federated identity credentials → batch_job).
CI_ISSUERS = (
    "token.actions.githubusercontent.com",
    "gitlab.com",
    "vstoken.dev.azure.com",
    "app.terraform.io",
    "oidc.circleci.com",
)

MAPPING: tuple[MappingRow, ...] = (
    MappingRow("client_id", "`appId`", "the application (client) id, as is"),
    MappingRow(
        "client_kind",
        "`spa.redirectUris`, `publicClient.redirectUris`, `isFallbackPublicClient`, "
        "`web.redirectUris`, `federatedIdentityCredentials[].issuer`, `passwordCredentials`, "
        "`keyCredentials`",
        "SPA redirect URIs → `browser_spa`; public-client redirect URIs → `mobile_app` "
        "(`cli_tool` when they are only loopback / the native-client URI, or with "
        "`isFallbackPublicClient` and none); web redirect URIs → `web_backend`; no redirect "
        "URIs: a federated credential from a CI issuer (GitHub Actions, GitLab, Azure DevOps, "
        "Terraform Cloud, CircleCI) → `batch_job`, else → `service` (daemon; skipped when the "
        "export shows no credential and no requested API). A service principal with "
        "`servicePrincipalType` `ManagedIdentity` → `service` (a managed identity: no app "
        "registration, no secret)",
    ),
    MappingRow(
        "client_type",
        "platform blocks",
        "`public` for SPA and public-client platforms, else `confidential`",
    ),
    MappingRow(
        "grant_type",
        "platform blocks",
        "`authorization_code` for redirect-URI apps, `device_code` for CLI apps, "
        "`client_credentials` for daemons, CI jobs and managed identities (their tokens come "
        "from the Azure identity endpoint)",
    ),
    MappingRow(
        "binding",
        "(none)",
        "always `bearer`: Entra has no DPoP / certificate-bound setting (ecosystem §2.2)",
    ),
    MappingRow(
        "resource_server",
        "`requiredResourceAccess[].resourceAppId`; managed identities: "
        "`appRoleAssignments[].resourceId`",
        "one flow per requested (or, for a managed identity, assigned) resource; the "
        "resource's appId is the service id (its object id when its service principal is not "
        "in the files). Azure RBAC access (Key Vault, Storage) is not in Graph: a managed "
        "identity without app role assignments gets the placeholder API",
    ),
    MappingRow(
        "scopes",
        "`requiredResourceAccess[].resourceAccess[] {id, type}`; resource service principal "
        "`oauth2PermissionScopes[]`, `appRoles[]`",
        "scope / role names when the service principal is in the files, else the ids; "
        "managed identities: `appRoleAssignments[].appRoleId` named the same way",
    ),
    MappingRow(
        "access_token_lifetime_s",
        "`tokenLifetimePolicies[].definition` (`AccessTokenLifetime`)",
        "the policy value; else 4500 (mean of Entra's random 60-90 min, assumed); managed "
        "identities 86400 (tokens cached per resource for around 24 h, assumed)",
    ),
    MappingRow(
        "refresh_token",
        "platform blocks",
        "`rotating` for redirect-URI apps (Entra replaces the refresh token on use), `none` "
        "for client credentials (assumed)",
    ),
    MappingRow(
        "refresh_token_lifetime_s",
        "(none in Graph)",
        "86400 for SPAs, else 7776000 (Entra defaults, assumed)",
    ),
    MappingRow(
        "audience_restricted",
        "`requiredResourceAccess`",
        "true (an Entra access token is issued for one resource)",
    ),
    MappingRow("authorization_server", "`publisherDomain`", "`entra:<publisherDomain>` or `entra`"),
)

_NATIVE_CLIENT_URI = "https://login.microsoftonline.com/common/oauth2/nativeclient"
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


def _items(doc: Any, file: str) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(doc, dict) and isinstance(doc.get("value"), list):
        doc_list, prefix = doc["value"], "value"
    elif isinstance(doc, dict):
        return [("$", doc)]
    elif isinstance(doc, list):
        doc_list, prefix = doc, ""
    else:
        raise shape_error(SOURCE, file, "$", doc, "Microsoft Graph JSON (object, list or value)")
    out: list[tuple[str, Mapping[str, Any]]] = []
    for i, obj in enumerate(doc_list):
        if not isinstance(obj, dict):
            raise shape_error(SOURCE, file, f"{prefix}[{i}]", obj, "a JSON object")
        out.append((f"{prefix}[{i}]", obj))
    return out


def _timespan(value: str) -> int | None:
    m = _TIMESPAN.match(value.strip())
    if not m:
        return None
    days, h, mi, s = (int(x) if x else 0 for x in m.groups())
    return days * 86400 + h * 3600 + mi * 60 + s


def parse(files: Sequence[str | Path], *, as_id: str | None = None) -> Registrations:
    """Read Microsoft Graph files into canonical records (see :data:`MAPPING`)."""
    apps: list[tuple[str, Mapping[str, Any]]] = []
    principals: dict[str, tuple[str, Mapping[str, Any]]] = {}
    assignments: list[tuple[str, Mapping[str, Any]]] = []
    regs_notes: list[Finding] = []
    for f in files:
        file = str(f)
        for loc, obj in _items(read_json(f, SOURCE), file):
            where = f"{file}:{loc}"
            if "servicePrincipalType" in obj or "appOwnerOrganizationId" in obj:
                if text(obj.get("appId")):
                    principals[text(obj.get("appId"))] = (where, obj)
                continue
            if "appId" not in obj and {"principalId", "resourceId", "appRoleId"} <= obj.keys():
                assignments.append((where, obj))  # GET …/servicePrincipals/{id}/appRoleAssignments
                continue
            if "appId" not in obj and "issuer" in obj and "subject" in obj:
                regs_notes.append(
                    Finding(
                        "note",
                        "flows",
                        text(obj.get("id")),
                        "client_kind",
                        "federated identity credential without its application: export "
                        "applications with $expand=federatedIdentityCredentials so it counts",
                        where,
                    )
                )
                continue
            if not text(obj.get("appId")).strip():
                raise missing_error(SOURCE, file, f"{loc}.appId", "an application appId")
            apps.append((where, obj))
    domain = next(
        (text(a.get("publisherDomain")) for _, a in apps if text(a.get("publisherDomain"))), ""
    )
    server_id = safe_id(as_id or (f"entra:{domain}" if domain else "entra"))
    regs = Registrations(SOURCE, tuple(str(f) for f in files), ServerRecord(server_id))
    regs.findings.extend(regs_notes)
    product_fact = "Entra issues no RFC 9449 / RFC 8705 bound access tokens (ecosystem §2.2)"
    regs.server.fields["product"] = registered("Microsoft Entra ID", "entra Microsoft Graph export")
    regs.server.fields["issues_dpop"] = assumed(False, "default: " + product_fact)
    regs.server.fields["issues_mtls"] = assumed(False, "default: " + product_fact)
    regs.server.fields["binds_refresh_tokens"] = assumed(False, "default: " + product_fact)
    regs.server.fields["supports_token_exchange"] = assumed(
        False, "default: Entra's on-behalf-of flow is not RFC 8693 token exchange"
    )
    for where, app in apps:
        _app(regs, where, app, principals)
    app_ids = {text(a.get("appId")).strip() for _, a in apps}
    _managed_identities(regs, principals, assignments, app_ids)
    return regs


def _uris(app: Mapping[str, Any], block: str) -> list[str]:
    obj = app.get(block)
    if not isinstance(obj, dict):
        return []
    return [text(u) for u in as_list(obj.get("redirectUris")) if text(u)]


def _app(
    regs: Registrations,
    where: str,
    app: Mapping[str, Any],
    principals: Mapping[str, tuple[str, Mapping[str, Any]]],
) -> None:
    cid = text(app.get("appId")).strip()
    spa, public, web = _uris(app, "spa"), _uris(app, "publicClient"), _uris(app, "web")
    fallback = truthy(app.get("isFallbackPublicClient")) is True
    fics = [c for c in as_list(app.get("federatedIdentityCredentials")) if isinstance(c, dict)]
    creds_known = any(k in app for k in ("passwordCredentials", "keyCredentials"))
    has_creds = bool(
        as_list(app.get("passwordCredentials")) or as_list(app.get("keyCredentials")) or fics
    )
    rra = [r for r in as_list(app.get("requiredResourceAccess")) if isinstance(r, dict)]
    if spa:
        kind, grant, rule = "browser_spa", "authorization_code", f"entra {where}.spa.redirectUris"
    elif public:
        kinds = redirect_kinds(public)
        if "custom" in kinds:
            kind, rule = "mobile_app", f"entra {where}.publicClient.redirectUris (app scheme)"
            grant = "authorization_code"
        else:
            kind, grant = "cli_tool", "authorization_code"
            rule = f"entra {where}.publicClient.redirectUris (loopback / native-client URI)"
    elif web:
        kind, grant, rule = "web_backend", "authorization_code", f"entra {where}.web.redirectUris"
    elif fallback:
        kind, grant, rule = "cli_tool", "device_code", f"entra {where}.isFallbackPublicClient"
    elif any(any(i in text(c.get("issuer")) for i in CI_ISSUERS) for c in fics):
        kind, grant = "batch_job", "client_credentials"
        issuer = next(
            text(c.get("issuer"))
            for c in fics
            if any(i in text(c.get("issuer")) for i in CI_ISSUERS)
        )
        rule = f"entra {where}.federatedIdentityCredentials issuer {issuer} (CI workload identity)"
    elif has_creds or (rra and not creds_known):
        kind, grant = "service", "client_credentials"
        rule = f"entra {where}: no redirect URIs; " + (
            "credentials present (daemon)"
            if has_creds
            else "requests APIs (credentials not exported)"
        )
    else:
        regs.findings.append(
            Finding(
                "skipped_client",
                "flows",
                cid,
                "",
                "no redirect URIs, no credentials and no requested API: the app obtains no "
                "tokens (it may only expose an API)",
                where,
            )
        )
        for uri in as_list(app.get("identifierUris")):
            if text(uri):
                regs.service(safe_id(cid))
                break
        return
    rec = ClientRecord(cid, where)
    rec.fields["client_id"] = registered(cid, f"entra {where}.appId")
    rec.fields["client_kind"] = registered(kind, rule)
    rec.fields["grant_type"] = registered(grant, rule)
    rec.fields["client_type"] = registered(
        "public" if kind in ("browser_spa", "mobile_app", "cli_tool") else "confidential", rule
    )
    rec.fields["binding"] = registered(
        Binding.BEARER, "entra: no DPoP / certificate-bound token setting exists (ecosystem §2.2)"
    )
    rec.fields["access_token_lifetime_s"] = _lifetime(app, where)
    if grant == "client_credentials":
        rec.fields["refresh_token"] = assumed(
            "none", "default: no refresh token for client credentials"
        )
    else:
        rec.fields["refresh_token"] = assumed(
            "rotating", "default: Entra returns a new refresh token with every refresh"
        )
        life = SPA_REFRESH_TOKEN_S if kind == "browser_spa" else DEFAULT_REFRESH_TOKEN_S
        row = "entra_rt_spa" if kind == "browser_spa" else "entra_rt_default"
        rec.fields["refresh_token_lifetime_s"] = assumed(
            life, f"default: Entra refresh token {life} s (reference token_lifetimes {row})"
        )
    for j, req in enumerate(rra):
        resource = text(req.get("resourceAppId")).strip()
        if not resource:
            raise missing_error(
                SOURCE,
                where.rsplit(":", 1)[0],
                f"{where.rsplit(':', 1)[1]}.requiredResourceAccess[{j}].resourceAppId",
                "a resourceAppId",
            )
        names = _names(principals.get(resource))
        scopes = [
            names.get(text(a.get("id")), text(a.get("id")))
            for a in as_list(req.get("resourceAccess"))
            if isinstance(a, dict) and text(a.get("id"))
        ]
        sid = safe_id(resource)
        regs.service(sid)
        detail = f"entra {where}.requiredResourceAccess[{j}]"
        rec.audiences.append(
            Audience(
                sid,
                {
                    "resource_server": registered(sid, detail + ".resourceAppId"),
                    "scopes": registered(" ".join(scopes), detail + ".resourceAccess"),
                    "audience_restricted": registered(True, detail + " (one resource per token)"),
                },
            )
        )
    regs.clients.append(rec)


def _managed_identities(
    regs: Registrations,
    principals: Mapping[str, tuple[str, Mapping[str, Any]]],
    assignments: Sequence[tuple[str, Mapping[str, Any]]],
    app_ids: set[str],
) -> None:
    """Managed identities (service principals of type ``ManagedIdentity``) as ``service``
    clients, one flow per app role assignment (expanded on the principal or listed in a
    separate ``appRoleAssignments`` file)."""
    by_object = {text(sp.get("id")): (where, sp) for where, sp in principals.values()}
    granted: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for where, sp in principals.values():
        for j, item in enumerate(as_list(sp.get("appRoleAssignments"))):
            if isinstance(item, dict):
                owner = text(item.get("principalId")) or text(sp.get("id"))
                granted.setdefault(owner, []).append((f"{where}.appRoleAssignments[{j}]", item))
    for where, item in assignments:
        granted.setdefault(text(item.get("principalId")), []).append((where, item))
    identities = [
        (where, sp)
        for where, sp in principals.values()
        if text(sp.get("servicePrincipalType")) == "ManagedIdentity"
        and text(sp.get("appId")).strip() not in app_ids
    ]
    for where, sp in identities:
        cid = text(sp.get("appId")).strip()
        rule = f"entra {where}.servicePrincipalType ManagedIdentity"
        names = [text(n) for n in as_list(sp.get("alternativeNames")) if text(n)]
        resource = next((n for n in names if n.startswith("/subscriptions/")), "")
        if resource:
            rule += f" ({resource})"
        rec = ClientRecord(cid, where)
        rec.fields["client_id"] = registered(cid, f"entra {where}.appId")
        rec.fields["client_kind"] = registered("service", rule)
        rec.fields["grant_type"] = registered(
            "client_credentials", rule + ": tokens from the Azure identity endpoint"
        )
        rec.fields["client_type"] = registered("confidential", rule + ": no client secret")
        rec.fields["binding"] = registered(
            Binding.BEARER,
            "entra: no DPoP / certificate-bound token setting exists (ecosystem §2.2)",
        )
        rec.fields["access_token_lifetime_s"] = assumed(
            MANAGED_IDENTITY_TOKEN_S,
            "default: managed identity tokens are cached per resource for around 24 h and "
            "cannot be refreshed early (reference token_lifetimes entra_mi_at)",
        )
        rec.fields["refresh_token"] = assumed(
            "none", "default: a managed identity asks the identity endpoint again"
        )
        for at, item in granted.get(text(sp.get("id")), []):
            target = by_object.get(text(item.get("resourceId")))
            service = text(target[1].get("appId")) if target else ""
            sid = safe_id(service or text(item.get("resourceId")) or "unknown-api")
            role = text(item.get("appRoleId"))
            scope = _names(target).get(role, role)
            regs.service(sid)
            rec.audiences.append(
                Audience(
                    sid,
                    {
                        "resource_server": registered(sid, f"entra {at}.resourceId"),
                        "scopes": registered(scope, f"entra {at}.appRoleId"),
                        "audience_restricted": registered(True, f"entra {at} (one resource)"),
                    },
                )
            )
        if not rec.audiences:
            regs.findings.append(
                Finding(
                    "note",
                    "flows",
                    cid,
                    "resource_server",
                    "managed identity without app role assignments in the files: its Azure "
                    "RBAC access (Key Vault, Storage, ...) is not in Microsoft Graph; export "
                    "servicePrincipals with $expand=appRoleAssignments or declare its APIs in "
                    "the overlay",
                    where,
                )
            )
        _merge_audiences(rec)
        regs.clients.append(rec)


def _merge_audiences(rec: ClientRecord) -> None:
    """One audience per resource: the roles of several assignments to one API joined."""
    merged: dict[str, Audience] = {}
    for aud in rec.audiences:
        first = merged.get(aud.service_id)
        if first is None:
            merged[aud.service_id] = aud
            continue
        old, new = first.fields["scopes"], aud.fields["scopes"]
        roles = " ".join(dict.fromkeys(f"{old.value} {new.value}".split()))
        first.fields["scopes"] = registered(roles, f"{old.detail}; {new.detail}")
    rec.audiences[:] = list(merged.values())


def _names(principal: tuple[str, Mapping[str, Any]] | None) -> dict[str, str]:
    if principal is None:
        return {}
    _, sp = principal
    out: dict[str, str] = {}
    for key in ("oauth2PermissionScopes", "appRoles"):
        for item in as_list(sp.get(key)):
            if isinstance(item, dict) and text(item.get("id")) and text(item.get("value")):
                out[text(item.get("id"))] = text(item.get("value"))
    return out


def _lifetime(app: Mapping[str, Any], where: str) -> Value:
    for i, policy in enumerate(as_list(app.get("tokenLifetimePolicies"))):
        if not isinstance(policy, dict):
            continue
        for definition in as_list(policy.get("definition")):
            try:
                doc = json.loads(text(definition))
            except json.JSONDecodeError:
                continue
            life = (
                doc.get("TokenLifetimePolicy", {}).get("AccessTokenLifetime")
                if isinstance(doc, dict)
                else None
            )
            secs = _timespan(text(life)) if life else None
            if secs:
                return registered(
                    secs, f"entra {where}.tokenLifetimePolicies[{i}].definition AccessTokenLifetime"
                )
    return assumed(
        DEFAULT_ACCESS_TOKEN_S,
        "default: Entra access tokens live a random 60-90 min; mean 4500 s (reference "
        "token_lifetimes entra_at_mean)",
    )
