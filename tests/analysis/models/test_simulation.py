"""Tests for tokenlib.analysis.models.simulation: the discrete-event check of the closed form.

(a) answers known by hand, independent of the closed form; (b) the cross-check: the simulation
agrees with ``tokenlib.analysis.models.replay_windows`` on every mechanism x scenario x view
cell of a hand-built inventory within sampling error.
"""

from __future__ import annotations

import ast
import inspect
import math
from typing import Any

import pandas as pd
import pytest

from tokenlib.analysis.models import simulation
from tokenlib.analysis.models.mechanisms import MECHANISMS, SCENARIOS, VIEWS
from tokenlib.analysis.models.simulation import SIMULATION_COLUMNS, simulate
from tokenlib.analysis.params import ModelParameters

try:
    from tests.analysis.conftest_models import (
        authorization_servers_frame,
        flows_frame,
        services_frame,
    )
except ImportError:  # pragma: no cover - depends on how pytest sets sys.path
    from conftest_models import (  # type: ignore[no-redef]
        authorization_servers_frame,
        flows_frame,
        services_frame,
    )

P = ModelParameters.from_reference()
AS_ALL = authorization_servers_frame(
    [
        {
            "as_id": "as-default",
            "issues_dpop": True,
            "issues_mtls": True,
            "binds_refresh_tokens": True,
        }
    ]
)
N = 4000


def _one(
    flow: dict[str, Any],
    service: dict[str, Any],
    mechanism: str,
    scenario: str,
    *,
    params: ModelParameters = P,
    view: str = "today",
    n: int = N,
) -> pd.Series:
    flows = flows_frame([{"resource_server": "api", **flow}])
    services = services_frame([{"service_id": "api", **service}])
    out = simulate(
        flows,
        services,
        params,
        mechanism=mechanism,
        scenario=scenario,
        view=view,
        authorization_servers=AS_ALL,
        n=n,
    )
    return out.iloc[0]


DPOP_ENFORCED = {"binding": "dpop", "binding_enforced": True, "access_token_lifetime_s": 86400}


# ---- (a) answers known by hand ---------------------------------------------------------


def test_columns_and_determinism() -> None:
    flows = flows_frame([{}, {"client_kind": "browser_spa"}])
    services = services_frame([{"service_id": "api"}])
    a = simulate(flows, services, mechanism="dpop_nonce", scenario="live_client_compromise")
    b = simulate(flows, services, mechanism=MECHANISMS[5], scenario=SCENARIOS[2])
    assert tuple(a.columns) == SIMULATION_COLUMNS
    assert list(a["flow_id"]) == ["f0", "f1"]
    pd.testing.assert_frame_equal(a, b)


def test_bearer_at_rest_without_revocation_is_half_the_lifetime() -> None:
    params = P.replace(rho_jwt=0.0, rho_introspection=0.0)
    for lifetime in (300, 3600, 86400):
        r = _one({"access_token_lifetime_s": lifetime}, {}, "bearer", "at_rest_copy", params=params)
        assert r["sim_p_replay"] == 1.0
        assert abs(r["sim_expected_window_s"] - lifetime / 2) < 4 * r["se_expected_window_s"]
        assert r["sim_max_replays"] == math.inf


def test_revocation_caps_the_window() -> None:
    # rho = 1, D = L/4: W = min(R, D), E = D - D^2 / (2 L) = 0.21875 L.
    lifetime = 4000.0
    params = P.replace(rho_jwt=1.0, revocation_delay_s=lifetime / 4)
    r = _one({"access_token_lifetime_s": 4000}, {}, "bearer", "at_rest_copy", params=params)
    assert abs(r["sim_expected_window_s"] - 0.21875 * lifetime) < 4 * r["se_expected_window_s"]


@pytest.mark.parametrize(
    ("mechanism", "cache", "instances", "expected"),
    [
        ("dpop_shared_cache", "none", 3, 0.0),
        ("dpop_per_instance_cache", "none", 3, 2.0),
        ("dpop_per_instance_cache", "none", 5, 4.0),
        ("dpop_per_instance_cache", "none", 1, 0.0),
        ("dpop_no_cache", "shared", 3, math.inf),
        ("dpop_nonce", "shared", 3, 0.0),
        ("dpop_nonce", "per_instance", 3, 2.0),
        ("dpop_nonce", "none", 3, math.inf),
        ("dpop_nonce_shared_cache", "none", 3, 0.0),
    ],
)
def test_replays_of_one_captured_proof(
    mechanism: str, cache: str, instances: int, expected: float
) -> None:
    """RFC 9449 §11.1: the jti store, not the nonce, sets how often one proof is accepted."""
    service = {"instances": instances, "jti_cache": cache, "requires_nonce": True}
    r = _one(DPOP_ENFORCED, service, mechanism, "in_transit_token_and_proof", n=1000)
    assert r["sim_max_replays"] == expected


