"""load_inventory: formats, aliases, defaults, validation problems, drop mode, atomic writes."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.analysis.conftest_models import authorization_servers_frame, flows_frame
from tokenlib.analysis import schema as S
from tokenlib.analysis.inventory import (
    Inventory,
    InventoryError,
    Problem,
    atomic_write_bytes,
    data_dir,
    derive_authorization_servers,
    exposure_matrix,
    generate_inventory,
    load_inventory,
    path_features,
    summary,
    write_inventory,
)

DATA = Path(__file__).resolve().parents[2] / "data"


def _template() -> tuple[pd.DataFrame, pd.DataFrame]:
    flows = pd.read_csv(DATA / "template_flows.csv", comment="#", dtype=str, keep_default_na=False)
    services = pd.read_csv(
        DATA / "template_services.csv", comment="#", dtype=str, keep_default_na=False
    )
    return flows, services


def _template_servers() -> pd.DataFrame:
    return pd.read_csv(
        DATA / "template_authorization_servers.csv", comment="#", dtype=str, keep_default_na=False
    )


def _write(
    tmp: Path,
    flows: pd.DataFrame,
    services: pd.DataFrame | None = None,
    servers: pd.DataFrame | None = None,
) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "flows.csv"
    flows.to_csv(path, index=False)
    if services is not None:
        services.to_csv(tmp / "services.csv", index=False)
    if servers is not None:
        servers.to_csv(tmp / "authorization_servers.csv", index=False)
    return path


def _problems(path: Path) -> list[Problem]:
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    return list(info.value.problems)


# --- the bundled default -------------------------------------------------------------------


def test_default_loads_with_contract_dtypes() -> None:
    inv = load_inventory("default")
    assert isinstance(inv, Inventory)
    assert inv.source == "default"
    assert inv.report is not None
    assert inv.report.ok
    assert not inv.report.problems
    for col in S.FLOW_COLUMNS:
        assert str(inv.flows[col.name].dtype) == col.pandas_dtype, col.name
        if col.kind == "category":
            assert list(inv.flows[col.name].cat.categories) == list(col.allowed)
    for col in S.SERVICE_COLUMNS:
        assert str(inv.services[col.name].dtype) == col.pandas_dtype, col.name
    assert set(inv.flows["resource_server"]) <= set(inv.services["service_id"])
    for col in S.AUTHORIZATION_SERVER_COLUMNS:
        assert str(inv.authorization_servers[col.name].dtype) == col.pandas_dtype, col.name
    assert not inv.report.authorization_servers_derived
    assert inv.report.authorization_servers_source.endswith("authorization_servers.csv")
    assert set(inv.flows["authorization_server"]) <= set(inv.authorization_servers["as_id"])


def test_default_found_independently_of_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert data_dir() == DATA
    assert len(load_inventory("default").flows) > 0


def test_template_is_a_valid_inventory() -> None:
    inv = load_inventory(DATA / "template_flows.csv")
    assert inv.report is not None
    assert inv.report.ok
    assert not inv.report.warnings
    assert inv.report.services_source.endswith("template_services.csv")
    assert inv.report.authorization_servers_source.endswith("template_authorization_servers.csv")
    assert len(inv.flows) == 6
    assert len(inv.services) == 3
    assert list(inv.authorization_servers["as_id"]) == ["as-customer", "as-workforce"]
    assert inv.flows["token_exchange"].any()


# --- formats --------------------------------------------------------------------------------


def _assert_same(a: Inventory, b: Inventory) -> None:
    pd.testing.assert_frame_equal(a.flows, b.flows)
    pd.testing.assert_frame_equal(a.services, b.services)
    pd.testing.assert_frame_equal(a.authorization_servers, b.authorization_servers)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_failed_write_leaves_the_previous_inventory_whole(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flows, services, authorization servers and provenance are written as one set."""
    import tokenlib.analysis.inventory as inventory_module
    from tokenlib.analysis.provenance import synthetic_provenance

    old = generate_inventory("bank", 200, seed=1)
    write_inventory(old, tmp_path, fmt=fmt, provenance=synthetic_provenance(old.source))  # type: ignore[arg-type]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert len(before) == 4

    def disk_full(*args: object, **kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(inventory_module, "write_provenance", disk_full)
    new = generate_inventory("saas", 300, seed=2)
    with pytest.raises(OSError, match="No space left"):
        write_inventory(new, tmp_path, fmt=fmt, provenance=synthetic_provenance(new.source))  # type: ignore[arg-type]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    inv = generate_inventory("bank", 300, seed=3)
    flows_path, _ = write_inventory(inv, tmp_path, fmt=fmt)  # type: ignore[arg-type]
    assert (tmp_path / f"authorization_servers.{fmt}").is_file()
    back = load_inventory(flows_path)
    _assert_same(inv, back)
    assert back.report is not None
    assert back.report.ok
    assert not back.report.authorization_servers_derived


def test_csv_and_parquet_load_identically(tmp_path: Path) -> None:
    inv = generate_inventory("saas", 200, seed=11)
    csv_flows, _ = write_inventory(inv, tmp_path / "c", fmt="csv")
    pq_flows, _ = write_inventory(inv, tmp_path / "p", fmt="parquet")
    _assert_same(load_inventory(csv_flows), load_inventory(pq_flows))


def test_csv_gz(tmp_path: Path) -> None:
    inv = generate_inventory("saas", 150, seed=5)
    flows_path, services_path = write_inventory(inv, tmp_path)
    gz = tmp_path / "flows.csv.gz"
    gz.write_bytes(gzip.compress(flows_path.read_bytes()))
    _assert_same(inv, load_inventory(gz, services=services_path))


def test_dataframe_source() -> None:
    flows, services = _template()
    inv = load_inventory(flows, services=services)
    assert len(inv.flows) == 6
    assert inv.report is not None
    assert inv.report.source == "<flows DataFrame>"


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "flows.xlsx"
    path.write_text("x")
    problems = _problems(path)
    assert [p.code for p in problems] == ["file"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_inventory(tmp_path / "nope.csv")


def test_bad_on_error() -> None:
    with pytest.raises(ValueError, match="on_error"):
        load_inventory("default", on_error="ignore")  # type: ignore[arg-type]


# --- names, aliases, defaults --------------------------------------------------------------


def test_column_aliases_and_case(tmp_path: Path) -> None:
    flows, services = _template()
    renamed = flows.rename(
        columns={
            "resource_server": "RS",
            "access_token_lifetime_s": "access_token_ttl",
            "client_kind": "Kind",
            "binding": "Binding Type",
            "refresh_token_lifetime_s": "rt_lifetime",
            "client_id": "CLIENT_ID",
        }
    )
    inv = load_inventory(_write(tmp_path, renamed, services))
    base = load_inventory(_write(tmp_path / "b", flows, services))
    _assert_same(base, inv)
    assert inv.report is not None
    given = {g for _, g, _ in inv.report.aliases}
    assert {"RS", "access_token_ttl", "Kind", "Binding Type"} <= given


def test_value_aliases_and_case(tmp_path: Path) -> None:
    flows, services = _template()
    flows.loc[0, "client_kind"] = "SPA"
    flows.loc[0, "binding"] = "DPoP"
    flows.loc[3, "binding"] = "mTLS"
    flows.loc[3, "cert_management"] = "SPIRE"
    flows.loc[2, "environment"] = "Production"
    flows.loc[1, "access_token_lifetime_s"] = "24h"
    flows.loc[0, "path"] = "CDN:terminate > API-Gateway:terminate"
    inv = load_inventory(_write(tmp_path, flows, services))
    f = inv.flows
    assert f.loc[0, "client_kind"] == "browser_spa"
    assert f.loc[0, "binding"] == "dpop"
    assert f.loc[3, "binding"] == "mtls"
    assert f.loc[3, "cert_management"] == "spiffe"
    assert f.loc[2, "environment"] == "prod"
    assert f.loc[1, "access_token_lifetime_s"] == 86400
    assert f.loc[0, "path"] == "cdn:terminate>api_gateway:terminate"


def test_unknown_columns_are_kept(tmp_path: Path) -> None:
    flows, services = _template()
    flows["team_notes"] = "x"
    inv = load_inventory(_write(tmp_path, flows, services))
    assert list(inv.flows.columns[: len(S.FLOW_COLUMNS)]) == list(S.FLOWS.names)
    assert (inv.flows["team_notes"] == "x").all()
    assert inv.report is not None
    assert ("flows", "team_notes") in inv.report.unknown_columns


def test_minimal_file_gets_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "client_id,client_kind,resource_server,binding\n"
        "spa,browser_spa,api,bearer\n"
        "svc,service,api,mtls\n"
        "cli,cli_tool,db,dpop\n"
    )
    inv = load_inventory(path)
    f = inv.flows
    assert list(f["flow_id"]) == ["row-2", "row-3", "row-4"]
    assert list(f["actor"]) == ["human", "workload", "human"]
    assert list(f["client_type"]) == ["public", "confidential", "public"]
    assert list(f["grant_type"]) == ["authorization_code", "client_credentials", "device_code"]
    assert list(f["key_storage"]) == ["none", "software", "software"]
    assert list(f["cert_management"]) == ["none", "manual", "none"]
    assert (f["access_token_lifetime_s"] == 3600).all()
    assert (f["refresh_token"] == "none").all()
    assert (f["refresh_token_lifetime_s"] == 0).all()
    assert list(f["exposure_channels"]) == [
        S.DEFAULT_CHANNELS_BY_KIND[k] for k in ("browser_spa", "service", "cli_tool")
    ]
    assert not f["binding_enforced"].any()
    assert not f["forwards_token"].any()
    assert (f["requests_per_day"] == 1000).all()
    report = inv.report
    assert report is not None
    assert report.services_derived
    assert any("derived 2 services" in n for n in report.notes)
    svc = inv.services.set_index("service_id")
    assert svc.loc["api", "supports_mtls"]
    assert not svc.loc["api", "supports_dpop"]
    assert svc.loc["db", "supports_dpop"]
    assert svc.loc["db", "supports_bearer"]
    assert ("flows", "actor", 3) in report.defaults


def test_empty_list_cells_are_values_not_defaults(tmp_path: Path) -> None:
    flows, services = _template()
    flows.loc[0, "exposure_channels"] = ""
    flows.loc[0, "path"] = ""
    inv = load_inventory(_write(tmp_path, flows, services))
    assert inv.flows.loc[0, "exposure_channels"] == ""
    assert inv.flows.loc[0, "path"] == ""


def test_rt_lifetime_default_follows_refresh_token(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(
        "client_id,client_kind,resource_server,binding,refresh_token\n"
        "a,web_backend,api,bearer,static\nb,web_backend,api,bearer,none\n"
    )
    assert list(load_inventory(path).flows["refresh_token_lifetime_s"]) == [7776000, 0]


def test_forwards_token_default_follows_downstream(tmp_path: Path) -> None:
    flows, services = _template()
    flows = flows.drop(columns=["forwards_token"])
    inv = load_inventory(_write(tmp_path, flows, services))
    expected = inv.flows["resource_server"].map(
        {"orders-api": True, "profile-api": False, "ledger": False}
    )
    assert list(inv.flows["forwards_token"]) == list(expected)


# --- validation: a table of bad inputs -----------------------------------------------------

Mutation = Callable[[pd.DataFrame], None]


def _set(row: int, column: str, value: str) -> Mutation:
    def apply(df: pd.DataFrame) -> None:
        df.loc[row, column] = value

    return apply


BAD_FLOWS: list[tuple[str, Mutation, int, str, str, str]] = [
    # id, mutation, file row, column, code, fragment of the expected text
    ("enum", _set(0, "client_kind", "toaster"), 2, "client_kind", "enum", "one of browser_spa"),
    ("binding_enum", _set(1, "binding", "token_binding"), 3, "binding", "enum", "bearer, mtls"),
    (
        "int_type",
        _set(2, "access_token_lifetime_s", "soon"),
        4,
        "access_token_lifetime_s",
        "type",
        "an integer",
    ),
    (
        "int_fraction",
        _set(2, "requests_per_day", "1.5"),
        4,
        "requests_per_day",
        "type",
        "an integer",
    ),
    (
        "zero_lifetime",
        _set(2, "access_token_lifetime_s", "0"),
        4,
        "access_token_lifetime_s",
        "range",
        ">= 1",
    ),
    ("negative_rpd", _set(4, "requests_per_day", "-5"), 6, "requests_per_day", "range", ">= 0"),
    (
        "bool",
        _set(0, "audience_restricted", "maybe"),
        2,
        "audience_restricted",
        "type",
        "a boolean",
    ),
    ("required_empty", _set(1, "client_id", ""), 3, "client_id", "missing_value", "required"),
    (
        "duplicate_id",
        _set(1, "flow_id", "spa-orders"),
        3,
        "flow_id",
        "duplicate",
        "first seen at row 2",
    ),
    (
        "channel",
        _set(4, "exposure_channels", "config_files;screenshots"),
        6,
        "exposure_channels",
        "list_item",
        "app_logs",
    ),
    ("path_kind", _set(0, "path", "router:terminate"), 2, "path", "path_syntax", "cdn"),
    ("path_mode", _set(0, "path", "cdn:decrypt"), 2, "path", "path_syntax", "passthrough"),
    ("path_empty_hop", _set(0, "path", "cdn:terminate>"), 2, "path", "path_syntax", "kind:mode"),
    (
        "unknown_rs",
        _set(4, "resource_server", "billing"),
        6,
        "resource_server",
        "unknown_service",
        "service_id",
    ),
    (
        "unsupported_binding",
        _set(3, "resource_server", "profile-api"),
        5,
        "binding",
        "unsupported_binding",
        "supports",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "row", "column", "code", "expected"),
    [b[1:] for b in BAD_FLOWS],
    ids=[b[0] for b in BAD_FLOWS],
)
def test_bad_flow_values(
    tmp_path: Path, mutate: Mutation, row: int, column: str, code: str, expected: str
) -> None:
    flows, services = _template()
    mutate(flows)
    problems = [p for p in _problems(_write(tmp_path, flows, services)) if p.severity == "error"]
    assert [(p.row, p.column, p.code) for p in problems] == [(row, column, code)]
    assert expected in problems[0].expected
    assert problems[0].file.endswith("flows.csv")
    assert problems[0].table == "flows"


RULES: list[tuple[str, dict[int, dict[str, str]], int, str]] = [
    # id, {row: {column: value}}, file row, rule code
    ("browser_cert", {0: {"cert_management": "manual"}}, 2, "browser_client_cert"),
    ("browser_mtls_key", {1: {"key_storage": "software"}}, 3, "browser_client_cert"),
    ("public_cc", {2: {"grant_type": "client_credentials"}}, 4, "public_client_credentials"),
    ("mtls_terminated", {3: {"path": "load_balancer:terminate"}}, 5, "mtls_terminated_path"),
    ("bearer_enforced", {4: {"binding_enforced": "true"}}, 6, "bearer_enforced"),
    ("rt_none_lifetime", {4: {"refresh_token_lifetime_s": "3600"}}, 6, "refresh_token_lifetime"),
    ("rt_static_zero", {5: {"refresh_token_lifetime_s": "0"}}, 7, "refresh_token_lifetime"),
    ("mtls_no_cert", {3: {"cert_management": "none"}}, 5, "mtls_without_cert"),
    ("dpop_no_key", {2: {"key_storage": "none"}}, 4, "dpop_without_key"),
    ("cert_no_key", {5: {"key_storage": "none"}}, 7, "cert_without_key"),
    ("mobile_workload", {2: {"actor": "workload"}}, 4, "human_actor_required"),
]


@pytest.mark.parametrize(
    ("changes", "row", "code"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_cross_field_rules(
    tmp_path: Path, changes: dict[int, dict[str, str]], row: int, code: str
) -> None:
    flows, services = _template()
    for r, cols in changes.items():
        for col, value in cols.items():
            flows.loc[r, col] = value
    problems = [p for p in _problems(_write(tmp_path, flows, services)) if p.severity == "error"]
    assert [(p.row, p.code) for p in problems] == [(row, code)]
    assert "=" in problems[0].value  # the offending combination is shown


def test_mtls_through_forwarding_hop_is_fine(tmp_path: Path) -> None:
    flows, services = _template()
    flows.loc[3, "path"] = "cdn:passthrough>load_balancer:terminate_forward_cert"
    assert load_inventory(_write(tmp_path, flows, services)).report.ok  # type: ignore[union-attr]


def test_unenforced_mtls_on_terminating_path_is_allowed(tmp_path: Path) -> None:
    flows, services = _template()
    flows.loc[3, "path"] = "api_gateway:terminate"
    flows.loc[3, "binding_enforced"] = "false"
    assert load_inventory(_write(tmp_path, flows, services)).report.ok  # type: ignore[union-attr]


WARNINGS = [
    ("confidential_spa", 0, "client_type", "confidential", "public_kind_confidential"),
    ("proxy_logs_direct", 0, "path", "", "proxy_logs_without_proxy"),
    ("forward_no_down", 1, "forwards_token", "true", "forward_without_downstream"),
    ("exchange_no_forward", 1, "token_exchange", "true", "token_exchange_without_forwarding"),
]


@pytest.mark.parametrize(
    ("row", "column", "value", "code"), [w[1:] for w in WARNINGS], ids=[w[0] for w in WARNINGS]
)
def test_warnings_do_not_fail(tmp_path: Path, row: int, column: str, value: str, code: str) -> None:
    flows, services = _template()
    flows.loc[row, column] = value
    inv = load_inventory(_write(tmp_path, flows, services))
    assert inv.report is not None
    assert inv.report.ok
    assert [(p.row, p.code) for p in inv.report.warnings] == [(row + 2, code)]
    assert len(inv.flows) == 6


BAD_SERVICES: list[tuple[str, int, str, str, str]] = [
    ("sensitivity", 0, "sensitivity", "9", "range"),
    ("instances", 1, "instances", "0", "range"),
    ("jti", 2, "jti_cache", "redis", "enum"),
    ("unknown_downstream", 1, "downstream", "search", "unknown_downstream"),
    ("self_loop", 1, "downstream", "profile-api", "self_loop"),
    ("duplicate", 1, "service_id", "orders-api", "duplicate"),
]


@pytest.mark.parametrize(
    ("row", "column", "value", "code"),
    [b[1:] for b in BAD_SERVICES],
    ids=[b[0] for b in BAD_SERVICES],
)
def test_bad_service_values(tmp_path: Path, row: int, column: str, value: str, code: str) -> None:
    flows, services = _template()
    services.loc[row, column] = value
    problems = _problems(_write(tmp_path, flows, services))
    svc = [p for p in problems if p.table == "services"]
    assert (row + 2, column, code) in {(p.row, p.column, p.code) for p in svc}
    assert all(p.file.endswith("services.csv") for p in svc)


def test_cycle_is_reported_on_every_member(tmp_path: Path) -> None:
    flows, services = _template()
    services.loc[2, "downstream"] = "orders-api"  # orders-api -> ledger -> orders-api
    problems = [p for p in _problems(_write(tmp_path, flows, services)) if p.code == "cycle"]
    assert sorted(p.row for p in problems) == [2, 4]


def test_missing_required_column_is_fatal_even_when_dropping(tmp_path: Path) -> None:
    flows, services = _template()
    path = _write(tmp_path, flows.drop(columns=["binding", "client_kind"]), services)
    with pytest.raises(InventoryError) as info:
        load_inventory(path, on_error="drop")
    assert {(p.column, p.code) for p in info.value.problems} == {
        ("binding", "missing_column"),
        ("client_kind", "missing_column"),
    }
    assert "binding_type" in str(info.value)  # the aliases are suggested


def test_every_problem_is_listed_and_message_is_capped(tmp_path: Path) -> None:
    inv = generate_inventory("saas", 200, seed=1)
    flows = inv.flows.copy()
    flows["binding"] = flows["binding"].astype(str)
    flows.loc[:59, "binding"] = "carrier_pigeon"
    flows.loc[100, "access_token_lifetime_s"] = -1
    with pytest.raises(InventoryError) as info:
        load_inventory(flows, services=inv.services)
    exc = info.value
    assert len(exc.problems) == 61
    assert {p.row for p in exc.problems if p.code == "enum"} == set(range(2, 62))
    text = str(exc)
    assert text.startswith("61 problems in <flows DataFrame>:")
    assert "and 36 more" in text
    frame = exc.to_frame()
    assert list(frame.columns) == [
        "table",
        "file",
        "row",
        "column",
        "value",
        "expected",
        "code",
        "severity",
    ]
    assert len(frame) == 61
    assert frame["row"].dtype == "Int64"


def test_drop_mode_reports_dropped_rows(tmp_path: Path) -> None:
    flows, services = _template()
    flows.loc[1, "binding"] = "nope"
    flows.loc[4, "binding_enforced"] = "true"
    flows.loc[0, "client_type"] = "confidential"  # a warning: kept
    inv = load_inventory(_write(tmp_path, flows, services), on_error="drop")
    report = inv.report
    assert report is not None
    assert not report.ok
    assert report.dropped_flow_rows == (3, 6)
    assert (report.flows_in, report.flows_out) == (6, 4)
    assert list(inv.flows["flow_id"]) == [
        "spa-orders",
        "mobile-orders",
        "orders-to-ledger",
        "partner-crm",
    ]
    assert {p.code for p in report.errors} == {"enum", "bearer_enforced"}
    assert [p.code for p in report.warnings] == ["public_kind_confidential"]
    assert "nope" in str(report)
    assert report.to_dict()["dropped_flow_rows"] == [3, 6]


def test_drop_mode_drops_flows_of_dropped_services(tmp_path: Path) -> None:
    flows, services = _template()
    services.loc[2, "sensitivity"] = "11"  # ledger dropped -> its flow and the edge to it go
    inv = load_inventory(_write(tmp_path, flows, services), on_error="drop")
    report = inv.report
    assert report is not None
    assert report.dropped_service_rows == (4,)
    assert report.dropped_flow_rows == (5,)
    assert "ledger" not in set(inv.services["service_id"])
    assert inv.services.set_index("service_id").loc["orders-api", "downstream"] == "profile-api"


def test_row_numbers_count_comment_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(
        "# comment\n"
        "client_id,client_kind,resource_server,binding\n"
        "# another comment\n"
        "a,service,api,bearer\n"
        "\n"
        "b,service,api,smoke_signals\n"
    )
    problems = _problems(path)
    assert [(p.row, p.code) for p in problems] == [(6, "enum")]


def test_malformed_csv(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text("client_id,client_kind,resource_server,binding\na,service,api,bearer,extra,x\n")
    assert [p.code for p in _problems(path)] == ["csv_syntax"]


def test_input_file_is_never_modified(tmp_path: Path) -> None:
    flows, services = _template()
    flows.loc[1, "binding"] = "nope"
    path = _write(tmp_path, flows, services)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    load_inventory(path, on_error="drop")
    with pytest.raises(InventoryError):
        load_inventory(path)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert before == after


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "x" / "flows.csv"
    atomic_write_bytes(target, b"a\n")
    atomic_write_bytes(target, b"b\n")
    assert target.read_bytes() == b"b\n"
    assert [p.name for p in target.parent.iterdir()] == ["flows.csv"]
    assert target.stat().st_mode & 0o777 == 0o644


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.text(max_size=30),
    column=st.sampled_from(
        [
            "binding",
            "access_token_lifetime_s",
            "path",
            "exposure_channels",
            "audience_restricted",
            "flow_id",
            "scopes",
            "authorization_server",
            "token_exchange",
        ]
    ),
)
def test_fuzzed_cells_never_crash(value: str, column: str) -> None:
    flows, services = _template()
    flows.loc[2, column] = value
    problems: tuple[Problem, ...] = ()
    try:
        inv = load_inventory(flows, services=services)
    except InventoryError as exc:
        problems = exc.problems
    else:
        assert len(inv.flows) == 6
        return
    assert problems
    assert all(isinstance(p, Problem) for p in problems)


# --- derived features ----------------------------------------------------------------------


def test_path_features() -> None:
    flows = pd.DataFrame(
        {
            "client_kind": ["browser_spa", "mobile_app", "service", "service", "web_backend"],
            "path": [
                "cdn:terminate>api_gateway:terminate",
                "",
                "load_balancer:passthrough>service_mesh_sidecar:terminate_forward_cert",
                "",
                "cdn:passthrough>waf:terminate>api_gateway:terminate_forward_cert",
            ],
        }
    )
    feats = path_features(flows)
    assert list(feats["n_hops"]) == [2, 0, 2, 0, 3]
    assert list(feats["n_terminating"]) == [2, 0, 1, 0, 2]
    assert list(feats["n_terminate_no_forward"]) == [2, 0, 0, 0, 1]
    assert list(feats["n_forward_cert"]) == [0, 0, 1, 0, 1]
    assert list(feats["all_passthrough"]) == [False, True, False, True, False]
    assert list(feats["client_path"]) == [
        "browser",
        "mobile",
        "gateway_terminated",
        "backend_e2e",
        "gateway_terminated",
    ]
    assert list(feats["client_path"].cat.categories) == list(S.CLIENT_PATHS)


def test_path_features_categorical_missing_and_malformed_paths() -> None:
    flows = pd.DataFrame(
        {
            "client_kind": pd.Categorical(["service", "service", "mobile_app"]),
            "path": pd.Categorical(["waf:terminate>cdn:passthrough", None, "waf:terminate"]),
        },
        index=[10, 11, 12],
    )
    feats = path_features(flows)
    assert list(feats.index) == [10, 11, 12]
    assert list(feats["n_hops"]) == [2, 0, 1]  # a missing path is a direct connection
    assert list(feats["n_terminate_no_forward"]) == [1, 0, 1]
    assert list(feats["client_path"]) == ["gateway_terminated", "backend_e2e", "mobile"]
    bad = pd.DataFrame({"client_kind": ["service"], "path": ["cdn:terminate>"]})
    with pytest.raises(ValueError, match="hop 2"):
        path_features(bad)


def test_exposure_matrix() -> None:
    flows = pd.DataFrame({"exposure_channels": ["app_logs;har_files", "", "integrator_storage"]})
    m = exposure_matrix(flows)
    assert list(m.columns) == list(S.EXPOSURE_CHANNELS)
    assert m.dtypes.eq(bool).all()
    assert m.sum(axis=1).tolist() == [2, 0, 1]
    assert m.loc[0, "har_files"]
    assert m.loc[2, "integrator_storage"]
    assert not m.loc[1].any()


def test_summary_counts_add_up() -> None:
    inv = load_inventory("default")
    data = summary(inv)
    n = len(inv.flows)
    for key in ("by_client_kind", "by_client_path", "by_binding", "by_environment"):
        assert sum(data[key].values()) == n
    assert data["by_binding"] == inv.flows["binding"].value_counts(sort=False).to_dict()
    assert 0.0 <= data["binding_enforced_share"] <= 1.0
    assert np.isclose(
        data["terminating_path_share"], (path_features(inv.flows)["n_terminating"] > 0).mean()
    )


def test_malformed_row_is_located_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(
        "# header comment\n"
        "client_id,client_kind,resource_server,binding\n"
        "a,service,api,bearer\n"
        "# note\n"
        "b,service,api,bearer,oops\n"
    )
    problems = _problems(path)
    assert [(p.row, p.code) for p in problems] == [(5, "csv_syntax")]


def test_problems_are_listed_in_file_order(tmp_path: Path) -> None:
    flows, services = _template()
    flows.loc[4, "binding"] = "x"
    flows.loc[1, "environment"] = "moon"
    services.loc[0, "sensitivity"] = "0"
    problems = _problems(_write(tmp_path, flows, services))
    assert [(p.table, p.row) for p in problems] == [("services", 2), ("flows", 3), ("flows", 6)]


def test_no_forwarding_warning_when_services_are_derived(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "client_id,client_kind,resource_server,binding,forwards_token\na,service,api,bearer,true\n"
    )
    inv = load_inventory(path)
    assert inv.report is not None
    assert inv.report.services_derived
    assert not inv.report.problems
    assert bool(inv.flows.loc[0, "forwards_token"])


# --- authorization servers ------------------------------------------------------------------


def _servers_problems(
    tmp: Path, flows: pd.DataFrame, services: pd.DataFrame, servers: pd.DataFrame
) -> list[Problem]:
    return [p for p in _problems(_write(tmp, flows, services, servers)) if p.severity == "error"]


ServerMutation = Callable[[pd.DataFrame, pd.DataFrame], None]


def _flow(row: int, column: str, value: str) -> ServerMutation:
    def apply(flows: pd.DataFrame, servers: pd.DataFrame) -> None:
        flows.loc[row, column] = value

    return apply


def _server(row: int, column: str, value: str) -> ServerMutation:
    def apply(flows: pd.DataFrame, servers: pd.DataFrame) -> None:
        servers.loc[row, column] = value

    return apply


# Template: flows rows 0 (dpop), 2 (dpop) and 3 (mtls) are on as-customer (server row 0),
# row 4 (bearer) on as-workforce (server row 1, which issues neither binding).
BAD_SERVERS: list[tuple[str, ServerMutation, set[tuple[str, int, str, str]]]] = [
    (
        "unknown_as",
        _flow(5, "authorization_server", "as-nope"),
        {("flows", 7, "authorization_server", "unknown_authorization_server")},
    ),
    (
        "dpop_on_non_dpop_as",
        _flow(2, "authorization_server", "as-workforce"),
        {("flows", 4, "binding", "unissued_binding")},
    ),
    (
        "mtls_on_non_mtls_as",
        _flow(3, "authorization_server", "as-workforce"),
        {("flows", 5, "binding", "unissued_binding")},
    ),
    (
        "as_stops_issuing_dpop",
        _server(0, "issues_dpop", "false"),
        {("flows", 2, "binding", "unissued_binding"), ("flows", 4, "binding", "unissued_binding")},
    ),
    (
        "as_stops_issuing_mtls",
        _server(0, "issues_mtls", "no"),
        {("flows", 5, "binding", "unissued_binding")},
    ),
    (
        "duplicate_as_id",
        _server(1, "as_id", "as-customer"),
        {
            ("authorization_servers", 3, "as_id", "duplicate"),
            ("flows", 6, "authorization_server", "unknown_authorization_server"),
        },
    ),
    (
        "bad_boolean",
        _server(1, "binds_refresh_tokens", "perhaps"),
        {("authorization_servers", 3, "binds_refresh_tokens", "type")},
    ),
    (  # an unreadable capability is reported once, not again on every flow of the server
        "bad_dpop_flag",
        _server(0, "issues_dpop", "maybe"),
        {("authorization_servers", 2, "issues_dpop", "type")},
    ),
    (
        "empty_as_id",
        _server(1, "as_id", ""),
        {
            ("authorization_servers", 3, "as_id", "missing_value"),
            ("flows", 6, "authorization_server", "unknown_authorization_server"),
        },
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [b[1:] for b in BAD_SERVERS], ids=[b[0] for b in BAD_SERVERS]
)
def test_bad_authorization_servers(
    tmp_path: Path, mutate: ServerMutation, expected: set[tuple[str, int, str, str]]
) -> None:
    flows, services = _template()
    servers = _template_servers()
    mutate(flows, servers)
    problems = _servers_problems(tmp_path, flows, services, servers)
    assert {(p.table, p.row, p.column, p.code) for p in problems} == expected
    for p in problems:
        name = "authorization_servers.csv" if p.table == "authorization_servers" else "flows.csv"
        assert p.file.endswith(name)
    unissued = [p for p in problems if p.code == "unissued_binding"]
    assert all("authorization_server=" in p.value and "RFC" in p.expected for p in unissued)


def test_missing_as_id_column_is_fatal_even_when_dropping(tmp_path: Path) -> None:
    flows, services = _template()
    servers = _template_servers().drop(columns=["as_id"])
    path = _write(tmp_path, flows, services, servers)
    with pytest.raises(InventoryError) as info:
        load_inventory(path, on_error="drop")
    assert [(p.table, p.column, p.code) for p in info.value.problems] == [
        ("authorization_servers", "as_id", "missing_column")
    ]


def test_drop_mode_drops_flows_of_dropped_authorization_servers(tmp_path: Path) -> None:
    flows, services = _template()
    servers = _template_servers()
    servers.loc[1, "issues_dpop"] = "maybe"  # as-workforce dropped -> nightly-export goes too
    inv = load_inventory(_write(tmp_path, flows, services, servers), on_error="drop")
    report = inv.report
    assert report is not None
    assert not report.ok
    assert report.dropped_authorization_server_rows == (3,)
    assert report.dropped_flow_rows == (6,)
    assert list(inv.authorization_servers["as_id"]) == ["as-customer"]
    assert "nightly-export" not in set(inv.flows["flow_id"])
    assert (report.authorization_servers_in, report.authorization_servers_out) == (2, 1)
    assert report.to_dict()["dropped_authorization_server_rows"] == [3]


def test_token_exchange_unsupported_is_a_warning(tmp_path: Path) -> None:
    flows, services = _template()
    flows.loc[4, "token_exchange"] = "true"  # nightly-export forwards, on as-workforce
    inv = load_inventory(_write(tmp_path, flows, services, _template_servers()))
    assert inv.report is not None
    assert inv.report.ok
    assert [(p.row, p.column, p.code) for p in inv.report.warnings] == [
        (6, "token_exchange", "token_exchange_unsupported")
    ]
    assert len(inv.flows) == 6


def test_folder_with_and_without_authorization_servers_file(tmp_path: Path) -> None:
    flows, services = _template()
    servers = _template_servers()
    servers.loc[1, "product"] = "Microsoft Entra ID (tenant 2)"
    with_file = load_inventory(_write(tmp_path / "with", flows, services, servers))
    without = load_inventory(_write(tmp_path / "without", flows, services))
    assert with_file.report is not None
    assert without.report is not None
    assert not with_file.report.authorization_servers_derived
    assert with_file.report.authorization_servers_source == str(
        tmp_path / "with" / "authorization_servers.csv"
    )
    assert with_file.authorization_servers.loc[1, "product"] == "Microsoft Entra ID (tenant 2)"
    assert without.report.authorization_servers_derived
    assert without.report.authorization_servers_source == "<derived from flows>"
    assert any("derived 2 authorization server" in n for n in without.report.notes)
    derived = without.authorization_servers
    pd.testing.assert_frame_equal(derived, derive_authorization_servers(without.flows))
    assert list(derived["as_id"]) == ["as-customer", "as-workforce"]
    assert list(derived["product"]) == ["", ""]
    assert list(derived["issues_dpop"]) == [True, False]
    assert list(derived["issues_mtls"]) == [True, False]
    assert list(derived["binds_refresh_tokens"]) == [True, False]
    assert list(derived["supports_token_exchange"]) == [True, False]
    pd.testing.assert_frame_equal(with_file.flows, without.flows)


def test_authorization_servers_argument_path_and_frame(tmp_path: Path) -> None:
    flows, services = _template()
    servers = _template_servers()
    other = tmp_path / "elsewhere" / "issuers.csv"
    other.parent.mkdir()
    servers.to_csv(other, index=False)
    by_path = load_inventory(_write(tmp_path, flows, services), authorization_servers=other)
    by_frame = load_inventory(flows, services=services, authorization_servers=servers)
    assert by_path.report is not None
    assert by_frame.report is not None
    assert by_path.report.authorization_servers_source == str(other)
    assert by_frame.report.authorization_servers_source == "<authorization_servers DataFrame>"
    pd.testing.assert_frame_equal(by_path.authorization_servers, by_frame.authorization_servers)
    assert list(by_frame.authorization_servers["product"]) == [
        "Keycloak 26.4",
        "Microsoft Entra ID",
    ]


def test_sibling_authorization_servers_follow_the_flows_name(tmp_path: Path) -> None:
    flows, services = _template()
    flows.to_csv(tmp_path / "prod_flows.csv", index=False)
    services.to_csv(tmp_path / "prod_services.csv", index=False)
    _template_servers().to_csv(tmp_path / "prod_authorization_servers.csv", index=False)
    inv = load_inventory(tmp_path / "prod_flows.csv")
    assert inv.report is not None
    assert inv.report.authorization_servers_source.endswith("prod_authorization_servers.csv")


def test_authorization_server_defaults_come_from_the_flows(tmp_path: Path) -> None:
    flows, services = _template()
    servers = pd.DataFrame(
        {"as_id": ["as-customer", "as-workforce", "as-unused"], "issues_mtls": ["", "", "true"]}
    )
    inv = load_inventory(_write(tmp_path, flows, services, servers))
    a = inv.authorization_servers.set_index("as_id")
    assert list(a["issues_dpop"]) == [True, False, False]
    assert list(a["issues_mtls"]) == [True, False, True]
    assert list(a["binds_refresh_tokens"]) == [True, False, False]
    assert list(a["supports_token_exchange"]) == [True, False, False]
    assert list(a["product"]) == ["", "", ""]
    report = inv.report
    assert report is not None
    assert ("authorization_servers", "issues_dpop", 3) in report.defaults
    assert ("authorization_servers", "issues_mtls", 2) in report.defaults
    assert report.ok


def test_authorization_server_names_and_aliases(tmp_path: Path) -> None:
    flows, services = _template()
    servers = _template_servers()
    base = load_inventory(_write(tmp_path / "b", flows, services, servers))
    renamed_flows = flows.rename(
        columns={"authorization_server": "IdP", "token_exchange": "Exchanges-Token"}
    )
    renamed_servers = servers.rename(
        columns={
            "as_id": "Issuer",
            "issues_dpop": "DPoP_Bound_Access_Tokens",
            "supports_token_exchange": "RFC8693",
            "product": "Vendor",
        }
    )
    inv = load_inventory(_write(tmp_path / "r", renamed_flows, services, renamed_servers))
    _assert_same(base, inv)
    assert inv.report is not None
    given = {(t, g) for t, g, _ in inv.report.aliases}
    assert {("flows", "IdP"), ("flows", "Exchanges-Token")} <= given
    assert {("authorization_servers", "Issuer"), ("authorization_servers", "RFC8693")} <= given


def test_flows_without_the_new_columns_get_defaults(tmp_path: Path) -> None:
    flows, services = _template()
    flows = flows.drop(columns=["authorization_server", "token_exchange"])
    inv = load_inventory(_write(tmp_path, flows, services))
    assert (inv.flows["authorization_server"] == "as-default").all()
    assert not inv.flows["token_exchange"].any()
    assert list(inv.authorization_servers["as_id"]) == ["as-default"]
    assert bool(inv.authorization_servers.loc[0, "issues_dpop"])
    assert inv.report is not None
    assert ("flows", "authorization_server", 6) in inv.report.defaults
    with pytest.raises(InventoryError) as info:  # an AS file without as-default
        load_inventory(_write(tmp_path / "x", flows, services, _template_servers()))
    assert {p.code for p in info.value.problems} == {"unknown_authorization_server"}
    assert len(info.value.problems) == 6


def test_problems_of_three_files_are_listed_in_file_order(tmp_path: Path) -> None:
    flows, services = _template()
    servers = _template_servers()
    flows.loc[1, "environment"] = "moon"
    services.loc[0, "sensitivity"] = "0"
    servers.loc[1, "issues_mtls"] = "x"
    problems = _problems(_write(tmp_path, flows, services, servers))
    assert [(p.table, p.row) for p in problems] == [
        ("services", 2),
        ("authorization_servers", 3),
        ("flows", 3),
    ]


def test_derive_authorization_servers_from_hand_built_flows() -> None:
    flows = flows_frame(
        [
            {"authorization_server": "as-x", "binding": "dpop", "key_storage": "software"},
            {"authorization_server": "as-y", "binding": "bearer"},
            {"authorization_server": "as-y", "forwards_token": True, "token_exchange": True},
            {"authorization_server": "as-z", "binding": "mtls", "cert_management": "manual"},
            {"authorization_server": "as-x", "binding": "bearer"},
        ]
    )
    derived = derive_authorization_servers(flows)
    expected = authorization_servers_frame(
        [
            {"as_id": "as-x", "issues_dpop": True, "binds_refresh_tokens": True},
            {"as_id": "as-y", "supports_token_exchange": True},
            {"as_id": "as-z", "issues_mtls": True},
        ]
    )
    pd.testing.assert_frame_equal(derived, expected)
    for col in S.AUTHORIZATION_SERVER_COLUMNS:
        assert str(derived[col.name].dtype) == col.pandas_dtype


def test_derive_authorization_servers_without_the_new_columns() -> None:
    flows = flows_frame([{"binding": "dpop"}, {"binding": "bearer"}]).drop(
        columns=["authorization_server", "token_exchange"]
    )
    derived = derive_authorization_servers(flows)
    assert list(derived["as_id"]) == ["as-default"]
    assert list(derived["issues_dpop"]) == [True]
    assert list(derived["issues_mtls"]) == [False]
    assert list(derived["supports_token_exchange"]) == [False]
    empty = derive_authorization_servers(flows.iloc[:0])
    assert len(empty) == 0
    assert list(empty.columns) == list(S.AUTHORIZATION_SERVERS.names)


def test_derive_accepts_binding_codes_and_empty_ids() -> None:
    flows = pd.DataFrame(
        {
            "authorization_server": ["", "as-a", None],
            "binding": [2, 1, 0],
            "token_exchange": [False, False, True],
        }
    )
    derived = derive_authorization_servers(flows).set_index("as_id")
    assert list(derived.index) == ["as-a", "as-default"]
    assert list(derived["issues_dpop"]) == [False, True]
    assert list(derived["issues_mtls"]) == [True, False]
    assert list(derived["supports_token_exchange"]) == [False, True]


def test_inventory_constructor_stays_backward_compatible() -> None:
    flows = flows_frame([{"authorization_server": "as-q", "binding": "bearer"}])
    services = pd.DataFrame({"service_id": ["api"]})
    inv = Inventory(flows, services, "hand")
    assert list(inv.authorization_servers["as_id"]) == ["as-q"]
    assert "authorization_servers=1" in repr(inv)
    given = authorization_servers_frame([{"as_id": "as-q", "product": "X"}])
    explicit = Inventory(flows, services, "hand", None, given)
    assert explicit.authorization_servers is given


def test_write_inventory_writes_three_files_atomically(tmp_path: Path) -> None:
    inv = generate_inventory("public_sector", 150, seed=2)
    flows_path, services_path = write_inventory(inv, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["authorization_servers.csv", "flows.csv", "services.csv"]
    assert (flows_path.name, services_path.name) == ("flows.csv", "services.csv")
    assert (tmp_path / "authorization_servers.csv").stat().st_mode & 0o777 == 0o644
    with pytest.raises(ValueError, match="fmt"):
        write_inventory(inv, tmp_path / "bad", fmt="xlsx")  # type: ignore[arg-type]
    assert not (tmp_path / "bad").exists()


def test_summary_counts_authorization_servers() -> None:
    inv = load_inventory("default")
    data = summary(inv)
    assert data["n_authorization_servers"] == len(inv.authorization_servers)
    assert sum(data["by_authorization_server"].values()) == len(inv.flows)
