"""Integrations of the core with the software around it (the ``lab`` and ``integrations`` extras).

One module per framework, client library, store or proxy family; each imports its framework,
the core (``tokenlib``) never imports them:

- ``tokenlib.integrations.httpx``: DPoP / mTLS client auth for httpx (RFC 9449 §7, RFC 8705 §2).
- ``tokenlib.integrations.asgi``: ASGI (Starlette) middleware around a ``ResourceServer``.
- ``tokenlib.integrations.requests``: the same client auth for ``requests``.
- ``tokenlib.integrations.asgi``, ``.fastapi``, ``.django``, ``.drf``, ``.flask``, ``.mcp``:
  resource-server integrations (verification, challenges, scopes per route, RFC 9728
  metadata); forwarded headers are believed only from a configured proxy that is the real
  transport peer (``._trust``).
- ``tokenlib.integrations.certs``: client certificates forwarded by proxies (RFC 9440, Envoy
  XFCC, AWS ALB/API Gateway, Traefik, NGINX, HAProxy, GCP, Cloudflare, CloudFront, Azure App
  Service, Kong) as RFC 8705 ``x5t#S256``.
- ``tokenlib.integrations.redis``: a replay cache shared by every instance, in Redis (sync and
  asyncio), with per-key quotas and checks of the settings replay protection needs.
"""