def test_replay_probability_of_a_captured_proof_follows_the_store() -> None:
    """Shared store (or a single instance): usable only when the attacker is first (A11)."""
    for mechanism, instances, expected in (
        ("dpop_shared_cache", 3, P.p_attacker_first),
        ("dpop_per_instance_cache", 1, P.p_attacker_first),
        ("dpop_per_instance_cache", 3, 1.0),
        ("dpop_no_cache", 1, 1.0),
    ):
        r = _one(DPOP_ENFORCED, {"instances": instances}, mechanism, "in_transit_token_and_proof")
        tol = 4 * math.sqrt(expected * (1 - expected) / N) + 1e-3
        assert abs(r["sim_p_replay"] - expected) <= tol, (mechanism, instances, r["sim_p_replay"])


def test_nonce_bounds_the_window_of_a_proof_replayed_on_three_instances() -> None:
    """The issue's example: 3 instances, per-instance jti stores, nonces required."""
    service = {"instances": 3, "jti_cache": "per_instance", "requires_nonce": True}
    nonce = _one(DPOP_ENFORCED, service, "dpop_nonce", "in_transit_token_and_proof")
    assert nonce["sim_max_replays"] == 2.0
    assert nonce["sim_p_replay"] == 1.0
    # W = min(T_n - delta, R): about T_n - A8 / 2 = 150 s with a day-long token, never above T_n.
    expected = P.nonce_lifetime_s - P.proof_leak_delay_max_s / 2
    assert abs(nonce["sim_expected_window_s"] - expected) < 4 * nonce["se_expected_window_s"] + 0.5
    assert nonce["sim_expected_window_s"] <= P.nonce_lifetime_s
    iat = _one(DPOP_ENFORCED, service, "dpop_per_instance_cache", "in_transit_token_and_proof")
    assert abs(iat["sim_expected_window_s"] - 30.0) < 4 * iat["se_expected_window_s"] + 0.5
    # A shorter nonce lifetime shortens the window one-for-one.
    short = _one(
        DPOP_ENFORCED,
        service,
        "dpop_nonce",
        "in_transit_token_and_proof",
        params=P.replace(nonce_lifetime_s=90.0),
    )
    assert abs(short["sim_expected_window_s"] - 60.0) < 4 * short["se_expected_window_s"] + 0.5


def test_live_compromise_with_nonces_stops_pregenerated_proofs() -> None:
    # Not a browser (no new flow), key in an HSM: W = min(Uniform(0, T_n), R) unless the key
    # was taken (A4c): E ~ (1 - p_hsm) * T_n / 2 + p_hsm * E[R].
    flow = {**DPOP_ENFORCED, "key_storage": "hsm_tpm"}
    params = P.replace(rho_jwt=0.0)
    r = _one(flow, {"requires_nonce": True}, "dpop_nonce", "live_client_compromise", params=params)
    expected = (1 - P.p_key_hsm) * P.nonce_lifetime_s / 2 + P.p_key_hsm * 86400 / 2
    assert abs(r["sim_expected_window_s"] - expected) < 4 * r["se_expected_window_s"]
    plain = _one(flow, {}, "dpop_shared_cache", "live_client_compromise", params=params)
    assert abs(plain["sim_expected_window_s"] - 43200) < 4 * plain["se_expected_window_s"]
    assert r["sim_max_replays"] == plain["sim_max_replays"] == math.inf


def test_issuer_key_window_is_s2_for_every_mechanism() -> None:
    flows = flows_frame([{}, {"client_kind": "browser_spa", "binding": "dpop"}])
    services = services_frame([{"service_id": "api"}])
    for m in MECHANISMS:
        for view in VIEWS:
            out = simulate(
                flows, services, mechanism=m, scenario="issuer_key_compromise", view=view, n=200
            )
            assert (out["sim_expected_window_s"] == P.issuer_key_window_s).all()
            assert (out["sim_p_replay"] == 1.0).all()
            assert (out["sim_max_replays"] == math.inf).all()


