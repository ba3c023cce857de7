"""Microsoft Graph application examples (microsoft-graph-docs-contrib, samples/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.analysis.importers._helpers import edited, flow, kinds, prov, sample
from tokenlib.analysis.importers import import_files

GET = "entra/application-get.json"
SELECT = "entra/application-get-select.json"
GRAPH = "00000003-0000-0000-c000-000000000000"


def test_required_resource_access_and_bearer() -> None:
    r = import_files(
        "entra", [sample(GET), sample(SELECT), sample("entra/federated-identity-credentials.json")]
    )
    f = flow(r, "46e6adf4-a9cf-4b60-9390-0ba6fb00bf6b")  # PostmanWeb, $select without creds
    assert (f.client_kind, f.grant_type, f.binding) == ("service", "client_credentials", "bearer")
    assert f.resource_server == GRAPH
    assert f.scopes.split() == [
        "ad902697-1014-4ef5-81ef-2b4301988e8c",
        "572fea84-0151-49b2-9301-11cb16974376",
        "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
        "7e823077-d88e-468f-a337-e18f1f0e6c7c",
    ]
    assert f.access_token_lifetime_s == 4500
    assert prov(r, f.flow_id, "access_token_lifetime_s")[0] == "assumed"
    # Example 1 has no redirect URIs, no credentials and requests nothing.
    assert "631a96bc-a705-4eda-9f99-fdaf9f54f6a2" in kinds(r)["skipped_client"]
    assert "bdad0963-4a7a-43ae-b569-e67e1da3f2c0" in kinds(r)["note"]  # FIC without its app
    servers = r.inventory.authorization_servers
    assert servers["as_id"].tolist() == ["entra:contoso.com"]
    assert not bool(servers["issues_dpop"].iloc[0])
    assert not bool(servers["issues_mtls"].iloc[0])


def test_platforms_federated_ci_and_lifetime_policy(tmp_path: Path) -> None:
    """Platform blocks as `PATCH /applications/{id}` sets them (spa / publicClient / web), a
    GitHub Actions federated credential and a tokenLifetimePolicy, on copies of Example 1."""

    def spa(doc: dict[str, Any]) -> None:
        doc["spa"] = {"redirectUris": ["https://app.contoso.com/auth"]}
        doc["requiredResourceAccess"] = [
            {"resourceAppId": GRAPH, "resourceAccess": [{"id": "e1fe", "type": "Scope"}]}
        ]
        doc["tokenLifetimePolicies"] = [
            {
                "definition": [
                    '{"TokenLifetimePolicy":{"Version":1,"AccessTokenLifetime":"02:00:00"}}'
                ]
            }
        ]

    def ci(doc: dict[str, Any]) -> None:
        doc["appId"] = "11111111-2222-3333-4444-555555555555"
        doc["federatedIdentityCredentials"] = [
            {
                "name": "deploy",
                "issuer": "https://token.actions.githubusercontent.com",
                "subject": "repo:org/repo:ref:refs/heads/main",
                "audiences": ["api://AzureADTokenExchange"],
            }
        ]

    def mobile(doc: dict[str, Any]) -> None:
        doc["appId"] = "99999999-2222-3333-4444-555555555555"
        doc["publicClient"] = {"redirectUris": ["msauth.com.contoso.app://auth"]}

    files = []
    for name, edit in (("spa", spa), ("ci", ci), ("mobile", mobile)):
        (tmp_path / name).mkdir()
        files.append(edited(tmp_path / name, GET, edit))
    r = import_files("entra", files)
    s = flow(r, "631a96bc-a705-4eda-9f99-fdaf9f54f6a2")
    assert (s.client_kind, s.client_type, s.binding) == ("browser_spa", "public", "bearer")
    assert s.access_token_lifetime_s == 7200
    assert prov(r, s.flow_id, "access_token_lifetime_s")[0] == "registered"
    assert (s.refresh_token, s.refresh_token_lifetime_s) == ("rotating", 86400)
    c = flow(r, "11111111-2222-3333-4444-555555555555")
    assert (c.client_kind, c.grant_type) == ("batch_job", "client_credentials")
    m = flow(r, "99999999-2222-3333-4444-555555555555")
    assert (m.client_kind, m.client_type) == ("mobile_app", "public")


MI = "b1c8a9f0-5a3e-4d6f-9a53-4c1b0b7c2d11"  # orders-worker-identity (user-assigned)
MI_BARE = "c4e7d2b6-0f9a-4e3b-8d21-7a5c9e1f3b42"  # vm-build-agent (no app role assignments)


def test_managed_identities_are_service_clients_of_their_assigned_apis() -> None:
    """Managed identities have no application object: before, they were dropped silently."""
    r = import_files(
        "entra",
        [
            sample(GET),
            sample("entra/managed-identities.json"),
            sample("entra/approleassignments.json"),  # one more role for the same identity
        ],
    )
    f = flow(r, MI)
    assert (f.client_kind, f.client_type, f.grant_type) == (
        "service",
        "confidential",
        "client_credentials",
    )
    assert (f.actor, f.binding, f.refresh_token) == ("workload", "bearer", "none")
    assert f.resource_server == GRAPH  # the resource's appId, found through its object id
    assert f.scopes.split() == ["User.Read.All", "Mail.ReadWrite"]  # expanded + separate file
    assert f.access_token_lifetime_s == 86400
    source, detail = prov(r, f.flow_id, "access_token_lifetime_s")
    assert source == "assumed"
    assert "entra_mi_at" in detail
    kind_source, kind_detail = prov(r, f.flow_id, "client_kind")
    assert kind_source == "registered"
    assert "ManagedIdentity" in kind_detail
    assert "userAssignedIdentities/orders-worker-identity" in kind_detail
    # Without app role assignments: a placeholder API and a note saying why.
    bare = flow(r, MI_BARE)
    assert bare.client_kind == "service"
    assert bare.resource_server.endswith("unknown-api")
    notes = [x for x in r.findings if x.id == MI_BARE]
    assert any("Azure RBAC" in x.detail for x in notes)
    # Microsoft Graph's own service principal (type Application, no app object) is no client.
    assert all(x.client_id != GRAPH for x in r.inventory.flows.itertuples())


def test_an_assignments_file_alone_is_read_not_refused() -> None:
    """``GET …/servicePrincipals/{id}/appRoleAssignments`` bodies have no appId: before,
    the file was refused as an application without appId."""
    r = import_files("entra", [sample(SELECT), sample("entra/approleassignments.json")])
    assert r.inventory.flows["client_id"].tolist()  # the applications still import
    assert MI not in set(r.inventory.flows["client_id"])  # no identity object, no client
