"""generate_inventory: determinism, bundled data, internal consistency and realistic mixes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib.analysis import profiles as P
from tokenlib.analysis._inventory_cli import bundle_files
from tokenlib.analysis._synth import DPOP_PRESETS
from tokenlib.analysis.inventory import (
    PROFILES,
    generate_inventory,
    load_inventory,
    path_features,
    table_bytes,
)
from tokenlib.analysis.reference import load_reference

DATA = Path(__file__).resolve().parents[2] / "data"
N = 6000


@pytest.fixture(scope="module", params=sorted(PROFILES))
def generated(request: pytest.FixtureRequest) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    inv = generate_inventory(request.param, N, seed=42)
    return request.param, inv.flows, inv.services


@pytest.fixture(scope="module", params=sorted(PROFILES))
def generated_servers(request: pytest.FixtureRequest) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    inv = generate_inventory(request.param, N, seed=42)
    return request.param, inv.flows, inv.authorization_servers


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_same_inputs_same_bytes(profile: str) -> None:
    a = generate_inventory(profile, 2000, seed=7)
    b = generate_inventory(profile, 2000, seed=7)
    assert table_bytes(a.flows) == table_bytes(b.flows)
    assert table_bytes(a.services) == table_bytes(b.services)
    assert table_bytes(a.authorization_servers) == table_bytes(b.authorization_servers)


@pytest.mark.parametrize(("other_profile", "other_seed"), [("saas", 8), ("bank", 7)])
def test_different_seed_or_profile_differs(other_profile: str, other_seed: int) -> None:
    a = generate_inventory("saas", 2000, seed=7)
    b = generate_inventory(other_profile, 2000, seed=other_seed)
    assert table_bytes(a.flows) != table_bytes(b.flows)


def test_bundled_default_is_reproducible() -> None:
    files = bundle_files()
    for name in ("flows.csv", "services.csv", "authorization_servers.csv"):
        assert (DATA / name).read_bytes() == files[name], (
            f"data/{name} differs from the generator: run python -m tokenlib.analysis.inventory"
            " bundle (and bump GENERATOR_VERSION if the change is intended)"
        )


def test_default_size() -> None:
    inv = load_inventory("default")
    assert 2000 <= len(inv.flows) <= 10000
    assert 100 <= len(inv.services) <= 300


@pytest.mark.parametrize("n", [99, 1_000_001, 0])
def test_size_bounds(n: int) -> None:
    with pytest.raises(ValueError, match="between 100 and 1000000"):
        generate_inventory("saas", n)


def test_smallest_size_and_bad_arguments() -> None:
    assert len(generate_inventory("public_sector", 100, seed=0).flows) == 100
    with pytest.raises(ValueError, match="unknown profile 'telco'"):
        generate_inventory("telco", 100)
    with pytest.raises(TypeError):
        generate_inventory("saas", 100.0)  # type: ignore[arg-type]


def test_generated_output_passes_the_validator(
    generated: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    _, flows, services = generated
    inv = load_inventory(flows, services=services)
    assert inv.report is not None
    assert not inv.report.problems, inv.report
    pd.testing.assert_frame_equal(inv.flows, flows)
    pd.testing.assert_frame_equal(inv.services, services)


def test_generated_authorization_servers_pass_the_validator(
    generated_servers: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    _, flows, servers = generated_servers
    inv = load_inventory(flows, authorization_servers=servers)
    assert inv.report is not None
    assert not inv.report.problems, inv.report
    assert not inv.report.authorization_servers_derived
    pd.testing.assert_frame_equal(inv.authorization_servers, servers)


def test_bindings_only_on_authorization_servers_that_issue_them(
    generated_servers: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    _, f, servers = generated_servers
    a = servers.set_index("as_id")
    assert a.index.is_unique
    assert set(f["authorization_server"]) <= set(a.index)
    on = a.loc[f["authorization_server"]].reset_index(drop=True)
    dpop = (f["binding"] == "dpop").to_numpy()
    mtls = (f["binding"] == "mtls").to_numpy()
    assert dpop.any()
    assert mtls.any()
    assert on.loc[dpop, "issues_dpop"].all()  # a dpop flow is never on a non-DPoP server
    assert on.loc[mtls, "issues_mtls"].all()
    exchange = f["token_exchange"].to_numpy()
    assert exchange.any()
    assert f.loc[exchange, "forwards_token"].all()
    assert on.loc[exchange, "supports_token_exchange"].all()
    share = exchange.sum() / (f["forwards_token"].to_numpy() & on["supports_token_exchange"]).sum()
    assert 0.05 < share < 0.7
    # every client registers with exactly one server
    assert (f.groupby("client_id")["authorization_server"].nunique() == 1).all()


@pytest.mark.parametrize(
    ("profile", "bound_product", "bearer_only_product"),
    [
        ("saas", "Keycloak 26.4", "Microsoft Entra ID"),
        ("bank", "Keycloak 26.4 (FAPI 2.0 client policies)", "in-house OAuth 2.0 server (legacy)"),
        ("public_sector", "Keycloak 26.4", "Microsoft Entra ID"),
    ],
)
def test_authorization_servers_are_realistic_per_profile(
    profile: str, bound_product: str, bearer_only_product: str
) -> None:
    inv = generate_inventory(profile, N, seed=42)
    a = inv.authorization_servers.set_index("product")
    assert 2 <= len(a) <= 3
    assert a.loc[bound_product, ["issues_dpop", "issues_mtls", "binds_refresh_tokens"]].all()
    capabilities = ["issues_dpop", "issues_mtls", "supports_token_exchange"]
    assert not a.loc[bearer_only_product, capabilities].any()
    bearer_only = inv.authorization_servers.loc[
        inv.authorization_servers["product"] == bearer_only_product, "as_id"
    ].iloc[0]
    on_it = inv.flows["authorization_server"] == bearer_only
    assert on_it.any()
    assert (inv.flows.loc[on_it, "binding"] == "bearer").all()
    if profile == "public_sector":
        assert on_it.mean() > 0.7  # standardised on Entra ID


def test_authorization_servers_are_drawn_last() -> None:
    """Changing a profile's servers changes only the two new flow columns."""
    base = generate_inventory("bank", 1500, seed=4)
    single = dataclasses.replace(
        PROFILES["bank"],
        authorization_servers=P.DEFAULT_AUTHORIZATION_SERVERS,
        token_exchange_share=0.0,
    )
    other = generate_inventory(single, 1500, seed=4)
    new = ["authorization_server", "token_exchange"]
    pd.testing.assert_frame_equal(base.flows.drop(columns=new), other.flows.drop(columns=new))
    pd.testing.assert_frame_equal(base.services, other.services)
    assert set(other.flows["authorization_server"]) == {"as-default"}
    assert not other.flows["token_exchange"].any()


