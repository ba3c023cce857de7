"""Organisation profiles for the synthetic inventory generator.

A profile is a documented set of mixes: which clients an organisation runs, how far it has
adopted mTLS (RFC 8705) and DPoP (RFC 9449), the token lifetimes its identity product hands out,
how its request paths terminate TLS, and how its resource servers accept DPoP proofs. Values
marked [S] come from the domain brief (``shared/research/domain-brief.md`` §1.3, §3.2), [D] are
derived from them, everything else is an [A]ssumption chosen to be plausible and is exactly what
a user should override with their own inventory.

Lifetime anchors are ``(low_s, high_s, weight)``: a value is drawn uniformly in ``[low, high]``
(``low == high`` for a fixed product default).

Authorization servers (:class:`AuthorizationServerProfile`) carry what the issuer can do [S,
``shared/research/ecosystem-2026-12.md`` §2.2: Keycloak issues DPoP- and certificate-bound tokens,
DPoP officially supported since 26.4; Microsoft Entra ID has no RFC 9449 issuance and its mTLS PoP
is a preview, and its on-behalf-of flow is not RFC 8693] and which client kinds register with it
[A]. A client registers with one server, chosen among those that can issue its binding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

Anchor = tuple[int, int, float]

# Product defaults [S], domain brief §1.3.
KEYCLOAK_AT = (300, 300)  # accessTokenLifespan 300 s
OKTA_ORG_AT = (3600, 3600)  # Okta org AS 60 min; Google APIs 3600 s; Akamai 3600 s
ENTRA_AT = (3600, 5400)  # Entra: random 60-90 min, mean 75 min
AUTH0_AT = (86400, 86400)  # Auth0 default 24 h
GITHUB_APP_AT = (28800, 28800)  # GitHub App user tokens 8 h
AUTH0_MFA_AT = (600, 600)  # Auth0 /mfa audience 600 s
CUSTOM_SHORT_AT = (900, 900)  # Keycloak implicit 900 s; a common short custom setting

ENTRA_SPA_RT = (86400, 86400)  # Entra SPA redirect URIs: 24 h [S]
KEYCLOAK_SSO_RT = (36000, 36000)  # Keycloak SSO session max 10 h [S]
OFFLINE_30D_RT = (2592000, 2592000)  # Keycloak offline idle 30 d [S]; Auth0 30 d [A7]
NINETY_DAY_RT = (7776000, 7776000)  # Entra non-SPA / Okta org AS 90 d [S]
GITHUB_APP_RT = (15552000, 15552000)  # GitHub App RT 6 months [S]
GOOGLE_TESTING_RT = (604800, 604800)  # Google "Testing" apps 7 d [S]


def _a(rng: tuple[int, int], weight: float) -> Anchor:
    return (rng[0], rng[1], weight)


def _m(**kw: float) -> Mapping[str, float]:
    return MappingProxyType(dict(kw))


@dataclass(frozen=True, slots=True)
class AuthorizationServerProfile:
    """One authorization server of a profile: its capabilities (the row written to
    ``authorization_servers.csv``) and the weight per client kind of registering with it."""

    as_id: str
    product: str
    issues_dpop: bool
    issues_mtls: bool
    binds_refresh_tokens: bool
    supports_token_exchange: bool
    client_kind_weight: Mapping[str, float]


_ALL_KINDS = _m(
    browser_spa=1.0,
    mobile_app=1.0,
    web_backend=1.0,
    service=1.0,
    batch_job=1.0,
    ai_agent=1.0,
    partner_integrator=1.0,
    cli_tool=1.0,
)

#: A single generic server issuing every binding (profiles that do not list their own).
DEFAULT_AUTHORIZATION_SERVERS: tuple[AuthorizationServerProfile, ...] = (
    AuthorizationServerProfile("as-default", "", True, True, True, False, _ALL_KINDS),
)

# Products [S, ecosystem-2026-12.md §2.2].
KEYCLOAK_26_4 = "Keycloak 26.4"  # DPoP (official since 26.4) and mTLS-bound tokens; binds RTs
ENTRA_ID = "Microsoft Entra ID"  # no RFC 9449 issuance; mTLS PoP preview only; OBO is not 8693


@dataclass(frozen=True, slots=True)
class Profile:
    """Mixes the generator draws from. Probabilities are per client, flow or service."""

    name: str
    title: str
    description: str
    client_kind_mix: Mapping[str, float]
    environment_mix: Mapping[str, float]
    flows_per_client: float
    service_scale: float
    mean_fanout: float
    leaf_share: float
    internet_facing_share: float
    sensitivity_shift: float
    supports_mtls: float
    supports_dpop: float
    bearer_disabled: float
    webcrypto_share: float
    mtls_adoption: Mapping[str, float]
    dpop_adoption: Mapping[str, float]
    bearer_fallback: float
    enforcement: Mapping[str, float]
    at_human: tuple[Anchor, ...]
    at_workload: tuple[Anchor, ...]
    rt_public: tuple[Anchor, ...]
    rt_confidential: tuple[Anchor, ...]
    rotation_public: float
    rotation_confidential: float
    audience_restricted: float
    opaque_share: float
    introspect_jwt: float
    terminating_external: float
    terminating_internal: float
    forward_cert_share: float
    dpop_presets: Mapping[str, float]
    jti_cache_mix: Mapping[str, float]
    nonce_share: float
    forwards_token: float
    authorization_servers: tuple[AuthorizationServerProfile, ...] = DEFAULT_AUTHORIZATION_SERVERS
    token_exchange_share: float = 0.0


SAAS = Profile(
    name="saas",
    title="SaaS company",
    description=(
        "A multi-tenant SaaS vendor on a hosted identity product (Auth0/Okta-like). Many "
        "browser SPAs, partner integrations and AI agents; APIs behind a CDN and API gateway. "
        "Lifetimes mix Auth0's 24 h default, Okta/Google 1 h, Entra 60-90 min and Keycloak "
        "5 min [S, brief §1.3]. Sender-constraining is early: DPoP mostly on new SPAs and "
        "mobile apps, mTLS on a minority of backend services [A]. Paths to internet-facing "
        "APIs terminate TLS at the edge 80% of the time [A6: 0.5-0.9 sweep, brief §3.2]. Two "
        "authorization servers: a Keycloak 26.4-like customer IdP that issues DPoP- and "
        "certificate-bound tokens and supports token exchange, and a Microsoft Entra ID "
        "workforce tenant for internal tools that issues neither [S, ecosystem §2.2]; 30% of "
        "forwarding flows on the customer IdP exchange the token (RFC 8693) [A]."
    ),
    client_kind_mix=_m(
        browser_spa=0.22,
        mobile_app=0.10,
        web_backend=0.12,
        service=0.26,
        batch_job=0.08,
        ai_agent=0.07,
        partner_integrator=0.10,
        cli_tool=0.05,
    ),
    environment_mix=_m(prod=0.65, staging=0.2, dev=0.15),
    flows_per_client=3.0,
    service_scale=1.0,
    mean_fanout=2.0,
    leaf_share=0.25,
    internet_facing_share=0.7,
    sensitivity_shift=0.0,
    supports_mtls=0.2,
    supports_dpop=0.35,
    bearer_disabled=0.05,
    webcrypto_share=0.55,
    mtls_adoption=_m(
        web_backend=0.1,
        service=0.2,
        batch_job=0.1,
        ai_agent=0.05,
        partner_integrator=0.15,
        mobile_app=0.02,
        cli_tool=0.02,
    ),
    dpop_adoption=_m(
        browser_spa=0.25,
        mobile_app=0.3,
        web_backend=0.1,
        service=0.08,
        batch_job=0.05,
        ai_agent=0.2,
        partner_integrator=0.1,
        cli_tool=0.15,
    ),
    bearer_fallback=0.25,
    enforcement=_m(mtls=0.85, dpop=0.7),
    at_human=(
        _a(AUTH0_AT, 0.3),
        _a(OKTA_ORG_AT, 0.3),
        _a(ENTRA_AT, 0.1),
        _a(KEYCLOAK_AT, 0.15),
        _a(GITHUB_APP_AT, 0.1),
        _a(AUTH0_MFA_AT, 0.05),
    ),
    at_workload=(
        _a(AUTH0_AT, 0.35),
        _a(OKTA_ORG_AT, 0.35),
        _a(KEYCLOAK_AT, 0.15),
        _a(ENTRA_AT, 0.15),
    ),
    rt_public=(
        _a(ENTRA_SPA_RT, 0.3),
        _a(OFFLINE_30D_RT, 0.35),
        _a(NINETY_DAY_RT, 0.2),
        _a(GITHUB_APP_RT, 0.1),
        _a(GOOGLE_TESTING_RT, 0.05),
    ),
    rt_confidential=(
        _a(OFFLINE_30D_RT, 0.4),
        _a(NINETY_DAY_RT, 0.4),
        _a(GITHUB_APP_RT, 0.2),
    ),
    rotation_public=0.75,
    rotation_confidential=0.3,
    audience_restricted=0.55,
    opaque_share=0.15,
    introspect_jwt=0.1,
    terminating_external=0.8,
    terminating_internal=0.5,
    forward_cert_share=0.7,
    dpop_presets=_m(tight=0.2, medium=0.45, loose=0.35),
    jti_cache_mix=_m(none=0.3, per_instance=0.45, shared=0.25),
    nonce_share=0.15,
    forwards_token=0.5,
    authorization_servers=(
        AuthorizationServerProfile(
            "as-customer",
            KEYCLOAK_26_4,
            issues_dpop=True,
            issues_mtls=True,
            binds_refresh_tokens=True,
            supports_token_exchange=True,
            client_kind_weight=_m(
                browser_spa=1.0,
                mobile_app=1.0,
                web_backend=0.7,
                service=0.6,
                batch_job=0.5,
                ai_agent=0.8,
                partner_integrator=1.0,
                cli_tool=0.4,
            ),
        ),
        AuthorizationServerProfile(
            "as-workforce",
            ENTRA_ID,
            issues_dpop=False,
            issues_mtls=False,
            binds_refresh_tokens=False,
            supports_token_exchange=False,
            client_kind_weight=_m(
                web_backend=0.3, service=0.4, batch_job=0.5, ai_agent=0.2, cli_tool=0.6
            ),
        ),
    ),
    token_exchange_share=0.3,
)

BANK = Profile(
    name="bank",
    title="Bank (open-banking / FAPI 2.0 influenced)",
    description=(
        "A regulated bank exposing open-banking APIs. FAPI 2.0 requires sender-constrained "
        "tokens (mTLS or DPoP) and limits DPoP iat to 0-10 s accepted / >60 s rejected [S, brief "
        "§1.3], so adoption is high: mTLS for partners and internal services with automated "
        "PKI/SPIFFE, DPoP for mobile banking apps [A]. Lifetimes are short: Keycloak-style 5 min "
        "and 15 min dominate [S anchors]. FAPI 2.0 discourages refresh-token rotation, so "
        "rotation is rare and RTs are sender-constrained instead [S]. Leaf services (ledgers, "
        "payments cores) are the most sensitive; more services demand nonces and shared jti "
        "caches, and more terminating hops forward the client certificate (RFC 9440) [A]. A "
        "FAPI 2.0-grade authorization server (Keycloak 26.4 with FAPI client policies) issues "
        "DPoP- and certificate-bound tokens, binds refresh tokens and supports token exchange "
        "[S, ecosystem §2.2]; a legacy in-house OAuth server still serves some back-office "
        "services, batch jobs and tools and issues only bearer tokens [A]. Half of the "
        "forwarding flows on the FAPI server exchange the token (RFC 8693) [A]."
    ),
    client_kind_mix=_m(
        browser_spa=0.10,
        mobile_app=0.14,
        web_backend=0.14,
        service=0.34,
        batch_job=0.12,
        ai_agent=0.02,
        partner_integrator=0.12,
        cli_tool=0.02,
    ),
    environment_mix=_m(prod=0.6, staging=0.25, dev=0.15),
    flows_per_client=3.5,
    service_scale=1.1,
    mean_fanout=2.5,
    leaf_share=0.3,
    internet_facing_share=0.5,
    sensitivity_shift=0.6,
    supports_mtls=0.55,
    supports_dpop=0.4,
    bearer_disabled=0.15,
    webcrypto_share=0.7,
    mtls_adoption=_m(
        web_backend=0.45,
        service=0.55,
        batch_job=0.4,
        ai_agent=0.2,
        partner_integrator=0.7,
        mobile_app=0.05,
        cli_tool=0.05,
    ),
    dpop_adoption=_m(
        browser_spa=0.45,
        mobile_app=0.6,
        web_backend=0.15,
        service=0.1,
        batch_job=0.05,
        ai_agent=0.3,
        partner_integrator=0.15,
        cli_tool=0.2,
    ),
    bearer_fallback=0.15,
    enforcement=_m(mtls=0.9, dpop=0.85),
    at_human=(
        _a(KEYCLOAK_AT, 0.5),
        _a(CUSTOM_SHORT_AT, 0.25),
        _a(OKTA_ORG_AT, 0.15),
        _a(ENTRA_AT, 0.1),
    ),
    at_workload=(
        _a(KEYCLOAK_AT, 0.45),
        _a(CUSTOM_SHORT_AT, 0.25),
        _a(OKTA_ORG_AT, 0.2),
        _a(ENTRA_AT, 0.1),
    ),
    rt_public=(
        _a(KEYCLOAK_SSO_RT, 0.45),
        _a(ENTRA_SPA_RT, 0.3),
        _a(OFFLINE_30D_RT, 0.2),
        _a(NINETY_DAY_RT, 0.05),
    ),
    rt_confidential=(
        _a(KEYCLOAK_SSO_RT, 0.3),
        _a(OFFLINE_30D_RT, 0.5),
        _a(NINETY_DAY_RT, 0.2),
    ),
    rotation_public=0.35,
    rotation_confidential=0.05,
    audience_restricted=0.8,
    opaque_share=0.35,
    introspect_jwt=0.25,
    terminating_external=0.7,
    terminating_internal=0.6,
    forward_cert_share=0.85,
    dpop_presets=_m(tight=0.6, medium=0.35, loose=0.05),
    jti_cache_mix=_m(none=0.1, per_instance=0.35, shared=0.55),
    nonce_share=0.45,
    forwards_token=0.4,
    authorization_servers=(
        AuthorizationServerProfile(
            "as-fapi",
            KEYCLOAK_26_4 + " (FAPI 2.0 client policies)",
            issues_dpop=True,
            issues_mtls=True,
            binds_refresh_tokens=True,
            supports_token_exchange=True,
            client_kind_weight=_ALL_KINDS,
        ),
        AuthorizationServerProfile(
            "as-legacy",
            "in-house OAuth 2.0 server (legacy)",
            issues_dpop=False,
            issues_mtls=False,
            binds_refresh_tokens=False,
            supports_token_exchange=False,
            client_kind_weight=_m(
                web_backend=0.35, service=0.3, batch_job=0.6, cli_tool=0.5, partner_integrator=0.1
            ),
        ),
    ),
    token_exchange_share=0.5,
)

PUBLIC_SECTOR = Profile(
    name="public_sector",
    title="Public-sector agency",
    description=(
        "A government agency standardised on Microsoft Entra ID: access tokens of 60-90 min "
        "(mean 75 min) and 90-day refresh tokens, 24 h for SPAs [S, brief §1.3]. Many legacy "
        "server-rendered web backends and batch jobs, few partner integrations, internal "
        "services behind WAFs and load balancers that terminate TLS (90% of external paths) "
        "[A6]. Sender-constraining is rare and mostly unenforced; DPoP support in resource "
        "servers is scarce and loose where present (300 s windows, panva/Auth0 .NET) [S "
        "presets, A shares]. Static refresh tokens are common [A]. Nearly every client is "
        "registered in Entra ID, which issues no DPoP-bound tokens and no certificate-bound "
        "ones outside a preview, and whose on-behalf-of flow is not RFC 8693 [S, ecosystem "
        "§2.2]; a small Keycloak 26.4 realm for citizen-facing apps and partners issues both "
        "and hosts the few sender-constrained clients [A]."
    ),
    client_kind_mix=_m(
        browser_spa=0.14,
        mobile_app=0.06,
        web_backend=0.28,
        service=0.24,
        batch_job=0.16,
        ai_agent=0.03,
        partner_integrator=0.05,
        cli_tool=0.04,
    ),
    environment_mix=_m(prod=0.7, staging=0.15, dev=0.15),
    flows_per_client=2.5,
    service_scale=0.9,
    mean_fanout=1.6,
    leaf_share=0.3,
    internet_facing_share=0.4,
    sensitivity_shift=0.3,
    supports_mtls=0.12,
    supports_dpop=0.08,
    bearer_disabled=0.0,
    webcrypto_share=0.3,
    mtls_adoption=_m(
        web_backend=0.08,
        service=0.12,
        batch_job=0.05,
        ai_agent=0.02,
        partner_integrator=0.2,
        mobile_app=0.0,
        cli_tool=0.0,
    ),
    dpop_adoption=_m(
        browser_spa=0.08,
        mobile_app=0.1,
        web_backend=0.03,
        service=0.03,
        batch_job=0.0,
        ai_agent=0.05,
        partner_integrator=0.05,
        cli_tool=0.05,
    ),
    bearer_fallback=0.35,
    enforcement=_m(mtls=0.6, dpop=0.5),
    at_human=(
        _a(ENTRA_AT, 0.8),
        _a(OKTA_ORG_AT, 0.1),
        _a(KEYCLOAK_AT, 0.1),
    ),
    at_workload=(
        _a(ENTRA_AT, 0.75),
        _a(OKTA_ORG_AT, 0.15),
        _a(AUTH0_AT, 0.1),
    ),
    rt_public=(
        _a(ENTRA_SPA_RT, 0.6),
        _a(NINETY_DAY_RT, 0.4),
    ),
    rt_confidential=(
        _a(NINETY_DAY_RT, 0.85),
        _a(OFFLINE_30D_RT, 0.15),
    ),
    rotation_public=0.5,
    rotation_confidential=0.1,
    audience_restricted=0.4,
    opaque_share=0.05,
    introspect_jwt=0.05,
    terminating_external=0.9,
    terminating_internal=0.6,
    forward_cert_share=0.5,
    dpop_presets=_m(tight=0.1, medium=0.3, loose=0.6),
    jti_cache_mix=_m(none=0.5, per_instance=0.4, shared=0.1),
    nonce_share=0.05,
    forwards_token=0.55,
    authorization_servers=(
        AuthorizationServerProfile(
            "as-entra",
            ENTRA_ID,
            issues_dpop=False,
            issues_mtls=False,
            binds_refresh_tokens=False,
            supports_token_exchange=False,
            client_kind_weight=_ALL_KINDS,
        ),
        AuthorizationServerProfile(
            "as-citizen",
            KEYCLOAK_26_4,
            issues_dpop=True,
            issues_mtls=True,
            binds_refresh_tokens=True,
            supports_token_exchange=True,
            client_kind_weight=_m(
                browser_spa=0.3,
                mobile_app=0.5,
                partner_integrator=0.3,
                web_backend=0.05,
                service=0.05,
                ai_agent=0.1,
            ),
        ),
    ),
    token_exchange_share=0.2,
)

#: Profiles by name; ``generate_inventory(profile=...)`` accepts any key.
PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (SAAS, BANK, PUBLIC_SECTOR)})


def get_profile(profile: str | Profile) -> Profile:
    """The profile called ``profile`` (or ``profile`` itself); ValueError naming the choices."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(
            f"unknown profile {profile!r}; choose one of {', '.join(sorted(PROFILES))}"
        ) from None
