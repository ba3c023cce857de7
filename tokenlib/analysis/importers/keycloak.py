"""Keycloak realm export (``kc.sh export``, Admin Console partial export, or the Admin REST
``GET /admin/realms/{realm}/clients`` list) → canonical client records.

Source of the field names: Keycloak's ``RealmRepresentation`` / ``ClientRepresentation`` JSON
and ``OIDCConfigAttributes`` (``../shared/research/ecosystem-2026-12.md`` §3.2). Client
``attributes`` values are strings (``"true"``); realm lifetimes are seconds. Fields missing from
a client take Keycloak's import defaults (``publicClient`` false, ``standardFlowEnabled`` true).
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
    redirect_kinds,
    registered,
    safe_id,
    seconds,
    shape_error,
    text,
    truthy,
)
from tokenlib.binding import Binding

__all__ = ["BUILT_IN_CLIENTS", "MAPPING", "SOURCE", "parse"]

SOURCE = "keycloak"

#: Clients every realm has; they are Keycloak's own consoles and brokers, not the organisation's.
BUILT_IN_CLIENTS = frozenset(
    {
        "account",
        "account-console",
        "admin-cli",
        "broker",
        "realm-management",
        "security-admin-console",
    }
)

#: Keycloak defaults used when neither the client nor the realm states a lifetime (seconds):
#: accessTokenLifespan 300 and ssoSessionMaxLifespan 36000 (reference table token_lifetimes,
#: rows keycloak_at and keycloak_sso_max).
DEFAULT_ACCESS_TOKEN_S = 300
DEFAULT_SESSION_MAX_S = 36000

#: Issuers of CI workload identities: a client-jwt client whose ``jwks.url`` points there is
#: a CI job (batch_job).
CI_ISSUERS = (
    "token.actions.githubusercontent.com",
    "gitlab.com",
    "oidc.circleci.com",
    "vstoken.dev.azure.com",
    "app.terraform.io",
)

MAPPING: tuple[MappingRow, ...] = (
    MappingRow(
        "client_id",
        "`clients[].clientId`",
        "as is; built-ins (`account`, `account-console`, `admin-cli`, `broker`, "
        "`realm-management`, `security-admin-console`), SAML clients and `bearerOnly` clients "
        "(those are APIs) are not flows",
    ),
    MappingRow(
        "client_kind",
        "`publicClient`, `standardFlowEnabled`, `serviceAccountsEnabled`, "
        "`directAccessGrantsEnabled`, `redirectUris`, "
        '`attributes."oauth2.device.authorization.grant.enabled"`, `clientAuthenticatorType`, '
        '`attributes."jwks.url"`',
        "device grant on → `cli_tool`; public + standard flow: a private-use-scheme redirect "
        "(`com.example:/cb`) → `mobile_app`, only IP-literal loopback redirects "
        "(`http://127.0.0.1`, RFC 8252 §7.3) → `cli_tool`, else → `browser_spa`; public with "
        "only direct grants → `cli_tool`; confidential + service accounts without standard "
        "flow → `service` (`batch_job` when `client-jwt` with a `jwks.url` at a CI issuer); "
        "confidential + standard flow → `web_backend`",
    ),
    MappingRow("client_type", "`publicClient`", "true → `public`, else `confidential`"),
    MappingRow(
        "grant_type",
        "as for client_kind",
        "`authorization_code` (standard flow), `client_credentials` (service account), "
        "`device_code` (device grant); direct grants (ROPC) are reported as "
        "`unsupported_grant` findings",
    ),
    MappingRow(
        "binding",
        '`attributes."dpop.bound.access.tokens"`, '
        '`attributes."tls.client.certificate.bound.access.tokens"`, realm `clientPolicies` / '
        "`clientProfiles` executors `dpop-bind-enforcer` and `holder-of-key-enforcer` (conditions "
        "`any-client`, `client-access-type`)",
        '`"true"` → `dpop` / `mtls` (both: `mtls` for a `client-x509` client, else `dpop`); '
        "else `bearer`. Keycloak also binds whenever a proof arrives, so `bearer` means "
        "'not required', and enforcement at the API stays unknown",
    ),
    MappingRow(
        "access_token_lifetime_s",
        '`attributes."access.token.lifespan"`, realm `accessTokenLifespan`',
        "client attribute, else realm value, else 300 (Keycloak default, assumed)",
    ),
    MappingRow(
        "refresh_token",
        '`attributes."use.refresh.tokens"`, '
        '`attributes."client_credentials.use_refresh_token"`, realm `revokeRefreshToken`',
        "issued for user grants unless `use.refresh.tokens` is `false`, for client credentials "
        "only with `client_credentials.use_refresh_token`; `rotating` when the realm revokes "
        "refresh tokens on use, else `static`",
    ),
    MappingRow(
        "refresh_token_lifetime_s",
        '`attributes."client.session.max.lifespan"`, realm `clientSessionMaxLifespan`, '
        "`ssoSessionMaxLifespan`",
        "the first positive value (a refresh token dies with its session), else 36000 "
        "(Keycloak default, assumed)",
    ),
    MappingRow(
        "resource_server",
        "client `protocolMappers[]` and realm `clientScopes[].protocolMappers[]` of its "
        "`defaultClientScopes` with `protocolMapper: oidc-audience-mapper` "
        "(`config.included.client.audience`, `config.included.custom.audience`); realm "
        "`clientScopeMappings` (a client holding another client's roles gets it in `aud`); "
        "`bearerOnly` clients",
        "one flow per audience; without one, a placeholder service `<as_id>:unknown-api` "
        "(finding `no_audience`)",
    ),
    MappingRow(
        "audience_restricted",
        "audience mappers, `clientScopeMappings`",
        "true when an audience mapper names the API",
    ),
    MappingRow("scopes", "`defaultClientScopes[]`", "space-separated"),
    MappingRow(
        "authorization_server",
        "`realm`",
        "`keycloak:<realm>`; product from `keycloakVersion` when exported",
    ),
)


def _realms(doc: Any, file: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(location prefix, realm object) for a realm, a list of realms, or a client list."""
    if isinstance(doc, dict) and "clients" in doc:
        return [("", doc)]
    if isinstance(doc, dict) and "clientId" in doc:
        return [("", {"clients": [doc]})]
    if isinstance(doc, list):
        if all(isinstance(r, dict) and "clients" in r for r in doc) and doc:
            return [(f"[{i}].", r) for i, r in enumerate(doc)]
        if all(isinstance(c, dict) for c in doc):
            return [("", {"clients": doc})]
    raise shape_error(
        SOURCE,
        file,
        "$",
        doc,
        "a Keycloak realm export (an object with 'clients'), a list of realms, or a list of "
        "client representations",
    )