def test_rs_without_dpop_scores_dpop_as_bearer_today() -> None:
    flows = flows_frame(
        [
            {"binding": "dpop", "binding_enforced": True, "exposure_channels": "config_files"},
            {"client_kind": "mobile_app", "client_type": "public", "refresh_token": "rotating"},
        ]
    )
    services = services_frame([{"service_id": "api", "supports_dpop": False, "instances": 3}])
    for scen in SCENARIOS:
        bearer = simulate(
            flows, services, mechanism="bearer", scenario=scen, authorization_servers=AS_ALL
        )
        for m in MECHANISMS:
            if m.family != "dpop":
                continue
            got = simulate(
                flows, services, mechanism=m, scenario=scen, authorization_servers=AS_ALL
            )
            pd.testing.assert_frame_equal(got, bearer, obj=f"{m.id} x {scen.id}")
        upgraded = simulate(
            flows,
            services,
            mechanism="dpop_shared_cache",
            scenario=scen,
            view="upgraded",
            authorization_servers=AS_ALL,
        )
        if scen.id in ("at_rest_copy", "in_transit_token_and_proof"):
            assert (upgraded["sim_max_replays"] == 0).all()


def test_token_binding_is_bearer_in_both_views() -> None:
    """No client supports Token Binding today, so even an upgraded RS cannot enforce it."""
    flows = flows_frame([{"client_kind": "web_backend", "exposure_channels": "har_files"}])
    services = services_frame([{"service_id": "api"}])
    for view in VIEWS:
        for scen in ("at_rest_copy", "in_transit_token_and_proof"):
            tb = simulate(flows, services, mechanism="token_binding", scenario=scen, view=view)
            bearer = simulate(flows, services, mechanism="bearer", scenario=scen, view=view)
            pd.testing.assert_frame_equal(tb, bearer)


def test_mtls_key_theft_and_header_injection_are_independent_events() -> None:
    """at rest, enforced mTLS, software key in a config file (A4b = 0.8), one hop forwarding
    the certificate with A3 = 0.5: the token alone works in 1 - 0.2 * 0.5 = 0.9 of thefts."""
    flow = {
        "binding": "mtls",
        "binding_enforced": True,
        "key_storage": "software",
        "exposure_channels": "config_files",
        "path": "api_gateway:terminate_forward_cert",
    }
    r = _one(flow, {}, "mtls", "at_rest_copy", params=P.replace(p_inj=0.5))
    assert abs(r["sim_p_replay"] - 0.9) < 4 * math.sqrt(0.09 / N)
    assert r["sim_max_replays"] == 0.0
    # A hop that terminates TLS without forwarding the certificate: mTLS is not enforceable.
    behind = _one({**flow, "path": "cdn:terminate"}, {}, "mtls", "at_rest_copy")
    assert behind["sim_p_replay"] == 1.0
    assert behind["sim_max_replays"] == math.inf


def test_rs_refusing_bearer_enforces_the_binding() -> None:
    flow = {"exposure_channels": "app_logs", "key_storage": "hsm_tpm"}
    r = _one(flow, {"supports_bearer": False}, "mtls", "at_rest_copy")
    assert r["sim_p_replay"] == 0.0
    soft = _one(flow, {"supports_bearer": True}, "mtls", "at_rest_copy")
    assert abs(soft["sim_p_replay"] - (1 - P.e_rs)) < 4 * math.sqrt(0.09 / N)


def test_authorization_server_gates_dpop() -> None:
    flows = flows_frame([{"authorization_server": "entra", "exposure_channels": "har_files"}])
    services = services_frame([{"service_id": "api"}])
    entra = authorization_servers_frame([{"as_id": "entra", "issues_mtls": True}])
    out = simulate(
        flows,
        services,
        mechanism="dpop_shared_cache",
        scenario="in_transit_token_and_proof",
        view="upgraded",
        authorization_servers=entra,
    )
    assert out["sim_p_replay"].iloc[0] == 1.0
    assert out["sim_max_replays"].iloc[0] == math.inf
    # Derived AS table: it issues DPoP only when one of its flows already uses DPoP.
    derived = simulate(
        flows, services, mechanism="dpop_shared_cache", scenario="in_transit_token_and_proof"
    )
    assert derived["sim_max_replays"].iloc[0] == math.inf


