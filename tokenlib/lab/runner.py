"""The live lab's scenario runner: real HTTPS requests, real proxies, recorded outcomes.

:func:`run_lab` starts a :class:`~tokenlib.lab.environment.LabEnvironment` on 127.0.0.1 —
throwaway PKI, the lab authorization server, two resource-server instances and one
reverse proxy per TLS mode (:data:`tokenlib.lab.proxy.PROXY_MODES`) balancing over both —
and sends, for each binding (bearer, mTLS per RFC 8705, DPoP per RFC 9449) × proxy mode ×
attack (:mod:`tokenlib.lab.scenarios`, expectations from the probe catalogue), HTTPS
requests with httpx. Each row (:mod:`tokenlib.lab.results`) records whether the RS
accepted, the HTTP status, the error code, whether that matches
:func:`expected_outcomes`, a ``flag`` for findings and latency.

The runs happen twice when a ``redis-server`` binary exists: with a per-instance
:class:`~tokenlib.replay.MemoryReplayCache` and with one shared
:class:`~tokenlib.integrations.redis.RedisReplayCache` (a private server on a Unix socket,
:mod:`tokenlib.lab.redis_process`). Latency: ``latency_ms`` is the median time of a
request on a kept-alive connection, including creating the DPoP proof on the client;
``added_latency_ms`` is that minus the bearer baseline on the same path.

Everything is torn down on exit, also on error, Ctrl-C, SIGTERM and SIGHUP: clients,
proxies, servers, the Redis process and the folder holding the lab's private keys.
Needs the ``lab`` and ``analysis`` extras.

This module keeps the names it always exported (``run_lab``, ``LabEnvironment``,
``expected_outcomes``, ``check_outcomes``, ``plot_lab``, ``ATTACKS``, ``BINDINGS``,
``CACHES``, ``COLUMNS`` and the helpers :mod:`tokenlib.lab.topology` imports); they live in
the modules named above.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pandas as pd

from tokenlib.binding import Binding
from tokenlib.dpop import create_proof
from tokenlib.jwk import PrivateKey
from tokenlib.lab.environment import _SCOPE, LabEnvironment, stop_on_signals
from tokenlib.lab.environment import AUDIENCE as AUDIENCE
from tokenlib.lab.environment import _no_delay as _no_delay
from tokenlib.lab.environment import _rs_app as _rs_app
from tokenlib.lab.environment import _SwitchableReplayCache as _SwitchableReplayCache
from tokenlib.lab.proxy import PROXY_MODES
from tokenlib.lab.redis_process import RedisProcess
from tokenlib.lab.results import COLUMNS, _frame, _write_csv_atomic, plot_lab
from tokenlib.lab.results import _Outcome as _Outcome
from tokenlib.lab.results import _outcome as _outcome
from tokenlib.lab.scenarios import (
    ATTACKS,
    BINDINGS,
    CACHES,
    check_outcomes,
    expectation,
    expected_outcomes,
    flag_for,
    scenarios,
)

__all__ = [
    "ATTACKS",
    "AUDIENCE",
    "BINDINGS",
    "CACHES",
    "COLUMNS",
    "LabEnvironment",
    "check_outcomes",
    "expected_outcomes",
    "plot_lab",
    "run_lab",
]

# Former private names, kept for callers of the single-module runner.
_RedisProcess = RedisProcess
_expectation = expectation
_flag = flag_for
_scenarios = scenarios
_RESOURCE_PATH: Final = "/orders/42"
_TIMEOUT: Final = 10.0


@dataclass
class _Tokens:
    bearer: str
    mtls: str
    dpop: str


def _fetch_tokens(env: LabEnvironment) -> _Tokens:
    from tokenlib.integrations.httpx import TokenClient

    endpoint = f"{env.as_url}/token"
    with httpx.Client(verify=env.pki.client_context(), timeout=_TIMEOUT) as http:
        bearer = TokenClient(
            endpoint, client_id="alice-bearer", client_key=env.keys["alice_client"], http=http
        ).client_credentials(scope=_SCOPE)
        dpop = TokenClient(
            endpoint,
            client_id="alice-dpop",
            client_key=env.keys["alice_client"],
            dpop_key=env.keys["alice_dpop"],
            http=http,
        ).client_credentials(scope=_SCOPE)
    with httpx.Client(verify=env.pki.client_context("alice"), timeout=_TIMEOUT) as http:
        mtls = TokenClient(endpoint, client_id="alice-mtls", http=http).client_credentials(
            scope=_SCOPE
        )
    return _Tokens(bearer.access_token, mtls.access_token, dpop.access_token)


def _dpop_headers(key: PrivateKey, url: str, token: str) -> dict[str, str]:
    return {
        "Authorization": f"DPoP {token}",
        "DPoP": create_proof(key, "GET", url, access_token=token),
    }


class _Runner:
    """Sends the requests of each scenario through the proxy for its mode."""

    def __init__(self, env: LabEnvironment, tokens: _Tokens, *, latency_samples: int) -> None:
        self.env = env
        self.tokens = tokens
        self.latency_samples = latency_samples

    def _client(self, cert: str | None) -> httpx.Client:
        return httpx.Client(verify=self.env.pki.client_context(cert), timeout=_TIMEOUT)

    def _send(
        self, mode: str, backend: int, cert: str | None, headers: Callable[[str], dict[str, str]]
    ) -> _Outcome:
        proxy = self.env.proxies[mode]
        proxy.backend = backend  # the proxy picks the upstream when a connection opens
        url = proxy.url + _RESOURCE_PATH
        with self._client(cert) as http:
            start = time.perf_counter()
            response = http.get(url, headers=headers(url))
            elapsed = (time.perf_counter() - start) * 1000
        return _outcome(response, elapsed)

    def _legit_headers(self, binding: str) -> Callable[[str], dict[str, str]]:
        token = getattr(self.tokens, binding)
        if binding == Binding.DPOP:
            key = self.env.keys["alice_dpop"]
            return lambda url: _dpop_headers(key, url, token)
        return lambda url: {"Authorization": f"Bearer {token}"}

    def baselines(self, mode: str, bindings: Sequence[str]) -> dict[str, _Outcome]:
        """alice's legitimate request for each binding through ``mode``'s proxy.

        One kept-alive connection per binding; the timed requests are interleaved across
        the bindings (round robin) so that machine noise hits every binding alike, and
        the median is reported. The first request per connection (TLS set-up) is untimed.
        """
        proxy = self.env.proxies[mode]
        proxy.backend = 0
        url = proxy.url + _RESOURCE_PATH
        headers = {b: self._legit_headers(b) for b in bindings}
        timings: dict[str, list[float]] = {b: [] for b in bindings}
        with contextlib.ExitStack() as stack:
            clients = {
                b: stack.enter_context(self._client("alice" if b == Binding.MTLS else None))
                for b in bindings
            }
            first = {b: clients[b].get(url, headers=headers[b](url)) for b in bindings}
            for _ in range(self.latency_samples):
                for b in bindings:
                    start = time.perf_counter()
                    response = clients[b].get(url, headers=headers[b](url))
                    timings[b].append((time.perf_counter() - start) * 1000)
                    if response.status_code != first[b].status_code:
                        raise RuntimeError(f"unstable baseline for {b} through {mode}")
        return {b: _outcome(first[b], statistics.median(timings[b])) for b in bindings}

    def attack(self, binding: str, mode: str, attack: str) -> _Outcome:
        token = getattr(self.tokens, binding)
        if attack == "stolen_token":
            if binding == Binding.DPOP:
                key = self.env.keys["mallory_dpop"]
                return self._send(mode, 0, "mallory", lambda url: _dpop_headers(key, url, token))
            return self._send(mode, 0, "mallory", lambda url: {"Authorization": f"Bearer {token}"})
        if attack == "header_injection":
            alice_cert = self.env.pki.clients["alice"].client_cert_header
            return self._send(
                mode,
                0,
                None,
                lambda url: {"Authorization": f"Bearer {token}", "Client-Cert": alice_cert},
            )
        if attack in ("proof_replay_same_instance", "proof_replay_cross_instance"):
            captured: dict[str, str] = {}

            def capture(url: str) -> dict[str, str]:
                captured.update(_dpop_headers(self.env.keys["alice_dpop"], url, token))
                return captured

            original = self._send(mode, 0, None, capture)
            if not original.accepted:
                raise RuntimeError(f"the request to capture was refused ({mode}): {original}")
            backend = 0 if attack == "proof_replay_same_instance" else 1
            return self._send(mode, backend, "mallory", lambda url: dict(captured))
        raise ValueError(f"unknown attack {attack!r}")


def run_lab(
    *,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    redis: bool | None = None,
    latency_samples: int = 30,
) -> pd.DataFrame:
    """Start the lab, run every scenario over real HTTPS, stop the lab; return the results.

    ``redis``: ``None`` adds the shared-Redis runs when ``redis-server`` is installed,
    ``True`` requires it, ``False`` skips them. ``seed`` shuffles the order in which the
    scenarios run (rows come back in canonical order). ``out``: also write the table as
    CSV (atomically). ``latency_samples``: timed requests per binding and path for the
    baseline median (interleaved across bindings).

    Columns: see :data:`COLUMNS`. ``latency_ms`` of a baseline row is that median on a
    kept-alive connection; of an attack row, the single request on a fresh connection
    (TLS handshake included). ``added_latency_ms`` (baselines only) is the gap to bearer
    measured on the same path in the same phase. ``attrs``: ``lab_seconds``, ``redis``.
    """
    if latency_samples < 1:
        raise ValueError("latency_samples must be at least 1")
    started = time.perf_counter()
    with stop_on_signals(), LabEnvironment(redis=redis) as env:
        tokens = _fetch_tokens(env)
        runner = _Runner(env, tokens, latency_samples=latency_samples)
        caches = [c for c in CACHES if c == "per_instance_memory" or env.has_redis]
        order = scenarios(caches)
        shuffled = list(enumerate(order))
        random.Random(seed).shuffle(shuffled)  # noqa: S311 (scenario order, not crypto)
        by_cache: dict[str, list[tuple[int, tuple[str, str, str, str]]]] = {c: [] for c in caches}
        for item in shuffled:
            by_cache[item[1][0]].append(item)
        results: dict[int, _Outcome] = {}
        bearer_ms: dict[tuple[str, str], float] = {}
        modes = list(PROXY_MODES)
        random.Random(seed).shuffle(modes)  # noqa: S311
        for cache in caches:
            env.use_cache(cache)
            # Baselines first, per path, all bindings interleaved (bearer is the reference
            # for the added latency, measured in the same phase even when not reported).
            for path in modes:
                wanted = [b for (c, b, m, a) in order if (c, m, a) == (cache, path, "baseline")]
                bearer = Binding.BEARER
                measured = runner.baselines(path, [bearer, *(b for b in wanted if b != bearer)])
                bearer_ms[(cache, path)] = measured[bearer].latency_ms
                for index, (c, binding, m, attack) in enumerate(order):
                    if (c, m, attack) == (cache, path, "baseline"):
                        results[index] = measured[binding]
            for index, (_, binding, mode, attack) in by_cache[cache]:
                if attack != "baseline":
                    results[index] = runner.attack(binding, mode, attack)
        redis_note = env.redis_url is not None
    frame = _frame(order, results, bearer_ms)
    frame.attrs["lab_seconds"] = round(time.perf_counter() - started, 3)
    frame.attrs["redis"] = redis_note
    if out is not None:
        _write_csv_atomic(frame, Path(out))
    return frame
