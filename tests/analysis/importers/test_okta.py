"""Okta Management API examples (okta-management-openapi-spec, samples/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.analysis.importers._helpers import edited, flow, prov, sample
from tokenlib.analysis.importers import import_files

REST = ["okta/authorization-servers.json", "okta/policies.json", "okta/policy-rules.json"]
APP = "okta/app-oidc-native.json"
CLIENT = "0oahonkqCRR6TSNlg4"


def test_app_policy_rule_and_audience() -> None:
    r = import_files("okta", [sample(APP), *(sample(f) for f in REST)])
    f = flow(r, CLIENT)  # credentials.oauthClient.client_id
    assert (f.client_kind, f.grant_type, f.binding) == (
        "mobile_app",
        "authorization_code",
        "bearer",
    )
    assert f.client_type == "confidential"  # token_endpoint_auth_method client_secret_post
    assert f.resource_server == "https://api.resource.com"  # the server's audiences[0]
    assert f.access_token_lifetime_s == 3600  # rule accessTokenLifetimeMinutes 60
    source, detail = prov(r, f.flow_id, "access_token_lifetime_s")
    assert source == "registered"
    assert "accessTokenLifetimeMinutes" in detail
    assert f.scopes == "*"
    assert f.authorization_server == "okta:{authorizationServerId}"
    assert "dpop_bound_access_tokens" in prov(r, f.flow_id, "binding")[1]


def test_dpop_browser_app_and_rule_lifetime(tmp_path: Path) -> None:
    """The fields Okta's DPoP guide sets: settings.oauthClient.dpop_bound_access_tokens true;
    a browser (SPA) app with token_endpoint_auth_method none; a 5-minute rule."""

    def app(doc: dict[str, Any]) -> None:
        doc["settings"]["oauthClient"]["dpop_bound_access_tokens"] = True
        doc["settings"]["oauthClient"]["application_type"] = "browser"
        doc["credentials"]["oauthClient"]["token_endpoint_auth_method"] = "none"

    def rules(doc: list[dict[str, Any]]) -> None:
        doc[0]["actions"]["token"]["accessTokenLifetimeMinutes"] = 5

    r = import_files(
        "okta",
        [
            edited(tmp_path, APP, app),
            sample(REST[0]),
            sample(REST[1]),
            edited(tmp_path, REST[2], rules),
        ],
    )
    f = flow(r, CLIENT)
    assert (f.client_kind, f.client_type, f.binding) == ("browser_spa", "public", "dpop")
    assert f.access_token_lifetime_s == 300
    assert f.key_storage == "webcrypto_non_extractable"


def test_app_without_servers_gets_a_placeholder_and_default_lifetime() -> None:
    r = import_files("okta", [sample(APP)])
    f = flow(r, CLIENT)
    assert f.resource_server == "okta:org:unknown-api"
    assert prov(r, f.flow_id, "access_token_lifetime_s")[0] == "assumed"
