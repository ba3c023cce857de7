"""DPoPMiddleware's async path bounds an async replay store with asyncio's own timeout on
asyncio (cheaper than anyio's cancel scope) and keeps the 503 contract (issue 12)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tokenlib.bearer import Issuer
from tokenlib.dpop import create_proof
from tokenlib.integrations._verify import _on_asyncio
from tokenlib.integrations.asgi import DPoPMiddleware
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.replay import MemoryReplayCache
from tokenlib.server import ResourceServer

AS = "https://as.hotpath.invalid"
AUD = "https://api.hotpath.invalid"
BASE = "https://api.hotpath.invalid"
ISSUER = Issuer(AS, generate_key("ES256"))
KEY = generate_key("ES256")
TIMEOUT = 0.2


class _Store:
    """An async replay store answering after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    async def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return True


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _call(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/items",
        "raw_path": b"/items",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "scheme": "https",
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _dpop_headers() -> list[tuple[bytes, bytes]]:
    token = ISSUER.issue(
        subject="s", client_id="c", audience=AUD, scope="read", jkt=jwk_thumbprint(KEY)
    )
    proof = create_proof(KEY, "GET", f"{BASE}/items", access_token=token)
    return [(b"authorization", f"DPoP {token}".encode()), (b"dpop", proof.encode())]


def _middleware(store: _Store) -> DPoPMiddleware:
    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks(), replay_cache=store)
    return DPoPMiddleware(_ok, resource_server=rs, public_base_url=BASE, replay_timeout=TIMEOUT)


def test_on_asyncio_tells_a_running_loop_from_none() -> None:
    assert _on_asyncio() is False

    async def inside() -> bool:
        return _on_asyncio()

    assert asyncio.run(inside()) is True


def test_a_slow_async_store_costs_a_bounded_503() -> None:
    store = _Store(delay=5.0)
    app = _middleware(store)

    async def run() -> tuple[int, bytes, float]:
        started = time.monotonic()
        status, body = await _call(app, _dpop_headers())
        return status, body, time.monotonic() - started

    status, body, elapsed = asyncio.run(run())
    assert status == 503
    assert json.loads(body)["error"] == "temporarily_unavailable"
    assert store.calls == 1
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT * 10


def test_a_fast_async_store_is_awaited_inside_the_bound() -> None:
    store = _Store(delay=0.0)
    app = _middleware(store)
    status, body = asyncio.run(_call(app, _dpop_headers()))
    assert (status, body) == (200, b"ok")
    assert store.calls == 1


def test_the_verify_mode_is_worked_out_once_and_follows_a_new_server_or_setting() -> None:
    """The mode is memoised per (server, store, ``verify_in_thread``) and recomputed when
    any of them is replaced, so a swapped store is never verified in the wrong mode."""
    mw = _middleware(_Store(0.0))
    assert mw._mode() == "async"
    assert mw._mode_memo is not None
    memo = mw._mode_memo
    assert mw._mode() == "async"
    assert mw._mode_memo is memo  # reused
    mw.resource_server = ResourceServer(
        issuer=AS, audience=AUD, jwks=ISSUER.jwks(), replay_cache=MemoryReplayCache()
    )
    assert mw._mode() == "inline"
    mw.verify_in_thread = True
    assert mw._mode() == "thread"
    mw.resource_server.replay_cache = _Store(0.0)
    assert mw._mode() == "async"
    status, _ = asyncio.run(_call(mw, _dpop_headers()))
    assert status == 200  # verified through averify, the async store awaited