def _mapper_audiences(mappers: Any) -> list[tuple[str, str]]:
    """(audience, config key) of every oidc-audience-mapper in a mapper list."""
    out: list[tuple[str, str]] = []
    for mapper in as_list(mappers):
        if not isinstance(mapper, dict) or mapper.get("protocolMapper") != "oidc-audience-mapper":
            continue
        config = jobj(mapper.get("config"))
        if truthy(config.get("access.token.claim")) is False:
            continue
        for key in ("included.client.audience", "included.custom.audience"):
            value = text(config.get(key)).strip()
            if value:
                out.append((value, key))
    return out


def _policy_bindings(realm: Mapping[str, Any], prefix: str) -> list[tuple[Binding, str, set[str]]]:
    """(binding, detail, access types or {'*'}) from realm client policies that apply a
    DPoP or holder-of-key enforcer."""
    profiles = realm.get("clientProfiles")
    policies = realm.get("clientPolicies")
    if not isinstance(profiles, dict) or not isinstance(policies, dict):
        return []
    enforcing: dict[str, Binding] = {}
    for prof in as_list(profiles.get("profiles")):
        if not isinstance(prof, dict):
            continue
        for ex in as_list(prof.get("executors")):
            name = text(ex.get("executor")) if isinstance(ex, dict) else ""
            if name == "dpop-bind-enforcer":
                enforcing[text(prof.get("name"))] = Binding.DPOP
            elif name == "holder-of-key-enforcer":
                enforcing[text(prof.get("name"))] = Binding.MTLS
    out: list[tuple[Binding, str, set[str]]] = []
    for i, pol in enumerate(as_list(policies.get("policies"))):
        if not isinstance(pol, dict) or truthy(pol.get("enabled")) is False:
            continue
        for prof_name in as_list(pol.get("profiles")):
            binding = enforcing.get(text(prof_name))
            if binding is None:
                continue
            types: set[str] = set()
            for cond in as_list(pol.get("conditions")):
                if not isinstance(cond, dict):
                    continue
                kind = text(cond.get("condition"))
                if kind == "any-client":
                    types.add("*")
                elif kind == "client-access-type":
                    conf = jobj(cond.get("configuration"))
                    types.update(text(t) for t in as_list(conf.get("type")))
            detail = (
                f"keycloak {prefix}clientPolicies.policies[{i}] ({text(pol.get('name'))!r}) "
                f"→ profile {text(prof_name)!r}"
            )
            out.append((binding, detail, types))
    return out


