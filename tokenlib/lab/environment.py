"""The live lab's environment: PKI, authorization server, resource-server instances, proxies,
an optional private Redis — started together, stopped together.

:class:`LabEnvironment` starts on 127.0.0.1 a throwaway PKI (in a private temporary folder,
keys included), the lab authorization server, two resource-server instances (each one
:class:`~tokenlib.server.ResourceServer` with a replay cache the lab can switch between its
own memory and a shared Redis) and one reverse proxy per TLS mode
(:data:`tokenlib.lab.proxy.PROXY_MODES`) balancing over both. Everything is registered on
one exit stack and torn down in reverse order on exit, also on error.

:func:`stop_on_signals` makes SIGTERM and SIGHUP as clean as Ctrl-C: while the lab runs
they unwind the stack (servers, the private ``redis-server``, the folder with the lab's
private keys), then the signal is delivered again with its previous disposition, so the
process still ends the way the sender asked.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from tokenlib.binding import Binding
from tokenlib.jwk import PrivateKey, generate_key, public_jwk
from tokenlib.lab.pki import LabPKI, create_pki
from tokenlib.lab.proxy import PROXY_MODES, BackgroundLoop, ReverseProxy
from tokenlib.lab.redis_process import RedisProcess
from tokenlib.replay import MemoryReplayCache, ReplayCache

if TYPE_CHECKING:
    from tokenlib.lab._serve import ServedApp

__all__ = ["AUDIENCE", "LabEnvironment", "LabSignal", "stop_on_signals"]

AUDIENCE: Final = "https://rs.lab.invalid"
SCOPE: Final = "orders:read"
_SCOPE: Final = SCOPE
#: Signals that stop the lab as cleanly as Ctrl-C (SIGINT is KeyboardInterrupt already).
STOP_SIGNALS: Final = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)


class LabSignal(BaseException):
    """Raised in the main thread when SIGTERM/SIGHUP arrives while the lab runs (a
    ``BaseException``, like ``KeyboardInterrupt``, so no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """While inside, turn ``signals`` into :class:`LabSignal` so ``with``/``finally``
    clean-up runs; afterwards restore the previous handlers and deliver the signal again.

    Only in the main thread (Python delivers signals there; elsewhere this is a no-op). A
    signal that is ignored (``SIG_IGN``, e.g. SIGHUP under ``nohup``) stays ignored. A
    second signal during clean-up is ignored so the clean-up can finish.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if fired:
            return  # already stopping: let the clean-up finish
        fired.append(signum)
        raise LabSignal(signum)

    previous: dict[int, Any] = {}
    for signum in signals:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        previous[signum] = current
        signal.signal(signum, handler)
    try:
        yield
    except LabSignal as stopped:
        fired.append(stopped.signum)
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    if fired:
        signal.raise_signal(fired[0])  # the previous disposition decides what happens now
        raise LabSignal(fired[0])  # it returned (a Python handler): the lab still stopped


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
    redis_process: RedisProcess | None = field(init=False, default=None, repr=False)
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

            self.redis_process = RedisProcess(binary, directory)
            self._stack.callback(self.redis_process.stop)
            self.redis_process.start()
            self.redis_url = self.redis_process.url
            self.shared_cache = RedisReplayCache.from_url(self.redis_url, prefix="tokenlib-lab:")
            self._stack.callback(self.shared_cache.close)
            self.shared_cache.initialize()  # a private, brand-new Redis: nothing was lost

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
                    "alice-bearer",
                    jwks=alice_jwks,
                    scopes=frozenset({_SCOPE}),
                    binding=Binding.BEARER,
                ),
                ClientRegistration(
                    "alice-dpop", jwks=alice_jwks, scopes=frozenset({_SCOPE}), binding=Binding.DPOP
                ),
                ClientRegistration(
                    "alice-mtls",
                    auth_method="tls_client_auth",
                    subject_dn=alice_dn,
                    scopes=frozenset({_SCOPE}),
                    binding=Binding.MTLS,
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
