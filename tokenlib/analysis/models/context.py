"""The per-flow facts every model reads, computed once from an inventory: :class:`FlowContext`.

A context joins each flow with its resource server (``services``) and authorization server
(``authorization_servers``), parses its path and exposure channels, and turns inventory values
into the quantities the models use (lifetimes, revocation probabilities, key extractability,
structural support per mechanism family and view, the value at stake). Building it is the only
place where inventory columns are interpreted; models never read the frames again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tokenlib.analysis._groups import distinct_rows
from tokenlib.analysis._paths import (
    as_str,
    channel_matrix,
    features,
    is_in,
    map_values,
    require_columns,
    service_lookup,
    str_codes,
)
from tokenlib.analysis.models.mechanisms import (
    MECHANISMS,
    Family,
    Mechanism,
    View,
    mechanism,
)
from tokenlib.analysis.models.support import (
    Support,
    authorization_server_rows,
    resolve_authorization_servers,
    structural_supports,
)
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.schema import EXPOSURE_CHANNELS

__all__ = [
    "AT_REST_CHANNELS",
    "IN_TRANSIT_CHANNELS",
    "KEY_CHANNELS",
    "FlowContext",
    "privilege_class",
]

FloatArray = npt.NDArray[np.floating[Any]]
BoolArray = npt.NDArray[np.bool_]

#: Channels holding a stored copy of a token (every one but proxy_logs, which sees traffic).
AT_REST_CHANNELS = tuple(c for c in EXPOSURE_CHANNELS if c != "proxy_logs")
#: Channels that record a request as it is sent: token and proof together.
IN_TRANSIT_CHANNELS = ("proxy_logs", "har_files")
#: Channels where a private key or client secret can sit next to the token (a log line or a
#: HAR file never holds it).
KEY_CHANNELS = (
    "config_files",
    "ci_secrets",
    "crash_dumps",
    "integrator_storage",
    "browser_storage",
)

_ADMIN_WORDS = ("admin", "manage", "root", "owner", "superuser", "*")
#: Parts of compound names that grant control over identities or everything in a resource:
#: Microsoft Graph's ``RoleManagement.ReadWrite.Directory``, ``AppRoleAssignment.ReadWrite.All``
#: and ``Sites.FullControl.All``.
_ADMIN_PARTS = ("admin", "rolemanagement", "approleassignment", "fullcontrol")
_WRITE_WORDS = ("write", "create", "update", "delete", "modify", "post", "put", "transfer", "pay")
#: Parts of compound names that change something (``Mail.ReadWrite``, ``Mail.Send``).
_WRITE_PARTS = ("write", "send")


def privilege_class(scopes: str) -> str:
    """``admin``, ``write`` or ``read``: the strongest privilege any scope of the list grants.

    Scopes are space-separated (RFC 6749 §3.3) and split further at ``:``, ``.`` and ``/``.
    A word naming administration (``admin``, ``realm-admin``, ``manage``, ``manage-users``,
    ``*``...) or control over identities (Graph's ``RoleManagement``/``AppRoleAssignment``
    permissions, ``FullControl``) is ``admin``; one naming a change (``write``, ``delete``,
    ``pay``..., or ``ReadWrite``/``Send`` inside a compound name) is ``write``; everything else
    (``read``, ``openid``, ``User.Read.All``...) is ``read``.
    """
    words = str(scopes).lower().replace(":", " ").replace(".", " ").replace("/", " ").split()
    if any(
        w in _ADMIN_WORDS or w.startswith("manage") or any(p in w for p in _ADMIN_PARTS)
        for w in words
    ):
        return "admin"
    if any(
        any(w.startswith(x) for x in _WRITE_WORDS) or any(p in w for p in _WRITE_PARTS)
        for w in words
    ):
        return "write"
    return "read"


def _privilege_factor(scopes: pd.Series, p: ModelParameters) -> FloatArray:
    factor = {"read": p.scope_factor_read, "write": p.scope_factor_write}
    factor["admin"] = p.scope_factor_admin
    codes, uniq = pd.factorize(scopes.astype(str), sort=False)
    vals = np.array([factor[privilege_class(u)] for u in uniq], dtype=float)
    return np.asarray(vals[codes]) if len(uniq) else np.zeros(0)


def _as_column(ases: pd.DataFrame, name: str) -> BoolArray:
    if name not in ases.columns:
        return np.zeros(len(ases), dtype=bool)
    return np.asarray(ases[name].to_numpy(dtype=bool))


def _rs_store_code(svc: pd.DataFrame, pos: npt.NDArray[np.int64]) -> npt.NDArray[np.int8]:
    """0 none, 1 per_instance, 2 shared: the RS's own jti store (inventory)."""
    cache = np.asarray(as_str(svc["jti_cache"]))[pos]
    return np.where(cache == "shared", 2, np.where(cache == "per_instance", 1, 0)).astype(np.int8)


