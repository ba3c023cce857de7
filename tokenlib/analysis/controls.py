"""Competing controls: what each one removes, what it costs, and which to do first.

A sender-constraining binding is one control among several. Each :class:`Control` is data: an
id, the RFC/BCP section it follows, which flows it :attr:`~Control.applies` to, and how it
changes the inventory (:attr:`~Control.apply` returns *counterfactual* flows, services and
authorization-servers frames). The exposure models (:mod:`tokenlib.analysis.models`) are then run
on the counterfactual frames, so a control removes exactly what the model says it removes --
nothing is typed per control.

Exposure (``control_effects``)
    ``exposure_before`` / ``exposure_after``: the token-theft group (the headline), metric
    ``usable`` by default, from :func:`~tokenlib.analysis.models.exposure_by_mechanism`'s
    ``exposure_current`` on the real and the counterfactual frames. A *binding* control moves
    the flow to :attr:`Control.mechanism`: its exposure is that mechanism's column on the
    counterfactual frames (the inventory's observed enforcement where the flow already uses the
    family, A2 ``e_rs`` for a new deployment -- a new deployment is not assumed verified).
    ``credential_removed``: the same for the credential-store group (its own section).
    ``reach_removed``: the token-theft exposure at *other* services the stolen token is accepted
    by (audience restriction and token exchange act there, not at the flow's own resource
    server): a token that is not audience-restricted is accepted by every resource server of its
    authorization server and their downstream services; an audience-restricted token that is
    forwarded reaches the forwarding closure of its RS unless the forwarding hop exchanges it
    (RFC 8693) at an AS that supports token exchange. Each reached service counts with its
    sensitivity in place of the flow's own (first order: the same usable share as at the own RS).

Cost model (every number is a parameter of ``data/reference/model_parameters.csv``)
    ``cost = engineer-days x A18e engineer_day_usd`` for each unit of work, plus, for bindings,
    per-request CPU ``(A19a + A19b)`` (DPoP sign + verify) or ``A19c`` (mTLS) ``x
    requests_per_day x A18g horizon_days x A18f cpu_usd_per_core_hour / 3600``.
    A unit of work is done once per *unit* (``Control.cost_unit``): per ``client`` (client_id),
    ``resource_server``, ``authorization_server``, ``hop`` (a forwarding edge or a
    TLS-terminating hop, keyed by resource server and path) or ``flow``; its cost is split
    evenly over the applicable flows sharing the unit, so summing a control's rows counts every
    shared component once. Engineer-days per unit:

    ===========================  ===================================================  ========
    control                      units of work                                        params
    ===========================  ===================================================  ========
    short_lifetime               per client                                           A27a
    rt_rotation                  per client                                           A27b
    audience_restriction         per resource server                                  A27c
    token_exchange               per forwarding RS; AS without RFC 8693 support      A27d, AS
    non_exportable_keys          per client                                           A27e
    keys_instead_of_secrets      per client (client authentication + key storage)     A18a+A27e
    short_cert_lifetime          per client                                           A27e
    short_rt_lifetime            per client (an AS setting, like rotation)            A27b
    bff                          per client                                           A27f
    verified_enforcement         per resource server                                  A27g
    dpop                         client A18a; RS A18b if unsupported; shared jti      A18a-d, AS
                                 store + nonces A18d per RS lacking them; AS
    mtls                         client A18a; cert automation A18a if none; RS A18b;  A18a-c, AS
                                 A18c per terminating hop; AS
    ===========================  ===================================================  ========

    "AS": enabling a capability on an authorization server that lacks it (DPoP-bound,
    certificate-bound tokens, token exchange) has no parameter of its own in the register; it
    is costed like enabling one at a resource server, A18b ``cost_rs_change_days``, once per
    AS (:data:`AS_CHANGE_PARAM`; an assumption stated here). Certificate automation and the
    short-certificate control are costed with existing parameters (A18a, A27e) for the same
    reason.

Ranking (``rank_controls``): exposure removed per thousand dollars in one section at a time --
token theft at the flows' own resource servers (``by="token_theft"``, the headline "what
first"), the reach of a stolen token at other services (``by="reach"``; a blast-radius scale:
an unrestricted token counts every service of its issuer, so its totals are not comparable 1:1
with the headline) or the credential store (``by="credential_store"``, its own section).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from tokenlib.analysis._diskcache import UNKEYABLE, cached
from tokenlib.analysis._paths import as_str, features, is_in, service_lookup, str_codes
from tokenlib.analysis.models import FlowContext, exposure_by_mechanism
from tokenlib.analysis.models.exposure import Metric
from tokenlib.analysis.models.mechanisms import View, mechanism
from tokenlib.analysis.models.support import DEFAULT_AS, resolve_authorization_servers
from tokenlib.analysis.params import ModelParameters

__all__ = [
    "AS_CHANGE_PARAM",
    "CONTROLS",
    "CREDENTIAL_CONTROLS",
    "Control",
    "CostItem",
    "control",
    "control_cost",
    "control_effects",
    "credential_holders",
    "credential_store_exposure",
    "rank_controls",
    "reach_ratio",
]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating[Any]]
Frames = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
CostUnit = Literal["client", "resource_server", "hop", "authorization_server", "flow"]
Kind = Literal["binding", "hygiene"]

#: Parameter used for enabling a capability at an authorization server (no own register id).
AS_CHANGE_PARAM = "cost_rs_change_days"

_UNIT_KEYS: dict[str, tuple[str, ...]] = {
    "client": ("client_id",),
    "resource_server": ("resource_server",),
    "hop": ("resource_server", "path"),
    "authorization_server": ("authorization_server",),
    "flow": ("flow_id",),
}


# --------------------------------------------------------------------------- frame helpers


def _col(frame: pd.DataFrame, name: str, default: Any) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([default] * len(frame), index=frame.index)


def _as_ids(flows: pd.DataFrame) -> npt.NDArray[Any]:
    """Each flow's authorization-server id (``as-default`` when not named)."""
    if "authorization_server" not in flows.columns:
        return np.full(len(flows), DEFAULT_AS, dtype=object)
    codes, uniq = str_codes(flows["authorization_server"])
    named = np.array([str(u).strip() or DEFAULT_AS for u in uniq], dtype=object)
    return np.asarray(named[codes], dtype=object) if len(uniq) else np.array([], dtype=object)


