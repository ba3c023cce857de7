"""tokenlib.metadata: RFC 9728 / RFC 8414 documents, well-known URLs, resource_metadata.

RFC examples are kept verbatim below with their section, as test vectors.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenlib.bearer import Issuer
from tokenlib.dpop import DPoPPolicy
from tokenlib.errors import InsufficientScope, InvalidToken, MissingToken
from tokenlib.jwk import generate_key
from tokenlib.metadata import (
    InvalidMetadata,
    authorization_server_metadata,
    authorization_server_metadata_path,
    authorization_server_metadata_url,
    challenge_headers,
    protected_resource_metadata,
    protected_resource_metadata_path,
    protected_resource_metadata_url,
    resource_server_metadata,
    validate_authorization_server_metadata,
    validate_protected_resource_metadata,
    well_known_url,
)
from tokenlib.server import ResourceServer

# SOURCE: RFC 9728 §3.2 (https://www.rfc-editor.org/rfc/rfc9728#section-3.2), example response.
RFC9728_EXAMPLE = """
{
  "resource":
    "https://resource.example.com",
  "authorization_servers":
    ["https://as1.example.com",
     "https://as2.example.net"],
  "bearer_methods_supported":
    ["header", "body"],
  "scopes_supported":
    ["profile", "email", "phone"],
  "resource_documentation":
    "https://resource.example.com/resource_documentation.html"
}
"""

# SOURCE: RFC 8414 §3.2 (https://www.rfc-editor.org/rfc/rfc8414#section-3.2), example response.
RFC8414_EXAMPLE = """
{
 "issuer":
   "https://server.example.com",
 "authorization_endpoint":
   "https://server.example.com/authorize",
 "token_endpoint":
   "https://server.example.com/token",
 "token_endpoint_auth_methods_supported":
   ["client_secret_basic", "private_key_jwt"],
 "token_endpoint_auth_signing_alg_values_supported":
   ["RS256", "ES256"],
 "userinfo_endpoint":
   "https://server.example.com/userinfo",
 "jwks_uri":
   "https://server.example.com/jwks.json",
 "registration_endpoint":
   "https://server.example.com/register",
 "scopes_supported":
   ["openid", "profile", "email", "address",
    "phone", "offline_access"],
 "response_types_supported":
   ["code", "code token"],
 "service_documentation":
   "http://server.example.com/service_documentation.html",
 "ui_locales_supported":
   ["en-US", "en-GB", "en-CA", "fr-FR", "fr-CA"]
}
"""


def rs(**kwargs: Any) -> ResourceServer:
    issuer = Issuer("https://as.example.com", generate_key("ES256"))
    return ResourceServer(
        issuer="https://as.example.com",
        audience="https://api.example.com",
        jwks=issuer.jwks(),
        **kwargs,
    )


# ------------------------------------------------------------------ well-known URLs


def test_rfc9728_section_3_1_well_known_example() -> None:
    # RFC 9728 §3.1: resource https://resource.example.com/resource1 is requested with
    # "GET /.well-known/oauth-protected-resource/resource1" at host resource.example.com.
    url = protected_resource_metadata_url("https://resource.example.com/resource1")
    assert url == "https://resource.example.com/.well-known/oauth-protected-resource/resource1"
    path = protected_resource_metadata_path("https://resource.example.com/resource1")
    assert path == "/.well-known/oauth-protected-resource/resource1"


def test_rfc8414_section_3_1_well_known_example() -> None:
    # RFC 8414 §3.1: issuer https://example.com/issuer1 →
    # https://example.com/.well-known/oauth-authorization-server/issuer1
    assert (
        authorization_server_metadata_url("https://example.com/issuer1")
        == "https://example.com/.well-known/oauth-authorization-server/issuer1"
    )
    assert (
        authorization_server_metadata_path("https://example.com/issuer1")
        == "/.well-known/oauth-authorization-server/issuer1"
    )


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        # a terminating "/" right after the host is removed first (RFC 9728 §3.1)
        ("https://r.example", "https://r.example/.well-known/oauth-protected-resource"),
        ("https://r.example/", "https://r.example/.well-known/oauth-protected-resource"),
        ("https://r.example/a/b", "https://r.example/.well-known/oauth-protected-resource/a/b"),
        ("https://r.example/a/", "https://r.example/.well-known/oauth-protected-resource/a/"),
        (
            "https://r.example:8443/mcp",
            "https://r.example:8443/.well-known/oauth-protected-resource/mcp",
        ),
        # a query component stays after the path (RFC 9728 §3.1)
        ("https://r.example/r?t=1", "https://r.example/.well-known/oauth-protected-resource/r?t=1"),
    ],
)
def test_well_known_insertion(identifier: str, expected: str) -> None:
    assert protected_resource_metadata_url(identifier) == expected


@pytest.mark.parametrize(
    "resource",
    [
        "http://r.example/api",  # not https (RFC 9728 §1.2)
        "https://r.example/api#frag",  # fragment (RFC 9728 §1.2)
        "https://user@r.example/api",  # userinfo
        "/api",  # not absolute
        "https:///api",  # no host
        "https://r.example:99999/",  # bad port
        "https://r.example/a b",  # space
        "",
    ],
)
def test_well_known_refuses_bad_resource(resource: str) -> None:
    with pytest.raises(InvalidMetadata) as info:
        protected_resource_metadata_url(resource)
    assert info.value.member == "resource"


def test_issuer_with_query_refused() -> None:
    # RFC 8414 §2: issuer has no query or fragment component.
    with pytest.raises(InvalidMetadata, match="query"):
        authorization_server_metadata_url("https://as.example/?tenant=1")


def test_loopback_http_only_when_allowed() -> None:
    with pytest.raises(InvalidMetadata):
        protected_resource_metadata_url("http://127.0.0.1:8000/api")
    assert protected_resource_metadata_url(
        "http://127.0.0.1:8000/api", allow_loopback_http=True
    ) == ("http://127.0.0.1:8000/.well-known/oauth-protected-resource/api")
    with pytest.raises(InvalidMetadata):  # not loopback
        protected_resource_metadata_url("http://10.0.0.1/api", allow_loopback_http=True)


def test_well_known_suffix_checked() -> None:
    with pytest.raises(ValueError, match="suffix"):
        well_known_url("https://r.example", "../x")


# ------------------------------------------------------------- RFC 9728 documents


def test_rfc9728_example_validates_and_rebuilds() -> None:
    document = json.loads(RFC9728_EXAMPLE)
    assert (
        validate_protected_resource_metadata(document, resource="https://resource.example.com")
        == document
    )
    rebuilt = protected_resource_metadata(
        "https://resource.example.com",
        authorization_servers=["https://as1.example.com", "https://as2.example.net"],
        bearer_methods_supported=["header", "body"],
        scopes_supported=["profile", "email", "phone"],
        resource_documentation="https://resource.example.com/resource_documentation.html",
    )
    assert rebuilt == document


def test_rfc9728_section_3_3_resource_must_be_identical() -> None:
    document = json.loads(RFC9728_EXAMPLE)
    with pytest.raises(InvalidMetadata, match="identical"):
        validate_protected_resource_metadata(document, resource="https://resource.example.com/")
    with pytest.raises(InvalidMetadata, match="identical"):
        validate_protected_resource_metadata(document, resource="https://attacker.example")


def test_sender_constraint_members() -> None:
    doc = protected_resource_metadata(
        "https://api.example.com",
        authorization_servers=["https://as.example.com"],
        dpop_signing_alg_values_supported=["ES256", "PS256"],
        dpop_bound_access_tokens_required=True,
        tls_client_certificate_bound_access_tokens=False,
    )
    assert doc == {
        "resource": "https://api.example.com",
        "authorization_servers": ["https://as.example.com"],
        "dpop_signing_alg_values_supported": ["ES256", "PS256"],
        "dpop_bound_access_tokens_required": True,
        "tls_client_certificate_bound_access_tokens": False,
    }
    json.dumps(doc)


def test_omitted_members_are_absent_not_null() -> None:
    doc = protected_resource_metadata("https://api.example.com")
    assert doc == {"resource": "https://api.example.com"}


BAD_PR_MEMBERS: list[tuple[str, Any]] = [
    ("authorization_servers", ["http://as.example.com"]),  # issuer must be https
    ("authorization_servers", ["https://as.example.com?x=1"]),  # issuer: no query
    ("authorization_servers", "https://as.example.com"),  # a string, not a list
    ("authorization_servers", ["https://a.example", "https://a.example"]),  # repeated
    ("jwks_uri", "http://api.example.com/jwks"),
    ("scopes_supported", ["read write"]),  # a space is not a scope-token char
    ("scopes_supported", ['a"b']),
    ("scopes_supported", [""]),
    ("bearer_methods_supported", ["cookie"]),  # only header/body/query (RFC 9728 §2)
    ("resource_signing_alg_values_supported", ["none"]),  # RFC 9728 §2
    ("dpop_signing_alg_values_supported", ["none"]),
    ("dpop_signing_alg_values_supported", ["HS256"]),  # RFC 9449 §4.2 asymmetric only
    ("dpop_signing_alg_values_supported", []),
    ("dpop_bound_access_tokens_required", "true"),  # a JSON boolean
    ("tls_client_certificate_bound_access_tokens", 1),
    ("resource_documentation", "ftp://docs.example.com"),
    ("resource_name", " "),
]


@pytest.mark.parametrize(("member", "value"), BAD_PR_MEMBERS)
def test_protected_resource_member_rules(member: str, value: Any) -> None:
    with pytest.raises(InvalidMetadata) as info:
        protected_resource_metadata("https://api.example.com", **{member: value})
    assert info.value.member == member
    # the same rule holds for a document received from a peer
    with pytest.raises(InvalidMetadata):
        validate_protected_resource_metadata(
            {"resource": "https://api.example.com", member: value},
            resource="https://api.example.com",
        )


def test_dpop_required_needs_algorithms() -> None:
    with pytest.raises(InvalidMetadata, match="dpop_signing_alg_values_supported"):
        protected_resource_metadata(
            "https://api.example.com", dpop_bound_access_tokens_required=True
        )


def test_extra_members() -> None:
    doc = protected_resource_metadata(
        "https://api.example.com", extra={"x_custom": {"a": 1}, "skip": None}
    )
    assert doc == {"resource": "https://api.example.com", "x_custom": {"a": 1}}
    with pytest.raises(InvalidMetadata, match="keyword"):
        protected_resource_metadata(
            "https://api.example.com", scopes_supported=["a"], extra={"scopes_supported": ["b"]}
        )
    with pytest.raises(InvalidMetadata, match="JSON"):
        protected_resource_metadata("https://api.example.com", extra={"x": object()})
    # extra members are validated like keyword ones
    with pytest.raises(InvalidMetadata):
        protected_resource_metadata("https://api.example.com", extra={"resource_tos_uri": "nope"})


def test_validate_rejects_non_object_and_missing_resource() -> None:
    with pytest.raises(InvalidMetadata, match="JSON object"):
        validate_protected_resource_metadata([], resource="https://api.example.com")
    with pytest.raises(InvalidMetadata, match="REQUIRED"):
        validate_protected_resource_metadata({}, resource="https://api.example.com")


# ------------------------------------------------------ derived from a ResourceServer


def test_resource_server_metadata_dpop_and_bearer() -> None:
    server = rs(policy=DPoPPolicy(algorithms=("ES256", "EdDSA")))
    doc = resource_server_metadata(
        server,
        "https://api.example.com",
        authorization_servers=["https://as.example.com"],
        scopes_supported=["read"],
    )
    assert doc == {
        "resource": "https://api.example.com",
        "authorization_servers": ["https://as.example.com"],
        "scopes_supported": ["read"],
        "bearer_methods_supported": ["header"],
        "tls_client_certificate_bound_access_tokens": False,
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
        "dpop_bound_access_tokens_required": False,
    }


def test_resource_server_metadata_dpop_only() -> None:
    doc = resource_server_metadata(rs(schemes=("DPoP",)), "https://api.example.com")
    assert doc["dpop_bound_access_tokens_required"] is True
    assert doc["bearer_methods_supported"] == []
    assert doc["dpop_signing_alg_values_supported"] == list(DPoPPolicy().algorithms)
    with pytest.raises(ValueError, match="Bearer"):
        resource_server_metadata(
            rs(schemes=("DPoP",)), "https://api.example.com", certificate_bound=True
        )


def test_resource_server_metadata_bearer_only_mtls() -> None:
    doc = resource_server_metadata(
        rs(schemes=("Bearer",)), "https://api.example.com", certificate_bound=True
    )
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    assert doc["dpop_bound_access_tokens_required"] is False
    assert "dpop_signing_alg_values_supported" not in doc


def test_resource_server_metadata_refuses_overrides() -> None:
    with pytest.raises(TypeError, match="derived"):
        resource_server_metadata(
            rs(), "https://api.example.com", dpop_bound_access_tokens_required=False
        )


# ------------------------------------------------------------- RFC 8414 documents


def test_rfc8414_example_validates_and_rebuilds() -> None:
    document = json.loads(RFC8414_EXAMPLE)
    assert (
        validate_authorization_server_metadata(document, issuer="https://server.example.com")
        == document
    )
    rebuilt = authorization_server_metadata(
        "https://server.example.com",
        authorization_endpoint="https://server.example.com/authorize",
        token_endpoint="https://server.example.com/token",
        token_endpoint_auth_methods_supported=["client_secret_basic", "private_key_jwt"],
        token_endpoint_auth_signing_alg_values_supported=["RS256", "ES256"],
        jwks_uri="https://server.example.com/jwks.json",
        registration_endpoint="https://server.example.com/register",
        scopes_supported=["openid", "profile", "email", "address", "phone", "offline_access"],
        response_types_supported=["code", "code token"],
        extra={
            "userinfo_endpoint": "https://server.example.com/userinfo",
            "service_documentation": "http://server.example.com/service_documentation.html",
            "ui_locales_supported": ["en-US", "en-GB", "en-CA", "fr-FR", "fr-CA"],
        },
    )
    assert rebuilt == document


def test_rfc8414_section_3_3_issuer_must_be_identical() -> None:
    with pytest.raises(InvalidMetadata, match="identical"):
        validate_authorization_server_metadata(
            json.loads(RFC8414_EXAMPLE), issuer="https://evil.example.com"
        )


def test_authorization_server_sender_constraint_members() -> None:
    doc = authorization_server_metadata(
        "https://as.example.com",
        authorization_endpoint="https://as.example.com/authorize",
        token_endpoint="https://as.example.com/token",
        response_types_supported=["code"],
        dpop_signing_alg_values_supported=["ES256"],
        tls_client_certificate_bound_access_tokens=True,
        mtls_endpoint_aliases={"token_endpoint": "https://mtls.as.example.com/token"},
    )
    assert doc["dpop_signing_alg_values_supported"] == ["ES256"]
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    assert doc["mtls_endpoint_aliases"] == {"token_endpoint": "https://mtls.as.example.com/token"}


BASE_AS: dict[str, Any] = {
    "issuer": "https://as.example.com",
    "authorization_endpoint": "https://as.example.com/authorize",
    "token_endpoint": "https://as.example.com/token",
    "response_types_supported": ["code"],
}


@pytest.mark.parametrize(
    ("change", "member"),
    [
        ({"issuer": "https://as.example.com#x"}, "issuer"),
        ({"issuer": "http://as.example.com"}, "issuer"),
        ({"response_types_supported": []}, "response_types_supported"),
        ({"response_types_supported": None}, "response_types_supported"),
        ({"authorization_endpoint": None}, "authorization_endpoint"),  # code grant by default
        ({"token_endpoint": None}, "token_endpoint"),
        ({"token_endpoint": "http://as.example.com/token"}, "token_endpoint"),
        (
            {"token_endpoint_auth_methods_supported": ["private_key_jwt"]},
            "token_endpoint_auth_signing_alg_values_supported",
        ),
        (
            {"token_endpoint_auth_signing_alg_values_supported": ["none"]},
            "token_endpoint_auth_signing_alg_values_supported",
        ),
        ({"dpop_signing_alg_values_supported": ["HS256"]}, "dpop_signing_alg_values_supported"),
        (
            {"tls_client_certificate_bound_access_tokens": "yes"},
            "tls_client_certificate_bound_access_tokens",
        ),
        ({"mtls_endpoint_aliases": ["x"]}, "mtls_endpoint_aliases"),
        (
            {"mtls_endpoint_aliases": {"token_endpoint": "http://x.example"}},
            "mtls_endpoint_aliases.token_endpoint",
        ),
    ],
)
def test_authorization_server_rules(change: dict[str, Any], member: str) -> None:
    document = {k: v for k, v in {**BASE_AS, **change}.items() if v is not None}
    with pytest.raises(InvalidMetadata) as info:
        validate_authorization_server_metadata(document, issuer=document.get("issuer", ""))
    assert info.value.member == member


def test_authorization_endpoint_optional_without_redirect_grants() -> None:
    doc = authorization_server_metadata(
        "https://as.example.com",
        token_endpoint="https://as.example.com/token",
        response_types_supported=["code"],
        grant_types_supported=["client_credentials"],
    )
    assert "authorization_endpoint" not in doc


# ------------------------------------------------------ RFC 9728 §5.1 challenges

META = "https://resource.example.com/.well-known/oauth-protected-resource"


def test_rfc9728_section_5_1_example_challenge() -> None:
    # RFC 9728 §5.1 example:
    #   WWW-Authenticate: Bearer resource_metadata=
    #     "https://resource.example.com/.well-known/oauth-protected-resource"
    error = MissingToken("no token")
    assert challenge_headers(error, resource_metadata=META)["WWW-Authenticate"] == (
        f'Bearer resource_metadata="{META}"'
    )


def test_resource_metadata_added_to_every_challenge() -> None:
    error = InvalidToken("expired", scheme="DPoP", algs=("ES256",), extra_challenges=["Bearer"])
    value = challenge_headers(error, resource_metadata=META)["WWW-Authenticate"]
    assert value == (
        'DPoP error="invalid_token", error_description="expired", algs="ES256", '
        f'resource_metadata="{META}", Bearer resource_metadata="{META}"'
    )


def test_challenge_headers_keep_other_headers() -> None:
    error = InsufficientScope("more", details={"required": ["admin"]}, headers={"DPoP-Nonce": "n1"})
    headers = challenge_headers(error, resource_metadata=META)
    assert headers["DPoP-Nonce"] == "n1"
    assert headers["Cache-Control"] == "no-store"
    assert 'scope="admin"' in headers["WWW-Authenticate"]
    assert challenge_headers(error) == error.headers


@pytest.mark.parametrize(
    "url", ['https://x.example/"', "https://x.example/ a", "https://x.example/\\"]
)
def test_resource_metadata_must_be_quotable(url: str) -> None:
    with pytest.raises(ValueError, match="resource_metadata"):
        challenge_headers(MissingToken("x"), resource_metadata=url)
