"""OAuth metadata documents: protected resources (RFC 9728) and authorization servers (RFC 8414).

A resource server tells clients how to reach it with sender-constrained tokens through its
*protected-resource metadata* (RFC 9728 §2): which authorization servers issue its tokens,
which scopes exist, and — the members that matter here — ``dpop_signing_alg_values_supported``,
``dpop_bound_access_tokens_required`` and ``tls_client_certificate_bound_access_tokens``.
The document is served at a *well-known* URL derived from the resource identifier
(RFC 9728 §3.1), and a 401 points to it with the ``resource_metadata`` auth-param
(RFC 9728 §5.1). The authorization server's counterpart is RFC 8414, extended by
RFC 9449 §5.1 (``dpop_signing_alg_values_supported``) and RFC 8705 §3.3/§5
(``tls_client_certificate_bound_access_tokens``, ``mtls_endpoint_aliases``).

* :func:`protected_resource_metadata` / :func:`authorization_server_metadata` build a
  validated document (a plain ``dict``, ready for ``json.dumps``); omitted members are left
  out, never sent as ``null``.
* :func:`resource_server_metadata` derives the DPoP/mTLS members from a configured
  :class:`~tokenlib.server.ResourceServer` (its schemes and DPoP algorithm allowlist), so the
  advertisement cannot drift from what the server enforces.
* :func:`protected_resource_metadata_url` / :func:`authorization_server_metadata_url` (and
  the ``*_path`` variants for routing) compute the well-known location.
* :func:`validate_protected_resource_metadata` / :func:`validate_authorization_server_metadata`
  check a document received from a peer, including the identity check of RFC 9728 §3.3 and
  RFC 8414 §3.3 (the identifier in the document must equal the one the URL was built from).
* :func:`challenge_headers` adds ``resource_metadata="…"`` to every challenge of a
  :class:`~tokenlib.errors.TokenError`.

A document that breaks a rule raises :class:`InvalidMetadata` (a ``ValueError``) naming the
member and the rule. Depends only on the standard library and the tokenlib core.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from tokenlib.errors import TokenError

if TYPE_CHECKING:
    from tokenlib.server import ResourceServer

__all__ = [
    "AUTHORIZATION_SERVER_WELL_KNOWN",
    "PROTECTED_RESOURCE_WELL_KNOWN",
    "InvalidMetadata",
    "authorization_server_metadata",
    "authorization_server_metadata_path",
    "authorization_server_metadata_url",
    "challenge_headers",
    "protected_resource_metadata",
    "protected_resource_metadata_path",
    "protected_resource_metadata_url",
    "resource_server_metadata",
    "validate_authorization_server_metadata",
    "validate_protected_resource_metadata",
    "well_known_url",
]

#: RFC 9728 §3 / §8.3: the well-known URI suffix for protected-resource metadata.
PROTECTED_RESOURCE_WELL_KNOWN: Final = "oauth-protected-resource"
#: RFC 8414 §3 / §7.3: the well-known URI suffix for authorization-server metadata.
AUTHORIZATION_SERVER_WELL_KNOWN: Final = "oauth-authorization-server"

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"\A[\x21\x23-\x5b\x5d-\x7e]+\Z")
# RFC 9728 §2: the bearer_methods_supported values (RFC 6750 §2.1-2.3).
_BEARER_METHODS: Final = frozenset({"header", "body", "query"})
# RFC 7230 quoted-string content we allow in a URL placed in an auth-param (RFC 9728 §5.1).
_QUOTABLE: Final = re.compile(r"\A[\x21\x23-\x5b\x5d-\x7e]+\Z")
_WELL_KNOWN_SUFFIX: Final = re.compile(r"\A[A-Za-z0-9._~-]+\Z")
_SYMMETRIC_ALGS: Final = frozenset({"HS256", "HS384", "HS512"})


class InvalidMetadata(ValueError):
    """A metadata document (or an argument for one) breaks a rule of RFC 9728 / RFC 8414.

    ``member`` names the offending member (``"resource"``, ``"scopes_supported"``...).
    """

    def __init__(self, member: str, message: str) -> None:
        super().__init__(f"{member}: {message}")
        self.member = member


# ----------------------------------------------------------------------------- URLs


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(
    member: str,
    value: object,
    *,
    https: bool = True,
    query: bool = True,
    allow_loopback_http: bool = False,
) -> str:
    """``value`` as an absolute URL with a host, no fragment, no userinfo; ``https`` unless
    ``https=False`` (or a loopback ``http`` URL with ``allow_loopback_http``)."""
    if not isinstance(value, str) or not value:
        raise InvalidMetadata(member, "must be a non-empty string URL")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidMetadata(member, "must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError as exc:
        raise InvalidMetadata(member, f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise InvalidMetadata(member, "must be an absolute http(s) URL with a host")
    if https and scheme != "https" and not (allow_loopback_http and _loopback(host)):
        raise InvalidMetadata(member, "must use the https scheme")
    if "#" in value:
        raise InvalidMetadata(member, "must not contain a fragment")
    if not query and parts.query:
        raise InvalidMetadata(member, "must not contain a query component")
    if "@" in parts.netloc:
        raise InvalidMetadata(member, "must not contain userinfo")
    return value


def well_known_url(identifier: str, suffix: str) -> str:
    """Insert ``/.well-known/<suffix>`` between the host and the path of ``identifier``.

    The rule of RFC 8414 §3.1 and RFC 9728 §3.1: a terminating ``/`` right after the host
    is removed first; path and query follow the inserted segment
    (``https://example.com/issuer1`` →
    ``https://example.com/.well-known/oauth-authorization-server/issuer1``).
    """
    if not isinstance(suffix, str) or _WELL_KNOWN_SUFFIX.match(suffix) is None:
        raise ValueError(f"invalid well-known suffix {suffix!r}")
    parts = urlsplit(identifier)
    path = "" if parts.path == "/" else parts.path
    return urlunsplit((parts.scheme, parts.netloc, f"/.well-known/{suffix}{path}", parts.query, ""))


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def protected_resource_metadata_url(resource: str, *, allow_loopback_http: bool = False) -> str:
    """Where the metadata of ``resource`` lives (RFC 9728 §3.1):
    ``https://resource.example.com/resource1`` →
    ``https://resource.example.com/.well-known/oauth-protected-resource/resource1``."""
    _url("resource", resource, allow_loopback_http=allow_loopback_http)
    return well_known_url(resource, PROTECTED_RESOURCE_WELL_KNOWN)


def protected_resource_metadata_path(resource: str, *, allow_loopback_http: bool = False) -> str:
    """The path (and query) of :func:`protected_resource_metadata_url`, for a route."""
    url = protected_resource_metadata_url(resource, allow_loopback_http=allow_loopback_http)
    return _path_of(url)


def authorization_server_metadata_url(issuer: str, *, allow_loopback_http: bool = False) -> str:
    """Where the metadata of the AS ``issuer`` lives (RFC 8414 §3.1)."""
    _url("issuer", issuer, query=False, allow_loopback_http=allow_loopback_http)
    return well_known_url(issuer, AUTHORIZATION_SERVER_WELL_KNOWN)


def authorization_server_metadata_path(issuer: str, *, allow_loopback_http: bool = False) -> str:
    """The path of :func:`authorization_server_metadata_url`, for a route."""
    return _path_of(
        authorization_server_metadata_url(issuer, allow_loopback_http=allow_loopback_http)
    )


# ----------------------------------------------------------------------- members


def _strings(member: str, values: object, *, allow_empty: bool = True) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence | frozenset | set):
        raise InvalidMetadata(member, "must be a list of strings")
    out = list(values)
    if not all(isinstance(v, str) and v for v in out):
        raise InvalidMetadata(member, "must contain only non-empty strings")
    if len(set(out)) != len(out):
        raise InvalidMetadata(member, "must not repeat a value")
    if not allow_empty and not out:
        raise InvalidMetadata(member, "must not be empty")
    return out


