"""RFC 7591 / RFC 7592 example documents and the binding metadata of RFC 8705 / RFC 9449."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.analysis.importers._helpers import flow, kinds, prov, sample
from tokenlib.analysis.importers import import_files

EXAMPLE = "rfc7591/rfc7591-3.2.1-response.json"


def test_rfc7591_example_response() -> None:
    r = import_files("rfc7591", [sample(EXAMPLE)])
    f = flow(r, "s6BhdRkqt3")
    # grant_types authorization_code + refresh_token, client_secret_basic (RFC 7591 §3.2.1).
    assert (f.client_kind, f.client_type, f.grant_type) == (
        "web_backend",
        "confidential",
        "authorization_code",
    )
    assert (f.binding, f.refresh_token) == ("bearer", "static")
    assert prov(r, f.flow_id, "refresh_token")[0] == "assumed"  # RFC 7591 says nothing of rotation
    assert "s6BhdRkqt3" in kinds(r)["no_audience"]


def test_rfc7592_information_response() -> None:
    r = import_files("rfc7591", [sample("rfc7591/rfc7592-3-information-response.json")])
    assert flow(r, "s6BhdRkqt3").client_kind == "web_backend"


def _meta(**extra: object) -> dict[str, object]:
    doc: dict[str, object] = json.loads(sample(EXAMPLE).read_text(encoding="utf-8"))
    doc.update(extra)
    return doc


@pytest.mark.parametrize(
    ("extra", "binding"),
    [
        ({"dpop_bound_access_tokens": True}, "dpop"),  # RFC 9449 §5.2
        ({"tls_client_certificate_bound_access_tokens": True}, "mtls"),  # RFC 8705 §3.4
        (
            {
                "dpop_bound_access_tokens": True,
                "tls_client_certificate_bound_access_tokens": True,
                "token_endpoint_auth_method": "tls_client_auth",
            },
            "mtls",
        ),
        ({"dpop_bound_access_tokens": False}, "bearer"),
        ({"dpop_bound_access_tokens": "yes please"}, "bearer"),  # not a boolean: not bound
    ],
)
def test_binding_metadata(tmp_path: Path, extra: dict[str, object], binding: str) -> None:
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(_meta(**extra)), encoding="utf-8")
    r = import_files("rfc7591", [path])
    assert flow(r, "s6BhdRkqt3").binding == binding


def test_extensions_and_kind_inference(tmp_path: Path) -> None:
    docs = {
        "clients": [
            _meta(
                client_id="spa",
                token_endpoint_auth_method="none",
                dpop_bound_access_tokens=True,
                x_access_token_lifetime_s=600,
                x_refresh_token_lifetime_s=86400,
                x_refresh_token_rotation=True,
                x_audiences=["https://api.example.com", "https://files.example.com"],
                scope="read write",
            ),
            _meta(
                client_id="app",
                token_endpoint_auth_method="none",
                redirect_uris=["com.example.app:/cb"],
            ),
            _meta(client_id="svc", grant_types=["client_credentials"], x_audiences=["orders"]),
            _meta(client_id="ci", grant_types=["client_credentials"], x_client_kind="ci"),
            _meta(client_id="cli", grant_types=["urn:ietf:params:oauth:grant-type:device_code"]),
        ]
    }
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(docs), encoding="utf-8")
    r = import_files("rfc7591", [path])
    flows = r.inventory.flows
    spa = flows[flows["client_id"] == "spa"]
    assert sorted(spa["resource_server"]) == [
        "https://api.example.com",
        "https://files.example.com",
    ]
    row = spa.iloc[0]
    assert (row.client_kind, row.binding, row.access_token_lifetime_s) == (
        "browser_spa",
        "dpop",
        600,
    )
    assert (row.refresh_token, row.refresh_token_lifetime_s) == ("rotating", 86400)
    assert row.scopes == "read write"
    assert bool(row.audience_restricted)
    assert flow(r, "app").client_kind == "mobile_app"
    svc = flow(r, "svc")
    assert (svc.client_kind, svc.grant_type, svc.refresh_token) == (
        "service",
        "client_credentials",
        "none",
    )
    assert flow(r, "ci").client_kind == "batch_job"
    assert (flow(r, "cli").client_kind, flow(r, "cli").grant_type) == ("cli_tool", "device_code")