def test_refresh_token_rotation_by_hand() -> None:
    """Public client, bearer, no revocation: no rotation L + A_RT/2; rotation
    (1 - A5) * 1.5 L + A5 * (L + A_RT / 2)."""
    params = P.replace(rho_introspection=0.0)
    flow = {
        "client_kind": "mobile_app",
        "client_type": "public",
        "grant_type": "authorization_code",
        "refresh_token": "rotating",
        "refresh_token_lifetime_s": 86400,
    }
    static = _one(flow, {}, "bearer", "refresh_token_theft_no_rotation", params=params)
    assert (
        abs(static["sim_expected_window_s"] - (3600 + 43200)) < 4 * static["se_expected_window_s"]
    )
    rot = _one(flow, {}, "bearer", "refresh_token_theft_rotation", params=params)
    expected = (1 - P.pi_persist) * 5400 + P.pi_persist * (3600 + 43200)
    assert abs(rot["sim_expected_window_s"] - expected) < 4 * rot["se_expected_window_s"]
    none = _one({}, {}, "bearer", "refresh_token_theft_rotation")
    assert none["sim_p_replay"] == 0.0


def test_rejects_unknown_inputs() -> None:
    flows = flows_frame([{}])
    services = services_frame([{"service_id": "api"}])
    with pytest.raises(ValueError, match="unknown mechanism"):
        simulate(flows, services, mechanism="nope", scenario="at_rest_copy")
    with pytest.raises(ValueError, match="unknown view"):
        simulate(flows, services, mechanism="bearer", scenario="at_rest_copy", view="x")
    with pytest.raises(KeyError):
        simulate(
            flows_frame([{"resource_server": "zzz"}]),
            services,
            mechanism="bearer",
            scenario="at_rest_copy",
        )


def test_shares_no_code_with_the_closed_form() -> None:
    tree = ast.parse(inspect.getsource(simulation))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    ours = {m for m in imported if m.startswith("tokenlib")}
    assert ours == {"tokenlib.analysis.models.mechanisms", "tokenlib.analysis.params"}


# ---- (b) the cross-check against the closed form --------------------------------------