def _algs(member: str, values: object, *, asymmetric: bool = False) -> list[str]:
    out = _strings(member, values, allow_empty=False)
    if any(v.lower() == "none" for v in out):
        raise InvalidMetadata(member, '"none" must not be listed (RFC 8414 §2, RFC 9728 §2)')
    if asymmetric and _SYMMETRIC_ALGS.intersection(out):
        raise InvalidMetadata(member, "DPoP proofs use asymmetric algorithms only (RFC 9449 §4.2)")
    return out


def _scopes(member: str, values: object) -> list[str]:
    out = _strings(member, values)
    bad = [v for v in out if _SCOPE_TOKEN.match(v) is None]
    if bad:
        raise InvalidMetadata(member, f"{bad[0]!r} is not an RFC 6749 §3.3 scope-token")
    return out


def _bool(member: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidMetadata(member, "must be a JSON boolean")
    return value


def _text(member: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidMetadata(member, "must be a non-empty string")
    return value


def _merge_extra(doc: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    if extra:
        for key, value in extra.items():
            if not isinstance(key, str) or not key:
                raise InvalidMetadata("extra", "member names must be non-empty strings")
            if key in doc:
                raise InvalidMetadata(key, "is set by a keyword argument; not in extra")
            if value is None:
                continue
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise InvalidMetadata(key, "must be JSON-serialisable") from None
            doc[key] = value
    return doc


_PR_URLS: Final = ("jwks_uri",)
_PR_DOC_URLS: Final = ("resource_documentation", "resource_policy_uri", "resource_tos_uri")


def _check_protected_resource(
    doc: Mapping[str, Any], *, allow_loopback_http: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "resource" not in doc:
        raise InvalidMetadata("resource", "is REQUIRED (RFC 9728 §2)")
    out["resource"] = _url("resource", doc["resource"], allow_loopback_http=allow_loopback_http)
    for name, value in doc.items():
        if name == "resource" or value is None:
            continue
        if name == "authorization_servers":
            servers = _strings(name, value)
            for server in servers:
                _url(name, server, query=False, allow_loopback_http=allow_loopback_http)
            out[name] = servers
        elif name in _PR_URLS:
            out[name] = _url(name, value, allow_loopback_http=allow_loopback_http)
        elif name in _PR_DOC_URLS:
            out[name] = _url(name, value, https=False)
        elif name == "scopes_supported":
            out[name] = _scopes(name, value)
        elif name == "bearer_methods_supported":
            methods = _strings(name, value)
            unknown = sorted(set(methods) - _BEARER_METHODS)
            if unknown:
                raise InvalidMetadata(name, f"unknown method(s) {unknown}; use header/body/query")
            out[name] = methods
        elif name == "resource_signing_alg_values_supported":
            out[name] = _algs(name, value)
        elif name == "dpop_signing_alg_values_supported":
            out[name] = _algs(name, value, asymmetric=True)
        elif name in (
            "tls_client_certificate_bound_access_tokens",
            "dpop_bound_access_tokens_required",
        ):
            out[name] = _bool(name, value)
        elif name == "authorization_details_types_supported":
            out[name] = _strings(name, value)
        elif name in ("resource_name", "signed_metadata") or name.startswith("resource_name#"):
            out[name] = _text(name, value)
        else:
            out[name] = value
    if (
        out.get("dpop_bound_access_tokens_required")
        and "dpop_signing_alg_values_supported" not in out
    ):
        raise InvalidMetadata(
            "dpop_signing_alg_values_supported",
            "must be listed when dpop_bound_access_tokens_required is true",
        )
    return out


def protected_resource_metadata(
    resource: str,
    *,
    authorization_servers: Iterable[str] | None = None,
    jwks_uri: str | None = None,
    scopes_supported: Iterable[str] | None = None,
    bearer_methods_supported: Iterable[str] | None = None,
    resource_signing_alg_values_supported: Iterable[str] | None = None,
    resource_name: str | None = None,
    resource_documentation: str | None = None,
    resource_policy_uri: str | None = None,
    resource_tos_uri: str | None = None,
    tls_client_certificate_bound_access_tokens: bool | None = None,
    authorization_details_types_supported: Iterable[str] | None = None,
    dpop_signing_alg_values_supported: Iterable[str] | None = None,
    dpop_bound_access_tokens_required: bool | None = None,
    extra: Mapping[str, Any] | None = None,
    allow_loopback_http: bool = False,
) -> dict[str, Any]:
    """An RFC 9728 §2 protected-resource metadata document, validated.

    ``resource`` is the resource identifier: an ``https`` URL without fragment (RFC 9728
    §1.2); clients compare it byte for byte with the URL they derived the well-known
    location from (§3.3), so use exactly the URL clients are given. Every other member is
    optional and left out when ``None``; ``extra`` adds members from other specifications
    (it may not override the ones above). ``allow_loopback_http`` lets a lab use
    ``http://127.0.0.1`` URLs; real deployments use ``https`` (RFC 9728 §7.1).
    Raises :class:`InvalidMetadata`.
    """

    def listed(values: Iterable[str] | None) -> Any:
        # A bare string stays a string so that validation names it (not a list of chars).
        return values if values is None or isinstance(values, str) else list(values)

    doc: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": listed(authorization_servers),
        "jwks_uri": jwks_uri,
        "scopes_supported": listed(scopes_supported),
        "bearer_methods_supported": listed(bearer_methods_supported),
        "resource_signing_alg_values_supported": listed(resource_signing_alg_values_supported),
        "resource_name": resource_name,
        "resource_documentation": resource_documentation,
        "resource_policy_uri": resource_policy_uri,
        "resource_tos_uri": resource_tos_uri,
        "tls_client_certificate_bound_access_tokens": tls_client_certificate_bound_access_tokens,
        "authorization_details_types_supported": listed(authorization_details_types_supported),
        "dpop_signing_alg_values_supported": listed(dpop_signing_alg_values_supported),
        "dpop_bound_access_tokens_required": dpop_bound_access_tokens_required,
    }
    registered = {k: v for k, v in doc.items() if v is not None}
    _merge_extra(registered, extra)
    return _check_protected_resource(registered, allow_loopback_http=allow_loopback_http)


def resource_server_metadata(
    server: ResourceServer,
    resource: str,
    *,
    authorization_servers: Iterable[str] | None = None,
    certificate_bound: bool = False,
    scopes_supported: Iterable[str] | None = None,
    **members: Any,
) -> dict[str, Any]:
    """Protected-resource metadata whose sender-constraint members come from ``server``.

    From the :class:`~tokenlib.server.ResourceServer`: ``dpop_signing_alg_values_supported``
    is its DPoP algorithm allowlist (when it accepts the ``DPoP`` scheme);
    ``dpop_bound_access_tokens_required`` is true exactly when it does not accept
    ``Bearer``; ``bearer_methods_supported`` is ``["header"]`` (the only method it reads,
    RFC 6750 §2.1) or ``[]`` when Bearer is off (RFC 9728 §2). ``certificate_bound`` says
    whether this deployment receives client certificates (TLS or a trusted proxy) and so
    accepts RFC 8705 certificate-bound tokens — the server object cannot know that, so it is
    an explicit argument. Other RFC 9728 members pass through ``members``.
    """
    dpop = "DPoP" in server.schemes
    bearer = "Bearer" in server.schemes
    for derived in (
        "dpop_signing_alg_values_supported",
        "dpop_bound_access_tokens_required",
        "bearer_methods_supported",
        "tls_client_certificate_bound_access_tokens",
    ):
        if derived in members:
            raise TypeError(f"{derived} is derived from the ResourceServer; do not pass it")
    if certificate_bound and not bearer:
        raise ValueError(
            "certificate-bound tokens are sent with the Bearer scheme (RFC 8705 §3); "
            "this server does not accept Bearer"
        )
    return protected_resource_metadata(
        resource,
        authorization_servers=authorization_servers,
        scopes_supported=scopes_supported,
        bearer_methods_supported=["header"] if bearer else [],
        dpop_signing_alg_values_supported=list(server.policy.algorithms) if dpop else None,
        dpop_bound_access_tokens_required=dpop and not bearer,
        tls_client_certificate_bound_access_tokens=certificate_bound,
        **members,
    )


def validate_protected_resource_metadata(
    document: object, *, resource: str, allow_loopback_http: bool = False
) -> dict[str, Any]:
    """Check a protected-resource metadata document received from ``resource``'s
    well-known URL: every registered member well-formed (RFC 9728 §2) and ``resource``
    identical to the identifier the URL was built from (§3.3, against impersonation).
    Returns the document; raises :class:`InvalidMetadata`."""
    if not isinstance(document, Mapping):
        raise InvalidMetadata("document", "must be a JSON object")
    checked = _check_protected_resource(document, allow_loopback_http=allow_loopback_http)
    if checked["resource"] != resource:
        raise InvalidMetadata(
            "resource",
            f"{checked['resource']!r} is not the identifier the metadata was requested for "
            f"({resource!r}); RFC 9728 §3.3 requires them to be identical",
        )
    return checked


# --------------------------------------------------------------- RFC 8414 documents

_AS_ENDPOINTS: Final = (
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "pushed_authorization_request_endpoint",
)
_AS_DOC_URLS: Final = ("service_documentation", "op_policy_uri", "op_tos_uri")
_AS_ALG_LISTS: Final = (
    "token_endpoint_auth_signing_alg_values_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
)
_JWT_AUTH: Final = frozenset({"private_key_jwt", "client_secret_jwt"})


def _check_authorization_server(
    doc: Mapping[str, Any], *, allow_loopback_http: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "issuer" not in doc:
        raise InvalidMetadata("issuer", "is REQUIRED (RFC 8414 §2)")
    out["issuer"] = _url(
        "issuer", doc["issuer"], query=False, allow_loopback_http=allow_loopback_http
    )
    for name, value in doc.items():
        if name == "issuer" or value is None:
            continue
        if name in _AS_ENDPOINTS:
            out[name] = _url(name, value, allow_loopback_http=allow_loopback_http)
        elif name in _AS_DOC_URLS:
            out[name] = _url(name, value, https=False)
        elif name == "scopes_supported":
            out[name] = _scopes(name, value)
        elif name in _AS_ALG_LISTS:
            out[name] = _algs(name, value)
        elif name == "dpop_signing_alg_values_supported":
            out[name] = _algs(name, value, asymmetric=True)
        elif name == "tls_client_certificate_bound_access_tokens":
            out[name] = _bool(name, value)
        elif name == "mtls_endpoint_aliases":
            if not isinstance(value, Mapping):
                raise InvalidMetadata(name, "must be a JSON object (RFC 8705 §5)")
            out[name] = {
                str(k): _url(f"{name}.{k}", v, allow_loopback_http=allow_loopback_http)
                for k, v in value.items()
            }
        elif name in (
            "response_types_supported",
            "response_modes_supported",
            "grant_types_supported",
            "token_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_methods_supported",
            "introspection_endpoint_auth_methods_supported",
            "code_challenge_methods_supported",
            "ui_locales_supported",
        ):
            out[name] = _strings(name, value)
        else:
            out[name] = value
    if not out.get("response_types_supported"):
        raise InvalidMetadata("response_types_supported", "is REQUIRED (RFC 8414 §2)")
    grants = out.get("grant_types_supported", ["authorization_code", "implicit"])
    if {"authorization_code", "implicit"} & set(grants) and "authorization_endpoint" not in out:
        raise InvalidMetadata(
            "authorization_endpoint",
            "is REQUIRED unless no grant type uses the authorization endpoint (RFC 8414 §2)",
        )
    if set(grants) != {"implicit"} and "token_endpoint" not in out:
        raise InvalidMetadata(
            "token_endpoint", "is REQUIRED unless only the implicit grant is supported"
        )
    for prefix in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        methods = out.get(f"{prefix}_auth_methods_supported", ())
        if (
            _JWT_AUTH.intersection(methods)
            and f"{prefix}_auth_signing_alg_values_supported" not in out
        ):
            raise InvalidMetadata(
                f"{prefix}_auth_signing_alg_values_supported",
                "MUST be present when private_key_jwt or client_secret_jwt is supported "
                "(RFC 8414 §2)",
            )
    return out


def authorization_server_metadata(
    issuer: str,
    *,
    response_types_supported: Iterable[str],
    authorization_endpoint: str | None = None,
    token_endpoint: str | None = None,
    jwks_uri: str | None = None,
    registration_endpoint: str | None = None,
    scopes_supported: Iterable[str] | None = None,
    grant_types_supported: Iterable[str] | None = None,
    token_endpoint_auth_methods_supported: Iterable[str] | None = None,
    token_endpoint_auth_signing_alg_values_supported: Iterable[str] | None = None,
    code_challenge_methods_supported: Iterable[str] | None = None,
    dpop_signing_alg_values_supported: Iterable[str] | None = None,
    tls_client_certificate_bound_access_tokens: bool | None = None,
    mtls_endpoint_aliases: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    allow_loopback_http: bool = False,
) -> dict[str, Any]:
    """An RFC 8414 §2 authorization-server metadata document, validated.

    Includes the sender-constraint members: ``dpop_signing_alg_values_supported``
    (RFC 9449 §5.1), ``tls_client_certificate_bound_access_tokens`` (RFC 8705 §3.3) and
    ``mtls_endpoint_aliases`` (RFC 8705 §5). Other RFC 8414 members (``revocation_endpoint``,
    ``introspection_endpoint``, ``service_documentation``...) go in ``extra`` and are
    validated the same way. Raises :class:`InvalidMetadata`.
    """

    def listed(values: Iterable[str] | None) -> Any:
        return values if values is None or isinstance(values, str) else list(values)

    if isinstance(response_types_supported, str):
        raise InvalidMetadata("response_types_supported", "must be a list of strings")
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": authorization_endpoint,
        "token_endpoint": token_endpoint,
        "jwks_uri": jwks_uri,
        "registration_endpoint": registration_endpoint,
        "scopes_supported": listed(scopes_supported),
        "response_types_supported": list(response_types_supported),
        "grant_types_supported": listed(grant_types_supported),
        "token_endpoint_auth_methods_supported": listed(token_endpoint_auth_methods_supported),
        "token_endpoint_auth_signing_alg_values_supported": listed(
            token_endpoint_auth_signing_alg_values_supported
        ),
        "code_challenge_methods_supported": listed(code_challenge_methods_supported),
        "dpop_signing_alg_values_supported": listed(dpop_signing_alg_values_supported),
        "tls_client_certificate_bound_access_tokens": tls_client_certificate_bound_access_tokens,
        "mtls_endpoint_aliases": dict(mtls_endpoint_aliases) if mtls_endpoint_aliases else None,
    }
    registered = {k: v for k, v in doc.items() if v is not None}
    _merge_extra(registered, extra)
    return _check_authorization_server(registered, allow_loopback_http=allow_loopback_http)


def validate_authorization_server_metadata(
    document: object, *, issuer: str, allow_loopback_http: bool = False
) -> dict[str, Any]:
    """Check AS metadata fetched from ``issuer``'s well-known URL (RFC 8414 §2) and that its
    ``issuer`` is identical to ``issuer`` (§3.3). Raises :class:`InvalidMetadata`."""
    if not isinstance(document, Mapping):
        raise InvalidMetadata("document", "must be a JSON object")
    checked = _check_authorization_server(document, allow_loopback_http=allow_loopback_http)
    if checked["issuer"] != issuer:
        raise InvalidMetadata(
            "issuer",
            f"{checked['issuer']!r} is not the issuer the metadata was requested for "
            f"({issuer!r}); RFC 8414 §3.3 requires them to be identical",
        )
    return checked


# --------------------------------------------------------------------- challenges


def _with_param(challenge: str, name: str, value: str) -> str:
    # Our challenges are "Scheme" or "Scheme p=v, p=v" (tokenlib.errors.TokenError.challenge).
    return f'{challenge}, {name}="{value}"' if " " in challenge else f'{challenge} {name}="{value}"'


def challenge_headers(error: TokenError, *, resource_metadata: str | None = None) -> dict[str, str]:
    """The response headers for ``error`` with ``resource_metadata="<url>"`` added to every
    challenge (RFC 9728 §5.1), so a client can discover the authorization server from a 401.

    ``resource_metadata`` is the metadata URL (:func:`protected_resource_metadata_url`).
    Without it, this is ``error.headers``.
    """
    headers = error.headers
    if resource_metadata is None or "WWW-Authenticate" not in headers:
        return headers
    if _QUOTABLE.match(resource_metadata) is None:
        raise ValueError("resource_metadata must be a URL without spaces, quotes or backslashes")
    challenges = [error.challenge(), *error.extra_challenges]
    headers["WWW-Authenticate"] = ", ".join(
        _with_param(c, "resource_metadata", resource_metadata) for c in challenges
    )
    return headers