def _kind(
    client: Mapping[str, Any], attrs: Mapping[str, Any], loc: str
) -> tuple[str, str, str, str] | None:
    """(client_kind, grant_type, rule text, warning) or None when the client obtains no
    access tokens the inventory models."""
    public = truthy(client.get("publicClient")) is True
    standard = truthy(client.get("standardFlowEnabled")) is not False
    service = truthy(client.get("serviceAccountsEnabled")) is True
    direct = truthy(client.get("directAccessGrantsEnabled")) is True
    device = truthy(attrs.get("oauth2.device.authorization.grant.enabled")) is True
    kinds = redirect_kinds(as_list(client.get("redirectUris")))
    warn = "directAccessGrantsEnabled (ROPC) is on" if direct else ""
    if device and not standard:
        return ("cli_tool", "device_code", f"{loc}: device grant enabled, no standard flow", warn)
    if public:
        if standard:
            if "custom" in kinds:
                return (
                    "mobile_app",
                    "authorization_code",
                    f"{loc}: public client with a private-use-scheme redirect URI (RFC 8252 §7.1)",
                    warn,
                )
            ip_loopback = [
                u
                for u in as_list(client.get("redirectUris"))
                if text(u).startswith(("http://127.", "http://[::1]"))
            ]
            if (
                kinds == {"loopback"}
                and ip_loopback
                and len(ip_loopback) == len(as_list(client.get("redirectUris")))
            ):
                return (
                    "cli_tool",
                    "authorization_code",
                    f"{loc}: public client with only IP-literal loopback redirects (RFC 8252 §7.3)",
                    warn,
                )
            return (
                "browser_spa",
                "authorization_code",
                f"{loc}: public client with the standard flow and web redirect URIs",
                warn,
            )
        if device:
            return ("cli_tool", "device_code", f"{loc}: public client with the device grant", warn)
        if direct:
            return (
                "cli_tool",
                "device_code",
                f"{loc}: public client with only direct grants (ROPC)",
                "directAccessGrantsEnabled (ROPC) is its only grant; grant_type set to the "
                "cli_tool default device_code",
            )
        return None
    if service and not standard:
        jwks = text(attrs.get("jwks.url"))
        if text(client.get("clientAuthenticatorType")) == "client-jwt" and any(
            issuer in jwks for issuer in CI_ISSUERS
        ):
            return (
                "batch_job",
                "client_credentials",
                f"{loc}: client-jwt service account whose jwks.url is a CI issuer",
                warn,
            )
        return (
            "service",
            "client_credentials",
            f"{loc}: confidential client with a service account and no standard flow",
            warn,
        )
    if standard:
        return (
            "web_backend",
            "authorization_code",
            f"{loc}: confidential client with the standard flow",
            warn,
        )
    if device:
        return ("cli_tool", "device_code", f"{loc}: device grant", warn)
    return None


def _realm_seconds(realm: Mapping[str, Any], key: str) -> int | None:
    value = seconds(realm.get(key))
    return value if value else None


