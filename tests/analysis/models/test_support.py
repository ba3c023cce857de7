"""Tests for tokenlib.analysis.models.support: one negative row per structural rule."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.analysis.conftest_models import flows_frame, random_inventory, services_frame
from tokenlib.analysis.models.mechanisms import FAMILIES
from tokenlib.analysis.models.support import Support, structural_support

SVC = services_frame([{"service_id": "api"}])
ALL_AS = pd.DataFrame(
    {
        "as_id": ["as-default"],
        "product": [""],
        "issues_dpop": [True],
        "issues_mtls": [True],
        "binds_refresh_tokens": [True],
        "supports_token_exchange": [False],
    }
)


def _as(**kw: Any) -> pd.DataFrame:
    out = ALL_AS.copy()
    for k, v in kw.items():
        out[k] = v
    return out


# (case, flow overrides, service overrides, AS overrides, family, view, component, expected)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str, str, str, bool]] = [
    (
        "browser cannot mtls",
        {"client_kind": "browser_spa"},
        {},
        {},
        "mtls",
        "today",
        "client",
        False,
    ),
    ("mobile can mtls", {"client_kind": "mobile_app"}, {}, {}, "mtls", "today", "client", True),
    ("browser can dpop", {"client_kind": "browser_spa"}, {}, {}, "dpop", "today", "client", True),
    ("no tb client", {"client_kind": "service"}, {}, {}, "token_binding", "today", "client", False),
    (
        "as without dpop",
        {},
        {},
        {"issues_dpop": False},
        "dpop",
        "today",
        "authorization_server",
        False,
    ),
    (
        "as without mtls",
        {},
        {},
        {"issues_mtls": False},
        "mtls",
        "today",
        "authorization_server",
        False,
    ),
    ("as never tb", {}, {}, {}, "token_binding", "upgraded", "authorization_server", False),
    (
        "rs no dpop today",
        {},
        {"supports_dpop": False},
        {},
        "dpop",
        "today",
        "resource_server",
        False,
    ),
    (
        "rs dpop upgraded",
        {},
        {"supports_dpop": False},
        {},
        "dpop",
        "upgraded",
        "resource_server",
        True,
    ),
    (
        "rs no mtls today",
        {},
        {"supports_mtls": False},
        {},
        "mtls",
        "today",
        "resource_server",
        False,
    ),
    (
        "rs mtls upgraded",
        {},
        {"supports_mtls": False},
        {},
        "mtls",
        "upgraded",
        "resource_server",
        True,
    ),
    ("rs no tb today", {}, {}, {}, "token_binding", "today", "resource_server", False),
    ("rs tb upgraded", {}, {}, {}, "token_binding", "upgraded", "resource_server", True),
    ("terminate drops cert", {"path": "cdn:terminate"}, {}, {}, "mtls", "today", "path", False),
    (
        "forwarded cert ok",
        {"path": "cdn:terminate_forward_cert>load_balancer:passthrough"},
        {},
        {},
        "mtls",
        "today",
        "path",
        True,
    ),
    (
        "tb forward cert",
        {"path": "api_gateway:terminate_forward_cert"},
        {},
        {},
        "token_binding",
        "upgraded",
        "path",
        False,
    ),
    (
        "tb terminate",
        {"path": "load_balancer:passthrough>api_gateway:terminate"},
        {},
        {},
        "token_binding",
        "upgraded",
        "path",
        False,
    ),
    (
        "tb passthrough",
        {"path": "cdn:passthrough"},
        {},
        {},
        "token_binding",
        "upgraded",
        "path",
        True,
    ),
    (
        "dpop any path",
        {"path": "cdn:terminate>waf:terminate"},
        {},
        {},
        "dpop",
        "today",
        "path",
        True,
    ),
]


@pytest.mark.parametrize(
    ("flow", "svc", "as_", "family", "view", "component", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_rule_table(
    flow: dict[str, Any],
    svc: dict[str, Any],
    as_: dict[str, Any],
    family: Any,
    view: Any,
    component: str,
    expected: bool,
) -> None:
    f = flows_frame([flow])
    s = services_frame([{"service_id": "api", **svc}])
    sup = structural_support(f, s, _as(**as_), family=family, view=view)
    assert bool(getattr(sup, component)[0]) is expected
    if not expected:
        assert not sup.enforceable[0]


def test_bearer_always_supported() -> None:
    f = flows_frame([{"client_kind": "browser_spa", "path": "cdn:terminate"}])
    s = services_frame([{"service_id": "api", "supports_mtls": False, "supports_dpop": False}])
    sup = structural_support(f, s, _as(issues_dpop=False, issues_mtls=False), family="bearer")
    assert isinstance(sup, Support)
    assert sup.enforceable.all()


def test_token_binding_never_enforceable_in_any_view() -> None:
    f, s = random_inventory(200, seed=3)
    for view in ("today", "upgraded"):
        sup = structural_support(f, s, family="token_binding", view=view)
        assert not sup.enforceable.any()


def test_enforceable_is_the_conjunction() -> None:
    f, s = random_inventory(300, seed=4)
    ast = _as()
    for fam in FAMILIES:
        for view in ("today", "upgraded"):
            sup = structural_support(f, s, ast, family=fam, view=view)
            expect = sup.client & sup.authorization_server & sup.resource_server & sup.path
            assert (sup.enforceable == expect).all()
            assert len(sup) == len(f)


def test_as_resolved_per_flow_and_unknown_raises() -> None:
    f = flows_frame([{}, {}])
    f["authorization_server"] = ["entra", "keycloak"]
    ast = pd.DataFrame(
        {"as_id": ["keycloak", "entra"], "issues_dpop": [True, False], "issues_mtls": [True, True]}
    )
    sup = structural_support(f, SVC, ast, family="dpop")
    assert sup.authorization_server.tolist() == [False, True]
    f.loc[1, "authorization_server"] = "okta"
    with pytest.raises(KeyError, match="okta"):
        structural_support(f, SVC, ast, family="dpop")


def test_derived_as_issues_what_flows_use() -> None:
    # No AS table: derived from the flows (an AS issues DPoP when any of its flows uses it).
    f = flows_frame([{"binding": "bearer"}])
    assert not structural_support(f, SVC, family="dpop").authorization_server[0]
    g = flows_frame([{"binding": "bearer"}, {"binding": "dpop"}])
    assert structural_support(g, SVC, family="dpop").authorization_server.all()


def test_unknown_family_view_and_rs() -> None:
    f = flows_frame([{}])
    with pytest.raises(ValueError, match="family"):
        structural_support(f, SVC, family="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="view"):
        structural_support(f, SVC, family="dpop", view="someday")  # type: ignore[arg-type]
    g = flows_frame([{"resource_server": "missing"}])
    with pytest.raises(KeyError, match="missing"):
        structural_support(g, SVC, ALL_AS, family="dpop")


def test_empty_flows() -> None:
    f = flows_frame([{}]).iloc[0:0]
    for fam in FAMILIES:
        assert len(structural_support(f, SVC, ALL_AS, family=fam).enforceable) == 0


def test_vectorised_on_a_million_flows() -> None:
    f, s = random_inventory(1000, seed=5)
    big = f.iloc[np.tile(np.arange(len(f)), 1000)].reset_index(drop=True)
    ast = _as()
    t0 = time.perf_counter()
    for fam in ("mtls", "dpop", "token_binding"):
        structural_support(big, s, ast, family=fam)
    assert time.perf_counter() - t0 < 3.0  # generous: well under a second each on 2 cores
