"""Vectorised synthetic inventory generator (numpy only; no per-flow Python loops).

Draw order is fixed, so a (profile, n_flows, seed) triple always yields the same frames. The
consistency rules of :mod:`tokenlib.analysis._validate` hold by construction; the tests check
them on generated output.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tokenlib.analysis import schema as S
from tokenlib.analysis.profiles import Anchor, Profile

GENERATOR_VERSION = "2"
MIN_FLOWS = 100
MAX_FLOWS = 1_000_000

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: DPoP iat presets (past, future) in seconds, derived in the dpop_implementations table:
#: tight = Keycloak DPoPUtil (10 s + 15 s skew / 15 s), medium = +-60 s (Spring 6.5 initial,
#: Duende 1 min), loose = +-300 s (panva oidc-provider, Auth0 ASP.NET Core).
DPOP_PRESETS: Mapping[str, tuple[int, int]] = {
    "tight": (25, 15),
    "medium": (60, 60),
    "loose": (300, 300),
}

# Request paths: (path, weight). "T" terminate without forwarding, "F" terminate and forward
# the client cert (RFC 9440), "P" no terminating hop.
_EXTERNAL_PATHS: Mapping[str, Sequence[tuple[str, float]]] = {
    "T": (
        ("cdn:terminate>waf:terminate>api_gateway:terminate", 0.3),
        ("cdn:terminate>api_gateway:terminate", 0.25),
        ("api_gateway:terminate", 0.2),
        ("load_balancer:terminate>reverse_proxy:terminate", 0.1),
        ("waf:terminate>load_balancer:terminate>service_mesh_sidecar:terminate", 0.15),
    ),
    "F": (
        ("load_balancer:terminate_forward_cert", 0.4),
        ("cdn:terminate_forward_cert>api_gateway:terminate_forward_cert", 0.3),
        ("api_gateway:terminate_forward_cert>service_mesh_sidecar:terminate_forward_cert", 0.3),
    ),
    "P": (
        ("", 0.3),
        ("load_balancer:passthrough", 0.5),
        ("cdn:passthrough>load_balancer:passthrough", 0.2),
    ),
}
_INTERNAL_PATHS: Mapping[str, Sequence[tuple[str, float]]] = {
    "T": (
        ("service_mesh_sidecar:terminate", 0.45),
        ("api_gateway:terminate>service_mesh_sidecar:terminate", 0.25),
        ("load_balancer:terminate", 0.3),
    ),
    "F": (
        ("service_mesh_sidecar:terminate_forward_cert", 0.6),
        ("reverse_proxy:terminate_forward_cert", 0.4),
    ),
    "P": (
        ("", 0.5),
        ("load_balancer:passthrough", 0.3),
        ("service_mesh_sidecar:passthrough", 0.2),
    ),
}

_FRONT_WORDS = ("web-bff", "mobile-bff", "public-api", "partner-api", "graphql", "portal")
_MID_WORDS = (
    "orders",
    "billing",
    "catalog",
    "search",
    "profile",
    "notifications",
    "reports",
    "documents",
    "workflow",
    "analytics",
)
_LEAF_WORDS = ("ledger", "customer-db", "payments-core", "pii-vault", "audit-store", "key-vault")

_KIND = {k: i for i, k in enumerate(S.CLIENT_KINDS)}
_CH = {c: i for i, c in enumerate(S.EXPOSURE_CHANNELS)}

# P(channel) per client kind [A]; browser_storage only for SPAs, integrator_storage mostly for
# partners (Heroku/Travis CI, Drift anchors), har_files for browser-facing flows (Okta anchor).
_CHANNEL_P: Mapping[str, Mapping[str, float]] = {
    "browser_spa": {"browser_storage": 0.6, "har_files": 0.45, "proxy_logs": 0.3, "app_logs": 0.15},
    "mobile_app": {"crash_dumps": 0.4, "proxy_logs": 0.3, "app_logs": 0.3, "har_files": 0.05},
    "web_backend": {
        "app_logs": 0.6,
        "proxy_logs": 0.4,
        "har_files": 0.2,
        "config_files": 0.1,
        "crash_dumps": 0.1,
    },
    "service": {
        "app_logs": 0.5,
        "proxy_logs": 0.4,
        "config_files": 0.3,
        "ci_secrets": 0.2,
        "crash_dumps": 0.15,
    },
    "batch_job": {"config_files": 0.6, "ci_secrets": 0.5, "app_logs": 0.3, "proxy_logs": 0.1},
    "ai_agent": {
        "app_logs": 0.6,
        "config_files": 0.4,
        "proxy_logs": 0.3,
        "integrator_storage": 0.2,
    },
    "partner_integrator": {
        "integrator_storage": 0.9,
        "app_logs": 0.3,
        "config_files": 0.2,
        "proxy_logs": 0.2,
    },
    "cli_tool": {"config_files": 0.7, "ci_secrets": 0.3, "app_logs": 0.2},
}

# Conditional tables over schema value order [A]. Rows: client kind.
_GRANT = {  # authorization_code, client_credentials, device_code, token_exchange, jwt_bearer
    "browser_spa": (1, 0, 0, 0, 0),
    "mobile_app": (1, 0, 0, 0, 0),
    "web_backend": (1, 0, 0, 0, 0),
    "service": (0, 0.8, 0, 0.1, 0.1),
    "batch_job": (0, 0.9, 0, 0, 0.1),
    "ai_agent": (0, 0.6, 0, 0.4, 0),  # workload agents; human agents below
    "partner_integrator": (0.6, 0.3, 0, 0, 0.1),
    "cli_tool": (0.3, 0, 0.7, 0, 0),
}
_GRANT_AI_HUMAN = (0.4, 0, 0, 0.6, 0)
_KEY = {  # none, software, webcrypto_non_extractable, platform_keystore, hsm_tpm
    "mobile_app": (0.1, 0.2, 0, 0.7, 0),
    "web_backend": (0.2, 0.7, 0, 0, 0.1),
    "service": (0.15, 0.7, 0, 0, 0.15),
    "batch_job": (0.4, 0.6, 0, 0, 0),
    "ai_agent": (0.4, 0.6, 0, 0, 0),
    "partner_integrator": (0.2, 0.7, 0, 0, 0.1),
    "cli_tool": (0.3, 0.5, 0, 0.2, 0),
}
_CERT = {  # none, manual, automated_pki, spiffe
    "browser_spa": (1, 0, 0, 0),
    "mobile_app": (0.9, 0.1, 0, 0),
    "web_backend": (0.5, 0.3, 0.2, 0),
    "service": (0.3, 0.25, 0.3, 0.15),
    "batch_job": (0.5, 0.3, 0.2, 0),
    "ai_agent": (0.6, 0.1, 0.2, 0.1),
    "partner_integrator": (0.4, 0.5, 0.1, 0),
    "cli_tool": (0.9, 0.1, 0, 0),
}
_RT_ISSUED = {  # P(refresh token issued)
    "browser_spa": 0.8,
    "mobile_app": 0.9,
    "web_backend": 0.8,
    "service": 0.05,
    "batch_job": 0.05,
    "ai_agent": 0.6,
    "partner_integrator": 0.9,
    "cli_tool": 0.8,
}
_RPD_MEDIAN = {  # median requests/day per client [A]
    "browser_spa": 20000.0,
    "mobile_app": 30000.0,
    "web_backend": 15000.0,
    "service": 100000.0,
    "batch_job": 200.0,
    "ai_agent": 3000.0,
    "partner_integrator": 5000.0,
    "cli_tool": 50.0,
}
_EXTERNAL_KINDS = ("browser_spa", "mobile_app", "partner_integrator", "cli_tool")


def _probs(values: Sequence[float]) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    out: npt.NDArray[np.float64] = arr / arr.sum()
    return out


def _pick(rng: np.random.Generator, n: int, probs: Sequence[float]) -> IntArray:
    """n category indices drawn with ``probs`` (inverse-CDF; reproducible)."""
    cdf = np.cumsum(_probs(probs))
    idx = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(idx, len(cdf) - 1).astype(np.int64)


def _pick_rows(
    rng: np.random.Generator, rows: IntArray, table: npt.NDArray[np.float64]
) -> IntArray:
    """One category index per element, drawn from ``table[rows[i]]`` (rows normalised)."""
    cdf = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(rows))
    out = (u[:, None] >= cdf[rows]).sum(axis=1)
    result: IntArray = np.minimum(out, table.shape[1] - 1).astype(np.int64)
    return result


def _mix(mix: Mapping[str, float], order: Sequence[str]) -> list[float]:
    return [float(mix.get(k, 0.0)) for k in order]


def _anchors(rng: np.random.Generator, n: int, anchors: Sequence[Anchor]) -> IntArray:
    which = _pick(rng, n, [a[2] for a in anchors])
    low = np.array([a[0] for a in anchors], dtype=np.int64)[which]
    high = np.array([a[1] for a in anchors], dtype=np.int64)[which]
    return low + np.floor(rng.random(n) * (high - low + 1)).astype(np.int64)


def _ids(prefix: str, n: int) -> npt.NDArray[np.str_]:
    width = max(4, len(str(n - 1)))
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width))


def n_services_for(profile: Profile, n_flows: int) -> int:
    """Number of services for an inventory of ``n_flows`` (sub-linear growth)."""
    scaled: float = profile.service_scale * float(n_flows) ** 0.62
    return max(12, int(scaled + 0.5))


def rng_for(profile: Profile, seed: int) -> np.random.Generator:
    """A PCG64 generator keyed by the seed and the profile name."""
    return np.random.default_rng([int(seed), zlib.crc32(profile.name.encode())])


def _path_choice(
    rng: np.random.Generator,
    n: int,
    catalog: Mapping[str, Sequence[tuple[str, float]]],
    classes: npt.NDArray[np.str_],
) -> npt.NDArray[np.object_]:
    out = np.empty(n, dtype=object)
    for cls in ("T", "F", "P"):
        options = catalog[cls]
        strings = np.array([p for p, _ in options], dtype=object)
        draw = strings[_pick(rng, n, [w for _, w in options])]
        mask = classes == cls
        out[mask] = draw[mask]
    return out


Columns = dict[str, npt.NDArray[Any]]


def generate_services(profile: Profile, n: int, rng: np.random.Generator) -> Columns:
    """Services forming a DAG: front (internet-facing APIs) -> mid -> leaf data stores.

    Edges only go to higher-indexed services, so the call graph is acyclic; leaves (the last
    ``leaf_share`` of services) call nothing and hold the most sensitive data.
    """
    idx = np.arange(n, dtype=np.int64)
    pos = idx / max(n - 1, 1)
    front = pos < 0.25
    leaf = pos >= 1.0 - profile.leaf_share
    mid = ~front & ~leaf
    layer = np.where(front, 0, np.where(leaf, 2, 1))

    words = np.empty(n, dtype=object)
    for lyr, pool in enumerate((_FRONT_WORDS, _MID_WORDS, _LEAF_WORDS)):
        draw = np.array(pool, dtype=object)[rng.integers(0, len(pool), n)]
        words[layer == lyr] = draw[layer == lyr]
    width = max(3, len(str(n - 1)))
    num = np.char.zfill(idx.astype(str), width).astype(object)
    service_id = words + "-" + num
    owner = "team-" + words

    base = np.array([2.0, 3.0, 4.2])[layer] + profile.sensitivity_shift
    critical = np.isin(words, ("ledger", "payments-core", "pii-vault", "key-vault"))
    sens = np.rint(base + 0.6 * critical + rng.normal(0.0, 0.7, n))
    sensitivity = np.clip(sens, 1, 5).astype(np.int64)

    p_inet = np.where(front, profile.internet_facing_share, np.where(mid, 0.08, 0.0))
    internet = rng.random(n) < p_inet
    supports_mtls = rng.random(n) < profile.supports_mtls * np.where(internet, 0.8, 1.1)
    supports_dpop = rng.random(n) < profile.supports_dpop * np.where(internet, 1.3, 0.8)
    # Every binding needs somewhere to go: the first mid service supports all three.
    anchor = int(np.argmax(mid)) if mid.any() else 0
    supports_mtls[anchor] = True
    supports_dpop[anchor] = True
    bound = supports_mtls | supports_dpop
    supports_bearer = ~(bound & (rng.random(n) < profile.bearer_disabled))
    supports_bearer[anchor] = True

    # Downstream edges (i -> j > i): Poisson fan-out for non-leaves, at least one for front.
    k = rng.poisson(profile.mean_fanout, n).astype(np.int64)
    k = np.where(front, np.maximum(k, 1), k)
    k = np.where(leaf, 0, np.minimum(k, n - 1 - idx))
    src = np.repeat(idx, k)
    span = n - 1 - src
    dst = src + 1 + np.floor(rng.random(len(src)) * span).astype(np.int64)
    pairs = np.unique(src * n + dst)
    src, dst = pairs // n, pairs % n
    downstream = np.full(n, "", dtype=object)
    if len(src):
        edges = pd.DataFrame({"src": src, "dst": service_id[dst]})
        joined = edges.groupby("src", sort=True)["dst"].agg(";".join)
        downstream[joined.index.to_numpy()] = joined.to_numpy(dtype=object)

    instances = np.clip(np.rint(rng.lognormal(np.log(3.0), 0.9, n)), 1, 64).astype(np.int64)
    preset_names = ("tight", "medium", "loose")
    preset = _pick(rng, n, _mix(profile.dpop_presets, preset_names))
    past = np.array([DPOP_PRESETS[p][0] for p in preset_names], dtype=np.int64)[preset]
    future = np.array([DPOP_PRESETS[p][1] for p in preset_names], dtype=np.int64)[preset]
    jti = _pick(rng, n, _mix(profile.jti_cache_mix, S.JTI_CACHES))
    jti = np.where(supports_dpop, jti, 0)
    nonce = supports_dpop & (rng.random(n) < profile.nonce_share)

    return {
        "service_id": service_id,
        "owner": owner,
        "sensitivity": sensitivity,
        "internet_facing": internet,
        "supports_bearer": supports_bearer,
        "supports_mtls": supports_mtls,
        "supports_dpop": supports_dpop,
        "downstream": downstream,
        "instances": instances,
        "jti_cache": jti,
        "requires_nonce": nonce,
        "iat_past_s": past,
        "iat_future_s": future,
        "_word": words,
    }


def _service_paths(
    profile: Profile, services: Columns, rng: np.random.Generator
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    mtls = services["supports_mtls"]
    n = len(mtls)
    out = []
    for catalog, p_term in (
        (_EXTERNAL_PATHS, profile.terminating_external),
        (_INTERNAL_PATHS, profile.terminating_internal),
    ):
        term = rng.random(n) < p_term
        fwd = rng.random(n) < np.where(mtls, profile.forward_cert_share, 0.15)
        classes = np.where(term, np.where(fwd, "F", "T"), "P")
        out.append(_path_choice(rng, n, catalog, classes))
    return out[0], out[1]


def _terminates_without_forward(paths: npt.NDArray[np.object_]) -> BoolArray:
    codes, uniques = pd.factorize(pd.Series(paths, dtype=object))
    flags = np.array(
        [any(h.endswith(":terminate") for h in str(u).split(">") if u) for u in uniques],
        dtype=bool,
    )
    result: BoolArray = flags[codes]
    return result


def _terminating(paths: npt.NDArray[np.object_]) -> BoolArray:
    codes, uniques = pd.factorize(pd.Series(paths, dtype=object))
    flags = np.array([":terminate" in str(u) for u in uniques], dtype=bool)
    result: BoolArray = flags[codes]
    return result


def authorization_server_columns(profile: Profile) -> Columns:
    """The profile's authorization servers as table columns (in profile order)."""
    servers = profile.authorization_servers
    return {
        "as_id": np.array([a.as_id for a in servers], dtype=object),
        "product": np.array([a.product for a in servers], dtype=object),
        "issues_dpop": np.array([a.issues_dpop for a in servers], dtype=bool),
        "issues_mtls": np.array([a.issues_mtls for a in servers], dtype=bool),
        "binds_refresh_tokens": np.array([a.binds_refresh_tokens for a in servers], dtype=bool),
        "supports_token_exchange": np.array(
            [a.supports_token_exchange for a in servers], dtype=bool
        ),
    }


