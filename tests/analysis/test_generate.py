"""generate_inventory: determinism, bundled data, internal consistency and realistic mixes."""

from __future__ import annotations

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


def test_same_inputs_same_bytes() -> None:
    a = generate_inventory("saas", 2000, seed=7)
    b = generate_inventory("saas", 2000, seed=7)
    assert table_bytes(a.flows) == table_bytes(b.flows)
    assert table_bytes(a.services) == table_bytes(b.services)


@pytest.mark.parametrize(("other_profile", "other_seed"), [("saas", 8), ("bank", 7)])
def test_different_seed_or_profile_differs(other_profile: str, other_seed: int) -> None:
    a = generate_inventory("saas", 2000, seed=7)
    b = generate_inventory(other_profile, 2000, seed=other_seed)
    assert table_bytes(a.flows) != table_bytes(b.flows)


def test_bundled_default_is_reproducible() -> None:
    files = bundle_files()
    for name in ("flows.csv", "services.csv"):
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