def _set(frame: pd.DataFrame, col: str, mask: BoolArray, value: Any) -> None:
    """``frame.loc[mask, col] = value`` keeping categorical columns categorical."""
    if not mask.any():
        return
    if col not in frame.columns:
        frame[col] = False if isinstance(value, bool | np.bool_) else ""
    s = frame[col]
    if isinstance(s.dtype, pd.CategoricalDtype) and value not in s.cat.categories:
        frame[col] = s.cat.add_categories([value])
    frame.loc[np.asarray(mask, dtype=bool), col] = value


def _rs_values(flows: pd.DataFrame, services: pd.DataFrame, col: str, default: Any) -> Any:
    pos, svc = service_lookup(flows, services)
    return np.asarray(_col(svc, col, default).to_numpy())[pos]


def _as_rows(flows: pd.DataFrame, ases: pd.DataFrame) -> npt.NDArray[np.int64]:
    ids = pd.Index(np.asarray(ases["as_id"].astype(str), dtype=object))
    return np.asarray(ids.get_indexer(_as_ids(flows)), dtype=np.int64)


def _as_values(flows: pd.DataFrame, ases: pd.DataFrame, col: str) -> BoolArray:
    rows = _as_rows(flows, ases)
    vals = np.asarray(_col(ases, col, False).to_numpy(dtype=bool), dtype=bool)
    return np.where(rows >= 0, vals[np.clip(rows, 0, None)] if len(vals) else False, False)


def _enable_services(
    flows: pd.DataFrame, services: pd.DataFrame, mask: BoolArray, **values: Any
) -> pd.DataFrame:
    """Services frame with ``values`` set on the resource servers of the flows in ``mask``."""
    out = services.copy()
    if not mask.any():
        return out
    rs = set(as_str(flows["resource_server"])[mask].tolist())
    sel = out["service_id"].astype(str).isin(rs).to_numpy()
    for col, v in values.items():
        _set(out, col, sel, v)
    return out


def _enable_ases(
    flows: pd.DataFrame, ases: pd.DataFrame, mask: BoolArray, *cols: str
) -> pd.DataFrame:
    out = ases.copy()
    if not mask.any():
        return out
    ids = set(_as_ids(flows)[mask].tolist())
    sel = out["as_id"].astype(str).isin(ids).to_numpy()
    for col in cols:
        _set(out, col, sel, True)
    return out


_TERMINATE = re.compile(r":terminate(?=>|$)")


def _forward_cert_paths(flows: pd.DataFrame, mask: BoolArray) -> pd.Series:
    """``path`` with every ``terminate`` hop turned into ``terminate_forward_cert`` (RFC 9440)."""
    codes, uniq = str_codes(flows["path"])
    fixed = np.array(
        [_TERMINATE.sub(":terminate_forward_cert", str(u)) for u in uniq], dtype=object
    )
    new = fixed[codes] if len(uniq) else np.array([], dtype=object)
    old = as_str(flows["path"])
    return pd.Series(np.where(mask, new, old), index=flows.index, dtype=object)


def _n_terminate(flows: pd.DataFrame) -> FloatArray:
    return np.asarray(features(flows)["n_terminate_no_forward"].to_numpy(dtype=float))


def _workload(flows: pd.DataFrame) -> BoolArray:
    kind = flows["client_kind"]
    return ~is_in(kind, "browser_spa", "mobile_app", "cli_tool")


def _target_key_storage(flows: pd.DataFrame) -> npt.NDArray[Any]:
    """Non-exportable storage per platform (RFC 9700 §4.10.1): WebCrypto non-extractable keys
    in browsers, the platform keystore on mobile and CLI hosts, an HSM/TPM for workloads."""
    kind = flows["client_kind"]
    return np.where(
        is_in(kind, "browser_spa"),
        "webcrypto_non_extractable",
        np.where(is_in(kind, "mobile_app", "cli_tool"), "platform_keystore", "hsm_tpm"),
    ).astype(object)


# --------------------------------------------------------------------------- controls


ApplyFn = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame, ModelParameters], Frames]


class AppliesFn(Protocol):
    """``applies(flows, services, ases, params=None) -> mask`` of a control."""

    def __call__(
        self,
        f: pd.DataFrame,
        s: pd.DataFrame,
        a: pd.DataFrame,
        p: ModelParameters | None = None,
    ) -> BoolArray: ...


@dataclass(frozen=True, slots=True)
class CostItem:
    """One unit of work of a control: ``days`` = the parameter ``param`` (engineer-days) x
    ``amount`` (per flow, e.g. number of hops; constant within a unit), done once per ``unit``
    for the applicable flows where ``needed`` holds (all applicable flows when None)."""

    unit: CostUnit
    param: str
    needed: AppliesFn | None = None
    amount: Callable[[pd.DataFrame], FloatArray] | None = None
    label: str = ""


@dataclass(frozen=True, slots=True)
class Control:
    """A control as data (see the module docstring for the cost model).

    ``applies(flows, services, ases)`` is the mask of flows it changes; ``apply(flows, services,
    ases, params)`` returns counterfactual ``(flows, services, ases)`` frames (copies).
    ``mechanism``: the mechanism a binding control moves flows to (None for hygiene controls,
    whose effect is the current mechanism on the counterfactual frames). ``section``: the
    exposure group it is meant for (``token_theft`` or ``credential_store``).
    ``cpu_params``: per-request CPU parameters (seconds per request) summed for bindings.
    """

    id: str
    label: str
    kind: Kind
    source: str
    cost_unit: CostUnit
    cost_param: str
    applies: AppliesFn = field(repr=False)
    apply: ApplyFn = field(repr=False)
    mechanism: str | None = None
    section: Literal["token_theft", "credential_store"] = "token_theft"
    extra_costs: tuple[CostItem, ...] = ()
    cpu_params: tuple[str, ...] = ()

    @property
    def costs(self) -> tuple[CostItem, ...]:
        """Every unit of work, the primary one (``cost_unit``, ``cost_param``) first."""
        return (CostItem(self.cost_unit, self.cost_param), *self.extra_costs)

    def __str__(self) -> str:
        return self.id


