"""Bad input: a typed InventoryError naming the file and the place in it; nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.analysis.importers._helpers import sample
from tokenlib.analysis.importers import SOURCES, import_files
from tokenlib.analysis.inventory import InventoryError


def _write(tmp_path: Path, text: str, name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("text", "code", "where"),
    [
        ("{not json", "json", "line 1 column 2"),
        ('{"a": 1,\n  "b": }', "json", "line 2 column 8"),
        ("", "json", "line 1 column 1"),
        ('"a string"', "shape", "$"),
        ("42", "shape", "$"),
    ],
)
def test_not_json_or_wrong_shape(
    tmp_path: Path, source: str, text: str, code: str, where: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InventoryError) as info:
        import_files(source, [path])
    (problem,) = info.value.problems
    assert (problem.file, problem.code, problem.column) == (str(path), code, where)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("source", "doc", "where"),
    [
        ("keycloak", {"realm": "r", "clients": [{"publicClient": True}]}, "clients[0].clientId"),
        ("keycloak", {"realm": "r", "clients": [{"clientId": "  "}]}, "clients[0].clientId"),
        ("keycloak", {"realm": "r", "clients": {"a": 1}}, "clients"),
        ("keycloak", {"realm": "r", "clients": ["x"]}, "clients[0]"),
        ("auth0", [{"name": "app", "app_type": "spa"}], "[0].client_id"),
        ("auth0", {"clients": [{"client_id": ""}]}, "clients[0].client_id"),
        (
            "auth0",
            {"resource_servers": [{"identifier": "", "token_lifetime": 1}]},
            "resource_servers[0].identifier",
        ),
        ("auth0", [{"foo": 1}], "[0]"),
        ("okta", [{"id": "x"}], "[0]"),
        ("okta", [{"audiences": ["a"], "issuer": "https://x"}], "[0].id"),
        ("entra", {"value": [{"displayName": "no appId"}]}, "value[0].appId"),
        ("entra", {"value": [1]}, "value[0]"),
        (
            "entra",
            {"appId": "a", "requiredResourceAccess": [{"resourceAccess": []}]},
            "$.requiredResourceAccess[0].resourceAppId",
        ),
        ("rfc7591", {"redirect_uris": ["https://x/cb"]}, "$.client_id"),
        ("rfc7591", [{"client_id": "a"}, "b"], "[1]"),
    ],
)
def test_missing_ids_and_bad_records(tmp_path: Path, source: str, doc: object, where: str) -> None:
    path = _write(tmp_path, json.dumps(doc))
    with pytest.raises(InventoryError) as info:
        import_files(source, [path])
    (problem,) = info.value.problems
    assert problem.file == str(path)
    assert problem.column == where
    assert problem.code in ("missing_id", "shape")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        import_files("keycloak", [tmp_path / "missing.json"])
    assert info.value.problems[0].code == "file"
    with pytest.raises(InventoryError) as info:
        import_files("keycloak", [tmp_path])
    assert info.value.problems[0].code == "file"
    latin = tmp_path / "latin1.json"
    latin.write_bytes(b'{"realm": "caf\xe9"}')
    with pytest.raises(InventoryError) as info:
        import_files("keycloak", [latin])
    assert info.value.problems[0].code == "encoding"


def test_second_bad_file_names_itself(tmp_path: Path) -> None:
    bad = _write(tmp_path, "[", "second.json")
    with pytest.raises(InventoryError) as info:
        import_files("auth0", [sample("auth0/clients.json"), bad])
    assert info.value.problems[0].file == str(bad)


def test_unknown_source_and_no_files() -> None:
    with pytest.raises(ValueError, match="unknown source"):
        import_files("ping", [sample("auth0/clients.json")])
    with pytest.raises(ValueError, match="at least one"):
        import_files("auth0", [])
