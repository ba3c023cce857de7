"""The report runs to the end on inventories shaped unlike the bundled one.

Notebook asserts are for invariants; a finding of the bundled inventory that does not hold on
a user's inventory is reported as not holding, never a crash. These builds use ``--quick``
parameters; each executes every notebook once.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tokenlib.analysis import report
from tokenlib.analysis.inventory import generate_inventory, write_inventory

pytestmark = pytest.mark.slow


def _tiny_flows_only(folder: Path) -> Path:
    """Four flows, one resource server, no forwarding, all bearer, flows.csv alone (services
    and the authorization server are derived)."""
    folder.mkdir(parents=True)
    path = folder / "flows.csv"
    rows = [
        {
            "flow_id": f"f{i}",
            "client_id": client,
            "client_kind": kind,
            "resource_server": "orders-api",
            "path": hop,
            "access_token_lifetime_s": life,
            "binding": "bearer",
        }
        for i, (client, kind, hop, life) in enumerate(
            [
                ("web", "browser_spa", "cdn:terminate", 300),
                ("app", "mobile_app", "", 3600),
                ("sync", "service", "", 86400),
                ("ci", "batch_job", "api_gateway:terminate", 600),
            ]
        )
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _bank(folder: Path) -> Path:
    folder.mkdir(parents=True)
    inv = generate_inventory("bank", 150, seed=11)
    flows_path, _ = write_inventory(inv, folder)
    return Path(flows_path)


@pytest.mark.parametrize("make", [_tiny_flows_only, _bank], ids=["tiny-flows-only", "bank-150"])
def test_report_runs_to_the_end(tmp_path: Path, make: object) -> None:
    source = make(tmp_path / "inventory")  # type: ignore[operator]
    built = report.build_report(
        inventory=str(source), out=tmp_path / "reports", seed=3, quick=True, progress=False
    )
    assert len(built.pages) == len(report.find_notebooks())
    for name in ("headline_numbers.csv", "flow_exposure.csv", "recommendations.csv"):
        assert name in built.exports, name
    index = (built.out_dir / "index.html").read_text(encoding="utf-8")
    assert str(tmp_path) not in index, "no absolute path of the user's inventory"
