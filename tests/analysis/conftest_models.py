"""Hand-built inventories in the contract schema for the model tests (not a pytest conftest).

Import with::

    try:
        from tests.analysis.conftest_models import flows_frame, services_frame, ...
    except ImportError:
        from conftest_models import ...
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

FLOW_CATEGORIES = {
    "client_kind": [
        "browser_spa",
        "mobile_app",
        "web_backend",
        "service",
        "batch_job",
        "ai_agent",
        "partner_integrator",
        "cli_tool",
    ],
    "actor": ["human", "workload"],
    "client_type": ["public", "confidential"],
    "environment": ["prod", "staging", "dev"],
    "grant_type": [
        "authorization_code",
        "client_credentials",
        "device_code",
        "token_exchange",
        "jwt_bearer",
    ],
    "key_storage": [
        "none",
        "software",
        "webcrypto_non_extractable",
        "platform_keystore",
        "hsm_tpm",
    ],
    "cert_management": ["none", "manual", "automated_pki", "spiffe"],
    "refresh_token": ["none", "static", "rotating"],
    "token_format": ["jwt", "opaque"],
    "binding": ["bearer", "mtls", "dpop"],
}

DEFAULT_FLOW: dict[str, Any] = {
    "client_id": "c1",
    "client_kind": "service",
    "actor": "workload",
    "client_type": "confidential",
    "environment": "prod",
    "grant_type": "client_credentials",
    "resource_server": "api",
    "audience_restricted": True,
    "scopes": "read",
    "path": "",
    "key_storage": "none",
    "cert_management": "none",
    "access_token_lifetime_s": 3600,
    "refresh_token": "none",
    "refresh_token_lifetime_s": 0,
    "token_format": "jwt",
    "rs_introspects": False,
    "binding": "bearer",
    "binding_enforced": False,
    "requests_per_day": 1000,
    "exposure_channels": "app_logs",
    "forwards_token": False,
}
DEFAULT_FLOW["authorization_server"] = "as-default"
DEFAULT_FLOW["token_exchange"] = False

DEFAULT_SERVICE: dict[str, Any] = {
    "owner": "team-a",
    "sensitivity": 3,
    "internet_facing": True,
    "supports_bearer": True,
    "supports_mtls": True,
    "supports_dpop": True,
    "downstream": "",
    "instances": 1,
    "jti_cache": "shared",
    "requires_nonce": False,
    "iat_past_s": 60,
    "iat_future_s": 60,
}


def flows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Flows DataFrame with the contract dtypes; unspecified columns take ``DEFAULT_FLOW``."""
    data = [{"flow_id": f"f{i}", **DEFAULT_FLOW, **r} for i, r in enumerate(rows)]
    df = pd.DataFrame(data)
    for col, cats in FLOW_CATEGORIES.items():
        df[col] = pd.Categorical(df[col], categories=cats)
    for col in ("access_token_lifetime_s", "refresh_token_lifetime_s", "requests_per_day"):
        df[col] = df[col].astype("int64")
    for col in ("audience_restricted", "rs_introspects", "binding_enforced", "forwards_token"):
        df[col] = df[col].astype(bool)
    return df


def services_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Services DataFrame with the contract dtypes (each row needs ``service_id``)."""
    df = pd.DataFrame([{**DEFAULT_SERVICE, **r} for r in rows])
    df["jti_cache"] = pd.Categorical(df["jti_cache"], categories=["none", "per_instance", "shared"])
    for col in ("sensitivity", "instances", "iat_past_s", "iat_future_s"):
        df[col] = df[col].astype("int64")
    return df


def authorization_servers_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Authorization-servers DataFrame with the contract dtypes (each row needs ``as_id``;
    product defaults to "", every capability to False)."""
    defaults: dict[str, Any] = {
        "product": "",
        "issues_dpop": False,
        "issues_mtls": False,
        "binds_refresh_tokens": False,
        "supports_token_exchange": False,
    }
    columns = ["as_id", *defaults]
    df = pd.DataFrame([{**defaults, **r} for r in rows], columns=columns)
    for col in ("as_id", "product"):
        df[col] = df[col].astype("str")
    for col in columns[2:]:
        df[col] = df[col].astype(bool)
    return df


def random_inventory(
    n: int = 400, *, seed: int = 0, n_services: int = 12
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small random inventory covering every category (DAG of downstream calls)."""
    rng = np.random.default_rng(seed)
    sids = [f"s{i}" for i in range(n_services)]
    services = []
    for i, sid in enumerate(sids):
        later = sids[i + 1 :]
        k = int(rng.integers(0, min(3, len(later)) + 1)) if later else 0
        down = ";".join(rng.choice(later, size=k, replace=False)) if k else ""
        services.append(
            {
                "service_id": sid,
                "owner": f"team-{i % 3}",
                "sensitivity": int(rng.integers(1, 6)),
                "supports_mtls": bool(rng.random() < 0.6),
                "supports_dpop": bool(rng.random() < 0.6),
                "downstream": down,
                "instances": int(rng.integers(1, 5)),
                "jti_cache": str(rng.choice(["none", "per_instance", "shared"])),
                "requires_nonce": bool(rng.random() < 0.2),
                "iat_past_s": int(rng.choice([25, 60, 300])),
            }
        )
    paths = [
        "",
        "load_balancer:passthrough",
        "cdn:terminate>api_gateway:terminate",
        "api_gateway:terminate_forward_cert",
        "cdn:terminate_forward_cert>service_mesh_sidecar:terminate_forward_cert",
        "waf:terminate>reverse_proxy:passthrough",
    ]
    chans = [
        "app_logs",
        "proxy_logs;har_files",
        "browser_storage",
        "config_files;ci_secrets",
        "",
        "integrator_storage",
    ]
    rows = []
    for i in range(n):
        kind = str(rng.choice(FLOW_CATEGORIES["client_kind"]))
        binding = str(rng.choice(["bearer", "bearer", "mtls", "dpop"]))
        rt = str(rng.choice(FLOW_CATEGORIES["refresh_token"]))
        rows.append(
            {
                "client_id": f"c{i % (n // 4 + 1)}",
                "client_kind": kind,
                "actor": "human"
                if kind in ("browser_spa", "mobile_app", "cli_tool")
                else "workload",
                "client_type": "public"
                if kind in ("browser_spa", "mobile_app", "cli_tool")
                else "confidential",
                "grant_type": "authorization_code"
                if kind in ("browser_spa", "mobile_app")
                else str(rng.choice(["client_credentials", "token_exchange"])),
                "resource_server": str(rng.choice(sids)),
                "audience_restricted": bool(rng.random() < 0.7),
                "path": str(rng.choice(paths)),
                "key_storage": str(rng.choice(FLOW_CATEGORIES["key_storage"])),
                "cert_management": str(rng.choice(FLOW_CATEGORIES["cert_management"])),
                "access_token_lifetime_s": int(rng.choice([300, 3600, 4500, 86400])),
                "refresh_token": rt,
                "refresh_token_lifetime_s": 0
                if rt == "none"
                else int(rng.choice([86400, 2592000])),
                "token_format": str(rng.choice(["jwt", "opaque"])),
                "rs_introspects": bool(rng.random() < 0.3),
                "binding": binding,
                "binding_enforced": binding != "bearer" and bool(rng.random() < 0.8),
                "requests_per_day": int(rng.integers(0, 100_000)),
                "exposure_channels": str(rng.choice(chans)),
                "forwards_token": bool(rng.random() < 0.4),
            }
        )
    return flows_frame(rows), services_frame(services)