def _choose_servers(
    profile: Profile,
    servers: Columns,
    kind: IntArray,
    pref: IntArray,
    u: npt.NDArray[np.float64],
) -> IntArray:
    """One authorization server per client: weighted by client kind among the servers that can
    issue the client's preferred binding (uniform over those when the kind has no weight)."""
    n_as = len(servers["as_id"])
    capable = np.stack(
        [np.ones(n_as, dtype=bool), servers["issues_mtls"], servers["issues_dpop"]]
    )  # rows: schema binding order
    for b in (1, 2):
        if (pref == b).any() and not capable[b].any():
            raise ValueError(
                f"profile {profile.name!r}: no authorization server issues {S.BINDINGS[b]} "
                "tokens, but some clients are drawn with that binding"
            )
    by_kind = np.array(
        [
            [a.client_kind_weight.get(k, 0.0) for a in profile.authorization_servers]
            for k in S.CLIENT_KINDS
        ],
        dtype=np.float64,
    )
    ok = capable[pref]
    weights = by_kind[kind] * ok
    weights = np.where(weights.sum(axis=1, keepdims=True) > 0, weights, ok.astype(np.float64))
    cdf = np.cumsum(weights, axis=1)
    idx = (u[:, None] * cdf[:, -1:] >= cdf).sum(axis=1)
    last_positive = n_as - 1 - np.argmax(weights[:, ::-1] > 0, axis=1)
    result: IntArray = np.minimum(idx, last_positive).astype(np.int64)
    return result


