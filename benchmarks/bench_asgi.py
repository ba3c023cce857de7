"""Added latency per request of bearer, DPoP and mTLS-bound tokens over loopback TLS.

One uvicorn server (``tokenlib.lab._serve``) on 127.0.0.1 serves a trivial ASGI app
behind :class:`tokenlib.integrations.asgi.DPoPMiddleware`; one ``httpx.Client`` per mode sends
sequential requests over a kept-alive TLS 1.3 connection. Modes:

* ``unprotected``: a public path (middleware skips verification) — the HTTP+TLS floor;
* ``bearer``: RFC 9068 token (validated-token cache on, as in production);
* ``mtls``: certificate-bound token, certificate from the TLS connection;
* ``dpop``: DPoP-bound token; the client signs a fresh proof per request
  (:class:`tokenlib.integrations.httpx.DPoPAuth`), the server verifies it and records its ``jti``
  in a memory replay cache;
* ``bearer_inline`` / ``dpop_inline``: verification on the event loop
  (``verify_in_thread=False``) instead of a worker thread;
* ``dpop_redis``: the same as ``dpop`` with :class:`tokenlib.integrations.redis.RedisReplayCache`
  (only when a ``redis-server`` binary is on PATH; a private server is started).

Client and server share one process (and the GIL), so p95 mostly shows thread
switching; medians are the meaningful figures. Reported per mode: median and p95
round-trip in microseconds (interleaved rounds) and the median added over
``unprotected``. Client-side proof creation and server-side
verification are also timed in-process to split the DPoP cost.
``run(quick=False) -> dict`` writes ``benchmarks/results/asgi.json`` atomically.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx

from benchmarks._common import machine_info, write_result
from tokenlib.bearer import Issuer
from tokenlib.dpop import create_proof
from tokenlib.integrations.asgi import DPoPMiddleware
from tokenlib.integrations.httpx import BearerAuth, DPoPAuth
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.lab._serve import ServedApp
from tokenlib.lab.pki import temporary_pki
from tokenlib.server import ResourceServer

_AS = "https://as.bench.invalid"
_AUD = "https://api.bench.invalid"


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def _redis() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(  # noqa: S603
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _time(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e6)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    rounds, per_round = (5, 40) if quick else (10, 200)
    issuer = Issuer(_AS, generate_key("ES256"), lifetime=3600)
    dpop_key = generate_key("ES256")
    samples: dict[str, list[float]] = {}
    with ExitStack() as stack:
        pki = stack.enter_context(temporary_pki(clients=("alice",)))
        redis_url = stack.enter_context(_redis())
        caches: dict[str, Any] = {"memory": None, "inline": None}
        if redis_url is not None:
            from tokenlib.integrations.redis import RedisReplayCache

            caches["redis"] = stack.enter_context(RedisReplayCache.from_url(redis_url))
        servers: dict[str, ServedApp] = {}
        for name, cache in caches.items():
            rs = ResourceServer(issuer=_AS, audience=_AUD, jwks=issuer.jwks(), replay_cache=cache)
            app = DPoPMiddleware(
                _ok, resource_server=rs, public_paths=["/public"], verify_in_thread=name != "inline"
            )
            served = ServedApp(app, ssl_context=pki.server_context(client_auth="optional"))
            app.public_base_url = served.bind()
            servers[name] = stack.enter_context(served.start())
        alice = pki.clients["alice"]
        plain = stack.enter_context(httpx.Client(verify=pki.client_context()))
        with_cert = stack.enter_context(httpx.Client(verify=pki.client_context("alice")))
        bearer = BearerAuth(issuer.issue(subject="s", client_id="c", audience=_AUD))
        mtls = BearerAuth(
            issuer.issue(subject="s", client_id="c", audience=_AUD, x5t_s256=alice.x5t_s256)
        )
        dpop_token = issuer.issue(
            subject="s", client_id="c", audience=_AUD, jkt=jwk_thumbprint(dpop_key)
        )
        dpop = DPoPAuth(dpop_key).with_token(dpop_token)
        memory = servers["memory"].url
        modes: dict[str, Callable[[], httpx.Response]] = {
            "unprotected": lambda: plain.get(f"{memory}/public"),
            "bearer": lambda: plain.get(f"{memory}/r", auth=bearer),
            "mtls": lambda: with_cert.get(f"{memory}/r", auth=mtls),
            "dpop": lambda: plain.get(f"{memory}/r", auth=dpop),
        }
        inline = servers["inline"].url
        modes["bearer_inline"] = lambda: plain.get(f"{inline}/r", auth=bearer)
        modes["dpop_inline"] = lambda: plain.get(f"{inline}/r", auth=dpop)
        if "redis" in servers:
            redis_base = servers["redis"].url
            modes["dpop_redis"] = lambda: plain.get(f"{redis_base}/r", auth=dpop)
        for name, fn in modes.items():  # warm up and check every mode is accepted
            for _ in range(5):
                status = fn().status_code
                if status != 200:
                    raise RuntimeError(f"benchmark mode {name} got HTTP {status}")
        for _ in range(rounds):
            for name, fn in modes.items():
                samples.setdefault(name, []).extend(_time(fn, per_round))
        url = f"{memory}/r"
        client_proof = _time(
            lambda: create_proof(dpop_key, "GET", url, access_token=dpop_token), per_round * 2
        )
        rs = ResourceServer(issuer=_AS, audience=_AUD, jwks=issuer.jwks())
        proofs = [
            create_proof(dpop_key, "GET", url, access_token=dpop_token)
            for _ in range(per_round * 2)
        ]
        it = iter(proofs)
        server_verify = _time(
            lambda: rs.verify(
                "GET", url, [("Authorization", f"DPoP {dpop_token}"), ("DPoP", next(it))]
            ),
            len(proofs),
        )
    floor = statistics.median(samples["unprotected"])
    result: dict[str, Any] = {
        "machine": machine_info(),
        "transport": "HTTPS/1.1 on 127.0.0.1, TLS kept alive, uvicorn h11, httpx sync client",
        "requests_per_mode": rounds * per_round,
        "round_trip_us": {
            name: {
                "median": round(statistics.median(values), 1),
                "p95": round(statistics.quantiles(values, n=20)[-1], 1),
                "added_median": round(statistics.median(values) - floor, 1),
            }
            for name, values in samples.items()
        },
        "in_process_us": {
            "dpop_create_proof_es256": round(statistics.median(client_proof), 1),
            "dpop_resource_server_verify_es256": round(statistics.median(server_verify), 1),
        },
        "redis": redis_url is not None,
    }
    write_result("asgi", result)
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
