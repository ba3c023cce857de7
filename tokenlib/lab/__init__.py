"""The live lab: real HTTPS on loopback showing which token replays succeed on which path.

:func:`run_lab` starts, with throwaway certificates (:mod:`tokenlib.lab.pki`), the lab
authorization server, two resource-server instances (per-instance memory replay caches,
and a shared Redis cache when ``redis-server`` is installed) and a reverse proxy
(:mod:`tokenlib.lab.proxy`) in each TLS mode — passthrough, terminate, terminate and
forward the client certificate (RFC 9440), and a misconfigured forwarder that lets a
client inject ``Client-Cert``. It sends the scenario requests (legitimate baseline,
stolen token, captured-proof replay on the same and on another instance, header
injection) for bearer, mTLS-bound (RFC 8705) and DPoP-bound (RFC 9449) tokens and
returns what was accepted, with status, error code and the added latency per request.

The pieces are usable on their own for prototypes: :class:`LabAuthorizationServer`
(a small token endpoint), :class:`ServedApp` (uvicorn on loopback in a thread, with the
client certificate in the ASGI scope), :func:`create_pki` and :class:`ReverseProxy`.
:class:`WeakResourceServer` is a deliberately weak resource server and
:class:`ProbeTargets` serves it next to a conforming one for :mod:`tokenlib.probe`.
The runner is split by job: :mod:`~tokenlib.lab.scenarios` (attacks as data, expectations
from the probe catalogue), :mod:`~tokenlib.lab.environment` (servers, proxies, clean stop
on SIGTERM/SIGHUP), :mod:`~tokenlib.lab.redis_process`, :mod:`~tokenlib.lab.results` (table,
CSV, figures) and :mod:`~tokenlib.lab.runner` (sending the requests).
Names are imported lazily so ``import tokenlib.lab`` stays cheap; the runner needs the
``lab`` and ``analysis`` extras (httpx, uvicorn, starlette, redis, pandas). Lab code is
for experiments and prototypes, never for production traffic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenlib.lab._serve import ServedApp, serve
    from tokenlib.lab.authserver import ClientRegistration, LabAuthorizationServer, OAuthError
    from tokenlib.lab.environment import LabEnvironment, stop_on_signals
    from tokenlib.lab.pki import DEFAULT_CLIENTS, ClientIdentity, LabPKI, create_pki, temporary_pki
    from tokenlib.lab.probe_targets import ProbeTargets
    from tokenlib.lab.proxy import (
        PROXY_MODES,
        BackgroundLoop,
        ProxyMode,
        ProxyStats,
        ReverseProxy,
    )
    from tokenlib.lab.results import plot_lab
    from tokenlib.lab.runner import run_lab
    from tokenlib.lab.scenarios import ATTACKS, BINDINGS, check_outcomes, expected_outcomes
    from tokenlib.lab.weak_rs import WeakResourceServer

_EXPORTS: dict[str, str] = {
    "ServedApp": "tokenlib.lab._serve",
    "serve": "tokenlib.lab._serve",
    "ClientRegistration": "tokenlib.lab.authserver",
    "LabAuthorizationServer": "tokenlib.lab.authserver",
    "OAuthError": "tokenlib.lab.authserver",
    "DEFAULT_CLIENTS": "tokenlib.lab.pki",
    "ClientIdentity": "tokenlib.lab.pki",
    "LabPKI": "tokenlib.lab.pki",
    "create_pki": "tokenlib.lab.pki",
    "temporary_pki": "tokenlib.lab.pki",
    "PROXY_MODES": "tokenlib.lab.proxy",
    "BackgroundLoop": "tokenlib.lab.proxy",
    "ProxyMode": "tokenlib.lab.proxy",
    "ProxyStats": "tokenlib.lab.proxy",
    "ReverseProxy": "tokenlib.lab.proxy",
    "ATTACKS": "tokenlib.lab.scenarios",
    "BINDINGS": "tokenlib.lab.scenarios",
    "LabEnvironment": "tokenlib.lab.environment",
    "ProbeTargets": "tokenlib.lab.probe_targets",
    "WeakResourceServer": "tokenlib.lab.weak_rs",
    "check_outcomes": "tokenlib.lab.scenarios",
    "expected_outcomes": "tokenlib.lab.scenarios",
    "plot_lab": "tokenlib.lab.results",
    "run_lab": "tokenlib.lab.runner",
    "stop_on_signals": "tokenlib.lab.environment",
}

__all__ = [
    "ATTACKS",
    "BINDINGS",
    "DEFAULT_CLIENTS",
    "PROXY_MODES",
    "BackgroundLoop",
    "ClientIdentity",
    "ClientRegistration",
    "LabAuthorizationServer",
    "LabEnvironment",
    "LabPKI",
    "OAuthError",
    "ProbeTargets",
    "ProxyMode",
    "ProxyStats",
    "ReverseProxy",
    "ServedApp",
    "WeakResourceServer",
    "check_outcomes",
    "create_pki",
    "expected_outcomes",
    "plot_lab",
    "run_lab",
    "serve",
    "stop_on_signals",
    "temporary_pki",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenlib.lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
