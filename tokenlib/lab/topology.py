"""One request path, described once, judged by the models and replayed in the live lab.

A :class:`Topology` is a single architecture: the client kind and its key storage, each hop
between client and resource server with its TLS mode, the resource server's capabilities
(schemes, instances, ``jti`` store, nonces, ``iat`` tolerance) and the authorization server's
(which bound tokens it issues, whether it binds refresh tokens). It is validated when built
(:class:`TopologyError` lists every impossible combination in words).

* :meth:`Topology.to_inventory` turns it into a one-flow inventory (flows, services,
  authorization servers) in the inventory contract, so every model of
  :mod:`tokenlib.analysis` runs on it unchanged.
* :func:`breakpoints` says, per mechanism and per component of the path, whether the binding
  survives there (the rules of :func:`tokenlib.analysis.models.support.structural_support`,
  one hop at a time); :func:`draw_path` draws it.
* :func:`path_deployability`, :func:`path_exposure` and :func:`path_recommendation` are the
  models' answers for that one path.
* :func:`run_topology` runs the path in the live lab (real HTTPS on 127.0.0.1, the lab's
  authorization server, resource-server instances and reverse proxy) and puts what the
  resource server accepted next to what the models predict for the same cell.

Lab code: loopback only, for experiments, never for production traffic.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd

from tokenlib.analysis.schema import (
    CERT_MANAGEMENT,
    CLIENT_KINDS,
    DEFAULT_CHANNELS_BY_KIND,
    DEFAULT_GRANT_BY_KIND,
    HOP_KINDS,
    HOP_MODES,
    HUMAN_KINDS,
    JTI_CACHES,
    KEY_STORAGES,
    PUBLIC_KINDS,
)
from tokenlib.binding import Binding

if TYPE_CHECKING:
    import httpx
    from matplotlib.figure import Figure

    from tokenlib.analysis.models.mechanisms import Family
    from tokenlib.analysis.params import ModelParameters
    from tokenlib.jwk import PrivateKey
    from tokenlib.lab.proxy import ProxyMode
    from tokenlib.lab.runner import _Outcome

__all__ = [
    "ATTACK_LABELS",
    "DEFAULT_PARAMETERS",
    "HOP_KIND_LABELS",
    "HOP_MODE_LABELS",
    "AuthorizationServerCapabilities",
    "Hop",
    "ResourceServerCapabilities",
    "Topology",
    "TopologyError",
    "breakpoints",
    "deployability_table",
    "draw_path",
    "explorer_form",
    "exposure_summary",
    "exposure_table",
    "fmt_replays",
    "lab_mode",
    "lab_summary",
    "lab_table",
    "parse_hops",
    "path_deployability",
    "path_exposure",
    "path_recommendation",
    "recommendation_text",
    "render_exploration",
    "run_topology",
]

HopMode = Literal["passthrough", "terminate", "terminate_forward_cert"]
JtiStore = Literal["none", "per_instance", "shared"]

FLOW_ID: Final = "explored-path"
RS_ID: Final = "explored-rs"
AS_ID: Final = "explored-as"
MAX_HOPS: Final = 8
MAX_INSTANCES: Final = 1000

HOP_KIND_LABELS: Final[dict[str, str]] = {
    "cdn": "CDN",
    "waf": "Web application firewall",
    "api_gateway": "API gateway",
    "load_balancer": "Load balancer",
    "service_mesh_sidecar": "Service-mesh sidecar",
    "reverse_proxy": "Reverse proxy",
}
HOP_MODE_LABELS: Final[dict[str, str]] = {
    "passthrough": "passes TLS through",
    "terminate": "terminates TLS",
    "terminate_forward_cert": "terminates TLS, forwards the certificate",
}
#: Attack ids of :func:`run_topology` and their labels.
ATTACK_LABELS: Final[dict[str, str]] = {
    "legitimate": "Legitimate request (is the binding checked?)",
    "captured_token": "Captured token replayed by another client",
    "proof_replay": "Captured token and proof replayed on another instance",
    "sent_as_bearer": "Bound token sent as a plain bearer token",
    "injected_client_cert": "Injected Client-Cert header",
}
#: The bindings a path can use today and the lab tries, in order.
_BINDINGS: Final[tuple[Binding, ...]] = (Binding.BEARER, Binding.MTLS, Binding.DPOP)
_ATTACKS: Final[dict[Binding, tuple[str, ...]]] = {
    Binding.BEARER: ("legitimate", "captured_token"),
    Binding.MTLS: ("legitimate", "captured_token", "sent_as_bearer", "injected_client_cert"),
    Binding.DPOP: ("legitimate", "captured_token", "sent_as_bearer", "proof_replay"),
}
_LAB_TIMEOUT: Final = 10.0
_SCOPE: Final = "orders:read"
_RESOURCE: Final = "/orders/42"


class TopologyError(ValueError):
    """The parameters describe an impossible path; ``problems`` lists each one in words."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        head = "This path cannot exist as described:"
        super().__init__("\n".join([head, *(f"- {p}" for p in self.problems)]))

    def markdown(self) -> str:
        """The message as a Markdown list (for a notebook)."""
        items = "\n".join(f"- {p}" for p in self.problems)
        return f"**This path cannot exist as described:**\n\n{items}"


# ----------------------------------------------------------------------------- the topology


@dataclass(frozen=True, slots=True)
class Hop:
    """One intermediary between client and resource server (client-to-server order)."""

    kind: str
    mode: HopMode

    def __str__(self) -> str:
        return f"{self.kind}:{self.mode}"

    @property
    def label(self) -> str:
        return HOP_KIND_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True, slots=True)
class ResourceServerCapabilities:
    """What the resource server accepts and how it stops replays (inventory ``services``)."""

    supports_bearer: bool = True
    supports_mtls: bool = True
    supports_dpop: bool = True
    instances: int = 2
    jti_store: JtiStore = "per_instance"
    requires_nonce: bool = False
    iat_past_s: int = 60


@dataclass(frozen=True, slots=True)
class AuthorizationServerCapabilities:
    """Which bound tokens the authorization server issues (inventory
    ``authorization_servers``)."""

    issues_dpop: bool = True
    issues_mtls: bool = True
    binds_refresh_tokens: bool = True


def parse_hops(text: str | Sequence[str | Hop | tuple[str, str]]) -> tuple[Hop, ...]:
    """``"cdn:terminate>api_gateway:terminate_forward_cert"`` (the inventory ``path`` syntax,
    ``""`` for a direct connection) or a sequence of ``"kind:mode"``, ``(kind, mode)`` or
    :class:`Hop` -> hops. ``TopologyError`` naming each bad hop."""
    parts: list[Any]
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(">")] if text.strip() else []
    else:
        parts = list(text)
    hops: list[Hop] = []
    problems: list[str] = []
    for i, part in enumerate(parts, start=1):
        if isinstance(part, Hop):
            kind, mode = part.kind, str(part.mode)
        elif isinstance(part, tuple) and len(part) == 2:
            kind, mode = str(part[0]).strip(), str(part[1]).strip()
        else:
            kind, _, mode = str(part).partition(":")
            kind, mode = kind.strip(), mode.strip()
        if kind not in HOP_KINDS or mode not in HOP_MODES:
            problems.append(
                f"hop {i} ({str(part)!r}) must be kind:mode with kind one of "
                f"{', '.join(HOP_KINDS)} and mode one of {', '.join(HOP_MODES)}"
            )
            continue
        hops.append(Hop(kind, mode))  # type: ignore[arg-type]
    if len(parts) > MAX_HOPS:
        problems.append(f"at most {MAX_HOPS} hops, got {len(parts)}")
    if problems:
        raise TopologyError(problems)
    return tuple(hops)