def parse(files: Sequence[str | Path], *, as_id: str | None = None) -> Registrations:
    """Read Keycloak export files into canonical records (see :data:`MAPPING`)."""
    regs: Registrations | None = None
    for f in files:
        file = str(f)
        doc = read_json(f, SOURCE)
        for prefix, realm in _realms(doc, file):
            realm_name = text(realm.get("realm")) or text(realm.get("id")) or "realm"
            server_id = safe_id(as_id or f"keycloak:{realm_name}")
            if regs is None:
                regs = Registrations(SOURCE, tuple(str(x) for x in files), ServerRecord(server_id))
                _server_fields(regs.server, realm, prefix)
            elif server_id not in {s.as_id for s in (regs.server, *regs.extra_servers)}:
                # Another realm is another authorization server (its own issuer).
                extra = ServerRecord(server_id)
                _server_fields(extra, realm, prefix)
                regs.extra_servers.append(extra)
            _parse_realm(regs, realm, prefix, file, server_id)
    if regs is None:  # pragma: no cover - argparse requires at least one file
        raise shape_error(SOURCE, "", "", None, "at least one file")
    return regs


def _server_fields(server: ServerRecord, realm: Mapping[str, Any], prefix: str) -> None:
    version = text(realm.get("keycloakVersion"))
    if version:
        server.fields["product"] = registered(
            f"Keycloak {version}", f"keycloak {prefix}keycloakVersion"
        )
    else:
        server.fields["product"] = assumed("Keycloak", "default: the export names no version")
    new_enough: bool | None = None
    if version:
        try:
            major, minor = (int(x) for x in version.split(".")[:2])
            new_enough = (major, minor) >= (26, 4)
        except ValueError:
            new_enough = None
    if new_enough is None:
        server.fields["issues_dpop"] = assumed(
            True,
            "default: Keycloak issues DPoP-bound tokens since 26.4 (ecosystem §2.2); the export "
            "does not say the version",
        )
    else:
        server.fields["issues_dpop"] = registered(
            new_enough, f"keycloak {prefix}keycloakVersion {version} (DPoP supported since 26.4)"
        )
    server.fields["issues_mtls"] = assumed(
        True, "default: Keycloak issues certificate-bound tokens (RFC 8705; ecosystem §2.2)"
    )
    server.fields["supports_token_exchange"] = assumed(
        True, "default: Keycloak supports standard token exchange (RFC 8693) since 26.2"
    )