CROSS_FLOWS = [
    {  # f0 browser SPA behind CDN + gateway (both terminate), rotating RT
        "client_kind": "browser_spa",
        "actor": "human",
        "client_type": "public",
        "grant_type": "authorization_code",
        "resource_server": "rs_a",
        "path": "cdn:terminate>api_gateway:terminate",
        "key_storage": "webcrypto_non_extractable",
        "refresh_token": "rotating",
        "refresh_token_lifetime_s": 86400,
        "exposure_channels": "browser_storage;app_logs",
        "access_token_lifetime_s": 900,
    },
    {  # f1 mobile app using DPoP today, RS with 3 instances, per-instance stores, nonces
        "client_kind": "mobile_app",
        "actor": "human",
        "client_type": "public",
        "grant_type": "authorization_code",
        "resource_server": "rs_b",
        "path": "load_balancer:passthrough",
        "key_storage": "platform_keystore",
        "refresh_token": "static",
        "refresh_token_lifetime_s": 2592000,
        "binding": "dpop",
        "binding_enforced": True,
        "exposure_channels": "proxy_logs;crash_dumps",
    },
    {  # f2 web backend with enforced mTLS through a gateway forwarding the certificate
        "client_kind": "web_backend",
        "grant_type": "authorization_code",
        "resource_server": "rs_c",
        "path": "api_gateway:terminate_forward_cert",
        "key_storage": "software",
        "cert_management": "automated_pki",
        "refresh_token": "static",
        "refresh_token_lifetime_s": 0,
        "token_format": "opaque",
        "binding": "mtls",
        "binding_enforced": True,
        "exposure_channels": "config_files;har_files",
    },
    {  # f3 service on an RS that refuses bearer tokens, HSM key, SPIFFE certificates
        "client_kind": "service",
        "resource_server": "rs_d",
        "key_storage": "hsm_tpm",
        "cert_management": "spiffe",
        "exposure_channels": "app_logs",
    },
    {  # f4 batch job using DPoP without enforcement, short token
        "client_kind": "batch_job",
        "resource_server": "rs_b",
        "cert_management": "manual",
        "binding": "dpop",
        "binding_enforced": False,
        "exposure_channels": "ci_secrets;proxy_logs",
        "access_token_lifetime_s": 300,
    },
    {  # f5 partner integrator on an AS that issues no bound tokens, RS without support
        "client_kind": "partner_integrator",
        "grant_type": "authorization_code",
        "resource_server": "rs_e",
        "authorization_server": "as-entra",
        "path": "waf:terminate>reverse_proxy:passthrough",
        "refresh_token": "rotating",
        "refresh_token_lifetime_s": 604800,
        "exposure_channels": "integrator_storage",
    },
    {  # f6 AI agent, mTLS not enforced, two forwarding hops, introspecting RS
        "client_kind": "ai_agent",
        "resource_server": "rs_a",
        "path": "cdn:terminate_forward_cert>service_mesh_sidecar:terminate_forward_cert",
        "rs_introspects": True,
        "binding": "mtls",
        "binding_enforced": False,
        "exposure_channels": "har_files",
    },
    {  # f7 CLI tool, public, day-long token, RS with one instance, nonces, default iat window
        "client_kind": "cli_tool",
        "actor": "human",
        "client_type": "public",
        "grant_type": "device_code",
        "resource_server": "rs_f",
        "key_storage": "software",
        "refresh_token": "static",
        "refresh_token_lifetime_s": 86400,
        "access_token_lifetime_s": 86400,
        "exposure_channels": "",
    },
    {  # f8 browser SPA with DPoP, RS without a jti store on 3 instances
        "client_kind": "browser_spa",
        "actor": "human",
        "client_type": "public",
        "grant_type": "authorization_code",
        "resource_server": "rs_c",
        "key_storage": "webcrypto_non_extractable",
        "binding": "dpop",
        "binding_enforced": True,
        "refresh_token": "rotating",
        "refresh_token_lifetime_s": 0,
        "exposure_channels": "browser_storage;har_files",
    },
    {  # f9 mTLS service behind a terminating gateway; RS with DPoP only, shared store, nonces
        "client_kind": "service",
        "resource_server": "rs_g",
        "path": "api_gateway:terminate",
        "cert_management": "automated_pki",
        "binding": "mtls",
        "binding_enforced": True,
        "exposure_channels": "config_files;proxy_logs",
        "access_token_lifetime_s": 600,
    },
]
CROSS_SERVICES = [
    {"service_id": "rs_a", "instances": 1, "jti_cache": "shared"},
    {
        "service_id": "rs_b",
        "instances": 3,
        "jti_cache": "per_instance",
        "requires_nonce": True,
        "iat_past_s": 25,
    },
    {"service_id": "rs_c", "instances": 3, "jti_cache": "none", "iat_past_s": 300},
    {"service_id": "rs_d", "supports_bearer": False, "supports_dpop": False},
    {"service_id": "rs_e", "supports_dpop": False, "supports_mtls": False},
    {
        "service_id": "rs_f",
        "instances": 1,
        "jti_cache": "per_instance",
        "requires_nonce": True,
        "iat_past_s": 0,
    },
    {
        "service_id": "rs_g",
        "instances": 3,
        "jti_cache": "shared",
        "requires_nonce": True,
        "supports_mtls": False,
    },
]
CROSS_AS = [
    {"as_id": "as-default", "issues_dpop": True, "issues_mtls": True, "binds_refresh_tokens": True},
    {"as_id": "as-entra"},
]
CROSS_N = 4000
Z = 4.0
# Relative slack on mean windows: a window that is capped (e.g. by D) in most trials and
# shorter in ~1% of them has a sample standard error that underestimates the true one.
REL_W = 0.005


def _cross_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return (
        flows_frame(CROSS_FLOWS),
        services_frame(CROSS_SERVICES),
        authorization_servers_frame(CROSS_AS),
    )