@dataclass(frozen=True, slots=True)
class Topology:
    """One request path: client, hops, resource server and authorization server.

    ``binding`` is what the flow uses today (a :class:`~tokenlib.binding.Binding`: ``bearer``,
    ``mtls`` or ``dpop``, given as a member or its value); it decides the
    "today" baseline of the models, not what the lab tries (the lab tries every mechanism).
    ``cert_management`` ``None`` means ``automated_pki`` for a client that can hold a
    certificate (not a browser, with a key), else ``none``. ``refresh_token`` ``None`` means
    ``none`` for a client-credentials client, else ``rotating``. ``exposure_channels``
    ``None`` means the kind's default channels, with ``proxy_logs`` exactly when a hop
    terminates TLS. ``strips_client_cert``: a forwarding hop removes a ``Client-Cert`` the
    client sent (RFC 9440 §4); ``False`` is the misconfigured forwarder of the lab (the models
    price that misconfiguration as assumption A3 per forwarding hop instead).
    """

    client_kind: str = "web_backend"
    hops: tuple[Hop, ...] = ()
    resource_server: ResourceServerCapabilities = field(default_factory=ResourceServerCapabilities)
    authorization_server: AuthorizationServerCapabilities = field(
        default_factory=AuthorizationServerCapabilities
    )
    key_storage: str = "software"
    binding: Binding = Binding.BEARER
    cert_management: str | None = None
    refresh_token: str | None = None
    access_token_lifetime_s: int = 3600
    exposure_channels: tuple[str, ...] | None = None
    strips_client_cert: bool = True

    def __post_init__(self) -> None:
        hops: Any = self.hops
        if isinstance(hops, str) or any(not isinstance(h, Hop) for h in hops):
            object.__setattr__(self, "hops", parse_hops(hops))
        else:
            object.__setattr__(self, "hops", tuple(self.hops))
        problems = _problems(self)
        if problems:
            raise TopologyError(problems)
        object.__setattr__(self, "binding", Binding(self.binding))
        from tokenlib.analysis.inventory import InventoryError

        try:
            _inventory(self)
        except InventoryError as err:  # a contract rule the checks above do not cover
            raise TopologyError([f"{p.column}: expected {p.expected}" for p in err.problems
                                 if p.severity == "error"]) from None  # fmt: skip

    # -- derived facts ------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The inventory ``path`` string (``""`` for a direct connection)."""
        return ">".join(str(h) for h in self.hops)

    @property
    def certificate_management(self) -> str:
        if self.cert_management is not None:
            return self.cert_management
        can_hold = self.client_kind != "browser_spa" and self.key_storage != "none"
        return "automated_pki" if can_hold else "none"

    @property
    def grant_type(self) -> str:
        return DEFAULT_GRANT_BY_KIND[self.client_kind]

    @property
    def refresh_mode(self) -> str:
        if self.refresh_token is not None:
            return self.refresh_token
        return "none" if self.grant_type == "client_credentials" else "rotating"

    @property
    def channels(self) -> tuple[str, ...]:
        if self.exposure_channels is not None:
            return tuple(self.exposure_channels)
        base = [c for c in DEFAULT_CHANNELS_BY_KIND[self.client_kind].split(";") if c]
        base = [c for c in base if c != "proxy_logs"]
        if any(h.mode != "passthrough" for h in self.hops):
            base.append("proxy_logs")
        return tuple(base)

    @property
    def binding_enforced(self) -> bool:
        """Today's binding is checked end to end (the RS supports it and, for mTLS, no hop
        drops the certificate)."""
        rs = self.resource_server
        if self.binding == Binding.MTLS:
            return rs.supports_mtls and all(h.mode != "terminate" for h in self.hops)
        if self.binding == Binding.DPOP:
            return rs.supports_dpop
        return False

    @property
    def dpop_mechanism(self) -> str:
        """The DPoP mechanism id this resource server runs (store and nonces)."""
        rs = self.resource_server
        if rs.requires_nonce:
            return "dpop_nonce_shared_cache" if rs.jti_store == "shared" else "dpop_nonce"
        return {"none": "dpop_no_cache", "per_instance": "dpop_per_instance_cache"}.get(
            rs.jti_store, "dpop_shared_cache"
        )

    @property
    def lab_mode(self) -> ProxyMode:
        return lab_mode(self.hops, strips_client_cert=self.strips_client_cert)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_parameters(cls, **values: Any) -> Topology:
        """Build from notebook parameters (``CLIENT_KIND``, ``HOPS``, ``KEY_STORAGE``,
        ``BINDING_TODAY``, ``RS_SUPPORTS_BEARER``, ``RS_SUPPORTS_MTLS``, ``RS_SUPPORTS_DPOP``,
        ``RS_INSTANCES``, ``RS_JTI_STORE``, ``RS_REQUIRES_NONCE``, ``RS_IAT_PAST_S``,
        ``AS_ISSUES_DPOP``, ``AS_ISSUES_MTLS``, ``AS_BINDS_REFRESH_TOKENS``,
        ``FORWARDER_STRIPS_CLIENT_CERT``); other names are ignored, missing ones take
        :data:`DEFAULT_PARAMETERS`. Strings such as ``"true"`` or ``"3"`` are accepted.
        ``TopologyError`` lists every problem."""
        v = {**DEFAULT_PARAMETERS, **{k: values[k] for k in values if k in DEFAULT_PARAMETERS}}
        problems: list[str] = []

        def flag(name: str) -> bool:
            raw = v[name]
            if isinstance(raw, bool | np.bool_):
                return bool(raw)
            text = str(raw).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off", ""):
                return False
            problems.append(f"{_PARAM_WORDS[name]} must be true or false, got {raw!r}")
            return bool(DEFAULT_PARAMETERS[name])

        def whole(name: str, low: int, high: int) -> int:
            raw = v[name]
            try:
                number = float(str(raw).strip().replace("_", "").replace(",", ""))
            except ValueError:
                number = math.nan
            if isinstance(raw, bool) or not number.is_integer() or not low <= number <= high:
                problems.append(
                    f"{_PARAM_WORDS[name]} must be a whole number from {low:,} to {high:,}, "
                    f"got {raw!r}"
                )
                return int(DEFAULT_PARAMETERS[name])
            return int(number)

        def choice(name: str, allowed: Sequence[str]) -> str:
            text = str(v[name]).strip()
            if text not in allowed:
                problems.append(
                    f"{_PARAM_WORDS[name]} must be one of {', '.join(allowed)}, got {v[name]!r}"
                )
                return str(DEFAULT_PARAMETERS[name])
            return text

        try:
            hops = parse_hops(
                str(v["HOPS"]) if not isinstance(v["HOPS"], list | tuple) else v["HOPS"]
            )
        except TopologyError as err:
            problems.extend(err.problems)
            hops = ()
        rs = ResourceServerCapabilities(
            supports_bearer=flag("RS_SUPPORTS_BEARER"),
            supports_mtls=flag("RS_SUPPORTS_MTLS"),
            supports_dpop=flag("RS_SUPPORTS_DPOP"),
            instances=whole("RS_INSTANCES", 1, MAX_INSTANCES),
            jti_store=choice("RS_JTI_STORE", JTI_CACHES),  # type: ignore[arg-type]
            requires_nonce=flag("RS_REQUIRES_NONCE"),
            iat_past_s=whole("RS_IAT_PAST_S", 1, 86_400),
        )
        auth = AuthorizationServerCapabilities(
            issues_dpop=flag("AS_ISSUES_DPOP"),
            issues_mtls=flag("AS_ISSUES_MTLS"),
            binds_refresh_tokens=flag("AS_BINDS_REFRESH_TOKENS"),
        )
        kind = choice("CLIENT_KIND", CLIENT_KINDS)
        key = choice("KEY_STORAGE", KEY_STORAGES)
        binding = Binding(choice("BINDING_TODAY", [b.value for b in _BINDINGS]))
        strips = flag("FORWARDER_STRIPS_CLIENT_CERT")
        if problems:
            raise TopologyError(problems)
        return cls(
            client_kind=kind,
            hops=hops,
            resource_server=rs,
            authorization_server=auth,
            key_storage=key,
            binding=binding,
            strips_client_cert=strips,
        )

    def to_parameters(self) -> dict[str, Any]:
        """The notebook parameters describing this topology (inverse of
        :meth:`from_parameters` for the fields it covers)."""
        rs, auth = self.resource_server, self.authorization_server
        return {
            "CLIENT_KIND": self.client_kind,
            "HOPS": self.path,
            "KEY_STORAGE": self.key_storage,
            "BINDING_TODAY": self.binding.value,
            "RS_SUPPORTS_BEARER": rs.supports_bearer,
            "RS_SUPPORTS_MTLS": rs.supports_mtls,
            "RS_SUPPORTS_DPOP": rs.supports_dpop,
            "RS_INSTANCES": rs.instances,
            "RS_JTI_STORE": rs.jti_store,
            "RS_REQUIRES_NONCE": rs.requires_nonce,
            "RS_IAT_PAST_S": rs.iat_past_s,
            "AS_ISSUES_DPOP": auth.issues_dpop,
            "AS_ISSUES_MTLS": auth.issues_mtls,
            "AS_BINDS_REFRESH_TOKENS": auth.binds_refresh_tokens,
            "FORWARDER_STRIPS_CLIENT_CERT": self.strips_client_cert,
        }

    def to_inventory(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """``(flows, services, authorization_servers)``: one flow, its resource server and
        its authorization server in the inventory contract (validated by
        :func:`tokenlib.analysis.inventory.load_inventory`)."""
        flows, services, servers = _inventory(self)
        return flows.copy(), services.copy(), servers.copy()

    def describe(self) -> str:
        """The path in one line of words: ``Web backend -> CDN (terminates TLS) -> RS``."""
        from tokenlib.analysis.labels import label

        parts = [label("client_kind", self.client_kind)]
        parts += [f"{h.label} ({HOP_MODE_LABELS[h.mode]})" for h in self.hops]
        rs = self.resource_server
        parts.append(f"resource server ({rs.instances:,} instance{'s' * (rs.instances != 1)})")
        return " → ".join(parts)


@functools.lru_cache(maxsize=32)
def _inventory(t: Topology) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The validated one-flow inventory of ``t`` (cached; callers get copies)."""
    kind = t.client_kind
    refresh = t.refresh_mode
    flows = pd.DataFrame(
        [
            {
                "flow_id": FLOW_ID,
                "client_id": "explored-client",
                "client_kind": kind,
                "actor": "human" if kind in HUMAN_KINDS else "workload",
                "client_type": "public" if kind in PUBLIC_KINDS else "confidential",
                "environment": "prod",
                "grant_type": t.grant_type,
                "resource_server": RS_ID,
                "audience_restricted": True,
                "scopes": _SCOPE,
                "path": t.path,
                "key_storage": t.key_storage,
                "cert_management": t.certificate_management,
                "access_token_lifetime_s": int(t.access_token_lifetime_s),
                "refresh_token": refresh,
                "refresh_token_lifetime_s": 0 if refresh == "none" else 30 * 86_400,
                "token_format": "jwt",
                "rs_introspects": False,
                "binding": t.binding.value,
                "binding_enforced": t.binding_enforced,
                "requests_per_day": 1000,
                "exposure_channels": ";".join(t.channels),
                "forwards_token": False,
                "authorization_server": AS_ID,
                "token_exchange": False,
            }
        ]
    )
    rs = t.resource_server
    services = pd.DataFrame(
        [
            {
                "service_id": RS_ID,
                "owner": "explorer",
                "sensitivity": 3,
                "internet_facing": True,
                "supports_bearer": rs.supports_bearer,
                "supports_mtls": rs.supports_mtls,
                "supports_dpop": rs.supports_dpop,
                "downstream": "",
                "instances": int(rs.instances),
                "jti_cache": rs.jti_store,
                "requires_nonce": rs.requires_nonce,
                "iat_past_s": int(rs.iat_past_s),
                "iat_future_s": 60,
            }
        ]
    )
    auth = t.authorization_server
    servers = pd.DataFrame(
        [
            {
                "as_id": AS_ID,
                "product": "",
                "issues_dpop": auth.issues_dpop,
                "issues_mtls": auth.issues_mtls,
                "binds_refresh_tokens": auth.binds_refresh_tokens,
                "supports_token_exchange": False,
            }
        ]
    )
    from tokenlib.analysis.inventory import load_inventory

    inv = load_inventory(flows, services=services, authorization_servers=servers)
    return inv.flows, inv.services, inv.authorization_servers


DEFAULT_PARAMETERS: Final[dict[str, Any]] = {
    "CLIENT_KIND": "web_backend",
    "HOPS": "cdn:terminate>api_gateway:terminate_forward_cert",
    "KEY_STORAGE": "software",
    "BINDING_TODAY": Binding.BEARER.value,
    "RS_SUPPORTS_BEARER": True,
    "RS_SUPPORTS_MTLS": True,
    "RS_SUPPORTS_DPOP": True,
    "RS_INSTANCES": 3,
    "RS_JTI_STORE": "per_instance",
    "RS_REQUIRES_NONCE": False,
    "RS_IAT_PAST_S": 60,
    "AS_ISSUES_DPOP": True,
    "AS_ISSUES_MTLS": True,
    "AS_BINDS_REFRESH_TOKENS": True,
    "FORWARDER_STRIPS_CLIENT_CERT": True,
}
_PARAM_WORDS: Final[dict[str, str]] = {
    "CLIENT_KIND": "the client kind",
    "HOPS": "the hops",
    "KEY_STORAGE": "the key storage",
    "BINDING_TODAY": "today's binding",
    "RS_SUPPORTS_BEARER": "'resource server accepts bearer tokens'",
    "RS_SUPPORTS_MTLS": "'resource server checks mTLS binding'",
    "RS_SUPPORTS_DPOP": "'resource server checks DPoP'",
    "RS_INSTANCES": "the number of resource-server instances",
    "RS_JTI_STORE": "the resource server's jti store",
    "RS_REQUIRES_NONCE": "'resource server requires nonces'",
    "RS_IAT_PAST_S": "the proof age the resource server accepts (seconds)",
    "AS_ISSUES_DPOP": "'authorization server issues DPoP-bound tokens'",
    "AS_ISSUES_MTLS": "'authorization server issues certificate-bound tokens'",
    "AS_BINDS_REFRESH_TOKENS": "'authorization server binds refresh tokens'",
    "FORWARDER_STRIPS_CLIENT_CERT": "'forwarding hops strip a client-sent Client-Cert'",
}


def _problems(t: Topology) -> list[str]:
    """Every impossible combination of ``t``, in words (empty when it can exist)."""
    out: list[str] = []
    rs, auth = t.resource_server, t.authorization_server
    if t.client_kind not in CLIENT_KINDS:
        out.append(f"client kind must be one of {', '.join(CLIENT_KINDS)}, got {t.client_kind!r}")
        return out
    if t.key_storage not in KEY_STORAGES:
        out.append(f"key storage must be one of {', '.join(KEY_STORAGES)}, got {t.key_storage!r}")
        return out
    if t.binding not in _BINDINGS:
        out.append(f"today's binding must be bearer, mtls or dpop, got {t.binding!r}")
        return out
    if rs.jti_store not in JTI_CACHES:
        out.append(f"the jti store must be one of {', '.join(JTI_CACHES)}, got {rs.jti_store!r}")
    for name, low, high in (("instances", 1, MAX_INSTANCES), ("iat_past_s", 1, 86_400)):
        value = getattr(rs, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            out.append(f"resource server {name} must be a whole number from {low} to {high:,}")
    cert = t.certificate_management
    if cert not in CERT_MANAGEMENT:
        out.append(f"certificate management must be one of {', '.join(CERT_MANAGEMENT)}")
    if t.refresh_mode not in ("none", "static", "rotating"):
        out.append("refresh token must be none, static or rotating")
    life = t.access_token_lifetime_s
    if isinstance(life, bool) or not isinstance(life, int) or not 1 <= life <= 366 * 86_400:
        out.append("the access-token lifetime must be a whole number of seconds up to a year")
    if t.client_kind == "browser_spa":
        if t.key_storage not in ("none", "webcrypto_non_extractable"):
            out.append(
                "a browser app keeps its key as a non-extractable WebCrypto key (or has none), "
                "not in " + t.key_storage.replace("_", " ")
            )
        if t.binding == Binding.MTLS:
            out.append("a browser app cannot use mTLS today: browsers cannot present a client "
                       "certificate for an API call (RFC 8705 §6.4)")  # fmt: skip
        if cert != "none":
            out.append("a browser app has no certificate management")
    if cert != "none" and t.key_storage == "none":
        out.append("a client with a certificate holds its private key: choose a key storage")
    if t.binding == Binding.MTLS:
        if cert == "none":
            out.append("today's mTLS binding needs certificate management at the client")
        if not auth.issues_mtls:
            out.append("today's binding is mTLS but the authorization server issues no "
                       "certificate-bound tokens")  # fmt: skip
        if not rs.supports_mtls:
            out.append("today's binding is mTLS but the resource server does not check "
                       "certificate-bound tokens")  # fmt: skip
    if t.binding == Binding.DPOP:
        if t.key_storage == "none":
            out.append("today's DPoP binding needs a key: choose a key storage")
        if not auth.issues_dpop:
            out.append("today's binding is DPoP but the authorization server issues no "
                       "DPoP-bound tokens")  # fmt: skip
        if not rs.supports_dpop:
            out.append("today's binding is DPoP but the resource server does not check "
                       "DPoP proofs")  # fmt: skip
    if t.binding == Binding.BEARER and not rs.supports_bearer:
        out.append("today's binding is bearer but the resource server refuses bearer tokens")
    if rs.requires_nonce and not rs.supports_dpop:
        out.append("server nonces are part of DPoP (RFC 9449 §8): the resource server must "
                   "check DPoP to require them")  # fmt: skip
    if len(t.hops) > MAX_HOPS:
        out.append(f"at most {MAX_HOPS} hops")
    return out


def lab_mode(hops: Sequence[Hop] | str, *, strips_client_cert: bool = True) -> ProxyMode:
    """The lab's proxy mode that behaves like this hop list towards the resource server.

    * any ``terminate`` hop -> ``terminate``: that hop drops the client certificate and no
      later hop can recover it (RFC 8705 §6.5);
    * else any ``terminate_forward_cert`` hop -> ``terminate_forward_cert`` (one sanitising
      forwarder, RFC 9440), or ``misconfigured_forward`` when ``strips_client_cert`` is
      false (the forwarder passes a client-sent ``Client-Cert`` on, RFC 9440 §4);
    * else (only ``passthrough`` hops, or a direct connection) -> ``passthrough``: an L4
      relay hands the client's own TLS session to the resource server, as a direct
      connection does.
    """
    parsed = parse_hops(hops) if isinstance(hops, str) else tuple(hops)
    modes = {h.mode for h in parsed}
    if "terminate" in modes:
        return "terminate"
    if "terminate_forward_cert" in modes:
        return "terminate_forward_cert" if strips_client_cert else "misconfigured_forward"
    return "passthrough"


# ------------------------------------------------------------------------------ the models


def _context(t: Topology, params: ModelParameters | None = None) -> Any:
    from tokenlib.analysis.models import FlowContext

    flows, services, servers = t.to_inventory()
    return FlowContext.build(flows, services, params, authorization_servers=servers)


_FAMILY_ROWS: Final[tuple[Family, ...]] = ("mtls", "dpop", "token_binding")


def breakpoints(t: Topology) -> pd.DataFrame:
    """Where each binding breaks on this path: one row per family (mTLS, DPoP, Token
    Binding) x component (client, each hop, resource server, authorization server), with
    ``ok`` and ``why`` (words). Same rules as
    :func:`~tokenlib.analysis.models.support.structural_support`, hop by hop."""
    from tokenlib.analysis.models import structural_support

    flows, services, servers = t.to_inventory()
    rs, auth = t.resource_server, t.authorization_server
    rows: list[dict[str, Any]] = []
    for fam in _FAMILY_ROWS:
        sup = structural_support(flows, services, servers, family=fam)
        client_ok = bool(sup.client[0])
        if fam == "mtls":
            why = "" if client_ok else "browsers cannot present a client certificate"
        elif fam == "dpop":
            why = ""
        else:
            why = "no shipping client supports it"
        rows.append(_bp(fam, "client", "Client", 0, client_ok, why))
        for i, hop in enumerate(t.hops, start=1):
            if fam == "mtls":
                ok = hop.mode != "terminate"
                why = "" if ok else "terminates TLS without forwarding the certificate"
            elif fam == "dpop":
                ok, why = True, ""
            else:
                ok = hop.mode == "passthrough"
                why = "" if ok else "terminates TLS: Token Binding cannot cross it"
            rows.append(_bp(fam, "hop", hop.label, i, ok, why))
        rs_ok = bool(sup.resource_server[0])
        rs_why = {
            "mtls": "" if rs.supports_mtls else "does not check the certificate binding",
            "dpop": "" if rs.supports_dpop else "does not check DPoP proofs",
            "token_binding": "no maintained server supports it",
        }[fam]
        rows.append(_bp(fam, "resource_server", "Resource server", len(t.hops) + 1, rs_ok, rs_why))
        as_ok = bool(sup.authorization_server[0])
        as_why = {
            "mtls": "" if auth.issues_mtls else "issues no certificate-bound tokens",
            "dpop": "" if auth.issues_dpop else "issues no DPoP-bound tokens",
            "token_binding": "no authorization server issues such tokens",
        }[fam]
        rows.append(_bp(fam, "authorization_server", "Authorization server", -1, as_ok, as_why))
        path_ok = all(r["ok"] for r in rows if r["family"] == fam and r["component"] == "hop")
        assert path_ok == bool(sup.path[0]), "hop rules follow structural_support"
    return pd.DataFrame(rows)


def _bp(fam: str, component: str, name: str, position: int, ok: bool, why: str) -> dict[str, Any]:
    return {
        "family": fam,
        "component": component,
        "name": name,
        "position": position,
        "ok": ok,
        "why": why,
    }


def path_deployability(t: Topology) -> pd.DataFrame:
    """Per family: can it be deployed on this path today, and which component blocks it
    (:func:`tokenlib.analysis.deploy.deployability` on the one-flow inventory)."""
    from tokenlib.analysis.deploy import deployability

    flows, services, servers = t.to_inventory()
    dep = deployability(flows, services, authorization_servers=servers)
    cols = ["mechanism", "client_ok", "cert_ok", "as_ok", "rs_ok", "path_ok"]
    cols += ["deployable_today", "p_deploy", "reasons"]
    out = dep[cols].copy()
    out["mechanism"] = out["mechanism"].astype(str)
    out["reasons"] = out["reasons"].astype(str)
    return out.rename(columns={"mechanism": "family"}).reset_index(drop=True)


def path_exposure(t: Topology, params: ModelParameters | None = None) -> pd.DataFrame:
    """Per mechanism, on this path (support as today): ``enforceable``, ``usable_share``
    (share of stolen tokens still usable when the attacker uses them, token-theft scenarios
    weighted by likelihood), ``removed_share`` (against today's mechanism),
    ``max_token_replays`` (uses of a stolen token alone) and ``max_proof_replays`` (further
    uses of a captured token and proof; ``inf`` unbounded, NaN without proofs)."""
    from tokenlib.analysis.models import MECHANISMS, FlowContext, max_replays, mechanism_comparison

    flows, services, servers = t.to_inventory()
    ctx = FlowContext.build(flows, services, params, authorization_servers=servers)
    comp = mechanism_comparison(
        flows, services, views=("today",), authorization_servers=servers, context=ctx
    )
    comp["enforceable"] = comp["enforceable_share"] > 0
    comp["max_token_replays"] = [float(max_replays(ctx, m, "at_rest_copy")[0]) for m in MECHANISMS]
    comp["max_proof_replays"] = [
        float(max_replays(ctx, m, "in_transit_token_and_proof")[0]) if m.proofs else math.nan
        for m in MECHANISMS
    ]
    current = MECHANISMS[int(ctx.current_code[0])].id
    comp["today"] = comp["mechanism"] == current
    cols = ["mechanism", "family", "today", "enforceable", "usable_share", "removed_share"]
    return comp[[*cols, "max_token_replays", "max_proof_replays"]].reset_index(drop=True)


def path_recommendation(
    t: Topology,
    params: ModelParameters | None = None,
    *,
    draws: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """The models' recommendation for this path (:func:`tokenlib.analysis.recommend.recommend`
    on the one-flow inventory): ``recommended`` (mtls/dpop/dpop_nonce/bearer),
    ``mechanism`` (the mechanism scored), ``removed_share``, ``p_deploy``, ``robustness``
    (share of ``draws`` joint parameter draws choosing the same; NaN with ``draws=0``),
    ``reasons``, ``blockers`` and ``policy_flags``."""
    from tokenlib.analysis.recommend import recommend

    flows, services, servers = t.to_inventory()
    rec = recommend(
        flows, services, params, authorization_servers=servers, draws=draws, seed=seed
    ).iloc[0]
    current = float(rec["exposure_current"])
    return {
        "recommended": str(rec["recommended"]),
        "mechanism": str(rec["model_mechanism"]),
        "current_mechanism": str(rec["current_mechanism"]),
        "removed_share": float(rec["exposure_removed"]) / current if current > 0 else 0.0,
        "p_deploy": float(rec["p_deploy"]),
        "robustness": float(rec["robustness"]),
        "reasons": str(rec["reasons"]),
        "blockers": str(rec["blockers"]),
        "policy_flags": str(rec["policy_flags"]),
    }


def fmt_replays(x: Any) -> str:
    """``inf`` -> "Unlimited", NaN -> "n/a" (no proof), else a count ("2")."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "Unlimited"
    return f"{round(v):,}"


# ------------------------------------------------------------------------------ the diagram

_OK: Final = "#009E73"
_BREAK: Final = "#D55E00"
_BOX: Final = "#F2F2F2"


def _takeaway(bp: pd.DataFrame) -> str:
    from tokenlib.analysis.labels import label

    parts = []
    for fam in _FAMILY_ROWS:
        sub = bp[bp["family"] == fam]
        broken = sub[~sub["ok"]]
        name = label("family", fam)
        if broken.empty:
            parts.append(f"{name} survives the whole path")
        elif len(broken) == len(sub):
            parts.append(f"{name} breaks everywhere")
        else:
            first = str(broken.iloc[0]["name"])
            if first[1:2].islower():
                first = first[:1].lower() + first[1:]
            parts.append(f"{name} breaks at the {first}")
    return "; ".join(parts)


def draw_path(t: Topology) -> Figure:
    """The path as boxes (client -> hops -> resource server, then the authorization server
    apart) and, below, one row per mechanism marking where it breaks (vermillion ✗ with the
    reason) and where it passes (green ✓). The title states the takeaway."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    from tokenlib.analysis.labels import label
    from tokenlib.analysis.plots import style

    bp = breakpoints(t)
    rs, auth = t.resource_server, t.authorization_server
    store = {
        "none": "no jti store",
        "per_instance": "one jti store per instance",
        "shared": "shared jti store",
    }[rs.jti_store]
    issued = ["bearer"] + ["mTLS-bound"] * auth.issues_mtls + ["DPoP-bound"] * auth.issues_dpop
    nodes = [("Client", label("client_kind", t.client_kind))]
    nodes += [(h.label, HOP_MODE_LABELS[h.mode]) for h in t.hops]
    nodes.append(
        ("Resource server", f"{rs.instances:,} instance{'s' * (rs.instances != 1)}, {store}")
    )
    nodes.append(("Authorization server", "issues " + ", ".join(issued) + " tokens"))
    n = len(nodes)
    as_x = float(n)  # columns 1..n; the authorization server is the last one
    with style():
        fig = Figure(figsize=(1.4 + 2.05 * n, 6.4))
        ax = fig.add_axes((0.0, 0.0, 1.0, 0.88))
        ax.set_xlim(-0.05, n + 0.55)
        ax.set_ylim(-4.0, 0.75)
        ax.axis("off")
        for i, (title, sub) in enumerate(nodes, start=1):
            dashed = i == n
            ax.add_patch(
                FancyBboxPatch(
                    (i - 0.42, -0.45),
                    0.84,
                    1.05,
                    boxstyle="round,pad=0.02",
                    fc="white" if dashed else _BOX,
                    ec="#555555",
                    ls="--" if dashed else "-",
                )
            )
            ax.text(i, 0.4, _wrap(title, 16), ha="center", va="center", fontsize=9.5,
                    fontweight="bold")  # fmt: skip
            ax.text(i, -0.05, _wrap(sub, 20), ha="center", va="center", fontsize=8)
            if 1 < i < n:
                ax.annotate(
                    "",
                    xy=(i - 0.43, 0.05),
                    xytext=(i - 0.57, 0.05),
                    arrowprops={"arrowstyle": "-|>", "color": "#555555"},
                )
        for row, fam in enumerate(_FAMILY_ROWS):
            y = -1.05 - row * 1.0
            ax.text(0.05, y, label("family", fam), ha="left", va="center", fontsize=9.5,
                    fontweight="bold")  # fmt: skip
            ax.axhline(y + 0.5, xmin=0.0, xmax=1.0, color="#E5E5E5", lw=0.8)
            for r in bp[bp["family"] == fam].itertuples():
                x = as_x if r.component == "authorization_server" else float(r.position) + 1.0
                colour = _OK if r.ok else _BREAK
                ax.text(x, y + 0.12, "✓" if r.ok else "✗", ha="center", va="center",
                        fontsize=13, color=colour, fontweight="bold")  # fmt: skip
                if not r.ok:
                    ax.text(x, y - 0.14, _wrap(str(r.why), 24), ha="center", va="top",
                            fontsize=7, color=colour)  # fmt: skip
        fig.suptitle(
            _wrap(_takeaway(bp), int(9.5 * (1.4 + 2.05 * n))),
            x=0.015,
            y=0.98,
            ha="left",
            fontsize=14,
            fontweight="bold",
        )
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) if text else ""


# ------------------------------------------------------------------------------- the lab


class _NoReplayStore:
    """A resource server without a jti store: every proof looks new (RFC 9449 §11.1)."""

    def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        return True


def _capability_gate(
    inner: Callable[..., Any],
    checked: Callable[..., Any],
    verifier: Any,
    caps: ResourceServerCapabilities,
) -> Callable[..., Any]:
    """An RS with ``caps``: requests go to ``checked`` (tokenlib's middleware, which checks
    every binding it knows), except a Bearer-scheme token whose binding this RS does not
    support — served by ``inner`` unchecked, as an RS unaware of ``cnf`` would (RFC 9449
    §7.2) — and an unbound token when bearer tokens are refused (401)."""
    from tokenlib.errors import TokenError

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[..., Any],
        send: Callable[[MutableMapping[str, Any]], Any],
    ) -> None:
        if scope.get("type") == "http":
            auth = [v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"]
            scheme, _, raw = (auth[0].decode("latin-1") if auth else "").partition(" ")
            if scheme.lower() == "bearer" and raw.strip():
                try:
                    token = verifier.verify(raw.strip())
                except TokenError:
                    token = None
                if token is not None:
                    unbound = token.jkt is None and token.x5t_s256 is None
                    unaware = (token.jkt is not None and not caps.supports_dpop) or (
                        token.x5t_s256 is not None and not caps.supports_mtls
                    )
                    if (unbound or unaware) and not caps.supports_bearer:
                        await _refuse(send)
                        return
                    if unaware:
                        await inner(scope, receive, send)
                        return
        await checked(scope, receive, send)

    return app


async def _refuse(send: Callable[[MutableMapping[str, Any]], Any]) -> None:
    body = b'{"error":"invalid_token","error_description":"sender-constrained tokens only"}'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer error="invalid_token"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass
class _Lab:
    """The servers of one topology run (started by :func:`_start_lab`)."""

    pki: Any
    as_url: str
    proxy: Any
    keys: dict[str, PrivateKey]
    tokens: dict[str, str]
    stack: contextlib.ExitStack


def _start_lab(t: Topology, stack: contextlib.ExitStack) -> _Lab:
    import httpx

    from tokenlib.dpop import DPoPPolicy
    from tokenlib.integrations.asgi import DPoPMiddleware
    from tokenlib.integrations.httpx import TokenClient
    from tokenlib.jwk import generate_key, public_jwk
    from tokenlib.lab._serve import ServedApp
    from tokenlib.lab.authserver import ClientRegistration, LabAuthorizationServer
    from tokenlib.lab.pki import create_pki
    from tokenlib.lab.proxy import BackgroundLoop, ReverseProxy
    from tokenlib.lab.runner import AUDIENCE, _no_delay, _rs_app
    from tokenlib.nonce import NonceManager
    from tokenlib.replay import MemoryReplayCache
    from tokenlib.server import ResourceServer

    directory = Path(tempfile.mkdtemp(prefix="tokenlib-topology-"))
    stack.callback(shutil.rmtree, directory, True)
    (directory / "pki").mkdir(mode=0o700)
    pki = create_pki(directory / "pki")
    keys = {n: generate_key("ES256") for n in ("alice_client", "alice_dpop", "mallory_dpop")}
    jwks = {"keys": [public_jwk(keys["alice_client"])]}
    scopes = frozenset({_SCOPE})
    auth = t.authorization_server
    clients = [ClientRegistration("alice-bearer", jwks=jwks, scopes=scopes, binding=Binding.BEARER)]
    if auth.issues_dpop:
        clients.append(
            ClientRegistration("alice-dpop", jwks=jwks, scopes=scopes, binding=Binding.DPOP)
        )
    if auth.issues_mtls:
        dn = pki.clients["alice"].certificate.subject.rfc4514_string()
        clients.append(
            ClientRegistration(
                "alice-mtls", auth_method="tls_client_auth", subject_dn=dn, scopes=scopes,
                binding=Binding.MTLS,
            )
        )  # fmt: skip
    as_app = LabAuthorizationServer(audience=AUDIENCE, clients=clients)
    as_server = ServedApp(as_app, ssl_context=pki.server_context(client_auth="optional"))
    stack.callback(as_server.stop)
    as_server.start()
    _no_delay(as_server)
    as_app.set_issuer(as_server.url)

    loop = BackgroundLoop()
    stack.callback(loop.close)
    proxy = loop.start(ReverseProxy.for_mode(t.lab_mode, [], pki))
    rs = t.resource_server
    shared = MemoryReplayCache()
    nonces = NonceManager.with_random_secret() if rs.requires_nonce else None
    trusting = t.lab_mode in ("terminate_forward_cert", "misconfigured_forward")
    for instance in range(min(rs.instances, 2)):
        store: Any = {
            "none": _NoReplayStore(),
            "per_instance": MemoryReplayCache(),
            "shared": shared,
        }[rs.jti_store]
        server = ResourceServer(
            issuer=as_server.url,
            audience=AUDIENCE,
            jwks=as_app.jwks(),
            replay_cache=store,
            require_nonce=rs.requires_nonce,
            nonce_manager=nonces,
            policy=DPoPPolicy(iat_past=int(rs.iat_past_s)),
            schemes=("DPoP", "Bearer") if rs.supports_dpop else ("Bearer",),
        )
        checked = DPoPMiddleware(
            _rs_app(instance),
            resource_server=server,
            public_base_url=proxy.url,
            trusted_proxies=["127.0.0.1"] if trusting else [],
        )
        gate = _capability_gate(_rs_app(instance), checked, server.verifier, rs)
        served = ServedApp(
            gate, ssl_context=pki.server_context(client_auth="optional"), lifespan="off"
        )
        stack.callback(served.stop)
        served.start()
        _no_delay(served)
        proxy.upstreams.append(("127.0.0.1", served.port))

    tokens: dict[str, str] = {}
    endpoint = f"{as_server.url}/token"
    with httpx.Client(verify=pki.client_context(), timeout=_LAB_TIMEOUT) as http:
        tokens[Binding.BEARER] = (
            TokenClient(
                endpoint, client_id="alice-bearer", client_key=keys["alice_client"], http=http
            )
            .client_credentials(scope=_SCOPE)
            .access_token
        )
        if auth.issues_dpop:
            tokens[Binding.DPOP] = TokenClient(
                endpoint, client_id="alice-dpop", client_key=keys["alice_client"],
                dpop_key=keys["alice_dpop"], http=http,
            ).client_credentials(scope=_SCOPE).access_token  # fmt: skip
    if auth.issues_mtls:
        with httpx.Client(verify=pki.client_context("alice"), timeout=_LAB_TIMEOUT) as http:
            tokens[Binding.MTLS] = (
                TokenClient(endpoint, client_id="alice-mtls", http=http)
                .client_credentials(scope=_SCOPE)
                .access_token
            )
    return _Lab(pki, as_server.url, proxy, keys, tokens, stack)


class _Sender:
    """Sends one request through the topology's proxy on a fresh connection."""

    def __init__(self, lab: _Lab) -> None:
        self.lab = lab
        self.requests = 0

    def send(
        self, backend: int, cert: str | None, headers: Callable[[str, str | None], dict[str, str]]
    ) -> tuple[_Outcome, dict[str, str], str | None]:
        """``headers(url, nonce)``; a ``use_dpop_nonce`` answer is retried once with the
        server's nonce (RFC 9449 §9). Returns the outcome, the headers sent last and the
        binding the RS reported (``None`` when it did not check one)."""
        import httpx

        from tokenlib.lab.runner import _outcome

        proxy = self.lab.proxy
        proxy.backend = backend
        url = proxy.url + _RESOURCE
        nonce: str | None = None
        with httpx.Client(verify=self.lab.pki.client_context(cert), timeout=_LAB_TIMEOUT) as http:
            for _ in range(2):
                sent = headers(url, nonce)
                start = time.perf_counter()
                response = http.get(url, headers=sent)
                elapsed = (time.perf_counter() - start) * 1000
                self.requests += 1
                fresh = response.headers.get("dpop-nonce")
                if (
                    response.status_code == 401
                    and fresh
                    and "use_dpop_nonce" in response.headers.get("www-authenticate", "")
                ):
                    nonce = fresh
                    continue
                break
        outcome = _outcome(response, elapsed)
        binding = _binding_of(response)
        return outcome, sent, binding


def _binding_of(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("binding") if isinstance(body, dict) else None
    return str(value) if value else None


def _dpop(key: PrivateKey, token: str) -> Callable[[str, str | None], dict[str, str]]:
    from tokenlib.dpop import create_proof

    def headers(url: str, nonce: str | None) -> dict[str, str]:
        proof = create_proof(key, "GET", url, access_token=token, nonce=nonce)
        return {"Authorization": f"DPoP {token}", "DPoP": proof}

    return headers


def _bearer(token: str, extra: Mapping[str, str] | None = None) -> Callable[..., dict[str, str]]:
    return lambda url, nonce: {"Authorization": f"Bearer {token}", **(extra or {})}


@dataclass
class _LabResult:
    ran: bool
    accepted: bool
    outcome: str
    checked_binding: bool = False
    instance: int | None = None


def _lab_cell(lab: _Lab, sender: _Sender, binding: Binding, attack: str) -> _LabResult:
    token = lab.tokens.get(binding)
    if token is None:
        return _LabResult(False, False, "not run: the authorization server issues no such token")
    keys = lab.keys
    legit = _dpop(keys["alice_dpop"], token) if binding == Binding.DPOP else _bearer(token)
    alice_cert = "alice" if binding == Binding.MTLS else None
    if attack == "legitimate":
        out, _, served = sender.send(0, alice_cert, legit)
        return _result(out, checked=served is not None and binding in str(served))
    if attack == "captured_token":
        steal = _dpop(keys["mallory_dpop"], token) if binding == Binding.DPOP else _bearer(token)
        out, _, _ = sender.send(0, "mallory", steal)
        return _result(out)
    if attack == "sent_as_bearer":
        out, _, _ = sender.send(0, None, _bearer(token))
        return _result(out)
    if attack == "injected_client_cert":
        header = lab.pki.clients["alice"].client_cert_header
        out, _, _ = sender.send(0, None, _bearer(token, {"Client-Cert": header}))
        return _result(out)
    if attack == "proof_replay":
        first, captured, _ = sender.send(0, None, legit)
        if not first.accepted:
            return _LabResult(False, False, "not run: the request to capture was refused")
        other = 1 if len(lab.proxy.upstreams) > 1 else 0
        out, _, _ = sender.send(other, "mallory", lambda url, nonce: dict(captured))
        return _result(out)
    raise ValueError(f"unknown attack {attack!r}")


def _result(out: _Outcome, *, checked: bool = False) -> _LabResult:
    text = "accepted" if out.accepted else f"refused ({out.status} {out.error or ''})"
    text = text.replace(" )", ")")
    return _LabResult(True, out.accepted, text, checked, out.rs_instance)


@dataclass(frozen=True)
class _Prediction:
    accepted: bool | None
    text: str


def _predict(t: Topology, ctx: Any, binding: Binding, attack: str) -> _Prediction:
    """What the models say for one lab cell (see :func:`run_topology`)."""
    from tokenlib.analysis.models import max_replays

    rs = t.resource_server
    if binding == Binding.BEARER:
        if attack == "legitimate":
            return _Prediction(rs.supports_bearer, "accepted" if rs.supports_bearer else "refused")
        usable = float(max_replays(ctx, "bearer", "at_rest_copy")[0]) > 0
        return _Prediction(
            usable and rs.supports_bearer, "accepted: a bearer token works for anyone"
        )
    mech = t.dpop_mechanism if binding == Binding.DPOP else "mtls"
    enforceable = bool(ctx.enforceable(mech, "today")[0])
    if attack == "legitimate":
        if enforceable:
            return _Prediction(True, "binding checked end to end")
        return _Prediction(False, "binding cannot be enforced on this path")
    if not enforceable:
        return _Prediction(True, "accepted: without an enforced binding the token works as bearer")
    if attack in ("captured_token", "sent_as_bearer"):
        n = float(max_replays(ctx, mech, "at_rest_copy")[0])
        return _Prediction(
            n > 0, "refused: the token alone is not enough" if n == 0 else "accepted"
        )
    if attack == "proof_replay":
        n = float(max_replays(ctx, mech, "in_transit_token_and_proof")[0])
        if n == 0:
            return _Prediction(False, "refused: the jti store has seen the proof")
        return _Prediction(True, f"accepted: up to {fmt_replays(n).lower()} further uses")
    # injected Client-Cert (RFC 9440 §4): a probability per forwarding hop, assumption A3
    n_fwd = sum(h.mode == "terminate_forward_cert" for h in t.hops)
    if n_fwd == 0:
        return _Prediction(False, "refused: no hop forwards a certificate header")
    p = 1.0 - (1.0 - ctx.params.p_inj) ** n_fwd
    from tokenlib.analysis.labels import fmt_share

    return _Prediction(None, f"possible: {fmt_share(p, 1)} chance a forwarder is misconfigured")


def run_topology(
    topology: Topology,
    *,
    out: str | os.PathLike[str] | None = None,
    params: ModelParameters | None = None,
) -> pd.DataFrame:
    """Run ``topology`` in the live lab and compare each outcome with the models.

    The lab starts, on 127.0.0.1 with throwaway certificates, its authorization server
    (registering the clients the topology's AS can serve: bearer always, DPoP-bound and
    certificate-bound tokens when it issues them), ``min(instances, 2)`` resource-server
    instances behind one reverse proxy, and sends real HTTPS requests (httpx, one fresh
    connection each, about 15 in all; it takes a few seconds). Everything is stopped and
    removed on return, also on error.

    **Hops -> lab proxy mode** (:func:`lab_mode`): a path with any ``terminate`` hop behaves
    like the lab's ``terminate`` proxy (the client certificate is lost there); else a path
    with a ``terminate_forward_cert`` hop behaves like ``terminate_forward_cert`` (or
    ``misconfigured_forward`` when ``strips_client_cert`` is false); else (passthrough hops
    only, or a direct connection) like ``passthrough``.

    **Resource server**: each instance is tokenlib's resource server with the topology's
    ``iat`` tolerance, nonces (one nonce secret for all instances) and ``jti`` store (none;
    one memory store per instance; one store shared by the instances — in-process here, the
    full lab also runs it on Redis). Schemes follow the capabilities: without DPoP support
    the ``DPoP`` scheme is refused and a DPoP-bound token sent as bearer is served unchecked,
    without mTLS support a certificate-bound token is served unchecked (an RS unaware of
    ``cnf``, RFC 9449 §7.2); without bearer support unbound tokens are refused.

    **Cells** (mechanism x attack): bearer, mTLS and the DPoP variant this RS runs
    (:attr:`Topology.dpop_mechanism`); attacks ``legitimate`` (alice's own request: is the
    binding checked?), ``captured_token`` (mallory presents alice's token with her own
    certificate or DPoP key), ``sent_as_bearer`` (the bound token with the Bearer scheme, no
    proof, no certificate), ``injected_client_cert`` (mTLS: no certificate, a
    ``Client-Cert`` header with alice's certificate) and ``proof_replay`` (DPoP: alice's
    captured request replayed unchanged on the other instance, or the same one when there is
    one).

    **Model prediction** for the same cell, from the one-flow inventory
    (:meth:`Topology.to_inventory`): ``legitimate`` — the binding is enforceable
    (``FlowContext.enforceable``); token attacks — ``max_replays`` of scenario "token copied"
    (0 refused, else accepted); ``proof_replay`` — ``max_replays`` of "token and proof
    captured in transit"; ``injected_client_cert`` — refused without a forwarding hop, else
    *possible* (assumption A3 per forwarding hop: either outcome agrees). Where the model
    says the binding cannot be enforced and the lab refused both alice's own request and the
    attack, the row is not comparable (the mechanism does not run on this path) and
    ``agree`` is NA; the ``legitimate`` row carries the comparison.

    Columns: ``mechanism`` (id), ``mechanism_label``, ``attack`` (id), ``attack_label``,
    ``lab_mode``, ``lab_ran``, ``lab_accepted``, ``lab_outcome`` (words), ``rs_instance``,
    ``model_accepted`` (boolean, NA for "possible"), ``model_prediction`` (words),
    ``agree`` (boolean, NA when not comparable). ``attrs``: ``lab_seconds``, ``requests``,
    ``lab_mode``. ``out``: also write the table as CSV (spreadsheet-safe).
    """
    from tokenlib.analysis.labels import label
    from tokenlib.analysis.models import FlowContext

    started = time.perf_counter()
    flows, services, servers = topology.to_inventory()
    ctx = FlowContext.build(flows, services, params, authorization_servers=servers)
    cells = [(binding, a) for binding in _BINDINGS for a in _ATTACKS[binding]]
    results: dict[tuple[Binding, str], _LabResult] = {}
    with contextlib.ExitStack() as stack:
        # the injected Client-Cert is refused on purpose; keep its warning out of the output
        asgi_log = logging.getLogger("tokenlib.integrations.asgi")
        stack.callback(asgi_log.setLevel, asgi_log.level)
        asgi_log.setLevel(logging.ERROR)
        lab = _start_lab(topology, stack)
        sender = _Sender(lab)
        for binding, attack in cells:
            results[(binding, attack)] = _lab_cell(lab, sender, binding, attack)
        requests = sender.requests
    rows = []
    for binding, attack in cells:
        mech = {  # the models' mechanism id (DPoP: the variant this RS runs)
            Binding.BEARER: "bearer",
            Binding.MTLS: "mtls",
            Binding.DPOP: topology.dpop_mechanism,
        }[binding]
        lab_res = results[(binding, attack)]
        pred = _predict(topology, ctx, binding, attack)
        legit = results[(binding, "legitimate")]
        bound = binding != Binding.BEARER
        if attack == "legitimate":
            lab_value = lab_res.accepted and (not bound or lab_res.checked_binding)
            if lab_res.accepted and bound and not lab_res.checked_binding:
                lab_text = "accepted, but as a bearer token (binding not checked)"
            elif lab_res.accepted and bound:
                lab_text = "accepted, binding checked"
            else:
                lab_text = lab_res.outcome
        else:
            lab_value, lab_text = lab_res.accepted, lab_res.outcome
        comparable = lab_res.ran and not (
            attack != "legitimate"
            and pred.text.startswith("accepted: without")
            and not legit.accepted
            and not lab_res.accepted
        )
        if attack == "legitimate" and not lab_res.ran:
            comparable = True  # no token issued: nothing can use the binding
        if not comparable or pred.accepted is None:
            agree: Any = pd.NA if not comparable else True
        else:
            agree = bool(pred.accepted) == bool(lab_value)
        if not comparable and lab_res.ran:
            lab_text += " (the mechanism does not run on this path)"
        rows.append(
            {
                "mechanism": mech,
                "mechanism_label": label("mechanism", mech),
                "attack": attack,
                "attack_label": ATTACK_LABELS[attack],
                "lab_mode": topology.lab_mode,
                "lab_ran": lab_res.ran,
                "lab_accepted": bool(lab_value),
                "lab_outcome": lab_text,
                "rs_instance": lab_res.instance,
                "model_accepted": pd.NA if pred.accepted is None else pred.accepted,
                "model_prediction": pred.text,
                "agree": agree,
            }
        )
    frame = pd.DataFrame(rows)
    for col in ("model_accepted", "agree"):
        frame[col] = frame[col].astype("boolean")
    frame["rs_instance"] = frame["rs_instance"].astype("Int64")
    frame.attrs.update(
        lab_seconds=round(time.perf_counter() - started, 3),
        requests=requests,
        lab_mode=topology.lab_mode,
    )
    if out is not None:
        from tokenlib.analysis._csv import write_csv

        write_csv(frame, Path(out))
    return frame


# ------------------------------------------------------------------------ reader-facing text


def deployability_table(dep: pd.DataFrame) -> Any:
    """:func:`path_deployability` for readers (labels, Yes/No, wrapped reasons)."""
    from tokenlib.analysis.labels import fmt_share, fmt_yes_no, present

    return present(
        dep,
        {
            "family": "Mechanism",
            "client_ok": "Client",
            "cert_ok": "Certificate management",
            "as_ok": "Authorization server",
            "rs_ok": "Resource server",
            "path_ok": "Path",
            "deployable_today": "Deployable today",
            "p_deploy": "Chance it can be deployed after changes (assumption)",
            "reasons": "What stands in the way",
        },
        {"p_deploy": fmt_share, "deployable_today": fmt_yes_no},
    )


def exposure_table(exposure: pd.DataFrame) -> Any:
    """:func:`path_exposure` for readers."""
    from tokenlib.analysis.labels import fmt_share, fmt_yes_no, present

    frame = exposure.assign(today=exposure["today"].map({True: "Today", False: ""}))
    return present(
        frame,
        {
            "mechanism": "Mechanism",
            "today": "In use",
            "enforceable": "Binding can be enforced here",
            "usable_share": "Stolen tokens still usable",
            "removed_share": "Exposure removed against today",
            "max_token_replays": "Uses of a stolen token alone",
            "max_proof_replays": "Further uses of a captured token and proof",
        },
        {
            "enforceable": fmt_yes_no,
            "usable_share": fmt_share,
            "removed_share": fmt_share,
            "max_token_replays": fmt_replays,
            "max_proof_replays": fmt_replays,
        },
    )


def exposure_summary(exposure: pd.DataFrame, t: Topology) -> str:
    """Two sentences with the path's numbers (today against the DPoP variant of its RS)."""
    from tokenlib.analysis.labels import fmt_share, label

    by = exposure.set_index("mechanism")
    today = exposure[exposure["today"]].iloc[0]
    dpop = by.loc[t.dpop_mechanism]
    replays = fmt_replays(dpop["max_proof_replays"]).lower()
    replay_text = (
        "cannot be replayed" if replays == "0" else f"can be replayed {replays} more times"
    )
    if replays == "unlimited":
        replay_text = "can be replayed without limit while it is accepted"
    return (
        f"Today ({label('mechanism', str(today['mechanism']))}), "
        f"**{fmt_share(today['usable_share'])}** of stolen tokens are still usable when the "
        f"attacker uses them. With this resource server's DPoP "
        f"({label('mechanism', t.dpop_mechanism)}) it would be "
        f"**{fmt_share(dpop['usable_share'])}**, and a captured token and proof "
        f"{replay_text}."
    )


def recommendation_text(rec: Mapping[str, Any], draws: int) -> str:
    """The recommendation in plain words with its numbers."""
    from tokenlib.analysis.labels import fmt_count, fmt_share, label

    mech = label("mechanism", str(rec["mechanism"]))
    if rec["recommended"] == "bearer":
        head = "**Keep bearer tokens and compensate**: no candidate deployable here removes enough."
    elif rec["mechanism"] == rec["current_mechanism"]:
        head = f"**Keep {mech}**: no candidate removes meaningfully more at its cost."
    else:
        head = (
            f"**Move to {mech}**: it removes {fmt_share(rec['removed_share'])} of this "
            f"path's token-theft exposure; the chance it can be deployed after the needed "
            f"changes is {fmt_share(rec['p_deploy'])} (an assumption)."
        )
    robust = rec["robustness"]
    if draws > 0 and robust == robust:
        head += (
            f" The same choice comes out in {fmt_share(robust)} of "
            f"{fmt_count(draws)} joint draws of the assumptions."
        )
    return head


def lab_table(results: pd.DataFrame) -> Any:
    """:func:`run_topology` for readers: lab outcome next to the model's prediction."""
    from tokenlib.analysis.labels import present

    agree = results["agree"].map(
        lambda x: "Not comparable" if x is pd.NA else ("Yes" if x else "No")
    )
    return present(
        results.assign(agree_text=agree),
        {
            "mechanism": "Mechanism",
            "attack_label": "Request",
            "lab_outcome": "Live lab (real HTTPS)",
            "model_prediction": "Model",
            "agree_text": "Agree",
        },
    )


def lab_summary(results: pd.DataFrame) -> str:
    """How many comparable cells agree, which do not, and the lab's run time."""
    from tokenlib.analysis.labels import fmt_count, fmt_seconds, label

    comparable = results[results["agree"].notna()]
    agree = int(comparable["agree"].astype(bool).sum())
    text = (
        f"The live lab ({fmt_count(results.attrs.get('requests', 0))} HTTPS requests in "
        f"{fmt_seconds(results.attrs.get('lab_seconds', 0))}) and the models agree on "
        f"**{agree} of {len(comparable)}** comparable cells"
    )
    skipped = len(results) - len(comparable)
    text += (
        f"; {skipped} cells are not comparable (the mechanism does not run on this path)."
        if skipped
        else "."
    )
    wrong = comparable[~comparable["agree"].astype(bool)]
    for r in wrong.itertuples():
        text += (
            f"\n- Disagreement: {label('mechanism', r.mechanism)}, {r.attack_label}: the lab "
            f"says {r.lab_outcome}, the model {r.model_prediction}."
        )
    return text


def render_exploration(t: Topology, run_lab: bool = False, *, draws: int = 0) -> None:
    """Display the whole exploration of ``t`` (diagram, deployability, exposure,
    recommendation and, with ``run_lab``, the live-lab comparison) — the widgets' view."""
    from IPython.display import Markdown, display

    show: Any = display
    show(Markdown(f"**The path:** {t.describe()}"))  # type: ignore[no-untyped-call]
    show(draw_path(t))
    show(deployability_table(path_deployability(t)))
    exposure = path_exposure(t)
    show(Markdown(exposure_summary(exposure, t)))  # type: ignore[no-untyped-call]
    show(exposure_table(exposure))
    rec = path_recommendation(t, draws=draws)
    show(Markdown(recommendation_text(rec, draws)))  # type: ignore[no-untyped-call]
    if run_lab:
        results = run_topology(t)
        show(Markdown(lab_summary(results)))  # type: ignore[no-untyped-call]
        show(lab_table(results))


# ---------------------------------------------------------------------------- the widgets


def _interactive() -> bool:
    """True in a kernel a Jupyter server started for a notebook (JupyterLab sets
    ``JPY_SESSION_NAME``); False headless (papermill, nbclient, ``make report``)."""
    return bool(os.environ.get("JPY_SESSION_NAME"))


def explorer_form(
    values: Mapping[str, Any],
    render: Callable[[Topology, bool], None],
    *,
    force: bool = False,
) -> Any | None:
    """ipywidgets controls for the topology parameters, and an output area where
    ``render(topology, run_lab)`` draws the analysis on "Explore". ``None`` headless (no
    Jupyter server session) or without ipywidgets, so a report shows no widget placeholder;
    ``force`` builds it anyway (tests)."""
    if not (force or _interactive()):
        return None
    try:
        import ipywidgets as w
    except ImportError:  # pragma: no cover - an optional extra
        return None
    from tokenlib.analysis.labels import label

    start = {**DEFAULT_PARAMETERS, **{k: values[k] for k in values if k in DEFAULT_PARAMETERS}}
    controls: dict[str, Any] = {
        "CLIENT_KIND": w.Dropdown(
            options=[(label("client_kind", k), k) for k in CLIENT_KINDS], description="Client"
        ),
        "HOPS": w.Text(description="Hops", placeholder="cdn:terminate>api_gateway:passthrough"),
        "KEY_STORAGE": w.Dropdown(
            options=[(label("key_storage", k), k) for k in KEY_STORAGES], description="Key"
        ),
        "BINDING_TODAY": w.Dropdown(options=[b.value for b in _BINDINGS], description="Today"),
        "RS_SUPPORTS_BEARER": w.Checkbox(description="RS accepts bearer tokens"),
        "RS_SUPPORTS_MTLS": w.Checkbox(description="RS checks mTLS binding"),
        "RS_SUPPORTS_DPOP": w.Checkbox(description="RS checks DPoP"),
        "RS_INSTANCES": w.BoundedIntText(min=1, max=MAX_INSTANCES, description="Instances"),
        "RS_JTI_STORE": w.Dropdown(options=list(JTI_CACHES), description="jti store"),
        "RS_REQUIRES_NONCE": w.Checkbox(description="RS requires nonces"),
        "RS_IAT_PAST_S": w.BoundedIntText(min=1, max=86_400, description="Proof age (s)"),
        "AS_ISSUES_DPOP": w.Checkbox(description="AS issues DPoP-bound tokens"),
        "AS_ISSUES_MTLS": w.Checkbox(description="AS issues certificate-bound tokens"),
        "AS_BINDS_REFRESH_TOKENS": w.Checkbox(description="AS binds refresh tokens"),
        "FORWARDER_STRIPS_CLIENT_CERT": w.Checkbox(description="Forwarders strip Client-Cert"),
    }
    for name, control in controls.items():
        control.value = start[name]
    run_lab = w.Checkbox(value=False, description="Also run the live lab (a few seconds)")
    button = w.Button(description="Explore", button_style="primary")
    output = w.Output()

    def on_click(_: Any) -> None:
        output.clear_output()
        with output:
            try:
                topology = Topology.from_parameters(**{k: c.value for k, c in controls.items()})
            except TopologyError as err:
                from IPython.display import Markdown, display

                display(Markdown(err.markdown()))  # type: ignore[no-untyped-call]
                return
            render(topology, bool(run_lab.value))

    button.on_click(on_click)
    return w.VBox([*controls.values(), run_lab, button, output])
