"""RFC semantics of each mechanism x scenario cell, on hand-built inventories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tokenlib.analysis.models import (
    MECHANISMS,
    SCENARIOS,
    VIEWS,
    FlowContext,
    cell_statistics,
    mechanism,
    replay_windows,
    scenario_weight,
)
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

P0 = ModelParameters.from_reference()
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
AS_NONE = authorization_servers_frame([{"as_id": "as-default"}])


def _ctx(
    flow: dict[str, object] | None = None,
    service: dict[str, object] | None = None,
    *,
    params: ModelParameters = P0,
    ases: pd.DataFrame = AS_ALL,
) -> FlowContext:
    f = flows_frame([flow or {}])
    s = services_frame([{"service_id": "api", **(service or {})}])
    return FlowContext.build(f, s, params, authorization_servers=ases)


def _cell(ctx: FlowContext, mech: str, scen: str, view: str = "today") -> dict[str, float]:
    return {k: float(v[0]) for k, v in cell_statistics(ctx, mech, scen, view).items()}  # type: ignore[arg-type]


# --- captured proofs: RFC 9449 §11.1 -------------------------------------------------------


@pytest.mark.parametrize(
    ("mech", "cache", "instances", "nonce", "expected"),
    [
        ("dpop_no_cache", "shared", 3, False, np.inf),
        ("dpop_per_instance_cache", "shared", 3, False, 2.0),
        ("dpop_per_instance_cache", "shared", 1, False, 0.0),
        ("dpop_shared_cache", "none", 3, False, 0.0),
        # nonces do not change the count: the RS's own store does (the example)
        ("dpop_nonce", "per_instance", 3, True, 2.0),
        ("dpop_nonce", "none", 3, True, np.inf),
        ("dpop_nonce", "shared", 3, True, 0.0),
        ("dpop_nonce_shared_cache", "per_instance", 3, True, 0.0),
        ("mtls", "none", 3, False, 0.0),
        ("bearer", "shared", 1, False, np.inf),
    ],
)
def test_max_replays_of_one_captured_proof(
    mech: str, cache: str, instances: int, nonce: bool, expected: float
) -> None:
    ctx = _ctx(
        {"exposure_channels": "proxy_logs"},
        {"jti_cache": cache, "instances": instances, "requires_nonce": nonce},
    )
    assert _cell(ctx, mech, "in_transit_token_and_proof")["max_replays"] == expected


def test_nonce_bounds_the_window_not_the_count() -> None:
    """A proof replayable for the whole iat window without a store; nonces bound the window to
    the nonce lifetime (D3) but a captured proof still replays within it (RFC 9449 §11.1)."""
    params = P0.replace(rho_jwt=0.0, proof_leak_delay_max_s=0.0)
    flow = {"exposure_channels": "proxy_logs", "access_token_lifetime_s": 86_400}
    svc = {"jti_cache": "none", "iat_past_s": 300, "instances": 1}
    ctx = _ctx(flow, svc, params=params)
    no_nonce = _cell(ctx, "dpop_no_cache", "in_transit_token_and_proof")
    with_nonce = _cell(ctx, "dpop_nonce", "in_transit_token_and_proof")
    e = params.e_rs
    # enforced share (1 - bypass = e) replays the proof for min(P, R) with P << L
    assert no_nonce["expected_window_s"] == pytest.approx(
        (1 - e) * 86_400 / 2 + e * 300 * (1 - 300 / (2 * 86_400)), rel=1e-6
    )
    tn = params.nonce_lifetime_s
    assert with_nonce["expected_window_s"] == pytest.approx(
        (1 - e) * 86_400 / 2 + e * tn * (1 - tn / (2 * 86_400)), rel=1e-6
    )
    assert with_nonce["max_replays"] == np.inf  # no store: nonces are not a replay cache


def test_shared_store_leaves_only_the_race() -> None:
    flow = {"exposure_channels": "proxy_logs", "binding": "dpop", "binding_enforced": True}
    ctx = _ctx(flow, {"jti_cache": "shared"}, params=P0.replace(p_attacker_first=0.0))
    assert _cell(ctx, "dpop_shared_cache", "in_transit_token_and_proof")["p_replay"] == 0.0


# --- symmetric support views ---------------------------------------------------------------


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("scen", [s.id for s in SCENARIOS])
def test_token_binding_equals_bearer_with_its_real_support(view: str, scen: str) -> None:
    ctx = _ctx({"exposure_channels": "proxy_logs;config_files", "refresh_token": "static"})
    tb, bearer = _cell(ctx, "token_binding", scen, view), _cell(ctx, "bearer", scen, view)
    for key in ("p_replay", "expected_window_s", "p_usable"):
        assert tb[key] == pytest.approx(bearer[key])


def test_upgraded_view_enables_an_rs_without_dpop_today() -> None:
    ctx = _ctx({"exposure_channels": "app_logs"}, {"supports_dpop": False})
    today = _cell(ctx, "dpop_shared_cache", "at_rest_copy", "today")
    upgraded = _cell(ctx, "dpop_shared_cache", "at_rest_copy", "upgraded")
    bearer = _cell(ctx, "bearer", "at_rest_copy")
    assert today["expected_window_s"] == pytest.approx(bearer["expected_window_s"])
    assert today["max_replays"] == np.inf
    assert upgraded["expected_window_s"] < 0.2 * bearer["expected_window_s"]


def test_authorization_server_gates_every_view() -> None:
    """An AS that cannot issue DPoP-bound tokens (e.g. Entra ID) leaves DPoP bearer-equivalent
    even if every RS is upgraded (RFC 9449 §5)."""
    ctx = _ctx({"exposure_channels": "app_logs"}, ases=AS_NONE)
    for view in VIEWS:
        assert _cell(ctx, "dpop_nonce_shared_cache", "at_rest_copy", view) == pytest.approx(
            _cell(ctx, "bearer", "at_rest_copy", view)
        )


def test_rs_refusing_bearer_has_no_downgrade() -> None:
    flow = {"exposure_channels": "app_logs", "key_storage": "hsm_tpm"}
    keep = _ctx(flow, {"supports_bearer": True})
    strict = _ctx(flow, {"supports_bearer": False})
    assert keep.enforcement("dpop_shared_cache", "today")[0] == pytest.approx(P0.e_rs)
    assert strict.enforcement("dpop_shared_cache", "today")[0] == 1.0
    assert (
        _cell(strict, "dpop_shared_cache", "at_rest_copy")["p_replay"]
        < _cell(keep, "dpop_shared_cache", "at_rest_copy")["p_replay"]
    )


def test_observed_enforcement_is_used_for_the_flows_own_family() -> None:
    flow = {"binding": "dpop", "binding_enforced": False, "exposure_channels": "app_logs"}
    ctx = _ctx(flow)
    assert ctx.enforcement("dpop_shared_cache", "today")[0] == 0.0
    assert ctx.enforcement("mtls", "today")[0] == pytest.approx(P0.e_rs)


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("", True),
        ("load_balancer:passthrough", True),
        ("api_gateway:terminate_forward_cert", True),
        ("cdn:terminate>api_gateway:terminate_forward_cert", False),
    ],
)
def test_mtls_needs_the_certificate_to_reach_the_rs(path: str, ok: bool) -> None:
    ctx = _ctx({"path": path})
    assert bool(ctx.enforceable("mtls", "upgraded")[0]) is ok


def test_browser_cannot_carry_mtls() -> None:
    ctx = _ctx({"client_kind": "browser_spa", "client_type": "public"})
    assert not ctx.enforceable("mtls", "upgraded")[0]
    assert ctx.enforceable("dpop_nonce", "upgraded")[0]


# --- live compromise: RFC 9449 §11.2 ------------------------------------------------------


def test_nonces_stop_pre_generated_proofs() -> None:
    flow = {"key_storage": "platform_keystore", "access_token_lifetime_s": 3600}
    ctx = _ctx(flow, params=P0.replace(rho_jwt=0.0))
    no_nonce = _cell(ctx, "dpop_shared_cache", "live_client_compromise")
    nonce = _cell(ctx, "dpop_nonce_shared_cache", "live_client_compromise")
    bearer = _cell(ctx, "bearer", "live_client_compromise")
    assert no_nonce["expected_window_s"] == pytest.approx(bearer["expected_window_s"])
    assert nonce["expected_window_s"] < 0.2 * bearer["expected_window_s"]


def test_browser_new_flow_escapes_every_binding() -> None:
    params = P0.replace(p_new_flow=1.0)
    ctx = _ctx({"client_kind": "browser_spa", "client_type": "public"}, params=params)
    for m in MECHANISMS:
        assert _cell(ctx, m.id, "live_client_compromise")["expected_window_s"] == pytest.approx(
            params.as_session_max_s / 2
        )


# --- credential store: its own group ---------------------------------------------------------


def test_key_storage_changes_credential_store_likelihood() -> None:
    soft = _ctx({"key_storage": "software", "exposure_channels": "config_files"})
    hsm = _ctx({"key_storage": "hsm_tpm", "exposure_channels": "config_files"})
    ws, wh = scenario_weight(soft, "key_exfiltration"), scenario_weight(hsm, "key_exfiltration")
    assert wh[0] < ws[0]
    assert ws[0] / wh[0] == pytest.approx(P0.p_key_software / P0.p_key_hsm)


def test_credential_store_without_a_channel_uses_a26() -> None:
    ctx = _ctx({"key_storage": "software", "exposure_channels": "app_logs"})
    assert scenario_weight(ctx, "key_exfiltration")[0] == pytest.approx(
        P0.w_key_exfiltration * P0.p_key_software * P0.p_store_no_channel
    )


def test_issuer_key_compromise_is_the_same_for_every_mechanism() -> None:
    ctx = _ctx()
    first = _cell(ctx, "bearer", "issuer_key_compromise")
    assert first["expected_window_s"] == pytest.approx(P0.issuer_key_window_s)
    for m in MECHANISMS:
        assert _cell(ctx, m.id, "issuer_key_compromise") == pytest.approx(first)


# --- refresh tokens: RFC 9449 §5, RFC 9700 §4.14 -------------------------------------------


def test_public_refresh_token_bound_only_when_the_as_binds_it() -> None:
    flow = {
        "client_kind": "mobile_app",
        "client_type": "public",
        "refresh_token": "static",
        "refresh_token_lifetime_s": 2_592_000,
        "key_storage": "platform_keystore",
    }
    ctx = _ctx(flow)
    bound = _cell(ctx, "dpop_shared_cache", "refresh_token_theft_no_rotation")
    bearer = _cell(ctx, "bearer", "refresh_token_theft_no_rotation")
    assert bound["p_replay"] == pytest.approx(P0.p_key_platform)
    assert bearer["p_replay"] == 1.0


# --- time to use --------------------------------------------------------------------------


def test_fast_attacker_flips_the_short_bearer_ranking() -> None:
    """Hours reward a 5-minute bearer token over a 24-hour DPoP token; an attacker who uses a
    stolen token within a minute finds the bearer token usable and the DPoP token not."""
    params = P0.replace(ttu_fast_share=1.0, ttu_fast_mean_s=30.0, rho_jwt=0.0, p_key_platform=0.05)
    short = _ctx(
        {"access_token_lifetime_s": 300, "exposure_channels": "app_logs;config_files"},
        params=params,
    )
    long_ = _ctx(
        {
            "access_token_lifetime_s": 86_400,
            "exposure_channels": "app_logs;config_files",
            "key_storage": "platform_keystore",
        },
        params=params,
    )
    b = _cell(short, "bearer", "at_rest_copy")
    d = _cell(long_, "dpop_nonce_shared_cache", "at_rest_copy")
    assert b["expected_window_s"] < d["expected_window_s"]
    assert b["p_usable"] > d["p_usable"]


def test_replay_windows_columns_and_rows() -> None:
    f = flows_frame([{}, {"binding": "mtls", "binding_enforced": True}])
    s = services_frame([{"service_id": "api"}])
    rw = replay_windows(f, s, P0, authorization_servers=AS_ALL, view="upgraded")
    assert len(rw) == 2 * len(MECHANISMS) * len(SCENARIOS)
    for col in ("flow_id", "mechanism", "scenario", "view", "p_usable", "max_replays", "weight"):
        assert col in rw.columns
    assert set(rw["view"].astype(str)) == {"upgraded"}
    assert (rw["p_usable"] <= rw["p_replay"] + 1e-12).all()
    assert mechanism("dpop_nonce").nonce