def generate_frames(profile: Profile, n_flows: int, seed: int) -> tuple[Columns, Columns, Columns]:
    """(flows, services, authorization_servers) column arrays for ``profile`` with ``n_flows``
    flows, reproducible from ``seed``. Category columns hold integer codes in schema value
    order. The authorization-server draws come last, so the other columns do not depend on
    the profile's servers."""
    if isinstance(n_flows, bool) or not isinstance(n_flows, int | np.integer):
        raise TypeError("n_flows must be an int")
    if not MIN_FLOWS <= n_flows <= MAX_FLOWS:
        raise ValueError(f"n_flows must be between {MIN_FLOWS} and {MAX_FLOWS}, got {n_flows}")
    n = int(n_flows)
    rng = rng_for(profile, seed)
    services = generate_services(profile, n_services_for(profile, n), rng)
    n_svc = len(services["service_id"])
    ext_path, int_path = _service_paths(profile, services, rng)

    # --- clients -------------------------------------------------------------------------
    n_cli = max(1, min(n, round(n / profile.flows_per_client)))
    kinds = S.CLIENT_KINDS
    kind = _pick(rng, n_cli, _mix(profile.client_kind_mix, kinds))
    is_ai = kind == _KIND["ai_agent"]
    human = np.isin(kind, [_KIND[k] for k in S.HUMAN_KINDS]) | (is_ai & (rng.random(n_cli) < 0.5))
    public = np.isin(kind, [_KIND["browser_spa"], _KIND["mobile_app"]]) | (
        (kind == _KIND["cli_tool"]) & (rng.random(n_cli) < 0.85)
    )
    env = _pick(rng, n_cli, _mix(profile.environment_mix, S.ENVIRONMENTS))

    grant_table = np.array([_GRANT[k] for k in kinds] + [_GRANT_AI_HUMAN], dtype=np.float64)
    grant_row = np.where(is_ai & human, len(kinds), kind)
    grant = _pick_rows(rng, grant_row, grant_table)
    cc = S.GRANT_TYPES.index("client_credentials")
    grant = np.where(public & (grant == cc), S.GRANT_TYPES.index("device_code"), grant)

    w = profile.webcrypto_share
    key_table = np.array(
        [(1 - w, 0, w, 0, 0) if k == "browser_spa" else _KEY[k] for k in kinds], dtype=np.float64
    )
    key = _pick_rows(rng, kind, key_table)
    cert = _pick_rows(rng, kind, np.array([_CERT[k] for k in kinds], dtype=np.float64))
    cert = np.where(key == 0, 0, cert)

    at_h = _anchors(rng, n_cli, profile.at_human)
    at_w = _anchors(rng, n_cli, profile.at_workload)
    at_life = np.where(human, at_h, at_w)

    rt_issued = rng.random(n_cli) < np.array([_RT_ISSUED[k] for k in kinds])[kind]
    no_rt_grant = np.isin(grant, [cc, S.GRANT_TYPES.index("jwt_bearer")])
    rt_issued &= ~no_rt_grant
    rotating = rng.random(n_cli) < np.where(
        public, profile.rotation_public, profile.rotation_confidential
    )
    rt = np.where(rt_issued, np.where(rotating, 2, 1), 0)
    rt_pub = _anchors(rng, n_cli, profile.rt_public)
    rt_conf = _anchors(rng, n_cli, profile.rt_confidential)
    rt_life = np.where(rt == 0, 0, np.where(public, rt_pub, rt_conf))

    mtls_ok = (cert > 0) & (kind != _KIND["browser_spa"])
    dpop_ok = key > 0
    p_m = np.array([profile.mtls_adoption.get(k, 0.0) for k in kinds])[kind]
    p_d = np.array([profile.dpop_adoption.get(k, 0.0) for k in kinds])[kind]
    want_m = mtls_ok & (rng.random(n_cli) < p_m)
    want_d = dpop_ok & ~want_m & (rng.random(n_cli) < p_d)
    pref = np.where(want_m, 1, np.where(want_d, 2, 0))
    rpd_base = np.array([_RPD_MEDIAN[k] for k in kinds])[kind]
    external = np.isin(kind, [_KIND[k] for k in _EXTERNAL_KINDS]) | (is_ai & human)

    # Flows per client: every client has at least one; the rest follow a heavy-tailed weight.
    weight = rng.lognormal(0.0, 1.0, n_cli)
    extra = np.searchsorted(np.cumsum(weight / weight.sum()), rng.random(n - n_cli), side="right")
    client = np.sort(np.concatenate([np.arange(n_cli), np.minimum(extra, n_cli - 1)]))

    # --- flows ---------------------------------------------------------------------------
    f_kind = kind[client]
    f_ext = external[client]
    binding = pref[client]
    binding = np.where((binding > 0) & (rng.random(n) < profile.bearer_fallback), 0, binding)

    inet = services["internet_facing"]
    supports = np.stack([services[f"supports_{b}"] for b in S.BINDINGS], axis=0)
    popularity = 1.0 / (rng.permutation(n_svc) + 1.0) ** 0.7
    u = rng.random(n)
    rs = np.zeros(n, dtype=np.int64)
    for ext_flag in (False, True):
        affinity = np.where(inet, 1.0, 0.03) if ext_flag else np.where(inet, 0.3, 1.0)
        for b in range(len(S.BINDINGS)):
            mask = (f_ext == ext_flag) & (binding == b)
            if not mask.any():
                continue
            wts = popularity * affinity * supports[b]
            cdf = np.cumsum(wts / wts.sum())
            rs[mask] = np.minimum(np.searchsorted(cdf, u[mask], side="right"), n_svc - 1)

    path = np.where(f_ext, ext_path[rs], int_path[rs])
    p_enf = np.array(
        [0.0, profile.enforcement.get("mtls", 0.0), profile.enforcement.get("dpop", 0.0)]
    )
    enforced = (binding > 0) & (rng.random(n) < p_enf[binding])
    enforced &= ~((binding == 1) & _terminates_without_forward(path))

    aud = rng.random(n) < profile.audience_restricted
    opaque = rng.random(n) < profile.opaque_share
    introspects = opaque | (rng.random(n) < profile.introspect_jwt)

    f_rt = rt[client]
    f_human = human[client]
    templates = ("{s}:read", "{s}:read {s}:write", "{s}:write", "{s}:read {s}:write {s}:admin")
    tmpl = _pick(rng, n, (0.45, 0.3, 0.1, 0.15))
    svc_word = services.pop("_word")
    scope_table = np.empty((n_svc, len(templates), 2), dtype=object)
    for t, pattern in enumerate(templates):
        base_scopes = np.array([pattern.format(s=w_) for w_ in svc_word], dtype=object)
        scope_table[:, t, 0] = base_scopes
        scope_table[:, t, 1] = "openid offline_access " + base_scopes
    scopes = scope_table[rs, tmpl, (f_human & (f_rt > 0)).astype(np.int64)]

    channel_p = np.array([[_CHANNEL_P[k].get(c, 0.0) for c in S.EXPOSURE_CHANNELS] for k in kinds])
    hit = rng.random((n, len(S.EXPOSURE_CHANNELS))) < channel_p[f_kind]
    hit[:, _CH["proxy_logs"]] &= _terminating(path)
    bits = (hit * (1 << np.arange(len(S.EXPOSURE_CHANNELS)))).sum(axis=1)
    lookup = np.array(
        [
            ";".join(c for i, c in enumerate(S.EXPOSURE_CHANNELS) if m >> i & 1)
            for m in range(1 << len(S.EXPOSURE_CHANNELS))
        ],
        dtype=object,
    )
    channels = lookup[bits]

    rpd = np.rint(rpd_base[client] * rng.lognormal(0.0, 0.8, n)).astype(np.int64)
    has_down = services["downstream"] != ""
    forwards = has_down[rs] & (rng.random(n) < profile.forwards_token)

    # --- authorization servers (drawn last) ---------------------------------------------
    servers = authorization_server_columns(profile)
    as_of_client = _choose_servers(profile, servers, kind, pref, rng.random(n_cli))
    f_as = as_of_client[client]
    exchange = (
        forwards
        & servers["supports_token_exchange"][f_as]
        & (rng.random(n) < profile.token_exchange_share)
    )

    prefixes = np.array([k.replace("_", "-") + "-" for k in kinds], dtype=object)
    client_ids = prefixes[kind] + _ids("", n_cli).astype(object)
    flows: Columns = {
        "flow_id": _ids("flow-", n).astype(object),
        "client_id": client_ids[client],
        "client_kind": f_kind,
        "actor": np.where(f_human, 0, 1),
        "client_type": np.where(public[client], 0, 1),
        "environment": env[client],
        "grant_type": grant[client],
        "resource_server": services["service_id"][rs],
        "audience_restricted": aud,
        "scopes": scopes,
        "path": path,
        "key_storage": key[client],
        "cert_management": cert[client],
        "access_token_lifetime_s": at_life[client],
        "refresh_token": f_rt,
        "refresh_token_lifetime_s": rt_life[client],
        "token_format": opaque.astype(np.int64),
        "rs_introspects": introspects,
        "binding": binding,
        "binding_enforced": enforced,
        "requests_per_day": rpd,
        "exposure_channels": channels,
        "forwards_token": forwards,
        "authorization_server": servers["as_id"][f_as],
        "token_exchange": exchange,
    }
    return flows, services, servers
