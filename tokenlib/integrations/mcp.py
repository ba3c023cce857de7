"""A preset for Model Context Protocol (MCP) servers: DPoP-bound tokens the way MCP expects.

Sources:

* MCP authorization specification (2025-06-18, ``basic/authorization``): an MCP server is an
  OAuth resource server; it MUST publish RFC 9728 protected-resource metadata naming its
  authorization server(s), MUST answer 401 with ``WWW-Authenticate`` pointing at that
  metadata (RFC 9728 §5.1 ``resource_metadata``), and MUST only accept tokens issued for
  itself (RFC 8707 resource indicator → the token ``aud`` is the server's URL).
  https://modelcontextprotocol.io/specification/2025-06-18/basic/authorization
* SEP-1932, "DPoP Profile for MCP" (modelcontextprotocol/modelcontextprotocol PR #1932,
  open as of 2026-08): the resource server runs the RFC 9449 §4.3 checks with an ``iat``
  window of ±5 minutes and answers with ``WWW-Authenticate: DPoP``; ``jti`` tracking and
  server nonces are optional. Conformance scenarios: modelcontextprotocol/conformance #369
  (RS), #370 (AS).

:func:`mcp_protection` returns an :class:`MCPProtection`: a configured
:class:`~tokenlib.server.ResourceServer` (audience = the MCP server URL, policy
:data:`MCP_DPOP_POLICY`, DPoP required unless ``dpop_required=False``), its RFC 9728
document and well-known path, and adapters:

* :meth:`MCPProtection.asgi` wraps an ASGI app (the MCP Python SDK's
  ``FastMCP.streamable_http_app()``, any Starlette app) in
  :class:`tokenlib.integrations.asgi.DPoPMiddleware`, serves the metadata document at its
  well-known path and adds ``resource_metadata`` to every challenge;
* :meth:`MCPProtection.fastapi_security` gives a FastAPI
  :class:`~tokenlib.integrations.fastapi.TokenSecurity`.

Stricter than the profile, on purpose: proofs' ``jti`` values are always recorded (replay
protection stays on; conforming clients send a fresh ``jti`` per proof anyway). Not
implemented: the request-body digest discussed in some SEP-1932 revisions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from tokenlib.dpop import DPoPPolicy
from tokenlib.errors import TokenError
from tokenlib.jwk import DEFAULT_ALGORITHMS
from tokenlib.jwks import JWKSet
from tokenlib.metadata import (
    challenge_headers,
    protected_resource_metadata_path,
    protected_resource_metadata_url,
    resource_server_metadata,
)
from tokenlib.nonce import NonceManager
from tokenlib.replay import ReplayCache
from tokenlib.server import ResourceServer

if TYPE_CHECKING:
    from tokenlib.integrations.fastapi import TokenSecurity

__all__ = [
    "MCP_DPOP_POLICY",
    "MCPProtection",
    "add_challenge_param",
    "mcp_protection",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: SEP-1932: proofs accepted with ``iat`` up to 5 minutes before or after the server clock.
MCP_DPOP_POLICY: Final = DPoPPolicy(iat_past=300, iat_future=300, algorithms=DEFAULT_ALGORITHMS)

_TCHARS: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CHALLENGE_START: Final = re.compile(rf"\A({_TCHARS})(?:[ \t]+(?!=)|\Z)")
_PARAM: Final = re.compile(rf"\A{_TCHARS}[ \t]*=")


def _split_top_level(value: str) -> list[str]:
    """``value`` split at commas outside quoted strings (RFC 9110 §5.6.4, §11.6.1)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def add_challenge_param(www_authenticate: str, name: str, value: str) -> str:
    """Add ``name="value"`` to every challenge of a ``WWW-Authenticate`` value.

    Parses the header (quoted strings may contain commas): a list element that starts
    with a token not followed by ``=`` begins a new challenge (RFC 9110 §11.6.1).
    """
    challenges: list[list[str]] = []
    for element in _split_top_level(www_authenticate):
        if _PARAM.match(element) is None and _CHALLENGE_START.match(element) is not None:
            challenges.append([element])
        elif challenges:
            challenges[-1].append(element)
        else:  # a malformed header: leave it alone
            return www_authenticate
    param = f'{name}="{value}"'
    out = []
    for parts in challenges:
        head = parts[0]
        scheme_only = _CHALLENGE_START.match(head)
        if len(parts) == 1 and scheme_only is not None and scheme_only.group(0) == head:
            out.append(f"{head} {param}")  # "Bearer" → "Bearer resource_metadata=..."
        else:
            out.append(", ".join([*parts, param]))
    return ", ".join(out)


