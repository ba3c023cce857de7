"""Overlay (declared values), merge precedence, conflicts, and spreadsheet-safe output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.analysis.importers._helpers import flow, kinds, prov, sample
from tokenlib.analysis.importers import draft, import_files, merge, read_overlay, write_import
from tokenlib.analysis.inventory import InventoryError, load_inventory

EXAMPLE = "rfc7591/rfc7591-3.2.1-response.json"


def _meta_file(tmp_path: Path, docs: list[dict[str, object]]) -> Path:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(docs), encoding="utf-8")
    return path


def _overlay(tmp_path: Path, text: str, name: str = "overlay.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _two_clients(tmp_path: Path) -> Path:
    return _meta_file(
        tmp_path,
        [
            {
                "client_id": "web",
                "grant_types": ["authorization_code"],
                "x_audiences": ["orders"],
                "dpop_bound_access_tokens": True,
            },
            {
                "client_id": "batch",
                "grant_types": ["client_credentials"],
                "x_audiences": ["orders"],
            },
        ],
    )


def test_overlay_declares_what_no_idp_says(tmp_path: Path) -> None:
    overlay = _overlay(
        tmp_path,
        "table,match,column,value,note\n"
        "# hops are per API\n"
        "flows,api:orders,path,cdn:terminate>api_gateway:terminate_forward_cert,edge\n"
        "flows,client:web,key_storage,hsm_tpm,TPM-backed key\n"
        "flows,*,requests_per_day,5000,\n"
        "flows,flow:batch@orders,requests_per_day,20,nightly\n"
        "services,orders,sensitivity,5,payments\n",
    )
    r = import_files("rfc7591", [_two_clients(tmp_path)], overlay=overlay)
    web, batch = flow(r, "web"), flow(r, "batch")
    assert web.path == batch.path == "cdn:terminate>api_gateway:terminate_forward_cert"
    assert web.key_storage == "hsm_tpm"
    assert (web.requests_per_day, batch.requests_per_day) == (5000, 20)  # flow: beats *
    source, detail = prov(r, batch.flow_id, "requests_per_day")
    assert source == "declared"
    assert "nightly" in detail
    assert "overlay.csv:6" in detail
    assert prov(r, web.flow_id, "binding")[0] == "registered"
    services = r.inventory.services.set_index("service_id")
    assert services.loc["orders", "sensitivity"] == 5
    assert prov(r, "orders", "sensitivity", "services")[0] == "declared"
    assert not r.conflicts


def test_conflicts_are_listed_not_resolved_silently(tmp_path: Path) -> None:
    overlay = _overlay(
        tmp_path,
        "table,match,column,value,note\n"
        "flows,client:web,binding,bearer,we think it is bearer\n"
        "flows,client:batch,requests_per_day,10,\n"
        "flows,client:batch,requests_per_day,30,\n"
        "flows,client:nobody,path,,\n",
    )
    r = import_files("rfc7591", [_two_clients(tmp_path)], overlay=overlay)
    assert flow(r, "web").binding == "dpop"  # registered beats declared...
    conflicts = {(c.id, c.column): c for c in r.conflicts}
    c = conflicts[("web@orders", "binding")]  # ...and the disagreement is listed
    assert (c.values, c.sources) == ("dpop | bearer", "registered | declared")
    assert "kept the registered value" in c.resolution
    same = conflicts[("batch@orders", "requests_per_day")]  # two declarations disagree
    assert same.values == "10 | 30"
    assert flow(r, "batch").requests_per_day == 30
    assert "client:nobody" in kinds(r)["unmatched_overlay"]


def test_merge_of_two_registrations_lists_disagreements(tmp_path: Path) -> None:
    a = draft("rfc7591", [_two_clients(tmp_path)], as_id="idp")
    other = tmp_path / "other"
    other.mkdir()
    changed = _meta_file(
        other,
        [
            {
                "client_id": "web",
                "grant_types": ["authorization_code"],
                "x_audiences": ["orders"],
                "x_access_token_lifetime_s": 60,
            }
        ],
    )
    b = draft("rfc7591", [changed], as_id="idp")
    r = merge([a, b])
    c = {(x.id, x.column): x for x in r.conflicts}[("web@orders", "binding")]
    assert c.values == "dpop | bearer"
    assert flow(r, "web").binding == "dpop"  # equal precedence: the first registration is kept
    # Only one of them states the lifetime: taken, no conflict.
    assert flow(r, "web").access_token_lifetime_s == 60
    assert ("web@orders", "access_token_lifetime_s") not in {(x.id, x.column) for x in r.conflicts}


def test_invalid_rows_are_listed_and_left_out(tmp_path: Path) -> None:
    """An overlay that puts an enforced mTLS flow behind a terminating hop breaks a rule
    (mtls_terminated_path); the row is left out and said so."""
    meta = _meta_file(
        tmp_path,
        [
            {
                "client_id": "svc",
                "grant_types": ["client_credentials"],
                "tls_client_certificate_bound_access_tokens": True,
                "token_endpoint_auth_method": "tls_client_auth",
                "x_audiences": ["orders"],
            },
            {"client_id": "ok", "grant_types": ["client_credentials"], "x_audiences": ["orders"]},
        ],
    )
    overlay = _overlay(
        tmp_path,
        "table,match,column,value,note\n"
        "flows,client:svc,path,api_gateway:terminate,\n"
        "flows,client:svc,binding_enforced,true,\n",
    )
    r = import_files("rfc7591", [meta], overlay=overlay)
    assert list(r.inventory.flows["client_id"]) == ["ok"]
    invalid = [f for f in r.findings if f.kind == "invalid_row"]
    assert invalid
    assert invalid[0].id == "svc@orders"
    assert "mtls_terminated_path" in invalid[0].detail
    assert not (r.provenance["id"] == "svc@orders").any()


def test_json_overlay(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.json"
    overlay.write_text(
        json.dumps(
            {"overlay": [{"match": "client:web", "column": "environment", "value": "staging"}]}
        ),
        encoding="utf-8",
    )
    r = import_files("rfc7591", [_two_clients(tmp_path)], overlay=overlay)
    assert flow(r, "web").environment == "staging"


@pytest.mark.parametrize(
    ("text", "row", "column"),
    [
        ("table,match,column,value\nflowz,*,path,\n", 2, "table"),
        ("table,match,column,value\nflows,*,colour,red\n", 2, "column"),
        ("table,match,column,value\nflows,*,flow_id,x\n", 2, "column"),
        ("table,match,column,value\nflows,web,path,\n", 2, "match"),
        ("table,match,column,value\nflows,,path,\n", 2, "match"),
        ("table,match,value\nflows,*,x\n", 1, "column"),
        ("table,match,column,value\nflows,*,path,,extra,fields\n", 2, None),
    ],
)
def test_bad_overlay_rows(tmp_path: Path, text: str, row: int, column: str | None) -> None:
    path = _overlay(tmp_path, text)
    with pytest.raises(InventoryError) as info:
        read_overlay(path)
    problem = info.value.problems[0]
    assert (problem.file, problem.row, problem.column) == (str(path), row, column)


def test_bad_overlay_json_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        read_overlay(_overlay(tmp_path, "{", "o.json"))
    assert info.value.problems[0].code == "json"
    with pytest.raises(InventoryError) as info:
        read_overlay(_overlay(tmp_path, '{"x": 1}', "o.json"))
    assert info.value.problems[0].code == "shape"
    with pytest.raises(InventoryError) as info:
        read_overlay(tmp_path / "none.csv")
    assert info.value.problems[0].code == "file"


def test_formula_injection_from_export_is_neutralised(tmp_path: Path) -> None:
    """Client ids and API names come from the IdP: the CSVs must not start a formula."""
    meta = _meta_file(
        tmp_path,
        [
            {
                "client_id": '=HYPERLINK("http://evil.example","x")',
                "grant_types": ["client_credentials"],
                "x_audiences": ["@SUM(1+1)"],
                "scope": "-2+3",
            }
        ],
    )
    r = import_files("rfc7591", [meta])
    out = tmp_path / "inv"
    written = write_import(r, out)
    for path in written.values():
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                for value in row:
                    assert not value.startswith(("=", "+", "-", "@")), (path.name, value)
    flows = load_inventory(out / "flows.csv").flows
    assert flows["client_id"].iloc[0] == "'" + '=HYPERLINK("http://evil.example","x")'
    assert flows["resource_server"].iloc[0] == "'@SUM(1+1)"


def test_ids_the_pipeline_cannot_carry_are_encoded(tmp_path: Path) -> None:
    meta = _meta_file(
        tmp_path,
        [
            {
                "client_id": "a>b;c\nd",
                "grant_types": ["client_credentials"],
                "x_audiences": ["api>v2", "ta\u2028b\u0085c"],
            }
        ],
    )
    r = import_files("rfc7591", [meta])
    f = r.inventory.flows.iloc[0]
    assert f.resource_server == "api%3Ev2"
    assert r.inventory.flows.iloc[1].resource_server == "ta%E2%80%A8b%C2%85c"
    assert not any(x.kind == "invalid_row" for x in r.findings)
    assert ">" not in f.flow_id
    assert ";" not in f.flow_id
    assert "\n" not in f.flow_id
    assert f.client_id == "a>b;c%0Ad"  # '>' and ';' are fine in a client id; controls are not
    assert "percent-encoded" in prov(r, f.flow_id, "client_id")[1]


def test_written_inventory_loads_and_matches(tmp_path: Path) -> None:
    r = import_files("auth0", [sample("auth0/clients.json")])
    written = write_import(r, tmp_path / "inv")
    assert [p.name for p in written.values()] == [
        "flows.csv",
        "services.csv",
        "authorization_servers.csv",
        "provenance.csv",
        "conflicts.csv",
    ]
    inv = load_inventory(written["flows.csv"])
    assert inv.report is not None
    assert inv.report.ok
    assert not inv.report.services_derived
    assert not inv.report.authorization_servers_derived
    assert list(inv.flows["flow_id"]) == list(r.inventory.flows["flow_id"])
    assert list(inv.flows["binding"].astype(str)) == list(r.inventory.flows["binding"].astype(str))


def test_overlay_names_the_api_a_registration_does_not(tmp_path: Path) -> None:
    overlay = _overlay(
        tmp_path,
        "match,column,value,note\nclient:s6BhdRkqt3,resource_server,orders-api,from the wiki\n",
    )
    r = import_files("rfc7591", [sample(EXAMPLE)], overlay=overlay)
    f = flow(r, "s6BhdRkqt3")
    assert f.resource_server == "orders-api"
    assert prov(r, f.flow_id, "resource_server")[0] == "declared"
    assert list(r.inventory.services["service_id"]) == ["orders-api"]  # placeholder gone


def test_a_failed_write_leaves_the_previous_import_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The five files are one inventory: if the last one cannot be written, none of the
    earlier ones may already have been replaced (a new flows.csv beside an old
    services.csv would load as a different inventory)."""
    import tokenlib.analysis.importers as importers

    out = tmp_path / "inv"
    first = write_import(import_files("auth0", [sample("auth0/clients.json")]), out)
    before = {name: path.read_bytes() for name, path in first.items()}
    other = import_files("keycloak", [sample("keycloak/examples-realm.json")])

    def disk_full(*args: object, **kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(importers, "write_provenance", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_import(other, out)
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temporary file left
