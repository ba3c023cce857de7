"""tokenlib.analysis.provenance: the table, its summary, and the synthetic marking."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analysis.importers._helpers import sample
from tokenlib.analysis import provenance as P
from tokenlib.analysis import schema as S
from tokenlib.analysis.importers import import_files, write_import
from tokenlib.analysis.inventory import (
    InventoryError,
    generate_inventory,
    load_inventory,
    write_inventory,
)


def test_imported_inventory_summary(tmp_path: Path) -> None:
    r = import_files("keycloak", [sample("keycloak/examples-realm.json")])
    write_import(r, tmp_path)
    inv = load_inventory(tmp_path / "flows.csv")
    summary = P.summarise_provenance(inv)  # finds provenance.csv beside flows.csv
    assert summary.basis.startswith("provenance file")
    n_cells = (
        len(inv.flows) * len(S.FLOWS.names)
        + len(inv.services) * len(S.SERVICES.names)
        + len(inv.authorization_servers) * len(S.AUTHORIZATION_SERVERS.names)
    )
    assert summary.n_cells == n_cells
    assert sum(summary.counts.values()) == n_cells
    assert set(summary.counts) == {"registered", "assumed"}
    assert 0.0 < summary.assumed_share < 1.0
    assert summary.column_share("flows", "binding", "registered") == 1.0
    assert summary.column_share("flows", "path") == 1.0  # no IdP knows the hops
    assert not summary.synthetic
    assert summary.to_dict()["assumed_share"] == summary.assumed_share
    assert "assumed" in str(summary)
    # The in-memory result gives the same numbers.
    same = P.summarise_provenance(r.inventory, r.provenance)
    assert same.counts == summary.counts


def test_generated_and_bundled_inventories_are_synthetic(tmp_path: Path) -> None:
    inv = generate_inventory("bank", 120, seed=3)
    assert P.summarise_provenance(inv).synthetic
    default = load_inventory("default")
    summary = P.summarise_provenance(default)  # data/provenance.csv
    assert summary.synthetic
    assert summary.share("synthetic") == 1.0
    assert summary.assumed_share == 0.0


def test_hand_written_inventory_counts_loader_defaults(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(
        "client_id,client_kind,resource_server,binding\n"
        "a,service,api,bearer\n"
        "b,browser_spa,api,bearer\n",
        encoding="utf-8",
    )
    inv = load_inventory(path)
    summary = P.summarise_provenance(inv)
    assert summary.basis.startswith("loader defaults")
    assert summary.column_share("flows", "binding", "declared") == 1.0
    assert summary.column_share("flows", "access_token_lifetime_s") == 1.0
    assert 0.5 < summary.assumed_share < 1.0


def test_wildcards_and_specific_rows() -> None:
    inv = generate_inventory("saas", 100, seed=1)
    table = P.provenance_frame(
        [
            ("flows", "*", "*", "assumed", ""),
            ("flows", "*", "binding", "registered", "idp"),
            ("flows", str(inv.flows["flow_id"].iloc[0]), "*", "declared", "overlay"),
            ("flows", str(inv.flows["flow_id"].iloc[0]), "binding", "observed", "logs"),
        ]
    )
    s = P.summarise_provenance(inv, table)
    assert s.by_column["flows.binding"] == {"registered": 99, "observed": 1}
    assert s.by_column["flows.path"] == {"assumed": 99, "declared": 1}
    assert s.by_column["services.service_id"] == {"assumed": len(inv.services)}


def test_written_and_loaded_round_trip(tmp_path: Path) -> None:
    inv = generate_inventory("saas", 100, seed=1)
    write_inventory(inv, tmp_path)
    path = P.write_provenance(P.synthetic_provenance(inv.source), tmp_path / "provenance.csv")
    assert P.find_provenance(tmp_path / "flows.csv") == path
    assert P.load_provenance(path).shape == (3, 5)
    assert P.find_provenance(tmp_path / "elsewhere" / "flows.csv") is None


@pytest.mark.parametrize(
    ("text", "row", "column"),
    [
        ("table,id,column,source\nflows,*,*,assumed\n", None, "detail"),
        ("table,id,column,source,detail\nflow,*,*,assumed,\n", 2, "table"),
        ("table,id,column,source,detail\nflows,*,*,guessed,\n", 2, "source"),
    ],
)
def test_bad_provenance_files(tmp_path: Path, text: str, row: int | None, column: str) -> None:
    path = tmp_path / "provenance.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        P.load_provenance(path)
    problem = info.value.problems[0]
    assert (problem.file, problem.row, problem.column) == (str(path), row, column)
