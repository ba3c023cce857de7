"""One request path: validation, the hop list -> lab proxy mode mapping, the one-flow inventory,
where each mechanism breaks, and live runs in which the lab and the models agree."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tokenlib.analysis.inventory import load_inventory
from tokenlib.analysis.models import FlowContext, structural_support
from tokenlib.lab.topology import (
    DEFAULT_PARAMETERS,
    AuthorizationServerCapabilities,
    Hop,
    ResourceServerCapabilities,
    Topology,
    TopologyError,
    breakpoints,
    explorer_form,
    lab_mode,
    parse_hops,
    path_deployability,
    path_exposure,
    run_topology,
)

# -- the mapping hop list -> lab proxy mode (no servers) --------------------------------------


@pytest.mark.parametrize(
    ("hops", "strips", "mode"),
    [
        ("", True, "passthrough"),
        ("load_balancer:passthrough", True, "passthrough"),
        ("cdn:passthrough>load_balancer:passthrough", True, "passthrough"),
        ("cdn:terminate", True, "terminate"),
        ("cdn:terminate>api_gateway:terminate_forward_cert", True, "terminate"),
        ("api_gateway:terminate_forward_cert>waf:terminate", True, "terminate"),
        ("api_gateway:terminate_forward_cert", True, "terminate_forward_cert"),
        ("load_balancer:passthrough>api_gateway:terminate_forward_cert", True,
         "terminate_forward_cert"),
        ("api_gateway:terminate_forward_cert", False, "misconfigured_forward"),
        ("cdn:terminate>api_gateway:terminate_forward_cert", False, "terminate"),
        ("load_balancer:passthrough", False, "passthrough"),
    ],
)  # fmt: skip
def test_hop_list_maps_to_the_lab_proxy_mode(hops: str, strips: bool, mode: str) -> None:
    assert lab_mode(hops, strips_client_cert=strips) == mode
    topology = Topology(hops=parse_hops(hops), strips_client_cert=strips)
    assert topology.lab_mode == mode
    assert topology.path == hops


def test_parse_hops_accepts_the_inventory_syntax_and_names_each_bad_hop() -> None:
    assert parse_hops("cdn:terminate > api_gateway:passthrough") == (
        Hop("cdn", "terminate"),
        Hop("api_gateway", "passthrough"),
    )
    assert parse_hops([("waf", "terminate"), "cdn:passthrough"]) == (
        Hop("waf", "terminate"),
        Hop("cdn", "passthrough"),
    )
    with pytest.raises(TopologyError) as err:
        parse_hops("cdn:terminate>router:magic>api_gateway")
    assert len(err.value.problems) == 2
    assert "hop 2" in str(err.value)
    assert "hop 3" in str(err.value)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"CLIENT_KIND": "browser_spa"}, "non-extractable WebCrypto"),
        ({"CLIENT_KIND": "browser_spa", "KEY_STORAGE": "webcrypto_non_extractable",
          "BINDING_TODAY": "mtls"}, "browser app cannot use mTLS"),
        ({"RS_SUPPORTS_BEARER": False}, "refuses bearer tokens"),
        ({"RS_REQUIRES_NONCE": True, "RS_SUPPORTS_DPOP": False}, "nonces are part of DPoP"),
        ({"BINDING_TODAY": "dpop", "KEY_STORAGE": "none"}, "needs a key"),
        ({"BINDING_TODAY": "dpop", "AS_ISSUES_DPOP": False}, "issues no DPoP-bound"),
        ({"BINDING_TODAY": "mtls", "AS_ISSUES_MTLS": False}, "issues no certificate-bound"),
        ({"RS_INSTANCES": 0}, "whole number from 1"),
        ({"RS_INSTANCES": "three"}, "whole number from 1"),
        ({"RS_IAT_PAST_S": 2.5}, "whole number from 1"),
        ({"RS_JTI_STORE": "global"}, "jti store must be one of"),
        ({"CLIENT_KIND": "toaster"}, "client kind must be one of"),
        ({"HOPS": "cdn:terminate>"}, "must be kind:mode"),
        ({"RS_SUPPORTS_MTLS": "maybe"}, "must be true or false"),
        ({"HOPS": ">".join(["cdn:passthrough"] * 9)}, "at most 8 hops"),
    ],
)  # fmt: skip
def test_impossible_combinations_raise_a_clear_message(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(TopologyError) as err:
        Topology.from_parameters(**{**DEFAULT_PARAMETERS, **changes})
    assert words in str(err.value)
    assert err.value.markdown().startswith("**This path cannot exist as described:**")


def test_parameters_are_coerced_and_round_trip() -> None:
    raw = {**DEFAULT_PARAMETERS, "RS_INSTANCES": "4", "RS_SUPPORTS_MTLS": "false", "SEED": 1}
    topology = Topology.from_parameters(**raw)
    assert topology.resource_server.instances == 4
    assert not topology.resource_server.supports_mtls
    assert Topology.from_parameters(**topology.to_parameters()) == topology


def test_every_parameter_combination_either_builds_or_explains() -> None:
    """A grid over the discrete parameters: nothing raises anything but TopologyError, and a
    topology that builds gives a valid inventory and runs every model."""
    rng = np.random.default_rng(7)
    choices: dict[str, list[Any]] = {
        "CLIENT_KIND": ["browser_spa", "mobile_app", "service", "cli_tool", "ai_agent"],
        "HOPS": ["", "cdn:terminate", "api_gateway:terminate_forward_cert",
                 "load_balancer:passthrough", "waf:terminate>reverse_proxy:passthrough"],
        "KEY_STORAGE": ["none", "software", "webcrypto_non_extractable", "hsm_tpm"],
        "BINDING_TODAY": ["bearer", "mtls", "dpop"],
        "RS_SUPPORTS_BEARER": [True, False],
        "RS_SUPPORTS_MTLS": [True, False],
        "RS_SUPPORTS_DPOP": [True, False],
        "RS_INSTANCES": [1, 2, 5],
        "RS_JTI_STORE": ["none", "per_instance", "shared"],
        "RS_REQUIRES_NONCE": [True, False],
        "AS_ISSUES_DPOP": [True, False],
        "AS_ISSUES_MTLS": [True, False],
    }  # fmt: skip
    built = 0
    problems: list[tuple[str, ...]] = []
    for _ in range(60):
        params = {k: v[int(rng.integers(len(v)))] for k, v in choices.items()}
        try:
            topology = Topology.from_parameters(**params)
        except TopologyError as err:
            problems.append(err.problems)
            continue
        built += 1
        exposure = path_exposure(topology)
        assert exposure["usable_share"].between(0, 1).all()
        assert len(path_deployability(topology)) == 4
    assert built >= 10
    assert all(problems), "every refusal says why"


# -- the one-flow inventory -------------------------------------------------------------------


TOPOLOGIES = {
    "default": Topology.from_parameters(**DEFAULT_PARAMETERS),
    "direct_browser_dpop": Topology(
        client_kind="browser_spa",
        key_storage="webcrypto_non_extractable",
        binding="dpop",
        resource_server=ResourceServerCapabilities(
            instances=1, jti_store="shared", requires_nonce=True
        ),
    ),
    "mtls_service_passthrough": Topology(
        client_kind="service",
        hops=parse_hops("load_balancer:passthrough"),
        binding="mtls",
        resource_server=ResourceServerCapabilities(supports_bearer=False),
    ),
    "legacy_rs": Topology(
        client_kind="mobile_app",
        key_storage="platform_keystore",
        hops=parse_hops("api_gateway:terminate_forward_cert"),
        resource_server=ResourceServerCapabilities(supports_mtls=False, supports_dpop=False),
        authorization_server=AuthorizationServerCapabilities(issues_mtls=False),
    ),
}


@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_to_inventory_is_a_valid_one_flow_inventory(name: str) -> None:
    topology = TOPOLOGIES[name]
    flows, services, servers = topology.to_inventory()
    assert (len(flows), len(services), len(servers)) == (1, 1, 1)
    again = load_inventory(flows, services=services, authorization_servers=servers)
    problems = again.report.problems if again.report is not None else ()
    assert [p for p in problems if p.severity == "error"] == []
    assert flows.loc[0, "path"] == topology.path
    assert flows.loc[0, "resource_server"] == services.loc[0, "service_id"]
    assert flows.loc[0, "authorization_server"] == servers.loc[0, "as_id"]
    ctx = FlowContext.build(flows, services, authorization_servers=servers)
    assert ctx.n == 1


@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_breakpoints_follow_structural_support(name: str) -> None:
    topology = TOPOLOGIES[name]
    flows, services, servers = topology.to_inventory()
    bp = breakpoints(topology)
    for fam in ("mtls", "dpop", "token_binding"):
        sup = structural_support(flows, services, servers, family=fam)
        rows = bp[bp["family"] == fam].set_index("component")
        assert bool(rows.loc["client", "ok"]) == bool(sup.client[0])
        assert bool(rows.loc["resource_server", "ok"]) == bool(sup.resource_server[0])
        assert bool(rows.loc["authorization_server", "ok"]) == bool(sup.authorization_server[0])
        hops = bp[(bp["family"] == fam) & (bp["component"] == "hop")]
        assert bool(hops["ok"].all()) == bool(sup.path[0])
        assert (bp.loc[~bp["ok"], "why"] != "").all(), "every break says why"


def test_default_path_breaks_mtls_at_the_cdn_and_dpop_nowhere() -> None:
    bp = breakpoints(TOPOLOGIES["default"])
    mtls = bp[bp["family"] == "mtls"]
    assert mtls.loc[~mtls["ok"], "name"].tolist() == ["CDN"]
    assert bp[bp["family"] == "dpop"]["ok"].all()
    assert not bp[bp["family"] == "token_binding"]["ok"].any()


def test_explorer_form_is_absent_headless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert explorer_form(DEFAULT_PARAMETERS, lambda t, lab: None) is None
    seen: list[Topology] = []
    form = explorer_form(DEFAULT_PARAMETERS, lambda t, lab: seen.append(t), force=True)
    assert form is not None
    button = form.children[-2]
    button.click()
    assert seen == [TOPOLOGIES["default"]]


# -- live runs (real HTTPS on loopback) -------------------------------------------------------


def _cells(results: pd.DataFrame) -> pd.DataFrame:
    return results.set_index(["mechanism", "attack"])


def _lab_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("tokenlib-")}


@pytest.mark.slow
def test_live_all_passthrough_mtls_refuses_a_stolen_bound_token() -> None:
    before = _lab_threads()
    topology = Topology(
        client_kind="service",
        hops=parse_hops("load_balancer:passthrough"),
        resource_server=ResourceServerCapabilities(instances=2, jti_store="shared"),
    )
    results = run_topology(topology)
    cells = _cells(results)
    assert results.attrs["lab_mode"] == "passthrough"
    assert results.attrs["lab_seconds"] < 30
    legit = cells.loc[("mtls", "legitimate")]
    assert legit["lab_accepted"]
    assert legit["model_accepted"]
    assert legit["agree"]
    stolen = cells.loc[("mtls", "captured_token")]
    assert not stolen["lab_accepted"]
    assert not stolen["model_accepted"]
    assert stolen["agree"]
    assert not cells.loc[("mtls", "sent_as_bearer"), "lab_accepted"]
    assert not cells.loc[("mtls", "injected_client_cert"), "lab_accepted"]
    assert cells.loc[("bearer", "captured_token"), "lab_accepted"]
    replay = cells.loc[("dpop_shared_cache", "proof_replay")]
    assert not replay["lab_accepted"]
    assert replay["agree"]
    assert replay["rs_instance"] is pd.NA
    assert results["agree"].dropna().all(), results[["mechanism", "attack", "agree"]]
    assert results["agree"].notna().all()
    assert _lab_threads() <= before, "every server and proxy thread stopped"


@pytest.mark.slow
def test_live_terminating_hop_without_forwarding_breaks_mtls_in_lab_and_model() -> None:
    topology = Topology(
        client_kind="web_backend",
        hops=parse_hops("cdn:terminate>api_gateway:terminate_forward_cert"),
        resource_server=ResourceServerCapabilities(instances=3, jti_store="per_instance"),
    )
    results = run_topology(topology)
    cells = _cells(results)
    assert results.attrs["lab_mode"] == "terminate"
    legit = cells.loc[("mtls", "legitimate")]
    assert not legit["lab_accepted"]
    assert not legit["model_accepted"]
    assert legit["agree"]
    attacks = results[(results["mechanism"] == "mtls") & (results["attack"] != "legitimate")]
    assert attacks["agree"].isna().all(), "mTLS does not run here: nothing to compare"
    dpop = cells.loc[("dpop_per_instance_cache", "legitimate")]
    assert dpop["lab_accepted"]
    assert dpop["agree"]
    replay = cells.loc[("dpop_per_instance_cache", "proof_replay")]
    assert replay["lab_accepted"]
    assert replay["model_accepted"]
    assert replay["rs_instance"] == 1
    assert results["agree"].dropna().all()


@pytest.mark.slow
def test_live_legacy_rs_accepts_bound_tokens_as_bearer_and_a_misconfigured_forwarder() -> None:
    """An RS that checks neither binding: the model says not enforceable (works as bearer),
    the lab's unaware RS accepts the stolen token; a forwarder that passes Client-Cert lets
    an injected header through on an RS that checks mTLS (the model: possible, A3)."""
    legacy = Topology(
        client_kind="mobile_app",
        key_storage="platform_keystore",
        resource_server=ResourceServerCapabilities(
            supports_mtls=False, supports_dpop=False, instances=1, jti_store="none"
        ),
    )
    cells = _cells(run_topology(legacy))
    cells = cells.assign(agree=cells["agree"].astype(object))
    assert cells.loc[("mtls", "legitimate"), "lab_outcome"].startswith("accepted, but as a bearer")
    assert cells.loc[("mtls", "captured_token"), "lab_accepted"]
    assert cells.loc[("mtls", "captured_token"), "agree"] is True
    # a DPoP request is refused by an RS without DPoP, the same token as bearer is not
    assert not cells.loc[("dpop_no_cache", "legitimate"), "lab_accepted"]
    assert cells.loc[("dpop_no_cache", "legitimate"), "agree"] is True
    assert cells.loc[("dpop_no_cache", "sent_as_bearer"), "lab_accepted"]
    assert cells.loc[("dpop_no_cache", "sent_as_bearer"), "agree"] is True
    assert cells.loc[("dpop_no_cache", "captured_token"), "agree"] is pd.NA
    forwarding = Topology(
        client_kind="service",
        hops=parse_hops("api_gateway:terminate_forward_cert"),
        strips_client_cert=False,
        resource_server=ResourceServerCapabilities(instances=1, jti_store="shared"),
    )
    results = run_topology(forwarding)
    injected = _cells(results).loc[("mtls", "injected_client_cert")]
    assert results.attrs["lab_mode"] == "misconfigured_forward"
    assert injected["lab_accepted"]
    assert injected["model_accepted"] is pd.NA
    assert injected["agree"]
    assert results["agree"].dropna().all()
