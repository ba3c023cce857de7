"""The schema specs match the inventory contract and drive the docs and datapackage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tokenlib.analysis import schema as S
from tokenlib.analysis._inventory_cli import bundle_files

DATA = Path(__file__).resolve().parents[2] / "data"

# The column contract the models, notebooks and lab rely on: names and values never change.
CONTRACT_FLOWS = {
    "flow_id": "str",
    "client_id": "str",
    "client_kind": "category",
    "actor": "category",
    "client_type": "category",
    "environment": "category",
    "grant_type": "category",
    "resource_server": "str",
    "audience_restricted": "bool",
    "scopes": "str",
    "path": "str",
    "key_storage": "category",
    "cert_management": "category",
    "access_token_lifetime_s": "int64",
    "refresh_token": "category",
    "refresh_token_lifetime_s": "int64",
    "token_format": "category",
    "rs_introspects": "bool",
    "binding": "category",
    "binding_enforced": "bool",
    "requests_per_day": "int64",
    "exposure_channels": "str",
    "forwards_token": "bool",
    "authorization_server": "str",
    "token_exchange": "bool",
}
CONTRACT_AUTHORIZATION_SERVERS = {
    "as_id": "str",
    "product": "str",
    "issues_dpop": "bool",
    "issues_mtls": "bool",
    "binds_refresh_tokens": "bool",
    "supports_token_exchange": "bool",
}
CONTRACT_SERVICES = {
    "service_id": "str",
    "owner": "str",
    "sensitivity": "int64",
    "internet_facing": "bool",
    "supports_bearer": "bool",
    "supports_mtls": "bool",
    "supports_dpop": "bool",
    "downstream": "str",
    "instances": "int64",
    "jti_cache": "category",
    "requires_nonce": "bool",
    "iat_past_s": "int64",
    "iat_future_s": "int64",
}
CONTRACT_ENUMS = {
    "client_kind": {
        "browser_spa",
        "mobile_app",
        "web_backend",
        "service",
        "batch_job",
        "ai_agent",
        "partner_integrator",
        "cli_tool",
    },
    "actor": {"human", "workload"},
    "client_type": {"public", "confidential"},
    "environment": {"prod", "staging", "dev"},
    "grant_type": {
        "authorization_code",
        "client_credentials",
        "device_code",
        "token_exchange",
        "jwt_bearer",
    },
    "key_storage": {
        "none",
        "software",
        "webcrypto_non_extractable",
        "platform_keystore",
        "hsm_tpm",
    },
    "cert_management": {"none", "manual", "automated_pki", "spiffe"},
    "refresh_token": {"none", "static", "rotating"},
    "token_format": {"jwt", "opaque"},
    "binding": {"bearer", "mtls", "dpop"},
    "exposure_channels": {
        "app_logs",
        "proxy_logs",
        "browser_storage",
        "har_files",
        "config_files",
        "ci_secrets",
        "crash_dumps",
        "integrator_storage",
    },
}


def test_flow_columns_match_contract() -> None:
    assert {c.name: c.pandas_dtype for c in S.FLOW_COLUMNS} == CONTRACT_FLOWS
    assert list(S.FLOWS.names) == list(CONTRACT_FLOWS)


def test_service_columns_match_contract() -> None:
    assert {c.name: c.pandas_dtype for c in S.SERVICE_COLUMNS} == CONTRACT_SERVICES
    assert set(S.SERVICES.column("jti_cache").allowed) == {"none", "per_instance", "shared"}
    assert (S.SERVICES.column("sensitivity").minimum, S.SERVICES.column("sensitivity").maximum) == (
        1,
        5,
    )


def test_authorization_server_columns_match_contract() -> None:
    spec = S.AUTHORIZATION_SERVERS
    assert {c.name: c.pandas_dtype for c in spec.columns} == CONTRACT_AUTHORIZATION_SERVERS
    assert list(spec.names) == list(CONTRACT_AUTHORIZATION_SERVERS)
    assert spec.path == "authorization_servers.csv"
    assert spec.primary_key == ("as_id",)
    assert spec.column("as_id").required
    assert spec.column("as_id").unique
    assert [c.name for c in spec.columns if c.required] == ["as_id"]


def test_new_flow_columns_defaults_and_aliases() -> None:
    server = S.FLOWS.column("authorization_server")
    assert (server.default, server.required) == ("as-default", False)
    assert server.default == S.DEFAULT_AS_ID
    assert {"as", "issuer", "idp", "authorization_server_id"} <= set(server.aliases)
    exchange = S.FLOWS.column("token_exchange")
    assert (exchange.default, exchange.kind, exchange.required) == (False, "boolean", False)
    assert {"exchanges_token", "rfc8693"} <= set(exchange.aliases)
    assert "RFC 8693" in exchange.meaning
    assert "forwards_token" in exchange.meaning


@pytest.mark.parametrize(
    ("column", "citations", "derivation"),
    [
        ("issues_dpop", ("RFC 9449 §5", "§6"), "binding dpop"),
        ("issues_mtls", ("RFC 8705 §3",), "binding mtls"),
        ("binds_refresh_tokens", ("RFC 9449 §5", "RFC 8705 §4"), "issues_dpop"),
        ("supports_token_exchange", ("RFC 8693",), "token_exchange"),
    ],
)
def test_authorization_server_columns_cite_rfcs_and_document_derivation(
    column: str, citations: tuple[str, ...], derivation: str
) -> None:
    col = S.AUTHORIZATION_SERVERS.column(column)
    for citation in citations:
        assert citation in col.meaning
    assert derivation in col.default_doc
    assert col.default is False


@pytest.mark.parametrize(("column", "values"), sorted(CONTRACT_ENUMS.items()))
def test_enums_match_contract(column: str, values: set[str]) -> None:
    assert set(S.FLOWS.column(column).allowed) == values


def test_path_vocabulary() -> None:
    assert set(S.HOP_KINDS) == {
        "cdn",
        "waf",
        "api_gateway",
        "load_balancer",
        "service_mesh_sidecar",
        "reverse_proxy",
    }
    assert set(S.HOP_MODES) == {"passthrough", "terminate", "terminate_forward_cert"}
    pattern = re.compile(S.PATH_PATTERN)
    assert pattern.match("")
    assert pattern.match("cdn:terminate>api_gateway:terminate_forward_cert")
    assert not pattern.match("cdn:terminate>")
    assert not pattern.match("router:terminate")


@pytest.mark.parametrize(
    "spec",
    [S.FLOWS, S.SERVICES, S.AUTHORIZATION_SERVERS, *S.REFERENCE_TABLES.values()],
    ids=lambda s: s.name,
)
def test_aliases_are_unambiguous(spec: S.TableSpec) -> None:
    seen: dict[str, str] = {}
    for col in spec.columns:
        for key in (col.name, *col.aliases):
            assert key.lower() not in seen, f"{key} maps to {seen.get(key.lower())} and {col.name}"
            seen[key.lower()] = col.name


@pytest.mark.parametrize(
    "col", [c for c in S.FLOW_COLUMNS + S.SERVICE_COLUMNS if c.value_aliases], ids=lambda c: c.name
)
def test_value_aliases_target_allowed_values(col: S.Column) -> None:
    for alias, target in col.value_aliases:
        assert target in col.allowed
        assert alias not in col.allowed


def test_optional_columns_document_a_default() -> None:
    for col in S.FLOW_COLUMNS + S.SERVICE_COLUMNS + S.AUTHORIZATION_SERVER_COLUMNS:
        if not col.required:
            assert col.default_text() not in ("", "(required)")
            if col.kind == "category" and not col.default_doc:
                assert col.default in col.allowed


def test_table_schema_carries_enums_ranges_and_required() -> None:
    fields = {f["name"]: f for f in S.table_schema(S.FLOWS)["fields"]}
    assert fields["binding"]["constraints"]["enum"] == list(S.BINDINGS)
    assert fields["binding"]["constraints"]["required"] is True
    assert fields["access_token_lifetime_s"]["type"] == "integer"
    assert fields["access_token_lifetime_s"]["constraints"]["minimum"] == 1
    assert fields["flow_id"]["constraints"]["unique"] is True
    assert fields["path"]["constraints"]["pattern"] == S.PATH_PATTERN
    channel_re = re.compile(fields["exposure_channels"]["constraints"]["pattern"])
    assert channel_re.match("app_logs;har_files")
    assert not channel_re.match("app_logs;screenshots")


def test_datapackage_is_complete() -> None:
    package = json.loads((DATA / "datapackage.json").read_text())
    resources = {r["name"]: r for r in package["resources"]}
    assert {
        "flows",
        "services",
        "authorization-servers",
        "token-lifetimes",
        "dpop-implementations",
        "token-binding-timeline",
        "breaches",
    } <= set(resources)
    flows = resources["flows"]["schema"]
    assert [f["name"] for f in flows["fields"]] == list(CONTRACT_FLOWS)
    assert flows["primaryKey"] == ["flow_id"]
    assert flows["foreignKeys"] == [
        {
            "fields": "resource_server",
            "reference": {"resource": "services", "fields": "service_id"},
        },
        {
            "fields": "authorization_server",
            "reference": {"resource": "authorization-servers", "fields": "as_id"},
        },
    ]
    assert resources["services"]["schema"]["primaryKey"] == ["service_id"]
    servers = resources["authorization-servers"]
    assert servers["path"] == "authorization_servers.csv"
    assert servers["schema"]["primaryKey"] == ["as_id"]
    assert [f["name"] for f in servers["schema"]["fields"]] == list(CONTRACT_AUTHORIZATION_SERVERS)
    for resource in package["resources"]:
        assert (DATA / resource["path"]).is_file(), resource["path"]
        if resource["path"].startswith("reference/"):
            names = [f["name"] for f in resource["schema"]["fields"]]
            assert "source" in names
            assert "status" in names


def test_readme_documents_every_column_and_table() -> None:
    text = (DATA / "README.md").read_text()
    for col in S.FLOW_COLUMNS + S.SERVICE_COLUMNS + S.AUTHORIZATION_SERVER_COLUMNS:
        assert f"| `{col.name}` |" in text
        for alias in col.aliases:
            assert f"`{alias}`" in text
    assert "## authorization_servers.csv" in text
    assert "template_authorization_servers.csv" in text
    for code in ("unknown_authorization_server", "unissued_binding", "token_exchange_unsupported"):
        assert f"| `{code}` |" in text
    for name in S.REFERENCE_TABLES:
        assert f"reference/{name}.csv" in text
    assert "## Model parameters" in text
    assert "MODEL_PARAMETERS.md" in text
    for key in ("profile: `saas`", "seed: `20250101`", "generator: `tokenlib.analysis.inventory v"):
        assert key in text


def test_docs_are_up_to_date() -> None:
    files = bundle_files()
    for name in ("README.md", "datapackage.json"):
        assert (DATA / name).read_bytes() == files[name], (
            f"data/{name} is stale: run python -m tokenlib.analysis.inventory bundle"
        )


def _table_schema_problems(resource: dict[str, object], frame: pd.DataFrame) -> list[str]:
    """A small Frictionless Table Schema checker (types, required, unique, enum, pattern,
    minimum/maximum), enough to show another tool can validate the files with the package."""
    problems: list[str] = []
    schema = resource["schema"]
    assert isinstance(schema, dict)
    for field in schema["fields"]:
        name = field["name"]
        values = frame[name]
        present = values[values != ""]
        c = field.get("constraints", {})
        if c.get("required") and (values == "").any():
            problems.append(f"{name}: required")
        if c.get("unique") and present.duplicated().any():
            problems.append(f"{name}: unique")
        if "enum" in c and not present.isin(c["enum"]).all():
            problems.append(f"{name}: enum")
        if "pattern" in c and not values.str.fullmatch(c["pattern"]).all():
            problems.append(f"{name}: pattern")
        booleans = field.get("trueValues", []) + field.get("falseValues", [])
        if field["type"] == "boolean" and not present.isin(booleans).all():
            problems.append(f"{name}: boolean")
        if field["type"] in ("integer", "number"):
            numbers = pd.to_numeric(present, errors="coerce")
            if numbers.isna().any():
                problems.append(f"{name}: {field['type']}")
            if field["type"] == "integer" and (numbers % 1 != 0).any():
                problems.append(f"{name}: integer")
            if "minimum" in c and (numbers < c["minimum"]).any():
                problems.append(f"{name}: minimum")
            if "maximum" in c and (numbers > c["maximum"]).any():
                problems.append(f"{name}: maximum")
    return problems


def _read_plain(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, comment=None)


def test_bundled_files_satisfy_the_datapackage() -> None:
    package = json.loads((DATA / "datapackage.json").read_text())
    frames = {}
    for resource in package["resources"]:
        frame = _read_plain(DATA / resource["path"])
        frames[resource["name"]] = frame
        assert list(frame.columns) == [f["name"] for f in resource["schema"]["fields"]]
        assert _table_schema_problems(resource, frame) == [], resource["name"]
    fk = set(frames["flows"]["resource_server"]) <= set(frames["services"]["service_id"])
    assert fk
    servers = frames["authorization-servers"]
    assert set(frames["flows"]["authorization_server"]) <= set(servers["as_id"])


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("binding", "token_binding", "binding: enum"),
        ("path", "cdn:terminate>", "path: pattern"),
        ("exposure_channels", "screenshots", "exposure_channels: pattern"),
        ("access_token_lifetime_s", "0", "access_token_lifetime_s: minimum"),
        ("forwards_token", "maybe", "forwards_token: boolean"),
        ("flow_id", "flow-0000", "flow_id: unique"),
    ],
)
def test_datapackage_rejects_bad_values(column: str, value: str, problem: str) -> None:
    package = json.loads((DATA / "datapackage.json").read_text())
    flows_resource = next(r for r in package["resources"] if r["name"] == "flows")
    frame = _read_plain(DATA / "flows.csv").head(50).copy()
    frame.loc[3, column] = value
    assert _table_schema_problems(flows_resource, frame) == [problem]


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("issues_dpop", "maybe", "issues_dpop: boolean"),
        ("as_id", "", "as_id: required"),
        ("supports_token_exchange", "sometimes", "supports_token_exchange: boolean"),
    ],
)
def test_datapackage_rejects_bad_authorization_servers(
    column: str, value: str, problem: str
) -> None:
    package = json.loads((DATA / "datapackage.json").read_text())
    resource = next(r for r in package["resources"] if r["name"] == "authorization-servers")
    frame = _read_plain(DATA / "authorization_servers.csv").copy()
    assert _table_schema_problems(resource, frame) == []
    frame.loc[0, column] = value
    assert _table_schema_problems(resource, frame) == [problem]


def test_datapackage_rejects_duplicate_as_id() -> None:
    package = json.loads((DATA / "datapackage.json").read_text())
    resource = next(r for r in package["resources"] if r["name"] == "authorization-servers")
    frame = _read_plain(DATA / "authorization_servers.csv")
    doubled = pd.concat([frame, frame.head(1)], ignore_index=True)
    assert _table_schema_problems(resource, doubled) == ["as_id: unique"]