@pytest.fixture(scope="module")
def closed_form() -> dict[tuple[str, str, str], pd.DataFrame]:
    """The closed form per (view, mechanism, scenario), indexed by flow id."""
    try:
        from tokenlib.analysis.models import replay_windows
    except ImportError:  # pragma: no cover - the closed form lives beside this module
        pytest.skip("tokenlib.analysis.models.replay_windows is not available")
    flows, services, servers = _cross_frames()
    out = {}
    for view in VIEWS:
        table = replay_windows(flows, services, P, view=view, authorization_servers=servers)
        table = table.assign(
            flow_id=table["flow_id"].astype(str),
            mechanism=table["mechanism"].astype(str),
            scenario=table["scenario"].astype(str),
        )
        for (m, s), cell in table.groupby(["mechanism", "scenario"], sort=False):
            out[(view, str(m), str(s))] = cell.set_index("flow_id")
    return out


# Cells where the simulation follows MODELS.md and the closed form does not (see the final
# report of issue 8 point 10); checked separately below so every other metric of these cells
# is still compared.
def _disagreements(sim: pd.DataFrame, cf: pd.DataFrame, mechanism: str, scenario: str) -> list[str]:
    """Metrics outside the tolerance (every cell must agree: no known disagreements)."""
    bad = []
    for row in sim.itertuples(index=False):
        fid = str(row.flow_id)
        ref = cf.loc[fid]
        checks = []
        p_cf = float(ref["p_replay"])
        tol_p = Z * math.sqrt(max(p_cf * (1 - p_cf), 0.0) / CROSS_N) + 2e-3
        checks.append(("p_replay", row.sim_p_replay, p_cf, abs(row.sim_p_replay - p_cf) <= tol_p))
        w_cf = float(ref["expected_window_s"])
        tol_w = Z * row.se_expected_window_s + REL_W * abs(w_cf) + 1e-3
        checks.append(
            (
                "expected_window_s",
                row.sim_expected_window_s,
                w_cf,
                abs(row.sim_expected_window_s - w_cf) <= tol_w,
            )
        )
        u_cf = float(ref["p_usable"])
        tol_u = Z * math.sqrt(max(u_cf * (1 - u_cf), 0.0) / CROSS_N) + 2e-3
        checks.append(("p_usable", row.sim_p_usable, u_cf, abs(row.sim_p_usable - u_cf) <= tol_u))
        r_cf = float(ref["max_replays"])
        checks.append(("max_replays", row.sim_max_replays, r_cf, row.sim_max_replays == r_cf))
        for metric, got, want, ok in checks:
            if not ok:
                bad.append(f"{fid} {metric}: simulation {got:.6g}, closed form {want:.6g}")
    return bad


def _simulate_cell(mechanism: str, scenario: str, view: str) -> pd.DataFrame:
    flows, services, servers = _cross_frames()
    return simulate(
        flows,
        services,
        P,
        mechanism=mechanism,
        scenario=scenario,
        view=view,
        authorization_servers=servers,
        n=CROSS_N,
        seed=7,
    )


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("scenario", [s.id for s in SCENARIOS])
@pytest.mark.parametrize("mechanism", [m.id for m in MECHANISMS])
def test_simulation_agrees_with_closed_form(
    closed_form: dict[tuple[str, str, str], pd.DataFrame],
    mechanism: str,
    scenario: str,
    view: str,
) -> None:
    sim = _simulate_cell(mechanism, scenario, view)
    bad = _disagreements(sim, closed_form[(view, mechanism, scenario)], mechanism, scenario)
    assert not bad, f"{mechanism} x {scenario} ({view}):\n" + "\n".join(bad)


def test_mtls_bypass_with_large_injection_probability() -> None:
    from tokenlib.analysis.models import replay_windows

    flows, services, servers = _cross_frames()
    params = P.replace(p_inj=0.5)
    cf = replay_windows(
        flows,
        services,
        params,
        mechanisms=["mtls"],
        scenarios=["at_rest_copy"],
        authorization_servers=servers,
    ).set_index(flows["flow_id"].astype(str).to_numpy())
    sim = simulate(
        flows,
        services,
        params,
        mechanism="mtls",
        scenario="at_rest_copy",
        authorization_servers=servers,
        n=CROSS_N,
    )
    f2 = sim.set_index("flow_id").loc["f2"]
    # f2: enforced mTLS, software key in a config file (0.8), one forwarding hop (0.5).
    assert abs(f2["sim_p_replay"] - 0.9) < Z * math.sqrt(0.09 / CROSS_N)
    assert abs(f2["sim_p_replay"] - cf.loc["f2", "p_replay"]) < Z * math.sqrt(0.09 / CROSS_N)
