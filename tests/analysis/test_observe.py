"""``tokenlib inventory observe``: access logs -> observed inventory and discrepancies."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from benchmarks.bench_observe import findings_table, write_scenario
from tokenlib.analysis._observe_cli import add_observe_parser
from tokenlib.analysis.inventory import load_inventory
from tokenlib.analysis.observe import (
    DISCREPANCY_COLUMNS,
    DISCREPANCY_KINDS,
    FORMATS,
    ObserveError,
    observe,
    sql_sections,
    sql_text,
    write_observed,
)

TOKEN = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def _envoy(
    client: str | None = "app-1",
    *,
    rs: str = "orders-api",
    path: str = "/orders/12",
    route: str | None = None,
    auth: str | None = "Bearer",
    dpop: bool = False,
    cert: bool = False,
    status: int = 200,
    day: int = 1,
    azp: str | None = None,
) -> str:
    return json.dumps(
        {
            "start_time": f"2026-12-{day:02d}T08:00:00.000Z",
            "method": "GET",
            "path": path,
            "route_name": route,
            "upstream_cluster": rs,
            "response_code": status,
            "auth_scheme": auth,
            "dpop_present": "e" if dpop else "-",
            "client_cert_sha256": "ab" * 32 if cert else "-",
            "client_id": client,
            "azp": azp,
        }
    )


def _write(path: Path, lines: list[str], *, gz: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _registrations(tmp: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    reg = tmp / "reg"
    reg.mkdir(exist_ok=True)
    lines = ["client_id,client_kind,resource_server,binding,key_storage"]
    for client, kind, rs, binding in rows:
        key = "webcrypto_non_extractable" if kind == "browser_spa" else "software"
        lines.append(f"{client},{kind},{rs},{binding},{key}")
    (reg / "flows.csv").write_text("\n".join(lines) + "\n")
    return reg


def _flows(result: Any) -> dict[tuple[str, str], dict[str, str]]:
    return {
        (r["client_id"], r["resource_server"]): r for r in result.flows.to_dict(orient="records")
    }


# --- the planted scenario (small version of benchmarks/bench_observe.py) ----------------------


def test_planted_discrepancies_are_reported_exactly(tmp_path: Path) -> None:
    scen = write_scenario(tmp_path, 2_000_000, block_lines=1500, n_files=2)
    assert all(p.suffix == ".gz" for p in scen.logs)
    result = observe(scen.logs, format="envoy", registrations=scen.registrations)
    assert result.summary.requests == scen.requests
    assert result.summary.days == 7
    pd.testing.assert_frame_equal(
        findings_table(result.discrepancies), findings_table(scen.expected)
    )
    written = write_observed(result, tmp_path / "out")
    on_disk = pd.read_csv(written["discrepancies"], dtype=str, keep_default_na=False)
    assert tuple(on_disk.columns) == DISCREPANCY_COLUMNS
    assert len(on_disk) == len(scen.expected)
    inv = load_inventory(written["flows"])
    assert inv.report is not None
    assert inv.report.ok
    # a glob reads the same files
    again = observe([str(tmp_path / "logs" / "*.json.gz")], format="envoy")
    assert again.summary.requests == scen.requests


# --- per-request interpretation -------------------------------------------------------------


def test_envoy_binding_and_requests_per_day(tmp_path: Path) -> None:
    lines = (
        [_envoy("dpop-app", auth="DPoP e", dpop=True, day=d) for d in (1, 2) for _ in range(3)]
        + [_envoy("mtls-app", rs="pay", cert=True, day=1) for _ in range(4)]
        + [_envoy("mixed", auth="DPoP e", dpop=True), _envoy("mixed", auth="Bearer")]
        + [_envoy(None, azp="via-azp", rs="pay", cert=False)]
    )
    result = observe([_write(tmp_path / "a.log", lines)], format="envoy")
    flows = _flows(result)
    assert flows[("dpop-app", "orders-api")]["binding"] == "dpop"
    assert flows[("dpop-app", "orders-api")]["requests_per_day"] == "3"  # 6 over 2 days
    assert flows[("mtls-app", "pay")]["binding"] == "mtls"  # Bearer scheme + certificate
    assert flows[("mtls-app", "pay")]["requests_per_day"] == "2"
    assert flows[("mixed", "orders-api")]["binding"] == "bearer"
    assert flows[("mixed", "orders-api")]["binding_enforced"] == "false"
    assert ("via-azp", "pay") in flows  # azp when client_id is not logged
    svc = result.services.set_index("service_id")
    assert svc.loc["orders-api", "supports_dpop"] == "true"
    assert svc.loc["pay", "supports_mtls"] == "true"


def test_dpop_scheme_without_dpop_header_is_not_bound(tmp_path: Path) -> None:
    result = observe(
        [_write(tmp_path / "a.log", [_envoy(auth="DPoP e", dpop=False)])], format="envoy"
    )
    assert _flows(result)[("app-1", "orders-api")]["binding"] == "bearer"


@pytest.mark.parametrize(
    ("path", "route", "expected"),
    [
        ("/orders/12/items?x=1", None, "GET /orders/{id}/items"),
        ("/orders/12/34", None, "GET /orders/{id}/{id}"),
        ("/u/0b4f9a2c-6f1e-4c3e-9d0a-1b2c3d4e5f60", None, "GET /u/{id}"),
        ("/blobs/0f0e0d0c0b0a09080706050403020100", None, "GET /blobs/{id}"),
        ("/v2/me", None, "GET /v2/me"),
        ("/orders/12", "orders-by-id", "orders-by-id"),
    ],
)
def test_route_templates(tmp_path: Path, path: str, route: str | None, expected: str) -> None:
    reg = _registrations(tmp_path, [("app-1", "browser_spa", "orders-api", "dpop")])
    log = _write(tmp_path / "a.log", [_envoy(path=path, route=route)])
    result = observe([log], format="envoy", registrations=reg)
    routes = set(
        result.discrepancies.loc[result.discrepancies["kind"] == "route_accepted_bearer"].route
    )
    assert routes == {expected}


def test_authorization_values_are_ignored_and_counted(tmp_path: Path) -> None:
    lines = [_envoy(auth=f"Bearer {TOKEN}"), _envoy(TOKEN, auth="Bearer"), _envoy(auth="Bearer")]
    result = observe([_write(tmp_path / "a.log", lines)], format="envoy")
    assert result.summary.auth_value_logged == 1
    assert result.summary.client_id_refused == 1
    assert result.summary.unattributed == 1
    assert any("Authorization header" in n for n in result.notes)
    written = write_observed(result, tmp_path / "out")
    for path in written.values():
        assert TOKEN not in path.read_text()
        assert "eyJ" not in path.read_text()
    assert TOKEN not in json.dumps(result.to_dict())


def test_without_registrations_no_discrepancies_are_judged(tmp_path: Path) -> None:
    result = observe([_write(tmp_path / "a.log", [_envoy()])], format="envoy")
    assert result.discrepancies.empty
    assert tuple(result.discrepancies.columns) == DISCREPANCY_COLUMNS
    assert any("--registrations" in n for n in result.notes)


def test_registered_client_kind_is_copied_and_unknown_is_assumed(tmp_path: Path) -> None:
    reg = _registrations(tmp_path, [("spa", "browser_spa", "orders-api", "dpop")])
    lines = [_envoy("spa", auth="DPoP e", dpop=True), _envoy("other")]
    result = observe([_write(tmp_path / "a.log", lines)], format="envoy", registrations=reg)
    flows = _flows(result)
    assert flows[("spa", "orders-api")]["client_kind"] == "browser_spa"
    assert flows[("other", "orders-api")]["client_kind"] == "service"
    prov = result.provenance
    sources = dict(zip(zip(prov["id"], prov["column"], strict=True), prov["source"], strict=True))
    spa_id = flows[("spa", "orders-api")]["flow_id"]
    other_id = flows[("other", "orders-api")]["flow_id"]
    assert sources[(spa_id, "binding")] == "observed"
    assert sources[(spa_id, "client_kind")] == "registered"
    assert sources[(other_id, "client_kind")] == "assumed"
    kinds = set(result.discrepancies["kind"])
    assert kinds == {"unregistered_flow"}


def test_mtls_client_with_certificate_presenting_bearer_is_fine(tmp_path: Path) -> None:
    # RFC 8705 §3: certificate-bound tokens are sent with the Bearer scheme
    reg = _registrations(tmp_path, [("svc", "service", "pay", "mtls")])
    log = _write(tmp_path / "a.log", [_envoy("svc", rs="pay", cert=True)])
    result = observe([log], format="envoy", registrations=reg)
    assert result.discrepancies.empty


def test_refused_presentation_is_not_an_accepting_route(tmp_path: Path) -> None:
    reg = _registrations(tmp_path, [("spa", "browser_spa", "orders-api", "dpop")])
    log = _write(tmp_path / "a.log", [_envoy("spa", status=401)])
    result = observe([log], format="envoy", registrations=reg)
    assert list(result.discrepancies["kind"]) == ["bound_client_presented_bearer"]


# --- the other formats -----------------------------------------------------------------------


def test_nginx_log_format(tmp_path: Path) -> None:
    # what `log_format tokenlib escape=json '{...}'` (README) writes: every value a string
    lines = [
        '{"time":"2026-12-01T10:00:00+00:00","client_id":"spa","resource_server":"orders-api",'
        '"method":"GET","uri":"/orders/7","route":"","status":"200","auth_scheme":"DPoP",'
        '"dpop":"1","client_cert":"NONE"}',
        '{"time":"2026-12-01T10:00:01+00:00","client_id":"svc","resource_server":"pay",'
        '"method":"POST","uri":"/pay","route":"pay-route","status":"201","auth_scheme":"Bearer",'
        '"dpop":"0","client_cert":"SUCCESS"}',
        '{"time":"2026-12-01T10:00:02+00:00","client_id":"","resource_server":"pay",'
        '"method":"GET","uri":"/healthz","route":"","status":"200","auth_scheme":"",'
        '"dpop":"0","client_cert":"NONE"}',
    ]
    result = observe([_write(tmp_path / "n.log", lines)], format="nginx")
    flows = _flows(result)
    assert flows[("spa", "orders-api")]["binding"] == "dpop"
    assert flows[("svc", "pay")]["binding"] == "mtls"
    assert result.summary.unattributed == 1


def test_jsonl_form(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {
                "time": "2026-12-01T10:00:00Z",
                "client_id": "cli",
                "resource_server": "api",
                "method": "GET",
                "path": "/things/1",
                "status": 200,
                "auth_scheme": "Bearer",
                "dpop": False,
                "client_cert": False,
                "authorization": f"Bearer {TOKEN}",  # never read
            }
        )
    ]
    result = observe([_write(tmp_path / "j.jsonl.gz", lines, gz=True)], format="jsonl")
    assert _flows(result)[("cli", "api")]["binding"] == "bearer"
    assert TOKEN not in json.dumps(result.to_dict())


# SOURCE: AWS, "Access logs for your Application Load Balancer", example HTTP/2 entry
# (docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-access-logs.html),
# target group renamed.
ALB_LINE = (
    "h2 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 10.0.1.252:48160 "
    '10.0.0.66:9000 0.000 0.002 0.000 200 200 5 257 "GET https://10.0.2.105:773/orders/12 '
    'HTTP/2.0" "curl/7.46.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 '
    "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/orders-api/73e2d6bc24d8a067 "
    '"Root=1-58337327-72bd00b0343d75b906739c42" "-" "-" 1 2018-07-02T22:22:48.364000Z '
    '"redirect" "https://example.com:80/" "-" "10.0.0.66:9000" "200" "-" "-" TID_1234abcd5678ef90'
)


def test_alb_logs_are_unattributed(tmp_path: Path) -> None:
    result = observe([_write(tmp_path / "alb.log.gz", [ALB_LINE, ALB_LINE], gz=True)], format="alb")
    assert result.summary.requests == 2
    assert result.summary.unattributed == 2
    assert result.flows.empty
    assert list(result.services["service_id"]) == ["orders-api"]
    assert any("ALB access logs carry no client id" in n for n in result.notes)


# --- errors ----------------------------------------------------------------------------------


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    log = _write(tmp_path / "bad.log", [_envoy(), "{not json"])
    with pytest.raises(ObserveError, match=r"bad\.log"):
        observe([log], format="envoy")


@pytest.mark.parametrize("kind", ["truncated", "not_gzip"])
def test_broken_gzip_is_an_observe_error(tmp_path: Path, kind: str) -> None:
    data = gzip.compress(("\n".join([_envoy()] * 500) + "\n").encode())
    path = tmp_path / "x.json.gz"
    path.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"plain text, no gzip")
    with pytest.raises(ObserveError, match=r"x\.json\.gz"):
        observe([path], format="envoy")


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(ObserveError, match="not found"):
        observe([tmp_path / "nope.log"], format="envoy")
    with pytest.raises(ObserveError, match="no log file matches"):
        observe([str(tmp_path / "*.log")], format="envoy")
    log = _write(tmp_path / "a.log", [_envoy()])
    with pytest.raises(ObserveError, match="no registrations"):
        observe([log], format="envoy", registrations=tmp_path / "nowhere")
    with pytest.raises(ObserveError, match="format"):
        observe([log], format="apache")  # type: ignore[arg-type]


def test_resource_server_the_pipeline_cannot_carry_is_refused(tmp_path: Path) -> None:
    log = _write(tmp_path / "a.log", [_envoy(rs="a>b")])
    result = observe([log], format="envoy")
    with pytest.raises(ObserveError, match="does not validate"):
        write_observed(result, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_failed_write_leaves_the_previous_files_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tokenlib.analysis.observe as observe_module

    reg = _registrations(tmp_path, [("spa", "browser_spa", "orders-api", "dpop")])
    log = _write(tmp_path / "a.log", [_envoy("spa")])
    first = observe([log], format="envoy", registrations=reg)
    out = tmp_path / "out"
    write_observed(first, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    second = observe([_write(tmp_path / "b.log", [_envoy("other")] * 3)], format="envoy")

    def disk_full(*args: object, **kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(observe_module, "write_provenance", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_observed(second, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_spreadsheet_formulas_are_neutralised(tmp_path: Path) -> None:
    reg = _registrations(tmp_path, [("spa", "browser_spa", "orders-api", "dpop")])
    log = _write(tmp_path / "a.log", [_envoy("=HYPERLINK(1)")])
    result = observe([log], format="envoy", registrations=reg)
    written = write_observed(result, tmp_path / "out")
    text = written["discrepancies"].read_text()
    assert "'=HYPERLINK(1)" in text
    assert ",=HYPERLINK" not in text


# --- the SQL file ----------------------------------------------------------------------------


def test_sql_file_has_every_section_documented() -> None:
    sections = sql_sections()
    for fmt in FORMATS:
        assert f"requests_{fmt}" in sections
    for name in ("requests", "observations", "log_summary", "observed_flows", "discrepancies"):
        assert name in sections
    text = sql_text()
    for kind in DISCREPANCY_KINDS:
        assert kind in text


# --- command line ----------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tokenlib inventory")
    sub = parser.add_subparsers(dest="inventory_command")
    add_observe_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = _registrations(tmp_path, [("spa", "browser_spa", "orders-api", "dpop")])
    log = _write(
        tmp_path / "a.log",
        [_envoy("spa"), _envoy("spa", path="/x\x1b[31m"), _envoy("other\x1b[31m")],
    )
    out = tmp_path / "out"
    argv = ["observe", str(log), "--format", "envoy", "--out", str(out)]
    assert _cli([*argv, "--registrations", str(reg), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is True
    kinds = {f["kind"] for f in payload["findings"]}
    assert kinds == {"bound_client_presented_bearer", "route_accepted_bearer"}
    assert payload["summary"]["client_id_refused"] == 1
    assert set(payload["findings"][0]) == set(DISCREPANCY_COLUMNS)
    assert (out / "discrepancies.csv").is_file()
    assert _cli([*argv, "--registrations", str(reg)]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text
    assert "/x\\x1b[31m" in text
    assert "1 request(s) logged a token-like or malformed value" in text
    assert "bound_client_presented_bearer" in text
    assert (
        _cli(["observe", str(tmp_path / "nope.log"), "--format", "envoy", "--out", str(out)]) == 2
    )
    assert "not found" in capsys.readouterr().err
    bad = _write(tmp_path / "bad.log", ["{oops"])
    assert _cli(["observe", str(bad), "--format", "envoy", "--out", str(out), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["ok"] is False
    assert _cli([*argv[:-1], str(tmp_path / "x.csv")]) == 2
    with pytest.raises(SystemExit) as exc:
        _cli(["observe", str(log), "--format", "apache", "--out", str(out)])
    assert exc.value.code == 2
