"""Keycloak realm exports (keycloak-quickstarts samples, see samples/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.analysis.importers._helpers import edited, flow, kinds, prov, sample
from tokenlib.analysis.importers import import_files

EXAMPLES = "keycloak/examples-realm.json"


def _client(doc: dict[str, Any], client_id: str) -> dict[str, Any]:
    return next(c for c in doc["clients"] if c["clientId"] == client_id)


def test_examples_realm_maps_clients_kinds_and_realm_lifetimes() -> None:
    r = import_files("keycloak", [sample(EXAMPLES)])
    flows = r.inventory.flows
    assert sorted(flows["client_id"]) == [
        "app-html5",
        "app-jee",
        "app-profile-html5",
        "app-profile-jee",
    ]
    spa = flow(r, "app-profile-html5")  # publicClient true, redirect "/*", webOrigins "+"
    assert (spa.client_kind, spa.client_type, spa.grant_type) == (
        "browser_spa",
        "public",
        "authorization_code",
    )
    web = flow(r, "app-jee")  # confidential, standard flow
    assert (web.client_kind, web.client_type) == ("web_backend", "confidential")
    # Realm accessTokenLifespan 300, ssoSessionMaxLifespan 36000, revokeRefreshToken false.
    assert set(flows["access_token_lifetime_s"]) == {300}
    assert set(flows["refresh_token_lifetime_s"]) == {36000}
    assert set(flows["refresh_token"].astype(str)) == {"static"}
    assert set(flows["binding"].astype(str)) == {"bearer"}
    source, detail = prov(r, spa.flow_id, "access_token_lifetime_s")
    assert source == "registered"
    assert "accessTokenLifespan" in detail
    assert prov(r, spa.flow_id, "path")[0] == "assumed"
    found = kinds(r)
    assert {"realm-management", "security-admin-console", "admin-cli", "broker", "account"} <= (
        found["skipped_client"]
    )
    assert "app-profile-jee-saml" in found["skipped_client"]  # a SAML client is no OAuth flow
    # bearerOnly service-jaxrs is an API, not a client.
    assert "service-jaxrs" in set(r.inventory.services["service_id"])
    assert "service-jaxrs" not in set(flows["client_id"])
    assert r.inventory.authorization_servers["as_id"].tolist() == ["keycloak:Examples"]


def test_device_and_spa_quickstarts() -> None:
    device = import_files("keycloak", [sample("keycloak/device-realm-import.json")])
    f = flow(device, "device-client")
    assert (f.client_kind, f.grant_type, f.client_type) == ("cli_tool", "device_code", "public")
    # No realm lifetimes in an import file: Keycloak defaults, marked assumed.
    assert f.access_token_lifetime_s == 300
    assert prov(device, f.flow_id, "access_token_lifetime_s")[0] == "assumed"
    spa = import_files("keycloak", [sample("keycloak/spa-realm-import.json")])
    g = flow(spa, "spa")  # publicClient, redirect http://localhost:8080/*, direct grants on
    assert (g.client_kind, g.client_type) == ("browser_spa", "public")
    assert "spa" in kinds(spa)["unsupported_grant"]


def test_binding_attributes_and_client_lifetimes(tmp_path: Path) -> None:
    """The attributes Keycloak's admin API sets (ClientRepresentation.attributes, strings)."""

    def edit(doc: dict[str, Any]) -> None:
        spa = _client(doc, "app-profile-html5")
        spa["attributes"] = {"dpop.bound.access.tokens": "true", "access.token.lifespan": "120"}
        jee = _client(doc, "app-jee")
        jee["attributes"]["tls.client.certificate.bound.access.tokens"] = "true"
        jee["attributes"]["client.session.max.lifespan"] = "7200"
        html5 = _client(doc, "app-html5")
        html5["attributes"]["use.refresh.tokens"] = "false"

    r = import_files("keycloak", [edited(tmp_path, EXAMPLES, edit)])
    spa = flow(r, "app-profile-html5")
    assert spa.binding == "dpop"
    assert spa.key_storage == "webcrypto_non_extractable"  # the only browser key store
    assert spa.access_token_lifetime_s == 120
    assert "dpop.bound.access.tokens" in prov(r, spa.flow_id, "binding")[1]
    assert "access.token.lifespan" in prov(r, spa.flow_id, "access_token_lifetime_s")[1]
    jee = flow(r, "app-jee")
    assert jee.binding == "mtls"
    assert jee.refresh_token_lifetime_s == 7200
    html5 = flow(r, "app-html5")
    assert (html5.refresh_token, html5.refresh_token_lifetime_s) == ("none", 0)
    servers = r.inventory.authorization_servers
    assert bool(servers["issues_dpop"].iloc[0])
    assert bool(servers["issues_mtls"].iloc[0])
    services = r.inventory.services.set_index("service_id")
    assert bool(services.loc[spa.resource_server, "supports_dpop"])