def _copies(f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame) -> Frames:
    return f.copy(), s.copy(), a.copy()


# short access-token lifetime -----------------------------------------------------------


def _short_lifetime_applies(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    p = p or ModelParameters.from_reference()
    return np.asarray(f["access_token_lifetime_s"].to_numpy(dtype=float) > p.short_lifetime_s)


def _short_lifetime_apply(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters
) -> Frames:
    f2, s2, a2 = _copies(f, s, a)
    life = f2["access_token_lifetime_s"].to_numpy(dtype=float)
    new = np.minimum(life, p.short_lifetime_s)
    f2["access_token_lifetime_s"] = new.astype(f2["access_token_lifetime_s"].dtype)
    return f2, s2, a2


# refresh tokens ------------------------------------------------------------------------------


def _static_rt(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    return is_in(f["refresh_token"], "static")


def _rt_rotation_apply(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters
) -> Frames:
    f2, s2, a2 = _copies(f, s, a)
    _set(f2, "refresh_token", _static_rt(f, s, a), "rotating")
    return f2, s2, a2


def _long_rt(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    p = p or ModelParameters.from_reference()
    life = f["refresh_token_lifetime_s"].to_numpy(dtype=float)
    life = np.where(life <= 0, p.rt_absolute_default_s, life)
    return np.asarray(~is_in(f["refresh_token"], "none") & (life > p.as_session_max_s))


def _short_rt_apply(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters
) -> Frames:
    f2, s2, a2 = _copies(f, s, a)
    life = f2["refresh_token_lifetime_s"].to_numpy(dtype=float)
    has = ~is_in(f2["refresh_token"], "none")
    life = np.where(has & (life <= 0), p.rt_absolute_default_s, life)
    new = np.where(has, np.minimum(life, p.as_session_max_s), life)
    f2["refresh_token_lifetime_s"] = new.astype(f2["refresh_token_lifetime_s"].dtype)
    return f2, s2, a2


# audience and token exchange -----------------------------------------------------------------


def _unrestricted(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    return np.asarray(~f["audience_restricted"].to_numpy(dtype=bool), dtype=bool)


def _audience_apply(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters
) -> Frames:
    f2, s2, a2 = _copies(f, s, a)
    f2["audience_restricted"] = True
    return f2, s2, a2


def _forwarding(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    fwd = f["forwards_token"].to_numpy(dtype=bool)
    tx = _col(f, "token_exchange", False).to_numpy(dtype=bool)
    return np.asarray(fwd & ~tx)


def _as_lacks(col: str) -> AppliesFn:
    def needed(
        f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
    ) -> BoolArray:
        return ~_as_values(f, a, col)

    return needed


def _token_exchange_apply(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters
) -> Frames:
    mask = _forwarding(f, s, a)
    f2, s2, _ = _copies(f, s, a)
    _set(f2, "token_exchange", mask, True)
    return f2, s2, _enable_ases(f, a, mask, "supports_token_exchange")


# key storage and credentials -----------------------------------------------------------------


def _extractable(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    """A key or secret in software (``key_storage`` none/software) that platform storage would
    protect; browsers without a key already get the non-extractable default in the model."""
    del s, a
    soft = is_in(f["key_storage"], "software") | (
        is_in(f["key_storage"], "none") & ~is_in(f["client_kind"], "browser_spa", "mobile_app")
    )
    return np.asarray(soft)


def _holds_key(f: pd.DataFrame) -> BoolArray:
    return np.asarray(~is_in(f["binding"], "bearer") | ~is_in(f["cert_management"], "none"))


def _secret_client(f: pd.DataFrame) -> BoolArray:
    """Confidential clients authenticating with a client secret: no certificate, no binding key."""
    return np.asarray(is_in(f["client_type"], "confidential") & ~_holds_key(f))


def _non_exportable_applies(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    return np.asarray(
        _extractable(f, s, a) & (_holds_key(f) | ~is_in(f["client_type"], "confidential"))
    )


def _secrets_applies(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    return np.asarray(_extractable(f, s, a) & _secret_client(f))


def _move_keys(mask_fn: AppliesFn) -> ApplyFn:
    def apply(f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters) -> Frames:
        mask = mask_fn(f, s, a, p)
        f2, s2, a2 = _copies(f, s, a)
        target = _target_key_storage(f)
        for value in np.unique(target[mask]) if mask.any() else []:
            _set(f2, "key_storage", mask & (target == value), str(value))
        return f2, s2, a2

    return apply


def _long_certs(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    cm = f["cert_management"]
    return np.asarray(
        is_in(cm, "manual")
        | (is_in(cm, "automated_pki") & _workload(f))
        | (is_in(cm, "none") & is_in(f["binding"], "mtls"))
    )


def _short_cert_apply(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters
) -> Frames:
    mask = _long_certs(f, s, a)
    f2, s2, a2 = _copies(f, s, a)
    work = _workload(f)
    _set(f2, "cert_management", mask & work, "spiffe")
    _set(f2, "cert_management", mask & ~work, "automated_pki")
    return f2, s2, a2


# backend for frontend ------------------------------------------------------------------------


def _browser(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    return is_in(f["client_kind"], "browser_spa")


def _drop_channels(values: pd.Series, mask: BoolArray, drop: Sequence[str]) -> pd.Series:
    codes, uniq = str_codes(values)
    kept = np.array(
        [
            ";".join(c for c in str(u).split(";") if c.strip() and c.strip() not in drop)
            for u in uniq
        ],
        dtype=object,
    )
    new = kept[codes] if len(uniq) else np.array([], dtype=object)
    return pd.Series(np.where(mask, new, as_str(values)), index=values.index, dtype=object)


def _bff_apply(f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters) -> Frames:
    """draft-ietf-oauth-browser-based-apps §6.1: the backend is a confidential client and keeps
    the tokens; the browser holds a session cookie. The browser_storage and har_files channels no
    longer carry tokens (HAR files record browser traffic, which now carries none); the client
    credential sits in the backend's software store."""
    mask = _browser(f, s, a)
    f2, s2, a2 = _copies(f, s, a)
    _set(f2, "client_kind", mask, "web_backend")
    _set(f2, "client_type", mask, "confidential")
    _set(f2, "key_storage", mask, "software")
    f2["exposure_channels"] = _drop_channels(
        f2["exposure_channels"], mask, ("browser_storage", "har_files")
    )
    return f2, s2, a2


# verified enforcement ------------------------------------------------------------------------


def _unverified(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    return np.asarray(~is_in(f["binding"], "bearer") & ~f["binding_enforced"].to_numpy(dtype=bool))


def _verified_apply(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters
) -> Frames:
    mask = _unverified(f, s, a)
    f2, s2, a2 = _copies(f, s, a)
    _set(f2, "binding_enforced", mask, True)
    return f2, s2, a2


# sender-constraining -------------------------------------------------------------------------


def _dpop_applies(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    """Bearer flows, and DPoP flows whose RS lacks a shared jti store or nonces."""
    bearer = is_in(f["binding"], "bearer")
    dpop = is_in(f["binding"], "dpop")
    shared = _rs_values(f, s, "jti_cache", "none").astype(str) == "shared"
    nonce = np.asarray(_rs_values(f, s, "requires_nonce", False), dtype=bool)
    return np.asarray(bearer | (dpop & ~(shared & nonce)))


def _rs_lacks(col: str) -> AppliesFn:
    def needed(
        f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
    ) -> BoolArray:
        return ~np.asarray(_rs_values(f, s, col, False), dtype=bool)

    return needed


def _rs_lacks_store_or_nonce(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    shared = _rs_values(f, s, "jti_cache", "none").astype(str) == "shared"
    nonce = np.asarray(_rs_values(f, s, "requires_nonce", False), dtype=bool)
    return np.asarray(~(shared & nonce))


def _not_family(fam: str) -> AppliesFn:
    def needed(
        f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
    ) -> BoolArray:
        return ~is_in(f["binding"], fam)

    return needed


def _dpop_apply(f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters) -> Frames:
    """The RS verifies DPoP with a shared jti store and nonces (RFC 9449 §11.1, §8); the AS
    issues DPoP-bound access tokens and binds public clients' refresh tokens (§5)."""
    mask = _dpop_applies(f, s, a)
    s2 = _enable_services(f, s, mask, supports_dpop=True, jti_cache="shared", requires_nonce=True)
    a2 = _enable_ases(f, a, mask, "issues_dpop", "binds_refresh_tokens")
    return f.copy(), s2, a2


def _mtls_applies(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    return np.asarray(is_in(f["binding"], "bearer") & ~is_in(f["client_kind"], "browser_spa"))


def _no_cert_management(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    return is_in(f["cert_management"], "none")


def _has_terminating(
    f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
) -> BoolArray:
    del s, a
    return np.asarray(_n_terminate(f) > 0)


def _mtls_apply(f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters) -> Frames:
    """RFC 8705: the RS checks certificate-bound tokens (§3), the AS issues them, each hop that
    terminates TLS forwards the certificate (RFC 9440; sanitised, §4) and certificates are
    managed automatically where the client had no management."""
    mask = _mtls_applies(f, s, a)
    f2 = f.copy()
    f2["path"] = _forward_cert_paths(f, mask)
    _set(f2, "cert_management", mask & is_in(f["cert_management"], "none"), "automated_pki")
    s2 = _enable_services(f, s, mask, supports_mtls=True)
    a2 = _enable_ases(f, a, mask, "issues_mtls")
    return f2, s2, a2


CONTROLS: tuple[Control, ...] = (
    Control(
        "short_lifetime",
        "Shorten the access-token lifetime to A28",
        "hygiene",
        "RFC 6819 §5.1.5.3 (short expiration time); RFC 9700 §4.14 (context: refresh tokens "
        "keep sessions while access tokens stay short)",
        "client",
        "cost_lifetime_days",
        _short_lifetime_applies,
        _short_lifetime_apply,
    ),
    Control(
        "rt_rotation",
        "Rotate refresh tokens with reuse detection",
        "hygiene",
        "RFC 9700 §4.14.2",
        "client",
        "cost_rt_rotation_days",
        _static_rt,
        _rt_rotation_apply,
    ),
    Control(
        "audience_restriction",
        "Restrict the audience to one resource server",
        "hygiene",
        "RFC 9700 §2.3; RFC 8707",
        "resource_server",
        "cost_audience_days",
        _unrestricted,
        _audience_apply,
    ),
    Control(
        "token_exchange",
        "Exchange tokens at forwarding edges instead of forwarding them",
        "hygiene",
        "RFC 8693 §2; RFC 9700 §2.3",
        "hop",
        "cost_token_exchange_days",
        _forwarding,
        _token_exchange_apply,
        extra_costs=(
            CostItem(
                "authorization_server",
                AS_CHANGE_PARAM,
                _as_lacks("supports_token_exchange"),
                label="authorization server: enable token exchange (RFC 8693)",
            ),
        ),
    ),
    Control(
        "non_exportable_keys",
        "Keep the client key in non-exportable storage",
        "hygiene",
        "RFC 9700 §4.10.1; RFC 9449 §1 (WebCrypto non-extractable, platform keystore, HSM/TPM)",
        "client",
        "cost_key_storage_days",
        _non_exportable_applies,
        _move_keys(_non_exportable_applies),
        section="credential_store",
    ),
    Control(
        "keys_instead_of_secrets",
        "Replace long-lived client secrets by keys in non-exportable storage",
        "hygiene",
        "RFC 9700 §2.5 (asymmetric client authentication, e.g. private_key_jwt RFC 7523, "
        "mTLS RFC 8705); RFC 9700 §4.10.1",
        "client",
        "cost_key_storage_days",
        _secrets_applies,
        _move_keys(_secrets_applies),
        section="credential_store",
        extra_costs=(CostItem("client", "cost_client_change_days", label="client authentication"),),
    ),
    Control(
        "short_cert_lifetime",
        "Short-lived client certificates (SPIFFE for workloads, automated PKI otherwise)",
        "hygiene",
        "RFC 8705 §6.3 (certificate rotation); SPIFFE X.509-SVID",
        "client",
        "cost_key_storage_days",
        _long_certs,
        _short_cert_apply,
        section="credential_store",
    ),
    Control(
        "short_rt_lifetime",
        "Cap the refresh-token lifetime at the AS session maximum (A9)",
        "hygiene",
        "RFC 9700 §4.14.2 (refresh tokens SHOULD expire); RFC 6819 §5.2.2.3",
        "client",
        "cost_rt_rotation_days",
        _long_rt,
        _short_rt_apply,
        section="credential_store",
    ),
    Control(
        "bff",
        "Backend-for-frontend for browser apps (tokens stay server-side)",
        "hygiene",
        "draft-ietf-oauth-browser-based-apps §6.1",
        "client",
        "cost_bff_days",
        _browser,
        _bff_apply,
    ),
    Control(
        "verified_enforcement",
        "Verify binding enforcement with a negative test",
        "hygiene",
        "RFC 9449 §7.2 (a bound token accepted as bearer); RFC 8705 §3",
        "resource_server",
        "cost_enforcement_test_days",
        _unverified,
        _verified_apply,
    ),
    Control(
        "dpop",
        "Sender-constrain with DPoP (shared jti store + nonces)",
        "binding",
        "RFC 9449 §5, §7, §8, §11.1",
        "client",
        "cost_client_change_days",
        _dpop_applies,
        _dpop_apply,
        mechanism="dpop_nonce_shared_cache",
        extra_costs=(
            CostItem(
                "resource_server",
                "cost_rs_change_days",
                _rs_lacks("supports_dpop"),
                label="resource server: verify DPoP",
            ),
            CostItem(
                "resource_server",
                "cost_nonce_days",
                _rs_lacks_store_or_nonce,
                label="resource server: shared jti store and nonces",
            ),
            CostItem(
                "authorization_server",
                AS_CHANGE_PARAM,
                _as_lacks("issues_dpop"),
                label="authorization server: issue DPoP-bound tokens (RFC 9449 §5)",
            ),
        ),
        cpu_params=("dpop_sign_cost_s", "dpop_verify_cost_s"),
    ),
    Control(
        "mtls",
        "Sender-constrain with mTLS (certificate-bound tokens)",
        "binding",
        "RFC 8705 §3; RFC 9440",
        "client",
        "cost_client_change_days",
        _mtls_applies,
        _mtls_apply,
        mechanism="mtls",
        extra_costs=(
            CostItem(
                "client",
                "cost_client_change_days",
                _no_cert_management,
                label="client: automate certificate management",
            ),
            CostItem(
                "resource_server",
                "cost_rs_change_days",
                _rs_lacks("supports_mtls"),
                label="resource server: verify certificate-bound tokens",
            ),
            CostItem(
                "hop",
                "cost_hop_change_days",
                _has_terminating,
                _n_terminate,
                label="hop: forward the client certificate (RFC 9440)",
            ),
            CostItem(
                "authorization_server",
                AS_CHANGE_PARAM,
                _as_lacks("issues_mtls"),
                label="authorization server: issue certificate-bound tokens (RFC 8705 §3)",
            ),
        ),
        cpu_params=("mtls_request_cost_s",),
    ),
)
#: Controls of the credential-store section.
CREDENTIAL_CONTROLS: tuple[Control, ...] = tuple(
    c for c in CONTROLS if c.section == "credential_store"
)
_BY_ID = {c.id: c for c in CONTROLS}


def control(value: str | Control) -> Control:
    """The control with this id; ``ValueError`` naming the valid ids otherwise."""
    if isinstance(value, Control):
        return value
    try:
        return _BY_ID[value]
    except KeyError:
        raise ValueError(
            f"unknown control {value!r}; expected one of {', '.join(_BY_ID)}"
        ) from None


# --------------------------------------------------------------------------- costs


def _unit_keys(flows: pd.DataFrame, unit: CostUnit) -> npt.NDArray[np.int64]:
    cols = _UNIT_KEYS[unit]
    if unit == "authorization_server":
        codes, _ = pd.factorize(_as_ids(flows))
        return np.asarray(codes, dtype=np.int64)
    parts = [str_codes(flows[c])[0] for c in cols]
    if len(parts) == 1:
        return parts[0]
    stacked = np.stack(parts, axis=1)
    _, inv = np.unique(stacked, axis=0, return_inverse=True)
    return np.asarray(inv, dtype=np.int64).reshape(-1)


def _primary_needed(ctrl: Control) -> AppliesFn | None:
    """Binding controls change the client only where it does not use the family yet."""
    if ctrl.mechanism is None:
        return None
    return _not_family(mechanism(ctrl.mechanism).family)


def control_cost(
    ctrl: Control | str,
    flows: pd.DataFrame,
    services: pd.DataFrame,
    authorization_servers: pd.DataFrame | None = None,
    params: ModelParameters | None = None,
    *,
    mask: BoolArray | None = None,
) -> pd.DataFrame:
    """Cost (USD) attributed to each flow for ``ctrl`` (module docstring, "Cost model").

    Columns: ``flow_id, one_off_usd, per_request_usd, cost_usd, changes`` (the units of work
    this flow takes part in, e.g. ``"authorization server: issue DPoP-bound tokens (RFC 9449
    §5)"``). Flows outside ``mask`` (default: where the control applies) cost 0.
    """
    c = control(ctrl)
    p = params or ModelParameters.from_reference()
    ases = resolve_authorization_servers(flows, authorization_servers)
    n = len(flows)
    app = c.applies(flows, services, ases, p) if mask is None else np.asarray(mask, dtype=bool)
    days = np.zeros(n)
    change_bits = np.zeros(n, dtype=np.int64)
    items = c.costs
    for i, item in enumerate(items):
        needed = item.needed if i else (_primary_needed(c) or item.needed)
        sel = app & (needed(flows, services, ases, p) if needed is not None else True)
        if not sel.any():
            continue
        amount = item.amount(flows) if item.amount is not None else np.ones(n)
        keys = _unit_keys(flows, item.unit)
        share = np.bincount(keys[sel], minlength=int(keys.max()) + 1 if n else 0).astype(float)
        per_flow = np.where(sel, amount / np.where(share[keys] > 0, share[keys], 1.0), 0.0)
        days += per_flow * float(getattr(p, item.param))
        change_bits |= np.where(sel, 1 << i, 0)
    cpu = sum(float(getattr(p, name)) for name in c.cpu_params)
    rpd = flows["requests_per_day"].to_numpy(dtype=float)
    per_req = np.where(app, cpu * rpd * p.horizon_days * p.cpu_usd_per_core_hour / 3600.0, 0.0)
    one_off = days * p.engineer_day_usd
    labels = [it.label or _default_label(c, it) for it in items]
    codes, uniq = pd.factorize(change_bits)
    texts = ["; ".join(lab for j, lab in enumerate(labels) if int(u) >> j & 1) for u in uniq]
    return pd.DataFrame(
        {
            "flow_id": np.asarray(as_str(flows["flow_id"])),
            "one_off_usd": one_off,
            "per_request_usd": per_req,
            "cost_usd": one_off + per_req,
            "changes": pd.Categorical.from_codes(
                np.asarray(pd.Index(texts).unique().get_indexer(texts))[codes],
                categories=pd.Index(texts).unique(),
            ),
        },
        index=flows.index,
    )


def _default_label(c: Control, item: CostItem) -> str:
    unit = item.unit.replace("_", " ")
    if c.mechanism is not None and item.param == c.cost_param and item.unit == c.cost_unit:
        return f"client: hold a key and send {mechanism(c.mechanism).family} proofs"
    return f"{unit}: {c.label[0].lower()}{c.label[1:]}"


# --------------------------------------------------------------------------- reach


def _closure(services: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Boolean reachability (downstream calls, transitive, without the service itself)."""
    ids = services["service_id"].astype(str).tolist()
    index = {s: i for i, s in enumerate(ids)}
    k = len(ids)
    adj = np.zeros((k, k), dtype=bool)
    down = _col(services, "downstream", "").fillna("").astype(str).tolist()
    for i, d in enumerate(down):
        for x in filter(None, (y.strip() for y in d.split(";"))):
            if x in index:
                adj[i, index[x]] = True
    reach = adj.copy()
    for _ in range(k):
        nxt = reach | ((reach.astype(np.int32) @ adj.astype(np.int32)) > 0)
        if (nxt == reach).all():
            break
        reach = nxt
    np.fill_diagonal(reach, False)
    return reach


def reach_ratio(
    flows: pd.DataFrame, services: pd.DataFrame, authorization_servers: pd.DataFrame | None = None
) -> FloatArray:
    """Sensitivity of the *other* services a stolen token of each flow is accepted by, relative
    to its own resource server's (module docstring, "reach"). 0 for an audience-restricted token
    that is not forwarded, or is exchanged at the forwarding hop (RFC 8693) by an AS that supports
    it."""
    ases = resolve_authorization_servers(flows, authorization_servers)
    svc = services.reset_index(drop=True)
    pos, _ = service_lookup(flows, svc)
    sens = svc["sensitivity"].to_numpy(dtype=float)
    reach = _closure(svc)
    down_sum = reach.astype(float) @ sens  # per RS: downstream closure
    as_ids = _as_ids(flows)
    as_codes, as_uniq = pd.factorize(as_ids)
    k = len(svc)
    issuer = np.zeros((len(as_uniq), k), dtype=bool)
    issuer[as_codes, pos] = True
    issuer = issuer | ((issuer.astype(np.int32) @ reach.astype(np.int32)) > 0)
    issuer_sum = issuer.astype(float) @ sens
    fwd = flows["forwards_token"].to_numpy(dtype=bool)
    tx = _col(flows, "token_exchange", False).to_numpy(dtype=bool) & _as_values(
        flows, ases, "supports_token_exchange"
    )
    restricted = flows["audience_restricted"].to_numpy(dtype=bool)
    own = sens[pos]
    extra = np.where(
        restricted,
        np.where(fwd & ~tx, down_sum[pos], 0.0),
        issuer_sum[as_codes] - own,
    )
    return np.asarray(np.where(own > 0, np.maximum(extra, 0.0) / np.where(own > 0, own, 1.0), 0.0))


# --------------------------------------------------------------------------- effects


def _exposure(
    frames: Frames,
    p: ModelParameters,
    mech: str | None,
    group: Literal["token_theft", "credential_store"],
    metric: Metric,
    view: View,
    ctx: FlowContext | None = None,
) -> FloatArray:
    f, s, a = frames
    c = ctx or FlowContext.build(f, s, p, authorization_servers=a)
    e = exposure_by_mechanism(
        f,
        s,
        p,
        mechanisms=[mech] if mech else [],
        group=group,
        metric=metric,
        view=view,
        authorization_servers=a,
        context=c,
    )
    col = f"exposure_{mech}" if mech else "exposure_current"
    return np.asarray(e[col].to_numpy(dtype=float))


def control_effects(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: pd.DataFrame | None = None,
    view: View = "today",
    controls: Sequence[Control | str] | None = None,
    metric: Metric = "usable",
) -> pd.DataFrame:
    """One row per flow x control: what the control removes on that flow and what it costs.

    Columns: ``flow_id, client_id, resource_server, control, kind, section, applicable,
    exposure_before, exposure_after, removed`` (token theft at the flow's own RS, ``metric``),
    ``reach_before, reach_removed`` (token theft at the other services the token reaches),
    ``credential_before, credential_removed`` (credential-store group), ``cost_usd, changes``
    (the units of work, naming e.g. an authorization-server change), ``removed_per_kusd``
    (``removed`` per thousand USD; NaN at zero cost). Flows where a control does not apply
    have ``removed = reach_removed = credential_removed = cost_usd = 0``. Cached on disk
    when ``TOKENLIB_CACHE_DIR`` is set and every control is named by id
    (:mod:`tokenlib.analysis._diskcache`).
    """
    p = params or ModelParameters.from_reference()
    # controls by id; a Control object other than the registered one (its functions have no
    # stable key) makes the call uncached
    ids = [
        c if isinstance(c, str) else c.id if _BY_ID.get(c.id) is c else UNKEYABLE
        for c in (controls if controls is not None else ())
    ]
    return cached(
        "control_effects",
        lambda: _control_effects(flows, services, p, authorization_servers, view, controls, metric),
        key_parts=(flows, services, p, authorization_servers, view, controls is None, ids, metric),
    )


def _control_effects(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    p: ModelParameters,
    authorization_servers: pd.DataFrame | None,
    view: View,
    controls: Sequence[Control | str] | None,
    metric: Metric,
) -> pd.DataFrame:
    ases = resolve_authorization_servers(flows, authorization_servers)
    base: Frames = (flows, services, ases)
    ctx0 = FlowContext.build(flows, services, p, authorization_servers=ases)
    before = _exposure(base, p, None, "token_theft", metric, view, ctx0)
    cred_before = _exposure(base, p, None, "credential_store", metric, view, ctx0)
    ratio0 = reach_ratio(flows, services, ases)
    reach_before = before * ratio0
    chosen = [control(c) for c in (controls if controls is not None else CONTROLS)]
    n = len(flows)
    parts = []
    for c in chosen:
        app = np.asarray(c.applies(*base, p), dtype=bool)
        if app.any():
            cf = c.apply(flows, services, ases, p)
            ctx = FlowContext.build(cf[0], cf[1], p, authorization_servers=cf[2])
            after = _exposure(cf, p, c.mechanism, "token_theft", metric, view, ctx)
            cred_after = _exposure(cf, p, c.mechanism, "credential_store", metric, view, ctx)
            ratio1 = reach_ratio(cf[0], cf[1], cf[2])
            after = np.where(app, after, before)
            cred_after = np.where(app, cred_after, cred_before)
            reach_removed = np.where(app, reach_before - after * ratio1, 0.0)
            cost = control_cost(c, flows, services, ases, p, mask=app)
        else:
            after, cred_after, reach_removed = before, cred_before, np.zeros(n)
            cost = control_cost(c, flows, services, ases, p, mask=app)
        removed = before - after
        cusd = cost["cost_usd"].to_numpy(dtype=float)
        parts.append(
            pd.DataFrame(
                {
                    "flow_id": np.asarray(as_str(flows["flow_id"])),
                    "client_id": np.asarray(as_str(flows["client_id"])),
                    "resource_server": np.asarray(as_str(flows["resource_server"])),
                    "control": c.id,
                    "kind": c.kind,
                    "section": c.section,
                    "applicable": app,
                    "exposure_before": before,
                    "exposure_after": after,
                    "removed": removed,
                    "reach_before": reach_before,
                    "reach_removed": reach_removed,
                    "credential_before": cred_before,
                    "credential_removed": cred_before - cred_after,
                    "cost_usd": cusd,
                    "changes": np.asarray(cost["changes"].astype(str).to_numpy(), dtype=object),
                    "removed_per_kusd": np.where(
                        cusd > 0, removed / np.where(cusd > 0, cusd, 1.0) * 1000.0, np.nan
                    ),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    for col in ("flow_id", "client_id", "resource_server", "kind", "section", "changes"):
        out[col] = out[col].astype("category")
    out["control"] = pd.Categorical(out["control"], categories=[c.id for c in chosen])
    return out


Section = Literal["token_theft", "reach", "credential_store"]
_GAIN = {
    "token_theft": "removed",
    "reach": "reach_removed",
    "credential_store": "credential_removed",
}


def rank_controls(effects: pd.DataFrame, *, by: Section = "token_theft") -> pd.DataFrame:
    """One row per control, ranked by exposure removed per thousand USD ("what first").

    ``by``: ``token_theft`` (the headline: token theft at the flows' own resource servers),
    ``reach`` (token theft at the other services a stolen token is accepted by -- where audience
    restriction and token exchange act; a blast-radius scale, not comparable 1:1 with the
    headline) or ``credential_store`` (its own section).

    Columns: ``control, label, kind, section, source, n_flows`` (where it applies), ``removed``,
    ``removed_share`` (of today's token-theft exposure), ``reach_removed``,
    ``reach_removed_share``, ``credential_removed``, ``credential_removed_share``, ``cost_usd``
    (shared units counted once: each unit's cost is split over the flows sharing it),
    ``removed_per_kusd`` (of the ``by`` section) and ``rank`` (1 = do first; controls that
    remove nothing in that section or apply nowhere come last).
    """
    if by not in _GAIN:
        raise ValueError(f"by must be one of {', '.join(_GAIN)}, got {by!r}")
    first = effects.drop_duplicates("flow_id")
    totals = {
        "removed": float(first["exposure_before"].sum()),
        "reach_removed": float(first["reach_before"].sum()),
        "credential_removed": float(first["credential_before"].sum()),
    }
    app = effects[effects["applicable"].to_numpy(dtype=bool)]
    g = app.groupby("control", observed=False).agg(
        n_flows=("flow_id", "size"),
        removed=("removed", "sum"),
        reach_removed=("reach_removed", "sum"),
        credential_removed=("credential_removed", "sum"),
        cost_usd=("cost_usd", "sum"),
    )
    if isinstance(effects["control"].dtype, pd.CategoricalDtype):
        ids = [str(x) for x in effects["control"].cat.categories]
    else:
        ids = list(dict.fromkeys(effects["control"].astype(str)))
    g = g.reindex(ids).fillna(0.0)
    g["n_flows"] = g["n_flows"].astype(np.int64)
    for col, total in totals.items():
        g[f"{col}_share"] = g[col] / total if total > 0 else np.nan
    gain = g[_GAIN[by]]
    cost = g["cost_usd"]
    g["removed_per_kusd"] = np.where(cost > 0, gain / cost.where(cost > 0, 1.0) * 1000.0, np.nan)
    key = g["removed_per_kusd"].where((g["n_flows"] > 0) & (gain > 0), -np.inf).fillna(-np.inf)
    g["rank"] = key.rank(ascending=False, method="first").astype(np.int64)
    g.index.name = "control"
    g = g.reset_index()
    meta = {c.id: c for c in CONTROLS}
    g.insert(1, "label", [meta[c].label if c in meta else c for c in g["control"]])
    g.insert(2, "kind", [meta[c].kind if c in meta else "" for c in g["control"]])
    g.insert(3, "section", [meta[c].section if c in meta else "" for c in g["control"]])
    g.insert(4, "source", [meta[c].source if c in meta else "" for c in g["control"]])
    cols = ["control", "label", "kind", "section", "source", "n_flows", "removed", "removed_share"]
    cols += ["reach_removed", "reach_removed_share", "credential_removed"]
    cols += ["credential_removed_share", "cost_usd", "removed_per_kusd", "rank"]
    return g[cols].sort_values("rank", ignore_index=True)


# --------------------------------------------------------------------------- credential store


def credential_holders(flows: pd.DataFrame) -> pd.Categorical:
    """What the client's credential store holds, per flow (``"; "``-separated):

    * ``certificate``: ``cert_management`` other than none, or an mTLS binding (RFC 8705 §2);
    * ``private key``: a DPoP key (RFC 9449 §2), or a key in protected storage
      (``key_storage`` webcrypto/platform/HSM) used for client authentication;
    * ``client secret``: a confidential client with neither (RFC 6749 §2.3.1);
    * ``refresh token``: ``refresh_token`` static or rotating (RFC 9700 §4.14).
    A ``client_credentials`` grant mints tokens from it directly (RFC 6749 §4.4).
    """
    cert = ~is_in(flows["cert_management"], "none") | is_in(flows["binding"], "mtls")
    protected = is_in(
        flows["key_storage"], "webcrypto_non_extractable", "platform_keystore", "hsm_tpm"
    )
    key = is_in(flows["binding"], "dpop") | (protected & ~cert)
    secret = is_in(flows["client_type"], "confidential") & ~cert & ~key
    rt = ~is_in(flows["refresh_token"], "none")
    bits = cert.astype(np.int64) | key.astype(np.int64) << 1 | secret.astype(np.int64) << 2
    bits |= rt.astype(np.int64) << 3
    names = ("certificate", "private key", "client secret", "refresh token")
    codes, uniq = pd.factorize(bits)
    texts = ["; ".join(nm for j, nm in enumerate(names) if int(u) >> j & 1) for u in uniq]
    cats = pd.Index(texts).unique()
    return pd.Categorical.from_codes(np.asarray(cats.get_indexer(texts))[codes], categories=cats)


def credential_store_exposure(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: pd.DataFrame | None = None,
    metric: Metric = "usable",
) -> pd.DataFrame:
    """The credential-store section: exposure of each flow's client credential store and what
    the controls that address it remove.

    Likelihood follows the model's key_exfiltration weight: A17d x extractability of
    ``key_storage`` (A4) x (1 with a key-bearing exposure channel, else A26); the window is
    what the stolen credential mints (RFC 9700 §4.10.1, §4.14; RFC 8705 for certificates).
    Columns: ``flow_id, client_id, client_kind, holds`` (:func:`credential_holders`),
    ``key_storage, p_key, key_channel, exposure`` (group ``credential_store``) and
    ``removed_by_<control>`` for each of :data:`CREDENTIAL_CONTROLS` (0 where it does not
    apply), plus ``best_control`` (the one removing most, ``""`` when none removes anything).
    """
    p = params or ModelParameters.from_reference()
    ases = resolve_authorization_servers(flows, authorization_servers)
    ctx = FlowContext.build(flows, services, p, authorization_servers=ases)
    base: Frames = (flows, services, ases)
    exp = _exposure(base, p, None, "credential_store", metric, "today", ctx)
    out = pd.DataFrame(
        {
            "flow_id": np.asarray(as_str(flows["flow_id"])),
            "client_id": np.asarray(as_str(flows["client_id"])),
            "client_kind": np.asarray(as_str(flows["client_kind"])),
            "holds": credential_holders(flows),
            "key_storage": np.asarray(as_str(flows["key_storage"])),
            "p_key": ctx.p_key,
            "key_channel": ctx.key_channel,
            "exposure": exp,
        },
        index=flows.index,
    )
    best = np.zeros(len(flows))
    best_id = np.full(len(flows), "", dtype=object)
    for c in CREDENTIAL_CONTROLS:
        app = np.asarray(c.applies(*base, p), dtype=bool)
        removed = np.zeros(len(flows))
        if app.any():
            cf = c.apply(flows, services, ases, p)
            after = _exposure(cf, p, None, "credential_store", metric, "today")
            removed = np.where(app, exp - after, 0.0)
        out[f"removed_by_{c.id}"] = removed
        better = removed > best + 1e-15
        best = np.where(better, removed, best)
        best_id = np.where(better, c.id, best_id)
    out["best_control"] = pd.Categorical(best_id)
    return out