def test_profile_without_a_dpop_issuer_is_rejected() -> None:
    no_dpop = dataclasses.replace(
        PROFILES["saas"],
        authorization_servers=tuple(
            dataclasses.replace(a, issues_dpop=False)
            for a in PROFILES["saas"].authorization_servers
        ),
    )
    with pytest.raises(ValueError, match="no authorization server issues dpop"):
        generate_inventory(no_dpop, 500, seed=1)


def test_cross_field_invariants(generated: tuple[str, pd.DataFrame, pd.DataFrame]) -> None:
    _, f, services = generated
    spa = f["client_kind"] == "browser_spa"
    assert (f.loc[spa, "cert_management"] == "none").all()
    assert (f.loc[spa, "binding"] != "mtls").all()
    assert f.loc[spa, "key_storage"].isin(["webcrypto_non_extractable", "none"]).all()
    public = f["client_type"] == "public"
    assert (f.loc[public, "grant_type"] != "client_credentials").all()
    feats = path_features(f)
    mtls_enforced = (f["binding"] == "mtls") & f["binding_enforced"]
    assert (feats.loc[mtls_enforced, "n_terminate_no_forward"] == 0).all()
    assert not f.loc[f["binding"] == "bearer", "binding_enforced"].any()
    assert ((f["refresh_token_lifetime_s"] == 0) == (f["refresh_token"] == "none")).all()
    assert (f.loc[f["binding"] == "mtls", "cert_management"] != "none").all()
    assert (f.loc[f["binding"] == "dpop", "key_storage"] != "none").all()
    human_kinds = f["client_kind"].isin(["browser_spa", "mobile_app"])
    assert (f.loc[human_kinds, "actor"] == "human").all()
    svc = services.set_index("service_id")
    for b in ("bearer", "mtls", "dpop"):
        rs = f.loc[f["binding"] == b, "resource_server"]
        assert svc.loc[rs, f"supports_{b}"].all()
    down = svc.loc[f.loc[f["forwards_token"], "resource_server"], "downstream"]
    assert (down != "").all()