@dataclass(frozen=True)
class MCPProtection:
    """A configured MCP resource server: ``resource_server``, ``metadata`` (the RFC 9728
    document), ``metadata_url`` (put in challenges) and ``metadata_path`` (served)."""

    resource: str
    resource_server: ResourceServer
    metadata: dict[str, Any]
    metadata_url: str
    metadata_path: str
    public_base_url: str
    allow_loopback_http: bool = field(default=False, repr=False)

    def error_headers(self, error: TokenError) -> dict[str, str]:
        """``error``'s headers with ``resource_metadata`` on every challenge."""
        return challenge_headers(error, resource_metadata=self.metadata_url)

    def asgi(
        self,
        app: ASGIApp,
        *,
        required_scopes: Iterable[str] = (),
        trusted_proxies: Iterable[str] = (),
        client_cert_source: str = "rfc9440",
        client_cert_header: str | None = None,
        cors_origins: Iterable[str] = (),
        clock: Callable[[], float] | None = None,
        **middleware: Any,
    ) -> ASGIApp:
        """``app`` behind :class:`~tokenlib.integrations.asgi.DPoPMiddleware` for this
        server, with the metadata served (``GET``, no token) at :attr:`metadata_path` and
        ``resource_metadata`` added to every challenge. ``required_scopes``: scopes every
        request needs (403 ``insufficient_scope`` otherwise, RFC 6750 §3.1); other
        keywords go to the middleware."""
        scopes = frozenset(
            [required_scopes] if isinstance(required_scopes, str) else required_scopes
        )
        from tokenlib.integrations.asgi import DPoPMiddleware

        path = self.metadata_path.partition("?")[0]
        options: dict[str, Any] = {
            "resource_server": self.resource_server,
            "public_base_url": self.public_base_url,
            "trusted_proxies": trusted_proxies,
            "client_cert_source": client_cert_source,
            "client_cert_header": client_cert_header,
            "cors_origins": cors_origins,
            "clock": clock,
            **middleware,
        }
        if scopes:
            options.setdefault("routes", {"/*": sorted(scopes)})
        native = _accepts(DPoPMiddleware, "resource_metadata")
        if native:
            options["resource_metadata"] = self.metadata_url
        protected = DPoPMiddleware(app, **options)
        body = json.dumps(self.metadata).encode("utf-8")
        metadata_url = self.metadata_url

        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") == "http" and scope.get("path") == path:
                method = str(scope.get("method", "GET")).upper()
                ok = method in ("GET", "HEAD")
                payload = body if ok else b""
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200 if ok else 405,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                            (b"cache-control", b"max-age=3600"),
                            *([] if ok else [(b"allow", b"GET, HEAD")]),
                        ],
                    }
                )
                await send(
                    {"type": "http.response.body", "body": payload if method != "HEAD" else b""}
                )
                return
            if native:
                await protected(scope, receive, send)
                return

            async def send_with_metadata(message: Message) -> None:
                if message.get("type") == "http.response.start":
                    headers = []
                    for key, value in message.get("headers", ()):
                        if bytes(key).lower() == b"www-authenticate":
                            value = add_challenge_param(
                                bytes(value).decode("latin-1"), "resource_metadata", metadata_url
                            ).encode("latin-1")
                        headers.append((key, value))
                    message = {**message, "headers": headers}
                await send(message)

            await protected(scope, receive, send_with_metadata)

        return serve

    def fastapi_security(self, **options: Any) -> TokenSecurity:
        """A :class:`~tokenlib.integrations.fastapi.TokenSecurity` for this server (with
        ``resource_metadata`` in its challenges)."""
        from tokenlib.integrations.fastapi import TokenSecurity

        options.setdefault("resource_metadata", self.metadata_url)
        return TokenSecurity(self.resource_server, **options)


def _accepts(cls: type, name: str) -> bool:
    import inspect

    return name in inspect.signature(cls).parameters


def mcp_protection(
    resource: str,
    *,
    issuer: str,
    jwks: JWKSet | Mapping[str, Any],
    authorization_servers: Iterable[str] | None = None,
    scopes_supported: Iterable[str] | None = None,
    dpop_required: bool = True,
    public_base_url: str | None = None,
    replay_cache: ReplayCache | Any | None = None,
    require_nonce: bool = False,
    nonce_manager: NonceManager | None = None,
    policy: DPoPPolicy = MCP_DPOP_POLICY,
    token_algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
    resource_name: str | None = None,
    allow_loopback_http: bool = False,
    **metadata_members: Any,
) -> MCPProtection:
    """Protect the MCP server at ``resource`` (its canonical URL, e.g.
    ``https://mcp.example.com/mcp``) with tokens from ``issuer``.

    The :class:`~tokenlib.server.ResourceServer` accepts only tokens whose ``aud`` is
    ``resource`` (MCP authorization §"Token Audience Binding", RFC 8707), with the DPoP
    scheme (``dpop_required=False`` also accepts Bearer, e.g. during a rollout), proofs
    under :data:`MCP_DPOP_POLICY` (±5 min ``iat``, SEP-1932), ``htu`` from
    ``public_base_url`` (default: the origin of ``resource``) plus the request path.
    ``authorization_servers`` (default ``[issuer]``) and ``scopes_supported`` go into the
    RFC 9728 document, with the DPoP members derived from the server.

    A shared Redis store must guard the preset's 900 s acceptance window:
    ``AsyncRedisReplayCache.from_url(url, acceptance_window=MCP_DPOP_POLICY.acceptance_window)``
    (a store with the default 420 s is refused with a ``ValueError``, RFC 9449 §11.1).
    """
    parts = urlsplit(resource)
    base = public_base_url or f"{parts.scheme}://{parts.netloc}"
    server = ResourceServer(
        issuer=issuer,
        audience=resource,
        jwks=jwks,
        replay_cache=replay_cache,
        require_nonce=require_nonce,
        nonce_manager=nonce_manager,
        policy=policy,
        public_base_url=base,
        algorithms=tuple(token_algorithms),
        schemes=("DPoP",) if dpop_required else ("DPoP", "Bearer"),
    )
    servers = list(authorization_servers) if authorization_servers is not None else [issuer]
    if not servers:
        raise ValueError("MCP requires at least one authorization server in the metadata")
    document = resource_server_metadata(
        server,
        resource,
        authorization_servers=servers,
        scopes_supported=scopes_supported,
        resource_name=resource_name,
        allow_loopback_http=allow_loopback_http,
        **metadata_members,
    )
    return MCPProtection(
        resource=resource,
        resource_server=server,
        metadata=document,
        metadata_url=protected_resource_metadata_url(
            resource, allow_loopback_http=allow_loopback_http
        ),
        metadata_path=protected_resource_metadata_path(
            resource, allow_loopback_http=allow_loopback_http
        ),
        public_base_url=base,
        allow_loopback_http=allow_loopback_http,
    )
