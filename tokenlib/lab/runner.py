"""The live lab's scenario runner: real HTTPS requests, real proxies, recorded outcomes.

:func:`run_lab` starts a :class:`LabEnvironment` on 127.0.0.1 — throwaway PKI, the lab
authorization server, two resource-server instances and one reverse proxy per TLS mode
(:data:`tokenlib.lab.proxy.PROXY_MODES`) balancing over both — and sends, for each
binding (bearer, mTLS per RFC 8705, DPoP per RFC 9449) × proxy mode × attack, HTTPS
requests with httpx. Each row records whether the RS accepted, the HTTP status, the
error code, whether that matches :func:`expected_outcomes`, a ``flag`` for findings
(a replayable bearer token, a broken mTLS binding, an injected ``Client-Cert`` that
worked, a proof replayed on another instance) and latency.

Attacks (the attacker is ``mallory``, who holds a valid certificate and DPoP key of her
own and has stolen alice's access token; certificates are public, so she also has
alice's certificate, but not alice's private keys):

``baseline``
    alice's legitimate request (the reference for latency).
``stolen_token``
    mallory presents alice's token with her own certificate / her own DPoP proof
    (RFC 9449 §11.1 "token replay", RFC 8705 §3 "sender-constrained").
``header_injection``
    mallory, without a TLS client certificate, sends alice's mTLS-bound token and a
    ``Client-Cert`` header carrying alice's certificate (RFC 9440 §4).
``proof_replay_same_instance`` / ``proof_replay_cross_instance``
    mallory captured alice's request (token and DPoP proof) and replays it unchanged to
    the same RS instance / to the other instance behind the same address. Within the
    ``iat`` window only a ``jti`` cache stops this (RFC 9449 §11.1); per-instance memory
    caches do not see each other's proofs, a shared Redis cache does.

The runs happen twice when a ``redis-server`` binary exists: with a per-instance
:class:`~tokenlib.replay.MemoryReplayCache` and with one shared
:class:`~tokenlib.integrations.redis.RedisReplayCache` (a private server on a Unix socket
that the lab starts and stops). Latency: ``latency_ms`` is the median time of a request
on a kept-alive connection, including creating the DPoP proof on the client;
``added_latency_ms`` is that minus the bearer baseline on the same path.

Everything is torn down on exit, also on error: clients, proxies, servers, the Redis
process and the certificate directory. Needs the ``lab`` and ``analysis`` extras.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import httpx
import pandas as pd

from tokenlib._atomic import atomic_path
from tokenlib.dpop import create_proof
from tokenlib.jwk import PrivateKey, generate_key, public_jwk
from tokenlib.lab.pki import LabPKI, create_pki
from tokenlib.lab.proxy import PROXY_MODES, BackgroundLoop, ReverseProxy
from tokenlib.replay import MemoryReplayCache, ReplayCache

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tokenlib.lab._serve import ServedApp

__all__ = [
    "ATTACKS",
    "BINDINGS",
    "CACHES",
    "LabEnvironment",
    "check_outcomes",
    "expected_outcomes",
    "plot_lab",
    "run_lab",
]

Binding = Literal["bearer", "mtls", "dpop"]
Attack = Literal[
    "baseline",
    "stolen_token",
    "header_injection",
    "proof_replay_same_instance",
    "proof_replay_cross_instance",
]
Cache = Literal["per_instance_memory", "shared_redis"]

BINDINGS: Final[tuple[Binding, ...]] = ("bearer", "mtls", "dpop")
ATTACKS: Final[dict[Binding, tuple[Attack, ...]]] = {
    "bearer": ("baseline", "stolen_token"),
    "mtls": ("baseline", "stolen_token", "header_injection"),
    "dpop": (
        "baseline",
        "stolen_token",
        "proof_replay_same_instance",
        "proof_replay_cross_instance",
    ),
}
CACHES: Final[tuple[Cache, ...]] = ("per_instance_memory", "shared_redis")
#: With the shared cache only the DPoP scenarios differ, so only those are re-run.
_REDIS_ATTACKS: Final[tuple[Attack, ...]] = (
    "baseline",
    "proof_replay_same_instance",
    "proof_replay_cross_instance",
)
AUDIENCE: Final = "https://rs.lab.invalid"
_RESOURCE_PATH: Final = "/orders/42"
_SCOPE: Final = "orders:read"
_TIMEOUT: Final = 10.0
_ERROR_PARAM: Final = re.compile(r'error="([^"]+)"')

COLUMNS: Final = (
    "replay_cache",
    "binding",
    "proxy_mode",
    "attack",
    "accepted",
    "status",
    "error",
    "error_description",
    "expected_accepted",
    "matches_expected",
    "flag",
    "rs_instance",
    "latency_ms",
    "added_latency_ms",
    "expectation",
)


# -- expectations ----------------------------------------------------------------------------


def _expectation(binding: str, mode: str, attack: str, cache: str) -> tuple[bool, str]:
    """Whether the RS should accept, and why (the claims the lab checks)."""
    if attack == "baseline":
        if binding == "mtls" and mode == "terminate":
            return False, "the RS never sees the client certificate: mTLS binding breaks"
        return True, "legitimate request"
    if attack == "stolen_token":
        if binding == "bearer":
            return True, "a bearer token works for whoever holds it (RFC 6750 §5)"
        if binding == "mtls":
            return False, "the attacker cannot present the bound certificate (RFC 8705 §3)"
        return False, "the attacker's proof key does not match cnf.jkt (RFC 9449 §6)"
    if attack == "header_injection":
        if mode == "misconfigured_forward":
            return True, "the proxy passes the injected Client-Cert to a trusting RS (RFC 9440 §4)"
        if mode == "terminate_forward_cert":
            return False, "the proxy strips incoming Client-Cert and sets its own"
        return False, "the RS ignores Client-Cert from a peer it does not trust"
    if attack == "proof_replay_same_instance":
        return False, "the instance's jti cache has seen the proof (RFC 9449 §11.1)"
    if attack == "proof_replay_cross_instance":
        if cache == "per_instance_memory":
            return True, "the other instance's memory cache has not seen the proof"
        return False, "the shared cache has seen the proof"
    raise ValueError(f"unknown attack {attack!r}")


def _scenarios(caches: Sequence[str]) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    for cache in caches:
        for binding in BINDINGS:
            for mode in PROXY_MODES:
                for attack in ATTACKS[binding]:
                    if cache == "shared_redis" and (
                        binding != "dpop" or attack not in _REDIS_ATTACKS
                    ):
                        continue
                    out.append((cache, binding, mode, attack))
    return out


def expected_outcomes(*, redis: bool = True) -> pd.DataFrame:
    """The outcome the lab expects for every scenario, with the reason in words."""
    caches = CACHES if redis else CACHES[:1]
    rows = []
    for cache, binding, mode, attack in _scenarios(caches):
        accepted, why = _expectation(binding, mode, attack, cache)
        rows.append(
            {
                "replay_cache": cache,
                "binding": binding,
                "proxy_mode": mode,
                "attack": attack,
                "expected_accepted": accepted,
                "expectation": why,
            }
        )
    return pd.DataFrame(rows)


def check_outcomes(results: pd.DataFrame) -> list[str]:
    """One line per scenario whose outcome differs from :func:`expected_outcomes`."""
    bad = results[results["accepted"] != results["expected_accepted"]]
    return [
        f"{r.replay_cache}/{r.binding}/{r.proxy_mode}/{r.attack}: "
        f"accepted={r.accepted} (expected {r.expected_accepted}), "
        f"status {r.status} {r.error or ''}".rstrip()
        for r in bad.itertuples()
    ]


def _flag(binding: str, attack: str, accepted: bool) -> str:
    if binding == "bearer" and attack == "stolen_token" and accepted:
        return "bearer_replay"
    if binding == "mtls" and attack == "baseline" and not accepted:
        return "binding_broken"
    if attack == "header_injection" and accepted:
        return "header_injection"
    if attack.startswith("proof_replay") and accepted:
        return "proof_replay"
    if attack == "stolen_token" and accepted:
        return "stolen_token_accepted"
    return ""


# -- the environment -------------------------------------------------------------------------


class _SwitchableReplayCache:
    """A :class:`~tokenlib.replay.ReplayCache` the lab points at the instance's own memory
    cache or at the shared Redis cache between phases (instances stay running)."""

    def __init__(self) -> None:
        self.memory = MemoryReplayCache()
        self.current: ReplayCache = self.memory

    def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        return self.current.check_and_store(key, expires_at=expires_at, now=now, owner=owner)


class _RedisProcess:
    """A private ``redis-server`` on a Unix socket (no TCP port), without persistence."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.socket_path = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        import redis

        self.process = subprocess.Popen(  # noqa: S603 (absolute path from shutil.which)
            [
                self.binary,
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode}")
            if self.socket_path.exists():
                client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                finally:
                    client.close()
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)  # bounded start-up poll

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _rs_app(instance: int) -> Callable[..., Any]:
    """The protected resource: echoes which instance served it and the grant's binding."""
    from tokenlib.lab._serve import answer_lifespan

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[..., Any],
        send: Callable[[MutableMapping[str, Any]], Any],
    ) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        grant = scope.get("tokenlib.grant")
        body = json.dumps(
            {
                "instance": instance,
                "binding": getattr(grant, "binding", None),
                "client_id": getattr(grant, "client_id", None),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


@dataclass
class LabEnvironment:
    """Every lab component, started by ``__enter__`` and stopped by ``__exit__``/``close``.

    ``redis``: ``None`` uses a shared Redis cache when ``redis-server`` is installed,
    ``True`` requires it, ``False`` skips it. After start: ``pki``, ``as_url``,
    ``proxies`` (mode → proxy; ``proxy.upstreams`` are the two RS instances' listeners for
    that path), ``servers`` (the AS and RS uvicorn servers), ``redis_url``; ``ports`` lists
    every TCP port the lab bound (for checking that none is left open). Keys and the PKI
    are not in ``repr``.

    Each RS instance is one :class:`~tokenlib.server.ResourceServer` (so one replay cache)
    served on one HTTPS listener per proxy path, because what differs per path is the
    public URL (``htu``) and whether the proxy in front is trusted for ``Client-Cert``:
    only the two forwarding proxies are.
    """

    redis: bool | None = None
    pki: LabPKI = field(init=False, repr=False)
    as_url: str = field(init=False, default="")
    proxies: dict[str, ReverseProxy] = field(init=False, default_factory=dict, repr=False)
    caches: list[_SwitchableReplayCache] = field(init=False, default_factory=list, repr=False)
    shared_cache: Any = field(init=False, default=None, repr=False)
    redis_url: str | None = field(init=False, default=None)
    redis_process: _RedisProcess | None = field(init=False, default=None, repr=False)
    keys: dict[str, PrivateKey] = field(init=False, default_factory=dict, repr=False)
    servers: list[ServedApp] = field(init=False, default_factory=list, repr=False)
    ports: list[int] = field(init=False, default_factory=list)
    _stack: contextlib.ExitStack = field(
        init=False, default_factory=contextlib.ExitStack, repr=False
    )
    _directory: Path | None = field(init=False, default=None, repr=False)

    def __enter__(self) -> LabEnvironment:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything in reverse order of start; safe to call twice."""
        self._stack.close()

    @property
    def has_redis(self) -> bool:
        return self.shared_cache is not None

    def use_cache(self, cache: str) -> None:
        """Point every RS instance at its own memory cache or at the shared Redis cache."""
        if cache == "shared_redis" and self.shared_cache is None:
            raise RuntimeError("no shared Redis cache in this lab run")
        for switch in self.caches:
            switch.current = self.shared_cache if cache == "shared_redis" else switch.memory

    def _start(self) -> None:
        from tokenlib.integrations.asgi import DPoPMiddleware
        from tokenlib.lab._serve import ServedApp
        from tokenlib.lab.authserver import ClientRegistration, LabAuthorizationServer
        from tokenlib.server import ResourceServer

        directory = Path(tempfile.mkdtemp(prefix="tokenlib-lab-"))
        self._directory = directory
        self._stack.callback(shutil.rmtree, directory, True)
        pki_dir = directory / "pki"
        pki_dir.mkdir(mode=0o700)
        self.pki = create_pki(pki_dir)

        binary = shutil.which("redis-server")
        if self.redis and binary is None:
            raise RuntimeError("redis=True but no redis-server binary is installed")
        if self.redis is not False and binary is not None:
            from tokenlib.integrations.redis import RedisReplayCache

            self.redis_process = _RedisProcess(binary, directory)
            self._stack.callback(self.redis_process.stop)
            self.redis_process.start()
            self.redis_url = self.redis_process.url
            self.shared_cache = RedisReplayCache.from_url(self.redis_url, prefix="tokenlib-lab:")
            self._stack.callback(self.shared_cache.close)

        # Keys: alice's client-authentication and DPoP keys, mallory's DPoP key.
        self.keys = {
            "alice_client": generate_key("ES256"),
            "alice_dpop": generate_key("ES256"),
            "mallory_dpop": generate_key("ES256"),
        }
        alice_jwks = {"keys": [public_jwk(self.keys["alice_client"])]}
        alice_dn = self.pki.clients["alice"].certificate.subject.rfc4514_string()
        auth_server = LabAuthorizationServer(
            audience=AUDIENCE,
            clients=[
                ClientRegistration(
                    "alice-bearer", jwks=alice_jwks, scopes=frozenset({_SCOPE}), binding="bearer"
                ),
                ClientRegistration(
                    "alice-dpop", jwks=alice_jwks, scopes=frozenset({_SCOPE}), binding="dpop"
                ),
                ClientRegistration(
                    "alice-mtls",
                    auth_method="tls_client_auth",
                    subject_dn=alice_dn,
                    scopes=frozenset({_SCOPE}),
                    binding="mtls",
                ),
            ],
        )
        as_server = ServedApp(
            auth_server, ssl_context=self.pki.server_context(client_auth="optional")
        )
        self._serve(as_server)
        self.as_url = as_server.url
        auth_server.set_issuer(as_server.url)

        # Proxies first: the RS behind each must know its public URL (htu, RFC 9449 §4.3).
        loop = BackgroundLoop()
        self._stack.callback(loop.close)
        for mode in PROXY_MODES:
            proxy = loop.start(ReverseProxy.for_mode(mode, [], self.pki))
            self.proxies[mode] = proxy
            self.ports.append(proxy.port)
        for instance in range(2):
            switch = _SwitchableReplayCache()
            self.caches.append(switch)
            resource_server = ResourceServer(
                issuer=as_server.url,
                audience=AUDIENCE,
                jwks=auth_server.jwks(),
                replay_cache=switch,
            )
            for path, proxy in self.proxies.items():
                trusting = path in ("terminate_forward_cert", "misconfigured_forward")
                app = DPoPMiddleware(
                    _rs_app(instance),
                    resource_server=resource_server,
                    public_base_url=proxy.url,
                    trusted_proxies=["127.0.0.1"] if trusting else [],
                )
                served = ServedApp(
                    app,
                    ssl_context=self.pki.server_context(client_auth="optional"),
                    lifespan="off",
                )
                self._serve(served)
                proxy.upstreams.append(("127.0.0.1", served.port))

    def _serve(self, served: ServedApp) -> None:
        self._stack.callback(served.stop)
        served.start()
        _no_delay(served)
        self.servers.append(served)
        self.ports.append(served.port)


def _no_delay(served: ServedApp) -> None:
    """Turn Nagle off on the listening socket (accepted sockets inherit it on Linux).

    asyncio sets TCP_NODELAY only on sockets whose ``proto`` is IPPROTO_TCP; a socket made
    with ``socket.socket(AF_INET, SOCK_STREAM)`` has proto 0, so uvicorn's separate writes
    of response head and body meet the peer's delayed ACK: +40 ms per request, which
    would swamp every latency the lab measures. Harmless once the server sets it itself.
    """
    sock = getattr(served, "_sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# -- scenarios -------------------------------------------------------------------------------


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


@dataclass
class _Outcome:
    accepted: bool
    status: int
    error: str | None
    error_description: str | None
    rs_instance: int | None
    latency_ms: float


def _outcome(response: httpx.Response, latency: float) -> _Outcome:
    error = description = None
    instance = None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and isinstance(body, dict):
        instance = body.get("instance")
    elif isinstance(body, dict):
        error = body.get("error")
        description = body.get("error_description")
    if error is None and response.status_code != 200:
        match = _ERROR_PARAM.search(response.headers.get("www-authenticate", ""))
        error = match.group(1) if match else f"http_{response.status_code}"
    return _Outcome(
        response.status_code == 200, response.status_code, error, description, instance, latency
    )


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
        if binding == "dpop":
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
                b: stack.enter_context(self._client("alice" if b == "mtls" else None))
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
            if binding == "dpop":
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
    with LabEnvironment(redis=redis) as env:
        tokens = _fetch_tokens(env)
        runner = _Runner(env, tokens, latency_samples=latency_samples)
        caches = [c for c in CACHES if c == "per_instance_memory" or env.has_redis]
        order = _scenarios(caches)
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
                measured = runner.baselines(path, ["bearer", *(b for b in wanted if b != "bearer")])
                bearer_ms[(cache, path)] = measured["bearer"].latency_ms
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


def _frame(
    order: Sequence[tuple[str, str, str, str]],
    results: Mapping[int, _Outcome],
    bearer_ms: Mapping[tuple[str, str], float],
) -> pd.DataFrame:
    rows = []
    for index, (cache, binding, mode, attack) in enumerate(order):
        outcome = results[index]
        expected, why = _expectation(binding, mode, attack, cache)
        rows.append(
            {
                "replay_cache": cache,
                "binding": binding,
                "proxy_mode": mode,
                "attack": attack,
                "accepted": outcome.accepted,
                "status": outcome.status,
                "error": outcome.error,
                "error_description": outcome.error_description,
                "expected_accepted": expected,
                "matches_expected": outcome.accepted == expected,
                "flag": _flag(binding, attack, outcome.accepted),
                "rs_instance": outcome.rs_instance,
                "latency_ms": round(outcome.latency_ms, 3),
                "expectation": why,
            }
        )
    frame = pd.DataFrame(rows)
    reference = pd.Series(
        [
            bearer_ms[(c, m)]
            for c, m in zip(frame["replay_cache"], frame["proxy_mode"], strict=True)
        ],
        index=frame.index,
    )
    added = frame["latency_ms"] - reference.round(3)
    frame["added_latency_ms"] = added.where(frame["attack"] == "baseline").round(3)
    frame["rs_instance"] = frame["rs_instance"].astype("Int64")
    return frame[list(COLUMNS)]


def _write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# -- figures ---------------------------------------------------------------------------------


_MODE_LABELS: Final = {
    "passthrough": "passthrough",
    "terminate": "terminate",
    "terminate_forward_cert": "terminate +\nforward cert",
    "misconfigured_forward": "misconfigured\nforward",
}
#: Outcome categories of the matrix figure: (legend label, colour).
_CATEGORIES: Final = (
    ("legitimate request accepted", "#56B4E9"),
    ("attack rejected", "#009E73"),
    ("finding (attack accepted, binding broken)", "#D55E00"),
)


def plot_lab(results: pd.DataFrame) -> tuple[Figure, Figure]:
    """Two slide-ready figures: the outcome matrix (per scenario and proxy mode: accepted
    or the error code, findings in vermillion) and the median latency per request of each
    binding per proxy mode (the added cost of a binding is its gap to bearer)."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from tokenlib.analysis.plots import color_for, style

    suffix = np.where(results["replay_cache"] == "shared_redis", " (shared Redis)", "")
    rows = results.assign(
        label=results["binding"] + " · " + results["attack"].str.replace("_", " ") + suffix
    )
    labels = list(dict.fromkeys(rows["label"]))
    modes = list(PROXY_MODES)
    grid = np.full((len(labels), len(modes)), np.nan)
    with style():
        fig1 = Figure(figsize=(11.5, 0.45 * len(labels) + 2.6))
        ax = fig1.add_subplot()
        for r in rows.itertuples():
            category = 2 if r.flag else (0 if r.attack == "baseline" else 1)
            grid[labels.index(r.label), modes.index(r.proxy_mode)] = category
        cmap = ListedColormap([colour for _, colour in _CATEGORIES])
        ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=2.5, aspect="auto")
        for r in rows.itertuples():
            text = "accepted" if r.accepted else f"{r.status} {r.error or ''}".strip()
            ax.text(
                modes.index(r.proxy_mode),
                labels.index(r.label),
                text,
                ha="center",
                va="center",
                fontsize=9,
                color="white" if r.flag or r.attack != "baseline" else "black",
                fontweight="bold" if r.flag else "normal",
            )
        ax.set_xticks(range(len(modes)), [_MODE_LABELS[m] for m in modes])
        ax.set_yticks(range(len(labels)), labels)
        ax.grid(False)
        ax.set_title("Live lab: what the resource server accepted", loc="left")
        ax.set_xlabel("proxy mode in front of the resource server")
        ax.set_ylabel("binding · attack")
        ax.legend(
            handles=[Patch(color=colour, label=name) for name, colour in _CATEGORIES],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncol=3,
        )
        fig1.tight_layout()

        base = results[results["attack"] == "baseline"]
        fig2 = Figure(figsize=(10.0, 5.2))
        ax2 = fig2.add_subplot()
        series = [
            ("bearer", "per_instance_memory", "bearer", "bearer"),
            ("mtls", "per_instance_memory", "mTLS", "mtls"),
            ("dpop", "per_instance_memory", "DPoP, per-instance cache", "dpop_per_instance_cache"),
            ("dpop", "shared_redis", "DPoP, shared Redis cache", "dpop_shared_cache"),
        ]
        series = [s for s in series if ((base.binding == s[0]) & (base.replay_cache == s[1])).any()]
        width = 0.8 / max(len(series), 1)
        for i, (binding, cache, name, colour_key) in enumerate(series):
            part = base[(base.binding == binding) & (base.replay_cache == cache)]
            part = part.set_index("proxy_mode").reindex(modes)
            xs = np.arange(len(modes)) + (i - (len(series) - 1) / 2) * width
            ax2.bar(xs, part["latency_ms"], width, label=name, color=color_for(colour_key, i))
        ax2.set_xticks(range(len(modes)), [_MODE_LABELS[m] for m in modes])
        ax2.set_title("Latency per request by binding and path (median)", loc="left")
        ax2.set_xlabel("proxy mode")
        ax2.set_ylabel("request latency (ms)")
        ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
        fig2.text(
            0.01,
            -0.02,
            "Loopback HTTPS, kept-alive connections; DPoP includes creating the proof on the "
            "client. The added cost of a binding is its gap to bearer on the same path. The "
            "rejected mTLS request behind 'terminate' is timed too.",
            fontsize=9,
            color="#555555",
            ha="left",
            va="top",
            wrap=True,
        )
        fig2.tight_layout()
    return fig1, fig2
