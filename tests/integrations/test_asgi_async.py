"""Async all the way: a hung Redis costs DPoP requests a bounded 503 and bearer requests nothing.

A real redis-server is frozen with SIGSTOP (connections stay open, nothing answers —
the failure that hurts most) while DPoPMiddleware, on a real uvicorn, verifies with
``ResourceServer.averify`` and :class:`~tokenlib.integrations.redis.AsyncRedisReplayCache`.
Counts are bounded; assertions are ratios, not absolute times.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.lab.conftest import RedisServer
from tokenlib.bearer import Issuer
from tokenlib.dpop import create_proof
from tokenlib.integrations.asgi import DPoPMiddleware
from tokenlib.integrations.redis import AsyncRedisReplayCache, RedisReplayCache
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.lab._serve import ServedApp
from tokenlib.server import ResourceServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

AS = "https://as.lab.invalid"
AUD = "https://api.lab.invalid"
ISSUER = Issuer(AS, generate_key("ES256"))
DPOP_KEY = generate_key("ES256")
REPLAY_TIMEOUT = 0.4
HUNG_DPOP = 24  # concurrent DPoP requests while Redis hangs
BEARER_SAMPLES = 40


class Hello:
    """Answers 200; closes the async replay store on lifespan shutdown, in the server's
    own event loop (its connections belong to that loop)."""

    def __init__(self, store: AsyncRedisReplayCache) -> None:
        self.store = store

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await self.store.aclose()
                    # aclose() leaves the pool's connections open (redis.asyncio does not
                    # close a pool it was given; reported in notes/asgi.md): close them.
                    await self.store._client.connection_pool.disconnect()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served(redis_server: RedisServer) -> Iterator[ServedApp]:
    with RedisReplayCache.from_url(redis_server.url) as setup:
        setup.initialize()  # a fresh Redis: create the state-loss markers once
    store = AsyncRedisReplayCache.from_url(redis_server.url, socket_timeout=5.0, retries=0)
    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks(), replay_cache=store)
    middleware = DPoPMiddleware(Hello(store), resource_server=rs, replay_timeout=REPLAY_TIMEOUT)
    app = ServedApp(middleware)
    middleware.public_base_url = app.bind()
    with app:
        yield app


def dpop_headers(url: str, at: str) -> dict[str, str]:
    return {
        "Authorization": f"DPoP {at}",
        "DPoP": create_proof(DPOP_KEY, "GET", url, access_token=at),
    }


async def timed(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[int, float]:
    start = time.perf_counter()
    response = await http.get(url, headers=headers)
    return response.status_code, time.perf_counter() - start


async def bearer_latencies(http: httpx.AsyncClient, url: str, at: str) -> list[float]:
    out = []
    for _ in range(BEARER_SAMPLES):
        status, elapsed = await timed(http, url, {"Authorization": f"Bearer {at}"})
        assert status == 200
        out.append(elapsed)
    return out


def test_hung_redis_costs_dpop_a_503_and_bearer_nothing(
    served: ServedApp, redis_server: RedisServer
) -> None:
    url = f"{served.url}/items"
    bearer = ISSUER.issue(subject="svc", client_id="svc", audience=AUD, scope="read")
    bound = ISSUER.issue(
        subject="svc", client_id="svc", audience=AUD, scope="read", jkt=jwk_thumbprint(DPOP_KEY)
    )
    assert redis_server.process is not None
    pid = redis_server.process.pid

    async def scenario() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=HUNG_DPOP + 4)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            assert (await timed(http, url, dpop_headers(url, bound)))[0] == 200
            normal = await bearer_latencies(http, url, bearer)
            os.kill(pid, signal.SIGSTOP)
            try:
                hung = [
                    asyncio.create_task(timed(http, url, dpop_headers(url, bound)))
                    for _ in range(HUNG_DPOP)
                ]
                await asyncio.sleep(0)  # let the DPoP requests go out first
                during = await bearer_latencies(http, url, bearer)
                dpop = await asyncio.gather(*hung)
            finally:
                os.kill(pid, signal.SIGCONT)
            recovered = (await timed(http, url, dpop_headers(url, bound)))[0]
        return {"normal": normal, "during": during, "dpop": dpop, "recovered": recovered}

    result = asyncio.run(scenario())
    statuses = [status for status, _ in result["dpop"]]
    assert statuses == [503] * HUNG_DPOP
    dpop_p50 = statistics.median(elapsed for _, elapsed in result["dpop"])
    normal_p50 = statistics.median(result["normal"])
    during_p50 = statistics.median(result["during"])
    # The DPoP requests waited for the bound (not for ever, not for Redis' socket timeout).
    assert REPLAY_TIMEOUT * 0.9 <= dpop_p50 <= REPLAY_TIMEOUT * 5
    # Bearer requests never waited for Redis: far below the bound, close to normal.
    assert during_p50 * 10 < dpop_p50, (normal_p50, during_p50, dpop_p50)
    assert during_p50 < 3 * normal_p50 + REPLAY_TIMEOUT / 20, (normal_p50, during_p50)
    assert result["recovered"] == 200
