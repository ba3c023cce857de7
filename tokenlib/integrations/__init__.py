"""Integrations of the core with the software around it (the ``lab`` and ``integrations`` extras).

One module per framework, client library, store or proxy family; each imports its framework,
the core (``tokenlib``) never imports them:

- ``tokenlib.integrations.httpx``: DPoP / mTLS client auth for httpx (RFC 9449 §7, RFC 8705 §2).
- ``tokenlib.integrations.asgi``: ASGI (Starlette) middleware around a ``ResourceServer``.
- ``tokenlib.integrations.redis``: a replay cache shared by every instance, in Redis.
"""
