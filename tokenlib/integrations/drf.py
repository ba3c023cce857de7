"""Django REST framework: ``DPoPAuthentication`` for bearer, DPoP- and certificate-bound tokens.

::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["tokenlib.integrations.drf.DPoPAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        "EXCEPTION_HANDLER": "tokenlib.integrations.drf.exception_handler",
    }
    TOKENLIB = {"RESOURCE_SERVER": ..., "PUBLIC_BASE_URL": "https://api.example.com"}

    class Items(APIView):
        required_scopes = ["items:read"]          # or {"GET": [...], "POST": [...]}

        def get(self, request):
            return Response({"client": request.auth.client_id})

* ``authenticate`` verifies the request with the ``ResourceServer`` of
  ``settings.TOKENLIB`` (see :mod:`tokenlib.integrations.django`) and the view's
  ``required_scopes`` (``HEAD`` takes ``GET``'s). ``request.auth`` is the
  :class:`~tokenlib.server.Grant`, ``request.user`` a :class:`TokenUser` (override
  :meth:`DPoPAuthentication.get_user` to map the subject to your user model).
* A request without credentials returns ``None`` (DRF then asks the permission classes),
  except on a view with ``required_scopes``, which never runs without a token.
* ``authenticate_header`` returns the challenge of the failure (``DPoP error=…,
  algs=…``, ``Bearer``, ``resource_metadata``) or, without credentials, the server's
  challenges — so DRF answers **401**, not 403. Scope failures are 403
  ``insufficient_scope`` with the RFC 6750 §3.1 challenge.
* :func:`exception_handler` (the ``EXCEPTION_HANDLER`` setting) adds what DRF's handler
  does not: ``DPoP-Nonce`` (RFC 9449 §9), ``Cache-Control: no-store``, ``Retry-After``,
  and the ``{"error", "error_description"}`` body. Without it the status and
  ``WWW-Authenticate`` are still right, but a client cannot learn a nonce.
* With :class:`tokenlib.integrations.django.TokenAuthMiddleware` installed too, the
  middleware leaves DRF views to this class and adds a rotated ``DPoP-Nonce`` to
  successful responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response

from tokenlib.errors import InsufficientScope, TokenError
from tokenlib.integrations.django import get_guard, scopes_for, verify_request
from tokenlib.server import Grant

__all__ = ["DPoPAuthentication", "TokenAuthenticationFailed", "TokenUser", "exception_handler"]

_ERROR_ATTR = "_tokenlib_error"


class TokenUser:
    """``request.user`` for a verified token: the subject and client, no database row."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, grant: Grant) -> None:
        self.grant = grant
        self.username = grant.subject
        self.client_id = grant.client_id

    def __str__(self) -> str:
        return self.username

    def __repr__(self) -> str:
        return f"TokenUser(subject={self.username!r}, client_id={self.client_id!r})"

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False


class TokenAuthenticationFailed(exceptions.AuthenticationFailed):  # type: ignore[misc]
    """A refused request: the :class:`~tokenlib.errors.TokenError` (``token_error``), its
    status and response headers (``token_headers``)."""

    def __init__(self, error: TokenError, headers: Mapping[str, str]) -> None:
        super().__init__(detail=error.description, code=error.error)
        self.status_code = error.status_code
        self.token_error = error
        self.token_headers = dict(headers)


class DPoPAuthentication(BaseAuthentication):  # type: ignore[misc]
    """DRF authentication with tokenlib (see the module docstring)."""

    def get_user(self, grant: Grant) -> Any:
        """The ``request.user`` for ``grant`` (a :class:`TokenUser` by default)."""
        return TokenUser(grant)

    @staticmethod
    def required_scopes(request: Request) -> frozenset[str]:
        view = (request.parser_context or {}).get("view")
        rule = getattr(view, "required_scopes", None)
        return scopes_for(rule, request.method or "GET")

    def authenticate(self, request: Request) -> tuple[Any, Grant] | None:
        django_request = request._request
        guard = get_guard()
        scopes = self.required_scopes(request)
        existing = getattr(django_request, "grant", None)
        if isinstance(existing, Grant):
            grant = existing  # verified once already in this request: never twice (replay)
            if not grant.scopes.issuperset(scopes):
                error = self._scope_error(grant, scopes)
                setattr(django_request, _ERROR_ATTR, error)
                raise TokenAuthenticationFailed(error, guard.error_headers(error))
            return self.get_user(grant), grant
        if "HTTP_AUTHORIZATION" not in django_request.META and not scopes:
            return None
        try:
            grant = verify_request(django_request, scopes)
        except TokenError as error:
            guard.log_refusal(request.method or "GET", django_request.path, error)
            setattr(django_request, _ERROR_ATTR, error)
            raise TokenAuthenticationFailed(error, guard.error_headers(error)) from None
        django_request.grant = grant
        return self.get_user(grant), grant

    def _scope_error(self, grant: Grant, scopes: frozenset[str]) -> TokenError:
        dpop = grant.binding in ("dpop", "dpop+mtls")
        server = get_guard().resource_server
        return InsufficientScope(
            "the access token lacks a required scope",
            details={
                "check": "scope",
                "required": sorted(scopes),
                "missing": sorted(scopes - grant.scopes),
                "rfc": "RFC 6750 §3.1",
            },
            scheme="DPoP" if dpop else "Bearer",
            algs=server.policy.algorithms if dpop else (),
            realm=server.realm,
        )

    def authenticate_header(self, request: Request) -> str:
        guard = get_guard()
        error = getattr(request._request, _ERROR_ATTR, None)
        if not isinstance(error, TokenError):
            error = guard.challenge_error()
        return guard.error_headers(error)["WWW-Authenticate"]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler plus tokenlib's headers and body for refused tokens; for a
    request without credentials (``NotAuthenticated``) the server's ``DPoP-Nonce``."""
    # Imported here: rest_framework.views imports the authentication classes named in
    # settings (this module) while it initialises.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    error: TokenError | None = None
    if isinstance(exc, TokenAuthenticationFailed):
        error = exc.token_error
    elif isinstance(exc, exceptions.NotAuthenticated) and response.status_code == 401:
        error = get_guard().challenge_error()
    if error is not None:
        for name, value in get_guard().error_headers(error).items():
            if name != "WWW-Authenticate" or isinstance(exc, TokenAuthenticationFailed):
                response[name] = value
        response.data = error.json_body()
    return response