def test_audience_mappers_and_client_policies(tmp_path: Path) -> None:
    """oidc-audience-mapper on a client and in a default client scope; a realm client policy
    with the dpop-bind-enforcer executor for public clients (ecosystem §3.2)."""

    def edit(doc: dict[str, Any]) -> None:
        mapper = {
            "name": "orders audience",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {"included.client.audience": "service-jaxrs", "access.token.claim": "true"},
        }
        _client(doc, "app-jee")["protocolMappers"].append(mapper)
        doc["clientScopes"] = [
            {
                "name": "billing",
                "protocol": "openid-connect",
                "protocolMappers": [
                    {
                        "name": "billing audience",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {"included.custom.audience": "https://billing.example"},
                    }
                ],
            }
        ]
        _client(doc, "app-profile-jee")["defaultClientScopes"] = ["billing", "profile"]
        doc["clientProfiles"] = {
            "profiles": [{"name": "dpop", "executors": [{"executor": "dpop-bind-enforcer"}]}]
        }
        doc["clientPolicies"] = {
            "policies": [
                {
                    "name": "public clients bind",
                    "enabled": True,
                    "conditions": [
                        {"condition": "client-access-type", "configuration": {"type": ["public"]}}
                    ],
                    "profiles": ["dpop"],
                }
            ]
        }

    r = import_files("keycloak", [edited(tmp_path, EXAMPLES, edit)])
    jee = flow(r, "app-jee")
    assert (jee.resource_server, bool(jee.audience_restricted)) == ("service-jaxrs", True)
    prof = flow(r, "app-profile-jee")
    assert prof.resource_server == "https://billing.example"
    assert prof.scopes == "billing profile"
    assert "clientScopes[0]" in prov(r, prof.flow_id, "resource_server")[1]
    spa = flow(r, "app-profile-html5")
    assert spa.binding == "dpop"
    assert "dpop-bind-enforcer" in prov(r, spa.flow_id, "binding")[1]
    assert jee.binding == "bearer"  # confidential: the policy does not apply
    assert "app-jee" not in kinds(r).get("no_audience", set())


def test_client_scope_mappings_name_the_api(tmp_path: Path) -> None:
    """Realm clientScopeMappings: app-html5 holds service-jaxrs roles, so its tokens carry
    aud service-jaxrs (Keycloak's audience resolve)."""

    def edit(doc: dict[str, Any]) -> None:
        doc["clientScopeMappings"]["service-jaxrs"] = [{"client": "app-html5", "roles": ["user"]}]

    r = import_files("keycloak", [edited(tmp_path, EXAMPLES, edit)])
    f = flow(r, "app-html5")
    assert f.resource_server == "service-jaxrs"
    assert "clientScopeMappings" in prov(r, f.flow_id, "resource_server")[1]
    # The built-in realm-management mappings (admin consoles) give no flows.
    assert "realm-management" not in set(r.inventory.flows["resource_server"])


def test_several_realms_are_several_authorization_servers(tmp_path: Path) -> None:
    """`kc.sh export --file` of a whole server writes a list of realms."""
    import json

    realms = [
        json.loads(sample(EXAMPLES).read_text(encoding="utf-8")),
        json.loads(sample("keycloak/device-realm-import.json").read_text(encoding="utf-8")),
    ]
    path = tmp_path / "all-realms.json"
    path.write_text(json.dumps(realms), encoding="utf-8")
    r = import_files("keycloak", [path])
    servers = sorted(r.inventory.authorization_servers["as_id"])
    assert servers == ["keycloak:Examples", "keycloak:device-flow-quickstart"]
    device = flow(r, "device-client")
    assert device.authorization_server == "keycloak:device-flow-quickstart"
    assert device.resource_server == "keycloak:device-flow-quickstart:unknown-api"
    assert flow(r, "app-jee").authorization_server == "keycloak:Examples"