def test_bindings_and_paths_are_all_represented(
    generated: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    name, f, _ = generated
    counts = f["binding"].value_counts()
    assert counts["bearer"] > counts["mtls"] > 0
    assert counts["dpop"] > 0
    paths = path_features(f)["client_path"].value_counts()
    assert (paths > 0).all()
    if name == "bank":
        assert counts["mtls"] + counts["dpop"] > 0.2 * len(f)


def test_services_form_a_dag_with_realistic_fanout(
    generated: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    name, _, services = generated
    position = {s: i for i, s in enumerate(services["service_id"])}
    edges = [
        (i, position[t])
        for i, d in enumerate(services["downstream"])
        for t in str(d).split(";")
        if t
    ]
    assert edges
    assert all(j > i for i, j in edges)
    out_degree = np.bincount([i for i, _ in edges], minlength=len(services))
    callers = out_degree[out_degree > 0]
    assert 1.3 <= callers.mean() <= 3.5, (name, callers.mean())
    leaves = out_degree == 0
    sens = services["sensitivity"].to_numpy()
    assert sens[leaves].mean() > sens[~leaves].mean() + 0.5
    assert (services.loc[services["internet_facing"], "downstream"] != "").mean() > 0.8


def test_service_replay_settings_come_from_presets(
    generated: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    _, _, s = generated
    pairs = set(zip(s["iat_past_s"], s["iat_future_s"], strict=True))
    assert pairs <= set(DPOP_PRESETS.values())
    assert (s.loc[~s["supports_dpop"], "jti_cache"] == "none").all()
    assert not s.loc[~s["supports_dpop"], "requires_nonce"].any()
    assert (s["instances"] >= 1).all()


def test_dpop_presets_match_the_reference_table() -> None:
    ref = load_reference("dpop_implementations").set_index("implementation")
    for preset, (past, future) in DPOP_PRESETS.items():
        row = ref.loc[f"preset {preset}"]
        assert (row["iat_past_s"], row["iat_future_s"]) == (past, future)
        assert row["status"] == "derived"
    keycloak = ref.loc["Keycloak"]
    assert (keycloak["iat_past_s"], keycloak["iat_future_s"]) == DPOP_PRESETS["tight"]


def test_lifetimes_are_drawn_from_sourced_anchors(
    generated: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    name, f, _ = generated
    prof = PROFILES[name]
    at = f["access_token_lifetime_s"].to_numpy()
    ok = np.zeros(len(at), dtype=bool)
    for low, high, _ in prof.at_human + prof.at_workload:
        ok |= (at >= low) & (at <= high)
    assert ok.all()
    rt = f.loc[f["refresh_token"] != "none", "refresh_token_lifetime_s"]
    allowed = {a[0] for a in prof.rt_public + prof.rt_confidential}
    assert set(rt) <= allowed
    ref = set(load_reference("token_lifetimes")["value_s"].dropna().astype(int))
    fixed = {a[0] for a in prof.at_human + prof.at_workload if a[0] == a[1]}
    assert fixed <= ref | {P.CUSTOM_SHORT_AT[0]}
    assert allowed <= ref


def test_entra_lifetimes_average_75_minutes() -> None:
    f = generate_inventory("public_sector", 20000, seed=3).flows
    entra = f["access_token_lifetime_s"].between(3600, 5400) & (
        f["access_token_lifetime_s"] != 3600
    )
    assert abs(f.loc[entra, "access_token_lifetime_s"].mean() - 4500) < 60


def test_exposure_channels_by_client_kind(
    generated: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    _, f, _ = generated
    channels = f["exposure_channels"]
    browser_storage = channels.str.contains("browser_storage")
    assert set(f.loc[browser_storage, "client_kind"]) == {"browser_spa"}
    partner = f["client_kind"] == "partner_integrator"
    assert channels[partner].str.contains("integrator_storage").mean() > 0.8
    proxy = channels.str.contains("proxy_logs")
    assert (path_features(f).loc[proxy, "n_terminating"] > 0).all()


def test_profiles_are_documented() -> None:
    assert len(PROFILES) >= 3
    for prof in PROFILES.values():
        assert len(prof.description) > 200
        assert "[S" in prof.description
        assert "[A" in prof.description
        assert abs(sum(prof.client_kind_mix.values()) - 1.0) < 1e-9
        assert abs(sum(prof.environment_mix.values()) - 1.0) < 1e-9


@settings(max_examples=8, deadline=None)
@given(
    profile=st.sampled_from(sorted(PROFILES)),
    n=st.integers(min_value=100, max_value=1500),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_any_generated_inventory_is_valid(profile: str, n: int, seed: int) -> None:
    inv = generate_inventory(profile, n, seed=seed)
    assert len(inv.flows) == n
    assert inv.flows["flow_id"].is_unique
    loaded = load_inventory(inv.flows, services=inv.services)
    assert loaded.report is not None
    assert not loaded.report.problems, loaded.report
    servers = inv.authorization_servers.set_index("as_id")
    on = servers.loc[inv.flows["authorization_server"]].reset_index(drop=True)
    assert on.loc[(inv.flows["binding"] == "dpop").to_numpy(), "issues_dpop"].all()
    assert on.loc[(inv.flows["binding"] == "mtls").to_numpy(), "issues_mtls"].all()
    with_servers = load_inventory(
        inv.flows, services=inv.services, authorization_servers=inv.authorization_servers
    )
    assert with_servers.report is not None
    assert not with_servers.report.problems, with_servers.report
