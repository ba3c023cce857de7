"""inventory generate/validate/summary/bundle through register() on a fresh parser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tokenlib.analysis._inventory_cli import main, register

DATA = Path(__file__).resolve().parents[2] / "data"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tokenlib")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_generate_validate_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "inv"
    assert (
        _run(
            [
                "inventory",
                "generate",
                "--profile",
                "bank",
                "--flows",
                "300",
                "--seed",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "flows.csv").is_file()
    assert (out / "services.csv").is_file()
    assert (out / "authorization_servers.csv").is_file()
    written = capsys.readouterr().out
    assert "wrote 300 flows" in written
    assert "2 authorization servers to" in written

    assert _run(["inventory", "validate", str(out / "flows.csv")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("valid:")
    assert "2 of 2 authorization servers" in text

    assert _run(["inventory", "validate", str(out / "flows.csv"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["flows_out"] == 300
    assert report["authorization_servers_derived"] is False
    assert report["authorization_servers_source"].endswith("authorization_servers.csv")
    assert report["authorization_servers_out"] == 2

    assert _run(["inventory", "summary", str(out / "flows.csv"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_flows"] == 300
    for key in ("by_client_kind", "by_client_path", "by_binding"):
        assert sum(data[key].values()) == 300

    assert _run(["inventory", "summary", str(out / "flows.csv")]) == 0
    text = capsys.readouterr().out
    assert "client kind:" in text
    assert "client path:" in text
    assert "binding:" in text
    assert "authorization server:" in text
    assert "as-fapi" in text


def test_validate_reports_authorization_server_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "flows.csv").write_text(
        "client_id,client_kind,resource_server,binding,key_storage,authorization_server\n"
        "a,service,api,dpop,software,entra\n"
        "b,service,api,bearer,none,keycloak\n"
        "c,service,api,bearer,none,okta\n"
    )
    (tmp_path / "authorization_servers.csv").write_text(
        "as_id,product,issues_dpop\nentra,Microsoft Entra ID,false\nkeycloak,Keycloak 26.4,\n"
    )
    path = tmp_path / "flows.csv"
    assert _run(["inventory", "validate", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {(p["row"], p["code"]) for p in report["problems"]} == {
        (2, "unissued_binding"),
        (4, "unknown_authorization_server"),
    }
    assert report["dropped_flow_rows"] == [2, 4]
    assert report["authorization_servers_derived"] is False


def test_generate_is_deterministic_and_parquet(tmp_path: Path) -> None:
    for d in ("a", "b"):
        assert (
            _run(
                [
                    "inventory",
                    "generate",
                    "--flows",
                    "200",
                    "--seed",
                    "9",
                    "--out",
                    str(tmp_path / d),
                ]
            )
            == 0
        )
    assert (tmp_path / "a" / "flows.csv").read_bytes() == (
        tmp_path / "b" / "flows.csv"
    ).read_bytes()
    assert (
        _run(
            [
                "inventory",
                "generate",
                "--flows",
                "200",
                "--out",
                str(tmp_path / "p"),
                "--format",
                "parquet",
            ]
        )
        == 0
    )
    assert _run(["inventory", "validate", str(tmp_path / "p" / "flows.parquet")]) == 0


def test_validate_reports_problems_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(
        "client_id,client_kind,resource_server,binding,binding_enforced\n"
        "a,service,api,bearer,true\n"
        "b,toaster,api,bearer,false\n"
        "c,service,api,bearer,false\n"
    )
    assert _run(["inventory", "validate", str(path)]) == 1
    text = capsys.readouterr().out
    assert text.startswith("INVALID")
    assert ":2:" in text
    assert "bearer_enforced" in text
    assert ":3:" in text
    assert "toaster" in text

    assert _run(["inventory", "validate", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert {(p["row"], p["code"]) for p in report["problems"]} == {
        (2, "bearer_enforced"),
        (3, "enum"),
    }
    assert report["dropped_flow_rows"] == [2, 3]


def test_validate_fatal_problem_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flows.csv"
    path.write_text("client_id,resource_server\na,api\n")
    assert _run(["inventory", "validate", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {p["code"] for p in report["problems"]} == {"missing_column"}


def test_validate_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["inventory", "validate", str(tmp_path / "none.csv")]) == 2
    assert "not found" in capsys.readouterr().err


def test_bad_flow_count_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        _run(["inventory", "generate", "--flows", "5", "--out", str(tmp_path)])
    assert info.value.code == 2


def test_default_and_bundle_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["inventory", "validate", "default"]) == 0
    assert capsys.readouterr().out.startswith("valid: default:")
    assert _run(["inventory", "bundle", "--check"]) == 0
    assert capsys.readouterr().out.endswith("data: up to date\n")


def test_bundle_writes_into_a_fresh_directory(tmp_path: Path) -> None:
    (tmp_path / "reference").mkdir()
    for name in ("token_lifetimes", "dpop_implementations", "token_binding_timeline", "breaches"):
        src = DATA / "reference" / f"{name}.csv"
        (tmp_path / "reference" / f"{name}.csv").write_bytes(src.read_bytes())
    assert _run(["inventory", "bundle", "--out", str(tmp_path), "--flows", "150"]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {
        "flows.csv",
        "services.csv",
        "authorization_servers.csv",
        "README.md",
        "datapackage.json",
    }
    assert _run(["inventory", "bundle", "--out", str(tmp_path), "--flows", "150", "--check"]) == 0
    assert _run(["inventory", "bundle", "--out", str(tmp_path), "--flows", "151", "--check"]) == 1


def test_main_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "default", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "default"
    assert main(["inventory", "generate", "--flows", "100", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("out_name", ["flows.csv", "flows.parquet", "existing_file"])
def test_generate_refuses_a_file_as_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out_name: str
) -> None:
    out = tmp_path / out_name
    if out_name == "existing_file":
        out.write_text("keep me")
    argv = ["inventory", "generate", "--flows", "100", "--out", str(out)]
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out")
    assert "must be a directory" in err
    assert not out.is_dir()
    if out_name == "existing_file":
        assert out.read_text() == "keep me"


def test_generate_reports_unwritable_out_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    assert _run(["inventory", "generate", "--flows", "100", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write the inventory to")
    assert len(err.strip().splitlines()) == 1


# --- inventory import / generate --json (issue 10) -------------------------------------------

SAMPLES = Path(__file__).resolve().parent / "importers" / "samples"


def test_generate_json_and_synthetic_provenance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inv"
    assert _run(["inventory", "generate", "--flows", "120", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["synthetic"] is True
    assert data["n_flows"] == 120
    assert set(data["files"]) == {"flows", "services", "authorization_servers", "provenance"}
    assert Path(data["files"]["provenance"]) == out / "provenance.csv"
    text = (out / "provenance.csv").read_text(encoding="utf-8")
    assert text.count(",synthetic,") == 3
    from tokenlib.analysis.inventory import load_inventory
    from tokenlib.analysis.provenance import summarise_provenance

    assert summarise_provenance(load_inventory(out / "flows.csv")).synthetic


def test_import_writes_inventory_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inv"
    overlay = tmp_path / "overlay.csv"
    overlay.write_text(
        "table,match,column,value,note\nflows,*,path,api_gateway:terminate,all via the gateway\n",
        encoding="utf-8",
    )
    argv = [
        "inventory",
        "import",
        "keycloak",
        str(SAMPLES / "keycloak" / "examples-realm.json"),
        "--out",
        str(out),
        "--overlay",
        str(overlay),
    ]
    assert _run(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith("wrote 4 flows (4 clients)")
    assert "provenance (provenance.csv):" in text
    assert "declared" in text
    for name in (
        "flows.csv",
        "services.csv",
        "authorization_servers.csv",
        "provenance.csv",
        "conflicts.csv",
    ):
        assert (out / name).is_file(), name
    assert _run(["inventory", "validate", str(out / "flows.csv")]) == 0
    capsys.readouterr()
    assert _run([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert data["n_flows"] == 4
    assert data["by_client_kind"] == {"browser_spa": 1, "web_backend": 3}
    assert data["provenance"]["shares"]["declared"] > 0
    assert data["findings_by_kind"]["skipped_client"] == 6
    assert data["conflicts"] == []
    assert set(data["written"]) == {
        "flows.csv",
        "services.csv",
        "authorization_servers.csv",
        "provenance.csv",
        "conflicts.csv",
    }


def test_import_json_lists_conflicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overlay = tmp_path / "overlay.csv"
    overlay.write_text(
        "match,column,value\nclient:s6BhdRkqt3,client_type,public\n", encoding="utf-8"
    )
    argv = [
        "inventory",
        "import",
        "rfc7591",
        str(SAMPLES / "rfc7591" / "rfc7591-3.2.1-response.json"),
        "--out",
        str(tmp_path / "inv"),
        "--overlay",
        str(overlay),
        "--as-id",
        "dcr",
    ]
    assert _run([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (conflict,) = data["conflicts"]
    assert (conflict["column"], conflict["values"]) == ("client_type", "confidential | public")
    text = (tmp_path / "inv" / "conflicts.csv").read_text(encoding="utf-8")
    assert "conflict,flows,s6BhdRkqt3@dcr:unknown-api,client_type" in text
    assert _run(argv) == 0
    assert "warning: 1 conflicting value(s)" in capsys.readouterr().out


def test_import_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    out = tmp_path / "inv"
    assert _run(["inventory", "import", "okta", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 problem in")
    assert str(bad) in err
    assert "[json]" in err
    assert not out.exists()
    assert _run(["inventory", "import", "okta", str(bad), "--out", str(out), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert data["problems"][0]["code"] == "json"
    # A tenant export with no OAuth client flow: nothing to write.
    only = SAMPLES / "entra" / "application-get.json"
    assert _run(["inventory", "import", "entra", str(only), "--out", str(out)]) == 2
    assert "no OAuth client flows" in capsys.readouterr().err
    assert not out.exists()
    # --out must be a folder.
    target = tmp_path / "flows.csv"
    argv = ["inventory", "import", "entra", str(only), "--out", str(target)]
    assert _run(argv) == 2
    assert "must be a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        _run(["inventory", "import", "pingfederate", str(only), "--out", str(out)])
    assert info.value.code == 2
