"""Shared by the framework tests: an issuer, tokens, and a real WSGI server on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from tokenlib.bearer import Issuer
from tokenlib.jwk import generate_key

AS = "https://as.lab.invalid"
AUD = "https://api.lab.invalid"
ISSUER = Issuer(AS, generate_key("ES256"))
DPOP_KEY = generate_key("ES256")

WSGIApp = Callable[[dict[str, Any], Any], Any]


def token(
    *, scope: str = "read", jkt: str | None = None, x5t: str | None = None, now: float | None = None
) -> str:
    return ISSUER.issue(
        subject="svc",
        client_id="svc",
        audience=AUD,
        scope=scope,
        jkt=jkt,
        x5t_s256=x5t,
        now=time.time() if now is None else now,
    )


class _Holder:
    app: WSGIApp | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@contextmanager
def wsgi_server() -> Iterator[tuple[str, Callable[[WSGIApp], None]]]:
    """A threaded werkzeug server on 127.0.0.1:<ephemeral>; yields (base URL, set_app) so
    the app can be built once the URL (its public_base_url) is known."""
    holder = _Holder()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, holder, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def set_app(app: WSGIApp) -> None:
        holder.app = app

    try:
        yield f"http://127.0.0.1:{server.server_port}", set_app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def uvicorn_server(app: Any, **config: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread on 127.0.0.1 — with uvicorn's *default* settings
    unless ``config`` overrides them (the issue-12 attacks run against the defaults)."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "on"}
    options.update(config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


README_AS = "https://as.example.com"
README_API = "https://api.example.com"
README_ISSUER = Issuer(README_AS, generate_key("ES256"))


def readme_token(
    *, scope: str = "items:read", jkt: str | None = None, x5t: str | None = None
) -> str:
    """A token from the README examples' authorization server (``README_ISSUER``)."""
    return README_ISSUER.issue(
        subject="alice", client_id="svc", audience=README_API, scope=scope, jkt=jkt, x5t_s256=x5t
    )


@contextmanager
def django_server(directory: Path, *args: str) -> Iterator[str]:
    """tests/integrations/examples/django_site.py in its own process (Django settings are
    process-global), ``directory`` as its working directory (with the README's jwks.json)."""
    import json
    import os
    import subprocess
    import sys

    (directory / "jwks.json").write_text(json.dumps(README_ISSUER.jwks()))
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integrations.examples.django_site", *args],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            process.kill()
            _, err = process.communicate(timeout=10)
            raise RuntimeError(f"django_site did not start: {line!r} {err[-2000:]}")
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        _wait_listening(url)
        yield url
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)


def _wait_listening(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"{url}/health", timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