def _parse_realm(
    regs: Registrations, realm: Mapping[str, Any], prefix: str, file: str, server_id: str
) -> None:
    clients = realm.get("clients")
    if not isinstance(clients, list):
        raise shape_error(SOURCE, file, f"{prefix}clients", clients, "a list of clients")
    scopes_by_name: dict[str, Any] = {}
    for i, scope in enumerate(as_list(realm.get("clientScopes"))):
        if isinstance(scope, dict) and text(scope.get("name")):
            scopes_by_name[text(scope.get("name"))] = (i, scope)
    policies = _policy_bindings(realm, prefix)
    at_realm = _realm_seconds(realm, "accessTokenLifespan")
    session_max = _realm_seconds(realm, "clientSessionMaxLifespan")
    session_key = "clientSessionMaxLifespan"
    if session_max is None:
        session_max = _realm_seconds(realm, "ssoSessionMaxLifespan")
        session_key = "ssoSessionMaxLifespan"
    rotate = truthy(realm.get("revokeRefreshToken"))
    # clientScopeMappings {resource client: [{client, roles}]}: the client's tokens carry the
    # resource client's roles, so Keycloak's audience-resolve mapper puts it in `aud`.
    role_audiences: dict[str, list[tuple[str, str]]] = {}
    mappings = jobj(realm.get("clientScopeMappings"))
    for resource, entries in mappings.items():
        for j, entry in enumerate(as_list(entries)):
            holder = text(jobj(entry).get("client"))
            if holder and as_list(jobj(entry).get("roles")) and resource not in BUILT_IN_CLIENTS:
                role_audiences.setdefault(holder, []).append(
                    (
                        str(resource),
                        f"keycloak {prefix}clientScopeMappings[{str(resource)!r}][{j}] (client "
                        "roles in the token put the client in aud)",
                    )
                )
    for i, client in enumerate(clients):
        loc = f"{prefix}clients[{i}]"
        where = f"{file}:{loc}"
        if not isinstance(client, dict):
            raise shape_error(SOURCE, file, loc, client, "a client object")
        client_id = text(client.get("clientId")).strip()
        if not client_id:
            raise missing_error(SOURCE, file, f"{loc}.clientId", "a non-empty clientId")
        attrs = jobj(client.get("attributes"))
        protocol = text(client.get("protocol")) or "openid-connect"
        if client_id in BUILT_IN_CLIENTS:
            regs.findings.append(
                Finding("skipped_client", "flows", client_id, "", "Keycloak built-in client", where)
            )
            continue
        if protocol != "openid-connect":
            regs.findings.append(
                Finding(
                    "skipped_client",
                    "flows",
                    client_id,
                    "",
                    f"{protocol} client (not OAuth)",
                    where,
                )
            )
            continue
        if truthy(client.get("bearerOnly")) is True:
            svc = regs.service(safe_id(client_id))
            svc.fields.setdefault(
                "supports_bearer",
                registered(True, f"keycloak {loc}.bearerOnly: an API accepting bearer tokens"),
            )
            continue
        if truthy(client.get("enabled")) is False:
            regs.findings.append(
                Finding("skipped_client", "flows", client_id, "", "client disabled", where)
            )
            continue
        kind = _kind(client, attrs, f"keycloak {loc}")
        if kind is None:
            regs.findings.append(
                Finding(
                    "skipped_client",
                    "flows",
                    client_id,
                    "",
                    "no grant that issues access tokens (standard flow, service account or "
                    "device grant) is enabled",
                    where,
                )
            )
            continue
        client_kind, grant, rule, warning = kind
        if warning:
            regs.findings.append(
                Finding("unsupported_grant", "flows", client_id, "grant_type", warning, where)
            )
        public = truthy(client.get("publicClient")) is True
        rec = ClientRecord(client_id, where)
        rec.fields["client_id"] = registered(client_id, f"keycloak {loc}.clientId")
        rec.fields["authorization_server"] = registered(server_id, f"keycloak {prefix}realm")
        rec.fields["client_kind"] = registered(client_kind, rule)
        rec.fields["client_type"] = registered(
            "public" if public else "confidential", f"keycloak {loc}.publicClient"
        )
        rec.fields["grant_type"] = registered(grant, rule)
        rec.fields["binding"] = _binding(client, attrs, loc, public, policies, regs, where)
        rec.fields["access_token_lifetime_s"] = _access_lifetime(attrs, loc, at_realm, prefix)
        rt, rt_life = _refresh(attrs, loc, grant, rotate, session_max, session_key, prefix)
        rec.fields["refresh_token"] = rt
        if rt_life is not None:
            rec.fields["refresh_token_lifetime_s"] = rt_life
        default_scopes = [text(s) for s in as_list(client.get("defaultClientScopes")) if text(s)]
        if default_scopes:
            rec.fields["scopes"] = registered(
                " ".join(default_scopes), f"keycloak {loc}.defaultClientScopes"
            )
        audiences: list[tuple[str, str]] = [
            (aud, f"keycloak {loc}.protocolMappers[oidc-audience-mapper].config.{key}")
            for aud, key in _mapper_audiences(client.get("protocolMappers"))
        ]
        audiences.extend(role_audiences.get(client_id, []))
        for name in default_scopes:
            hit = scopes_by_name.get(name)
            if hit is None:
                continue
            j, scope = hit
            audiences.extend(
                (
                    aud,
                    f"keycloak {prefix}clientScopes[{j}] ({name!r}).protocolMappers"
                    f"[oidc-audience-mapper].config.{key}",
                )
                for aud, key in _mapper_audiences(scope.get("protocolMappers"))
            )
        seen: set[str] = set()
        for aud, detail in audiences:
            sid = safe_id(aud)
            if sid in seen:
                continue
            seen.add(sid)
            regs.service(sid)
            rec.audiences.append(
                Audience(
                    sid,
                    {
                        "resource_server": registered(sid, detail),
                        "audience_restricted": registered(True, detail),
                    },
                )
            )
        regs.clients.append(rec)


