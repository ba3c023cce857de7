"""A Django project for the tests, served over real HTTP on 127.0.0.1 in its own process.

``python -m tests.integrations.examples.django_site [--asgi] [--trusted-proxies JSON]``
(run with the current directory holding ``jwks.json``) configures Django from the README
snippets (``drf_readme_settings``, ``drf_readme_views``) plus the plain-Django views below,
binds an ephemeral port, prints ``PORT <n>`` and serves until killed. WSGI: werkzeug's
threaded server; ``--asgi``: uvicorn with its default settings.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any, ClassVar

import django
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

from tests.integrations.examples import drf_readme_settings
from tokenlib.server import ResourceServer

CALLS: list[str] = []


def configure(trusted_proxies: list[str], *, require_nonce: bool = False) -> None:
    snippet = {k: v for k, v in vars(drf_readme_settings).items() if k.isupper()}
    server = snippet["TOKENLIB"]["RESOURCE_SERVER"]
    if require_nonce:
        server = ResourceServer(
            issuer=server.verifier.issuer,
            audience=server.verifier.audience,
            jwks=json.loads(Path("jwks.json").read_text()),
            require_nonce=True,
        )
    snippet["TOKENLIB"] = {
        **snippet["TOKENLIB"],
        "RESOURCE_SERVER": server,
        "TRUSTED_PROXIES": trusted_proxies,
        "RESOURCE_METADATA": "https://api.example.com/.well-known/oauth-protected-resource",
    }
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["tokenlib.integrations.django.TokenAuthMiddleware"],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
        **snippet,
    )
    django.setup()


def grant_view(request: HttpRequest) -> JsonResponse:
    grant = request.grant  # type: ignore[attr-defined]
    CALLS.append(request.path)
    return JsonResponse(
        {"binding": grant.binding, "client_id": grant.client_id, "scopes": sorted(grant.scopes)}
    )


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def calls(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"calls": CALLS})


def urlpatterns_for() -> list[Any]:
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from tests.integrations.examples.drf_readme_views import Items
    from tokenlib.integrations.django import public, require_scopes

    class Orders(APIView):
        required_scopes: ClassVar[dict[str, list[str]]] = {"GET": ["read"], "POST": ["write"]}

        def get(self, request: Any) -> Response:
            CALLS.append("orders:get")
            return Response({"client": request.auth.client_id, "user": str(request.user)})

        def post(self, request: Any) -> Response:
            CALLS.append("orders:post")
            return Response({"created": True}, status=201)

    class Profile(APIView):  # no required_scopes: IsAuthenticated (settings) decides
        def get(self, request: Any) -> Response:
            return Response({"user": str(request.user)})

    class Open(APIView):
        permission_classes: ClassVar[list[Any]] = []

        def get(self, request: Any) -> Response:
            return Response({"auth": request.auth is not None})

    return [
        path("items", Items.as_view()),
        path("orders", Orders.as_view()),
        path("open", Open.as_view()),
        path("profile", Profile.as_view()),
        path("plain/read", require_scopes("read")(grant_view)),
        path("plain/admin", require_scopes("admin")(grant_view)),
        path("plain/mixed", require_scopes(GET=["read"], POST=["write"])(grant_view)),
        path("plain/any", grant_view),
        path("health", public(health)),
        path("calls", public(calls)),
    ]


urlpatterns: list[Any] = []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--asgi", action="store_true")
    parser.add_argument("--wrap", action="store_true", help="serve asgi_application()")
    parser.add_argument("--trusted-proxies", default="[]")
    parser.add_argument("--require-nonce", action="store_true")
    args = parser.parse_args()
    configure(json.loads(args.trusted_proxies), require_nonce=args.require_nonce)
    urlpatterns.extend(urlpatterns_for())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if args.asgi:
        import uvicorn
        from django.core.asgi import get_asgi_application

        from tokenlib.integrations.django import asgi_application

        app = asgi_application() if args.wrap else get_asgi_application()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        print(f"PORT {port}", flush=True)
        server.run(sockets=[sock])
    else:
        from django.core.wsgi import get_wsgi_application
        from werkzeug.serving import make_server

        sock.close()
        wsgi = make_server("127.0.0.1", port, get_wsgi_application(), threaded=True)
        print(f"PORT {port}", flush=True)
        wsgi.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