@dataclass(frozen=True, slots=True, eq=False)
class FlowContext:
    """Per-flow arrays (length ``n``) the models need, aligned with the flows frame.

    Build it with :meth:`build`; it is immutable and reused by every model of one run.
    Times are seconds. Quantities named after a parameter use that parameter's register id.
    """

    n: int
    params: ModelParameters
    #: code of each flow's id into :attr:`flow_ids` (ids are factorised once, at build)
    flow_codes: npt.NDArray[np.int64]
    flow_ids: npt.NDArray[Any]
    client_path: npt.NDArray[Any]
    #: access-token lifetime ``L``
    lifetime: FloatArray
    #: probability that a revocation reaches the RS (A1a/A1b by introspection)
    rho: FloatArray
    #: refresh-token absolute lifetime ``A_RT`` (A7 where the inventory says 0)
    rt_lifetime: FloatArray
    has_rt: BoolArray
    rotating: BoolArray
    public: BoolArray
    browser: BoolArray
    client_credentials: BoolArray
    #: probability the key is taken with the token (A4 by key_storage, platform default)
    p_key: FloatArray
    #: the flow has a channel where a key can sit next to the token
    key_channel: BoolArray
    at_rest: BoolArray
    in_transit: BoolArray
    n_forward_cert: FloatArray
    instances: FloatArray
    #: the RS's own jti store: 0 none, 1 per_instance, 2 shared
    rs_store: npt.NDArray[np.int8]
    #: the RS requires server nonces today
    rs_nonce: BoolArray
    #: the RS accepts bearer tokens (RFC 6750); False removes the downgrade path
    supports_bearer: BoolArray
    #: DPoP iat past tolerance of the RS (D1 where missing)
    iat_past: FloatArray
    #: client-certificate lifetime by cert_management (A14a-c)
    cert_lifetime: FloatArray
    #: the flow's AS binds public clients' refresh tokens to the key (RFC 9449 §5, RFC 8705 §4)
    as_binds_rt: BoolArray
    #: family of the binding the flow uses today
    family_today: npt.NDArray[Any]
    #: the inventory's binding_enforced (observed)
    enforced: BoolArray
    sensitivity: FloatArray
    privilege: FloatArray
    environment: FloatArray
    requests_per_day: FloatArray
    #: index into ``MECHANISMS`` of the mechanism each flow uses today
    current_code: npt.NDArray[np.int64]
    support: dict[tuple[Family, View], Support] = field(repr=False)
    #: memo of :meth:`distinct` (the context is immutable, so the result never goes stale)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        flows: pd.DataFrame,
        services: pd.DataFrame,
        params: ModelParameters | None = None,
        *,
        authorization_servers: pd.DataFrame | None = None,
    ) -> FlowContext:
        """Join flows with their RS and AS and compute every per-flow quantity once."""
        require_columns(flows, services)
        p = params or ModelParameters.from_reference()
        n = len(flows)
        pos, svc = service_lookup(flows, services)
        feats = features(flows)
        ases = resolve_authorization_servers(flows, authorization_servers)
        browser = is_in(flows["client_kind"], "browser_spa")
        mobile = is_in(flows["client_kind"], "mobile_app")
        pk_map = {s: p.p_key_for(s) for s in ("software", "webcrypto_non_extractable")}
        pk_map |= {s: p.p_key_for(s) for s in ("platform_keystore", "hsm_tpm")}
        p_key = map_values(flows["key_storage"], pk_map, np.nan)
        default_pk = np.where(
            browser, p.p_key_non_extractable, np.where(mobile, p.p_key_platform, p.p_key_software)
        )
        p_key = np.where(np.isnan(p_key), default_pk, p_key)
        chans = channel_matrix(flows)
        fcodes, fids = str_codes(flows["flow_id"])

        def any_of(names: tuple[str, ...]) -> BoolArray:
            out = np.zeros(n, dtype=bool)
            for c in names:
                out |= chans[c]
            return out

        rt_life = flows["refresh_token_lifetime_s"].to_numpy(dtype=float)
        has_rt = ~is_in(flows["refresh_token"], "none")
        introspects = flows["rs_introspects"].to_numpy(dtype=bool) | is_in(
            flows["token_format"], "opaque"
        )
        cert_life = map_values(
            flows["cert_management"],
            {
                "spiffe": p.cert_lifetime_spiffe_s,
                "automated_pki": p.cert_lifetime_automated_s,
                "none": p.cert_lifetime_automated_s,
            },
            p.cert_lifetime_manual_s,
        )
        iat_past = svc["iat_past_s"].to_numpy(dtype=float)[pos]
        iat_past = np.where(
            np.isfinite(iat_past) & (iat_past > 0), iat_past, p.dpop_iat_past_default_s
        )
        sup_bearer = (
            svc["supports_bearer"].to_numpy(dtype=bool)[pos]
            if "supports_bearer" in svc.columns
            else np.ones(n, dtype=bool)
        )
        env = (
            map_values(
                flows["environment"],
                {"prod": 1.0, "staging": p.env_factor_staging, "dev": p.env_factor_dev},
                1.0,
            )
            if "environment" in flows.columns
            else np.ones(n)
        )
        privilege = (
            _privilege_factor(flows["scopes"], p)
            if "scopes" in flows.columns
            else np.full(n, p.scope_factor_write)
        )
        binding = as_str(flows["binding"])
        rs_store = _rs_store_code(svc, pos)
        rs_nonce = svc["requires_nonce"].to_numpy(dtype=bool)[pos]
        support = structural_supports(flows, services, ases)
        return cls(
            n=n,
            params=p,
            flow_codes=fcodes,
            flow_ids=fids,
            client_path=as_str(feats["client_path"]),
            lifetime=flows["access_token_lifetime_s"].to_numpy(dtype=float),
            rho=np.where(introspects, p.rho_introspection, p.rho_jwt),
            rt_lifetime=np.where(has_rt & (rt_life <= 0), p.rt_absolute_default_s, rt_life),
            has_rt=has_rt,
            rotating=is_in(flows["refresh_token"], "rotating"),
            public=is_in(flows["client_type"], "public"),
            browser=browser,
            client_credentials=is_in(flows["grant_type"], "client_credentials"),
            p_key=p_key,
            key_channel=any_of(KEY_CHANNELS),
            at_rest=any_of(AT_REST_CHANNELS),
            in_transit=any_of(IN_TRANSIT_CHANNELS),
            n_forward_cert=feats["n_forward_cert"].to_numpy(dtype=float),
            instances=svc["instances"].to_numpy(dtype=float)[pos],
            rs_store=rs_store,
            rs_nonce=rs_nonce,
            supports_bearer=sup_bearer,
            iat_past=iat_past,
            cert_lifetime=cert_life,
            as_binds_rt=_as_column(ases, "binds_refresh_tokens")[
                authorization_server_rows(flows, ases)
            ],
            family_today=binding,
            enforced=flows["binding_enforced"].to_numpy(dtype=bool),
            sensitivity=svc["sensitivity"].to_numpy(dtype=float)[pos],
            privilege=privilege,
            environment=env,
            requests_per_day=flows["requests_per_day"].to_numpy(dtype=float),
            current_code=_current_codes(binding, rs_store, rs_nonce),
            support=support,
        )

    @classmethod
    def resolve(
        cls,
        flows: pd.DataFrame,
        services: pd.DataFrame,
        params: ModelParameters | None = None,
        *,
        authorization_servers: pd.DataFrame | None = None,
        context: FlowContext | None = None,
    ) -> FlowContext:
        """``context`` when the caller already built one for these frames, else a new one
        (the ``context=`` keyword every model function accepts)."""
        if context is not None:
            return context
        return cls.build(flows, services, params, authorization_servers=authorization_servers)

    def take(self, index: npt.NDArray[np.int64]) -> FlowContext:
        """The context of the flows at ``index`` (every per-flow array indexed alike)."""
        changes: dict[str, Any] = {"n": len(index), "_memo": {}}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "flow_ids":
                continue  # the distinct ids, indexed through flow_codes
            if isinstance(value, np.ndarray) and value.shape[:1] == (self.n,):
                changes[f.name] = value[index]
        changes["support"] = {
            key: dataclasses.replace(
                sup,
                client=sup.client[index],
                authorization_server=sup.authorization_server[index],
                resource_server=sup.resource_server[index],
                path=sup.path[index],
            )
            for key, sup in self.support.items()
        }
        return dataclasses.replace(self, **changes)

    def distinct(self) -> tuple[FlowContext, npt.NDArray[np.int64]]:
        """One representative per distinct combination of the facts the window models read,
        and each flow's representative: ``(small, inverse)`` with ``small.take``-able arrays.

        Speed: cell statistics depend on a flow only through its lifetimes, revocation,
        client, key, channel, RS and support facts, which repeat across an inventory (1,000,000
        synthetic flows have a few thousand combinations), so evaluating the mixtures once per
        combination and expanding with ``inverse`` is exact. Measured on 1,000,000 flows:
        ``exposure_by_mechanism`` 7.6 s -> see benchmarks/results/models.json. Value-only facts
        (sensitivity, privilege, environment, traffic, ids) are left out of the key.
        """
        if "distinct" in self._memo:
            return self._memo["distinct"]  # type: ignore[no-any-return]
        skip = {"flow_codes", "flow_ids", "client_path", "sensitivity", "privilege"}
        skip |= {"environment"}
        skip |= {"requests_per_day", "current_code"}
        cols: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in skip or not isinstance(value, np.ndarray):
                continue
            if value.shape[:1] == (self.n,):
                cols[f.name] = value
        for (fam, view), sup in self.support.items():
            for part in ("client", "authorization_server", "resource_server", "path"):
                cols[f"{fam}_{view}_{part}"] = getattr(sup, part)
        inverse, first = distinct_rows(list(cols.values()))
        result = (self.take(first), inverse)
        self._memo["distinct"] = result
        return result

    @property
    def flow_id(self) -> npt.NDArray[Any]:
        """Each flow's id (object array)."""
        return np.asarray(self.flow_ids[self.flow_codes])

    @property
    def value(self) -> FloatArray:
        """What one usable theft of this flow's token puts at stake: RS sensitivity (1-5) x
        privilege of the scopes (A24a-c) x environment (A25a-b) x traffic ``(1 + requests per
        day) ** A16`` (busier flows leave more copies)."""
        p = self.params
        traffic = (1.0 + self.requests_per_day) ** p.traffic_exponent
        return np.asarray(self.sensitivity * self.privilege * self.environment * traffic)

    @property
    def current(self) -> tuple[Mechanism, ...]:
        """The mechanism object of each distinct code in use (see :attr:`current_code`)."""
        return tuple(MECHANISMS[i] for i in np.unique(self.current_code))

    def enforcement(self, mech: Mechanism | str, view: View) -> FloatArray:
        """Probability ``e`` that the RS enforces the binding of ``mech`` on each flow.

        Not enforceable in the view (client, AS, RS or path cannot carry it): 0, the token is
        accepted as bearer (RFC 9449 §7.2) or is simply not bound. Enforceable and the flow
        already uses the family: the inventory's ``binding_enforced``. Enforceable and new:
        A2 ``e_rs``. An RS that refuses bearer tokens (``supports_bearer`` false) enforces
        whenever it can: no bearer fallback exists.
        """
        m = mechanism(mech)
        if not m.bound:
            return np.zeros(self.n)
        s = self.support[(m.family, view)].enforceable
        same = self.family_today == m.family
        e = np.where(same, self.enforced.astype(float), self.params.e_rs)
        e = np.where(~self.supports_bearer, 1.0, e)
        return np.asarray(np.where(s, e, 0.0))

    def enforceable(self, mech: Mechanism | str, view: View) -> BoolArray:
        """Structural enforceability of ``mech`` in ``view`` (bearer: False)."""
        m = mechanism(mech)
        if not m.bound:
            return np.zeros(self.n, dtype=bool)
        return self.support[(m.family, view)].enforceable

    def jti_store(self, mech: Mechanism | str) -> npt.NDArray[np.int8]:
        """The jti store a DPoP mechanism runs with: 0 none, 1 per_instance, 2 shared."""
        m = mechanism(mech)
        code = {"none": 0, "per_instance": 1, "shared": 2}
        if m.jti_store == "inventory":
            return self.rs_store
        return np.full(self.n, code.get(m.jti_store or "none", 0), dtype=np.int8)


def _current_codes(
    binding: npt.NDArray[Any], rs_store: npt.NDArray[np.int8], rs_nonce: BoolArray
) -> npt.NDArray[np.int64]:
    """Index into ``MECHANISMS`` of each flow's mechanism today.

    bearer and mtls map directly; a DPoP flow maps by its RS: nonces with a shared store ->
    ``dpop_nonce_shared_cache``, nonces otherwise -> ``dpop_nonce`` (the RS's store), else the
    store variant.
    """
    ids = [m.id for m in MECHANISMS]
    by_store = np.array(
        [
            ids.index("dpop_no_cache"),
            ids.index("dpop_per_instance_cache"),
            ids.index("dpop_shared_cache"),
        ]
    )
    dpop = np.where(
        rs_nonce,
        np.where(rs_store == 2, ids.index("dpop_nonce_shared_cache"), ids.index("dpop_nonce")),
        by_store[rs_store],
    )
    out = np.where(binding == "dpop", dpop, np.where(binding == "mtls", ids.index("mtls"), 0))
    return np.asarray(out, dtype=np.int64)
