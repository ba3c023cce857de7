"""Auth0 Management API v2 responses, recorded by Auth0's Terraform provider (SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.analysis.importers._helpers import flow, kinds, prov, sample
from tokenlib.analysis.importers import import_files

FILES = [
    "auth0/clients.json",
    "auth0/resource-server-dpop.json",
    "auth0/resource-server-m2m.json",
    "auth0/client-grant.json",
    "auth0/client-m2m.json",
    "auth0/client-native.json",
]
DPOP_API = "https://uat.api.terraform-provider-auth0.com/TestAccResourceServer"
M2M_API = "https://uat.tf.terraform-provider-auth0.com/client-grant/TestAccClientGrant"


def _files() -> list[Path]:
    return [sample(f) for f in FILES]


def test_app_types_grants_and_lifetimes() -> None:
    r = import_files("auth0", _files())
    spa = flow(r, "FSAHVFwCcW9nSs8O97U3eCEeXOUOC0cV")  # app_type spa, auth method none
    assert (spa.client_kind, spa.client_type, spa.grant_type) == (
        "browser_spa",
        "public",
        "authorization_code",
    )
    assert "app_type spa" in prov(r, spa.flow_id, "client_kind")[1]
    m2m = flow(r, "HCuHYoHrhT2OgacfzK0TVNc16uFbwZ7P")  # non_interactive
    assert (m2m.client_kind, m2m.grant_type, m2m.refresh_token) == (
        "service",
        "client_credentials",
        "none",
    )
    native = flow(r, "kqU9WU3dlndc3Mp3RXyffoo0YBpMgq9q")  # app_type native
    assert (native.client_kind, native.client_type) == ("mobile_app", "public")
    # refresh_token.rotation_type non-rotating, infinite lifetime: the stored token_lifetime.
    assert (native.refresh_token, native.refresh_token_lifetime_s) == ("static", 2592000)
    granted = flow(r, "hwfO6jMNCVy4N1LghfAu64DlVmNmiRcH")  # the client grant's client
    assert granted.resource_server == M2M_API
    assert granted.scopes == "create:bar"
    assert granted.access_token_lifetime_s == 86400  # the API's token_lifetime
    assert prov(r, granted.flow_id, "access_token_lifetime_s") == (
        "registered",
        "auth0 " + str(sample("auth0/resource-server-m2m.json")) + ":$.token_lifetime",
    )
    # The API has allow_offline_access false: no refresh token for it.
    assert (granted.refresh_token, granted.refresh_token_lifetime_s) == ("none", 0)
    assert "WueZg4YOVIOyDWaloChrh20LpttRq1Su" in kinds(r)["skipped_client"]  # global client
    # Interactive apps name their audience at run time: placeholder + finding.
    assert spa.resource_server == "auth0:unknown-api"
    assert prov(r, spa.flow_id, "resource_server")[0] == "assumed"
    services = r.inventory.services.set_index("service_id")
    assert bool(services.loc[DPOP_API, "supports_dpop"])
    assert prov(r, DPOP_API, "supports_dpop", "services")[0] == "registered"


def test_resource_server_proof_of_possession_binds_its_flows(tmp_path: Path) -> None:
    """A client grant (written here, same shape as client-grant.json) linking the tenant's M2M
    app to the API whose proof_of_possession is {mechanism: dpop, required: true}."""
    grant = {
        "id": "cgr_test",
        "client_id": "HCuHYoHrhT2OgacfzK0TVNc16uFbwZ7P",
        "audience": DPOP_API,
        "scope": ["read:things"],
    }
    path = tmp_path / "grant.json"
    path.write_text(json.dumps(grant), encoding="utf-8")
    r = import_files("auth0", [*_files(), path])
    f = flow(r, "HCuHYoHrhT2OgacfzK0TVNc16uFbwZ7P")
    assert (f.binding, f.resource_server, f.access_token_lifetime_s) == ("dpop", DPOP_API, 7200)
    assert "proof_of_possession" in prov(r, f.flow_id, "binding")[1]


def test_client_require_proof_of_possession(tmp_path: Path) -> None:
    doc = json.loads(sample("auth0/client-native.json").read_text(encoding="utf-8"))
    doc["require_proof_of_possession"] = True
    path = tmp_path / "client.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    r = import_files("auth0", [path])
    f = flow(r, doc["client_id"])
    assert f.binding == "dpop"  # no TLS client authentication: DPoP
    assert f.key_storage == "software"  # assumed default for a bound non-browser client
    assert prov(r, f.flow_id, "key_storage")[0] == "assumed"
