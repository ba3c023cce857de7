"""Import → load_inventory/validate → the models, per source: the numbers follow the
registrations (a DPoP-bound client is dpop, a public SPA is browser_spa, lifetimes come from
the export). The report itself runs on an import in the slow test at the end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.analysis.importers._helpers import edited, sample
from tokenlib.analysis._inventory_cli import main
from tokenlib.analysis.headline import headline_numbers
from tokenlib.analysis.inventory import load_inventory
from tokenlib.analysis.models.exposure import current_mechanism, replay_windows
from tokenlib.analysis.provenance import summarise_provenance


def _keycloak(tmp: Path) -> tuple[list[Path], dict[str, tuple[str, str, int]]]:
    def edit(doc: dict[str, Any]) -> None:
        spa = next(c for c in doc["clients"] if c["clientId"] == "app-profile-html5")
        spa["attributes"] = {"dpop.bound.access.tokens": "true", "access.token.lifespan": "120"}

    files = [edited(tmp, "keycloak/examples-realm.json", edit)]
    return files, {
        "app-profile-html5": ("browser_spa", "dpop", 120),
        "app-jee": ("web_backend", "bearer", 300),
    }


def _auth0(tmp: Path) -> tuple[list[Path], dict[str, tuple[str, str, int]]]:
    grant = tmp / "grant.json"
    grant.write_text(
        json.dumps(
            {
                "id": "cgr_e2e",
                "client_id": "HCuHYoHrhT2OgacfzK0TVNc16uFbwZ7P",
                "audience": "https://uat.api.terraform-provider-auth0.com/TestAccResourceServer",
                "scope": ["read"],
            }
        ),
        encoding="utf-8",
    )
    names = ["clients.json", "resource-server-dpop.json", "client-native.json"]
    return [*(sample(f"auth0/{n}") for n in names), grant], {
        "HCuHYoHrhT2OgacfzK0TVNc16uFbwZ7P": ("service", "dpop", 7200),
        "FSAHVFwCcW9nSs8O97U3eCEeXOUOC0cV": ("browser_spa", "bearer", 86400),
        "kqU9WU3dlndc3Mp3RXyffoo0YBpMgq9q": ("mobile_app", "bearer", 86400),
    }


def _okta(tmp: Path) -> tuple[list[Path], dict[str, tuple[str, str, int]]]:
    def app(doc: dict[str, Any]) -> None:
        doc["settings"]["oauthClient"]["dpop_bound_access_tokens"] = True

    files = [
        edited(tmp, "okta/app-oidc-native.json", app),
        sample("okta/authorization-servers.json"),
        sample("okta/policies.json"),
        sample("okta/policy-rules.json"),
    ]
    return files, {"0oahonkqCRR6TSNlg4": ("mobile_app", "dpop", 3600)}


def _entra(tmp: Path) -> tuple[list[Path], dict[str, tuple[str, str, int]]]:
    def spa(doc: dict[str, Any]) -> None:
        doc["spa"] = {"redirectUris": ["https://app.contoso.com/auth"]}
        doc["requiredResourceAccess"] = [
            {
                "resourceAppId": "00000003-0000-0000-c000-000000000000",
                "resourceAccess": [{"id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "type": "Scope"}],
            }
        ]

    files = [
        edited(tmp, "entra/application-get.json", spa),
        sample("entra/application-get-select.json"),
    ]
    return files, {
        "631a96bc-a705-4eda-9f99-fdaf9f54f6a2": ("browser_spa", "bearer", 4500),
        "46e6adf4-a9cf-4b60-9390-0ba6fb00bf6b": ("service", "bearer", 4500),
    }


def _rfc7591(tmp: Path) -> tuple[list[Path], dict[str, tuple[str, str, int]]]:
    def bind(doc: dict[str, Any]) -> None:
        doc["dpop_bound_access_tokens"] = True
        doc["x_access_token_lifetime_s"] = 900
        doc["x_audiences"] = ["https://api.example.com"]

    return [edited(tmp, "rfc7591/rfc7591-3.2.1-response.json", bind)], {
        "s6BhdRkqt3": ("web_backend", "dpop", 900)
    }


CASES: dict[str, Callable[[Path], tuple[list[Path], dict[str, tuple[str, str, int]]]]] = {
    "keycloak": _keycloak,
    "auth0": _auth0,
    "okta": _okta,
    "entra": _entra,
    "rfc7591": _rfc7591,
}


@pytest.mark.parametrize("source", list(CASES))
def test_import_then_models(
    tmp_path: Path, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files, expected = CASES[source](tmp_path)
    out = tmp_path / "inv"
    assert main(["import", source, *map(str, files), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    inv = load_inventory(out / "flows.csv")
    assert inv.report is not None
    assert inv.report.ok, inv.report
    flows = inv.flows.set_index("client_id")
    mech = current_mechanism(
        inv.flows, inv.services, authorization_servers=inv.authorization_servers
    )
    mech.index = inv.flows["client_id"]
    for client, (kind, binding, lifetime) in expected.items():
        row = flows.loc[client]
        assert (row.client_kind, row.binding, row.access_token_lifetime_s) == (
            kind,
            binding,
            lifetime,
        ), client
        assert str(mech.loc[client]).startswith(binding), (client, mech.loc[client])
    # The bearer replay window of a stolen at-rest copy follows the registered lifetime.
    windows = replay_windows(
        inv.flows,
        inv.services,
        authorization_servers=inv.authorization_servers,
        mechanisms=["bearer"],
    )
    at_rest = windows[(windows["scenario"] == "at_rest_copy") & (windows["view"] == "today")]
    by_flow = dict(zip(at_rest["flow_id"], at_rest["expected_window_s"], strict=True))
    lifetimes = dict(zip(inv.flows["flow_id"], inv.flows["access_token_lifetime_s"], strict=True))
    ordered = sorted(by_flow, key=lambda f: lifetimes[f])
    assert [by_flow[f] for f in ordered] == sorted(by_flow[f] for f in ordered)
    headline = headline_numbers(
        inv.flows, inv.services, authorization_servers=inv.authorization_servers, draws=2, seed=1
    )
    assert len(headline) > 0
    summary = summarise_provenance(inv)
    assert summary.basis.startswith("provenance file")
    assert 0.0 < summary.assumed_share < 1.0


#: The notebooks whose numbers come from the inventory (01 token anatomy, 06 live lab and
#: 08 probe demonstrate the core and the lab; the report test in tests/ runs all of them).
ANALYSIS_NOTEBOOKS = ("00_", "02_", "03_", "04_", "05_", "07_")


@pytest.mark.slow
def test_report_runs_on_an_imported_inventory(tmp_path: Path) -> None:
    """What `make report INVENTORY=DIR/flows.csv` runs, on a Keycloak import."""
    from tokenlib.analysis import report

    files, _ = _keycloak(tmp_path)
    out = tmp_path / "inv"
    assert main(["import", "keycloak", *map(str, files), "--out", str(out)]) == 0
    notebooks = [p for p in report.find_notebooks() if p.name.startswith(ANALYSIS_NOTEBOOKS)]
    assert len(notebooks) == len(ANALYSIS_NOTEBOOKS)
    built = report.build_report(
        inventory=str(out / "flows.csv"),
        out=tmp_path / "reports",
        seed=3,
        quick=True,
        progress=False,
        notebooks=notebooks,
        bundle=False,
        cache=False,
    )
    assert len(built.pages) == len(notebooks)
    assert "headline_numbers.csv" in built.exports
    headline = (built.out_dir / "exports" / "headline_numbers.csv").read_text(encoding="utf-8")
    assert "deployable_share_dpop_today" in headline