def _binding(
    client: Mapping[str, Any],
    attrs: Mapping[str, Any],
    loc: str,
    public: bool,
    policies: Sequence[tuple[Binding, str, set[str]]],
    regs: Registrations,
    where: str,
) -> Value:
    dpop = truthy(attrs.get("dpop.bound.access.tokens")) is True
    mtls = truthy(attrs.get("tls.client.certificate.bound.access.tokens")) is True
    access = "public" if public else "confidential"
    for binding, detail, types in policies:
        if "*" not in types and access not in types:
            continue
        if binding == Binding.DPOP and not dpop:
            return registered(Binding.DPOP, detail + " (executor dpop-bind-enforcer)")
        if binding == Binding.MTLS and not mtls:
            return registered(Binding.MTLS, detail + " (executor holder-of-key-enforcer)")
    if dpop and mtls:
        x509 = text(client.get("clientAuthenticatorType")) == "client-x509"
        chosen = Binding.MTLS if x509 else Binding.DPOP
        reason = "client-x509 authentication" if x509 else "no client certificate authentication"
        regs.findings.append(
            Finding(
                "note",
                "flows",
                text(client.get("clientId")),
                "binding",
                "both dpop.bound.access.tokens and tls.client.certificate.bound.access.tokens "
                f"are on; {chosen} used ({reason})",
                where,
            )
        )
        return registered(chosen, f"keycloak {loc}.attributes (both binding attributes on)")
    if dpop:
        return registered(Binding.DPOP, f'keycloak {loc}.attributes."dpop.bound.access.tokens"')
    if mtls:
        return registered(
            Binding.MTLS, f'keycloak {loc}.attributes."tls.client.certificate.bound.access.tokens"'
        )
    return registered(
        Binding.BEARER,
        f"keycloak {loc}.attributes: neither dpop.bound.access.tokens nor "
        "tls.client.certificate.bound.access.tokens is true (binding not required)",
    )


def _access_lifetime(
    attrs: Mapping[str, Any], loc: str, realm_value: int | None, prefix: str
) -> Value:
    client_value = seconds(attrs.get("access.token.lifespan"))
    if client_value:
        return registered(client_value, f'keycloak {loc}.attributes."access.token.lifespan"')
    if realm_value:
        return registered(realm_value, f"keycloak {prefix}accessTokenLifespan (realm)")
    return assumed(
        DEFAULT_ACCESS_TOKEN_S,
        "default: Keycloak accessTokenLifespan 300 s (reference token_lifetimes keycloak_at)",
    )


def _refresh(
    attrs: Mapping[str, Any],
    loc: str,
    grant: str,
    rotate: bool | None,
    session_max: int | None,
    session_key: str,
    prefix: str,
) -> tuple[Value, Value | None]:
    if grant == "client_credentials":
        issued = truthy(attrs.get("client_credentials.use_refresh_token")) is True
        rule = f'keycloak {loc}.attributes."client_credentials.use_refresh_token"'
    else:
        issued = truthy(attrs.get("use.refresh.tokens")) is not False
        rule = f'keycloak {loc}.attributes."use.refresh.tokens" (default true)'
    if not issued:
        return registered("none", rule), None
    if rotate is None:
        kind = assumed("static", "default: revokeRefreshToken false (Keycloak default)")
    else:
        kind = registered(
            "rotating" if rotate else "static", f"keycloak {prefix}revokeRefreshToken"
        )
    client_max = seconds(attrs.get("client.session.max.lifespan"))
    if client_max:
        life = registered(client_max, f'keycloak {loc}.attributes."client.session.max.lifespan"')
    elif session_max:
        life = registered(session_max, f"keycloak {prefix}{session_key} (realm)")
    else:
        life = assumed(
            DEFAULT_SESSION_MAX_S,
            "default: Keycloak ssoSessionMaxLifespan 36000 s (reference token_lifetimes "
            "keycloak_sso_max)",
        )
    return kind, life
