"""Column specifications for flow inventories and reference tables: the single source of truth.

The loader (:mod:`tokenlib.analysis.inventory`), the data dictionary (``data/README.md``) and the
Frictionless Data Package (``data/datapackage.json``) are all derived from the specs below, so a
column is described once. Names and values of the ``flows``, ``services`` and
``authorization_servers`` tables are the contract other modules code against: add columns, never
rename.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tokenlib.binding import Binding

SCHEMA_VERSION = "1.0"

Kind = Literal["string", "category", "boolean", "integer", "number", "date"]

#: pandas dtype each logical kind loads as.
PANDAS_DTYPES: Mapping[str, str] = {
    "string": "str",
    "category": "category",
    "boolean": "bool",
    "integer": "int64",
    "number": "float64",
    "date": "str",
}

CLIENT_KINDS = (
    "browser_spa",
    "mobile_app",
    "web_backend",
    "service",
    "batch_job",
    "ai_agent",
    "partner_integrator",
    "cli_tool",
)
ACTORS = ("human", "workload")
CLIENT_TYPES = ("public", "confidential")
ENVIRONMENTS = ("prod", "staging", "dev")
GRANT_TYPES = (
    "authorization_code",
    "client_credentials",
    "device_code",
    "token_exchange",
    "jwt_bearer",
)
HOP_KINDS = (
    "cdn",
    "waf",
    "api_gateway",
    "load_balancer",
    "service_mesh_sidecar",
    "reverse_proxy",
)
HOP_MODES = ("passthrough", "terminate", "terminate_forward_cert")
KEY_STORAGES = ("none", "software", "webcrypto_non_extractable", "platform_keystore", "hsm_tpm")
CERT_MANAGEMENT = ("none", "manual", "automated_pki", "spiffe")
REFRESH_TOKENS = ("none", "static", "rotating")
TOKEN_FORMATS = ("jwt", "opaque")
#: The ``binding`` column's values: the plain :class:`tokenlib.binding.Binding` values an
#: inventory records (``dpop+mtls`` is not an inventory value).
BINDINGS: tuple[str, ...] = tuple(b.value for b in (Binding.BEARER, Binding.MTLS, Binding.DPOP))
EXPOSURE_CHANNELS = (
    "app_logs",
    "proxy_logs",
    "browser_storage",
    "har_files",
    "config_files",
    "ci_secrets",
    "crash_dumps",
    "integrator_storage",
)
JTI_CACHES = ("none", "per_instance", "shared")
CLIENT_PATHS = ("browser", "mobile", "gateway_terminated", "backend_e2e")
STATUSES = ("sourced", "derived", "assumption")

#: Client kinds whose flows act for a person; used for the ``actor`` default.
HUMAN_KINDS = ("browser_spa", "mobile_app", "web_backend", "cli_tool")
#: Client kinds that cannot keep a secret (RFC 6749 §2.1, RFC 8252 §8.4).
PUBLIC_KINDS = ("browser_spa", "mobile_app", "cli_tool")

#: Default ``grant_type`` per client kind when the column is missing or empty.
DEFAULT_GRANT_BY_KIND: Mapping[str, str] = {
    "browser_spa": "authorization_code",
    "mobile_app": "authorization_code",
    "web_backend": "authorization_code",
    "service": "client_credentials",
    "batch_job": "client_credentials",
    "ai_agent": "token_exchange",
    "partner_integrator": "authorization_code",
    "cli_tool": "device_code",
}

#: Default ``exposure_channels`` per client kind (where tokens of that kind typically leak).
DEFAULT_CHANNELS_BY_KIND: Mapping[str, str] = {
    "browser_spa": "browser_storage;har_files",
    "mobile_app": "crash_dumps;app_logs",
    "web_backend": "app_logs;proxy_logs",
    "service": "app_logs;config_files",
    "batch_job": "config_files;ci_secrets",
    "ai_agent": "app_logs;config_files",
    "partner_integrator": "integrator_storage",
    "cli_tool": "config_files",
}

_HOP = f"({'|'.join(HOP_KINDS)}):({'|'.join(HOP_MODES)})"
#: Regular expression a ``path`` value must match (empty = direct connection).
PATH_PATTERN = f"^$|^{_HOP}(>{_HOP})*$"

#: ``flows.authorization_server`` when the column is missing or empty.
DEFAULT_AS_ID = "as-default"


@dataclass(frozen=True, slots=True)
class Column:
    """One column: logical type, whether it must be present, its default and constraints.

    ``default`` is the value filled for a missing column or an empty cell of an optional
    column; ``default_doc`` says it in words when the default depends on other columns.
    ``list_sep`` marks columns holding a separated list (each item checked against
    ``allowed`` when given). ``value_aliases`` maps accepted spellings to canonical values.
    ``empty_is_value``: an empty cell is a real value (an empty list, a direct path); only a
    missing column gets the default.
    """

    name: str
    kind: Kind
    meaning: str
    required: bool = False
    default: Any = None
    default_doc: str = ""
    allowed: tuple[str, ...] = ()
    minimum: int | float | None = None
    maximum: int | float | None = None
    unit: str = ""
    aliases: tuple[str, ...] = ()
    value_aliases: tuple[tuple[str, str], ...] = ()
    unique: bool = False
    list_sep: str | None = None
    nullable: bool = False
    pattern: str = ""
    empty_is_value: bool = False

    @property
    def pandas_dtype(self) -> str:
        """The dtype the loader returns for this column."""
        return PANDAS_DTYPES[self.kind]

    def default_text(self) -> str:
        """The default as documented in the data dictionary."""
        if self.required:
            return "(required)"
        if self.default_doc:
            return self.default_doc
        if self.default is None:
            return "(empty)"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if self.default == "":
            return '"" (empty)'
        return str(self.default)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table: its columns, primary key and description (used for docs and datapackage)."""

    name: str
    path: str
    title: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def column(self, name: str) -> Column:
        """The column called ``name`` (KeyError if absent)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical column names in order."""
        return tuple(c.name for c in self.columns)

    def alias_map(self) -> dict[str, str]:
        """Lower-case name or alias -> canonical column name."""
        out: dict[str, str] = {}
        for col in self.columns:
            out[col.name.lower()] = col.name
            for alias in col.aliases:
                out[alias.lower()] = col.name
        return out


def _va(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


FLOW_COLUMNS: tuple[Column, ...] = (
    Column(
        "flow_id",
        "string",
        "Unique id of the flow: one client calling one resource server along one path.",
        default_doc='"row-<file row number>" when missing or empty',
        unique=True,
        aliases=("id", "flow"),
    ),
    Column(
        "client_id",
        "string",
        "OAuth client_id of the calling client; several flows may share one client.",
        required=True,
        aliases=("client", "clientid", "app_id", "application_id"),
    ),
    Column(
        "client_kind",
        "category",
        "What kind of software the client is.",
        required=True,
        allowed=CLIENT_KINDS,
        aliases=("kind", "client_category", "app_type"),
        value_aliases=_va(
            spa="browser_spa",
            browser="browser_spa",
            mobile="mobile_app",
            native="mobile_app",
            native_app="mobile_app",
            web="web_backend",
            web_app="web_backend",
            backend="web_backend",
            m2m="service",
            microservice="service",
            batch="batch_job",
            job="batch_job",
            agent="ai_agent",
            partner="partner_integrator",
            integrator="partner_integrator",
            integration="partner_integrator",
            cli="cli_tool",
        ),
    ),
    Column(
        "actor",
        "category",
        "Whether tokens of the flow act for a person (human) or for software (workload).",
        allowed=ACTORS,
        default_doc="human for browser_spa, mobile_app, web_backend, cli_tool; else workload",
        aliases=("principal", "subject_type"),
        value_aliases=_va(user="human", person="human", machine="workload", service="workload"),
    ),
    Column(
        "client_type",
        "category",
        "OAuth client type (RFC 6749 §2.1): can the client keep a credential confidential.",
        allowed=CLIENT_TYPES,
        default_doc="public for browser_spa, mobile_app, cli_tool; else confidential",
        aliases=("confidentiality",),
    ),
    Column(
        "environment",
        "category",
        "Deployment environment of the flow.",
        default="prod",
        allowed=ENVIRONMENTS,
        aliases=("env", "stage"),
        value_aliases=_va(production="prod", development="dev", test="dev", stg="staging"),
    ),
    Column(
        "grant_type",
        "category",
        "Grant the client uses to obtain the access token.",
        allowed=GRANT_TYPES,
        default_doc="by client_kind: authorization_code for browser_spa, mobile_app, web_backend, "
        "partner_integrator; client_credentials for service, batch_job; token_exchange for "
        "ai_agent; device_code for cli_tool",
        aliases=("grant", "flow_type"),
        value_aliases=_va(
            code="authorization_code",
            auth_code="authorization_code",
            authorization_code_pkce="authorization_code",
            device="device_code",
            client_creds="client_credentials",
            **{
                "urn_ietf_params_oauth_grant_type_device_code": "device_code",
                "urn_ietf_params_oauth_grant_type_token_exchange": "token_exchange",
                "urn_ietf_params_oauth_grant_type_jwt_bearer": "jwt_bearer",
            },
        ),
    ),
    Column(
        "resource_server",
        "string",
        "service_id (in the services table) of the resource server the token is sent to.",
        required=True,
        aliases=("rs", "resource", "api", "service", "service_id", "audience"),
    ),
    Column(
        "audience_restricted",
        "boolean",
        "Token carries an aud naming only this RS (or a small set), RFC 9700 §2.3.",
        default=False,
        aliases=("aud_restricted", "audience_restriction"),
    ),
    Column(
        "scopes",
        "string",
        "Space-separated OAuth scopes granted to the token (RFC 6749 §3.3).",
        default="",
        aliases=("scope",),
        list_sep=" ",
        empty_is_value=True,
    ),
    Column(
        "path",
        "string",
        "Ordered hops between client and RS as 'kind:mode>kind:mode'; empty = direct TLS. "
        f"kind in {', '.join(HOP_KINDS)}; mode in {', '.join(HOP_MODES)} "
        "(terminate_forward_cert = terminate and forward the client certificate, RFC 9440).",
        default="",
        aliases=("request_path", "hops", "network_path"),
        pattern=PATH_PATTERN,
        empty_is_value=True,
    ),
    Column(
        "key_storage",
        "category",
        "Where the client can hold a private key for proof of possession.",
        allowed=KEY_STORAGES,
        default_doc="none if binding is bearer, else software",
        aliases=("key_store", "keystore"),
        value_aliases=_va(
            webcrypto="webcrypto_non_extractable",
            keystore="platform_keystore",
            keychain="platform_keystore",
            secure_enclave="platform_keystore",
            hsm="hsm_tpm",
            tpm="hsm_tpm",
        ),
    ),
    Column(
        "cert_management",
        "category",
        "Maturity of client-certificate issuance and rotation for the client.",
        allowed=CERT_MANAGEMENT,
        default_doc="manual if binding is mtls, else none",
        aliases=("cert_mgmt", "pki"),
        value_aliases=_va(pki="automated_pki", automated="automated_pki", spire="spiffe"),
    ),
    Column(
        "access_token_lifetime_s",
        "integer",
        "Access-token lifetime (exp - iat).",
        default=3600,
        default_doc="3600 (1 h: Okta org AS, Google, Akamai defaults)",
        minimum=1,
        unit="seconds",
        aliases=("at_lifetime", "access_token_ttl", "at_ttl", "token_lifetime", "expires_in"),
    ),
    Column(
        "refresh_token",
        "category",
        "Whether a refresh token is issued and whether it rotates on use (RFC 9700 §4.14).",
        default="none",
        allowed=REFRESH_TOKENS,
        aliases=("rt", "refresh", "refresh_token_type"),
        value_aliases=_va(
            no="none", false="none", yes="static", true="static", rotation="rotating"
        ),
    ),
    Column(
        "refresh_token_lifetime_s",
        "integer",
        "Absolute refresh-token lifetime; 0 exactly when refresh_token is none.",
        default_doc="0 if refresh_token is none, else 7776000 (90 d: Entra, Okta org AS)",
        minimum=0,
        unit="seconds",
        aliases=("rt_lifetime", "refresh_token_ttl", "rt_ttl"),
    ),
    Column(
        "token_format",
        "category",
        "Access-token format: self-contained JWT (RFC 9068) or opaque reference.",
        default="jwt",
        allowed=TOKEN_FORMATS,
        aliases=("format", "at_format"),
        value_aliases=_va(reference="opaque", at_jwt="jwt"),
    ),
    Column(
        "rs_introspects",
        "boolean",
        "The RS validates the token by introspection (RFC 7662), so revocation bites early.",
        default=False,
        aliases=("introspection", "introspects"),
    ),
    Column(
        "binding",
        "category",
        "Sender constraint the token carries today.",
        required=True,
        allowed=BINDINGS,
        aliases=("binding_type", "sender_constraint", "token_binding", "pop"),
        value_aliases=_va(
            none=Binding.BEARER.value,
            tls_client_auth=Binding.MTLS.value,
            mutual_tls=Binding.MTLS.value,
            rfc8705=Binding.MTLS.value,
            cnf_x5t_s256=Binding.MTLS.value,
            rfc9449=Binding.DPOP.value,
            cnf_jkt=Binding.DPOP.value,
        ),
    ),
    Column(
        "binding_enforced",
        "boolean",
        "The RS rejects the token without the proof/cert (a DPoP-unaware RS accepts a bound "
        "token as bearer, RFC 9449 §7.2). Always false for bearer.",
        default=False,
        default_doc="false (unknown enforcement is treated as not enforced)",
        aliases=("enforced", "cnf_enforced"),
    ),
    Column(
        "requests_per_day",
        "integer",
        "Requests the flow makes per day.",
        default=1000,
        default_doc="1000 (assumption)",
        minimum=0,
        unit="requests/day",
        aliases=("rpd", "requests", "daily_requests", "volume"),
    ),
    Column(
        "exposure_channels",
        "string",
        "';'-separated places where the token of this flow can end up and be stolen.",
        allowed=EXPOSURE_CHANNELS,
        default_doc="by client_kind: "
        + "; ".join(f"{k}: {v}" for k, v in DEFAULT_CHANNELS_BY_KIND.items()),
        aliases=("exposure", "channels", "leak_channels"),
        list_sep=";",
        empty_is_value=True,
    ),
    Column(
        "forwards_token",
        "boolean",
        "The RS forwards this token to downstream services (see services.downstream).",
        default_doc="true if the resource server's downstream list is non-empty, else false",
        aliases=("forwards", "token_forwarding", "forwarded"),
    ),
    Column(
        "authorization_server",
        "string",
        "as_id (in the authorization_servers table) of the authorization server that issues "
        "this flow's tokens; whether it can issue DPoP- or certificate-bound tokens gates the "
        "flow's bindings (RFC 9449 §5, RFC 8705 §3).",
        default=DEFAULT_AS_ID,
        aliases=("as", "issuer", "idp", "authorization_server_id", "as_id"),
    ),
    Column(
        "token_exchange",
        "boolean",
        "The forwarding resource server exchanges this token at the authorization server (RFC "
        "8693 token exchange) for one scoped to the downstream service instead of forwarding it "
        "as is; meaningful only with forwards_token.",
        default=False,
        aliases=("exchanges_token", "rfc8693", "token_exchanged"),
    ),
)

SERVICE_COLUMNS: tuple[Column, ...] = (
    Column(
        "service_id",
        "string",
        "Id of the resource server; flows.resource_server refers to it.",
        required=True,
        unique=True,
        aliases=("id", "rs", "resource_server", "service", "name"),
    ),
    Column("owner", "string", "Owning team.", default="unknown", aliases=("team",)),
    Column(
        "sensitivity",
        "integer",
        "Data sensitivity of what the service holds, 1 (public) .. 5 (most sensitive).",
        default=3,
        minimum=1,
        maximum=5,
        unit="ordinal 1-5",
        aliases=("data_sensitivity", "criticality", "tier"),
    ),
    Column(
        "internet_facing",
        "boolean",
        "Reachable from the internet (not only from internal networks).",
        default=False,
        aliases=("external", "public"),
    ),
    Column(
        "supports_bearer",
        "boolean",
        "Accepts bearer tokens (RFC 6750).",
        default=True,
        aliases=("bearer",),
    ),
    Column(
        "supports_mtls",
        "boolean",
        "Can verify certificate-bound tokens (RFC 8705 §3).",
        default_doc="true if any flow to it uses mtls (derived services), else false",
        default=False,
        aliases=("mtls",),
    ),
    Column(
        "supports_dpop",
        "boolean",
        "Can verify DPoP-bound tokens and proofs (RFC 9449 §7).",
        default_doc="true if any flow to it uses dpop (derived services), else false",
        default=False,
        aliases=("dpop",),
    ),
    Column(
        "downstream",
        "string",
        "';'-separated service_ids this service calls with forwarded tokens (a DAG).",
        default="",
        aliases=("calls", "downstream_services", "dependencies"),
        list_sep=";",
        empty_is_value=True,
    ),
    Column(
        "instances",
        "integer",
        "Number of instances behind the endpoint (replicas that may not share replay state).",
        default=1,
        minimum=1,
        aliases=("replicas", "nodes"),
    ),
    Column(
        "jti_cache",
        "category",
        "DPoP proof jti replay store (RFC 9449 §11.1): none, one per instance, or shared.",
        default="none",
        allowed=JTI_CACHES,
        aliases=("replay_cache", "jti_store"),
        value_aliases=_va(local="per_instance", in_memory="per_instance", distributed="shared"),
    ),
    Column(
        "requires_nonce",
        "boolean",
        "The service demands server-provided DPoP nonces (RFC 9449 §9).",
        default=False,
        aliases=("nonce", "dpop_nonce"),
    ),
    Column(
        "iat_past_s",
        "integer",
        "How far in the past a DPoP proof iat is accepted.",
        default=60,
        default_doc="60 (medium preset, derived from the dpop_implementations table)",
        minimum=0,
        unit="seconds",
        aliases=("iat_past", "proof_max_age", "past_tolerance_s"),
    ),
    Column(
        "iat_future_s",
        "integer",
        "How far in the future a DPoP proof iat is accepted.",
        default=60,
        default_doc="60 (medium preset, derived from the dpop_implementations table)",
        minimum=0,
        unit="seconds",
        aliases=("iat_future", "clock_skew", "future_tolerance_s"),
    ),
)

AUTHORIZATION_SERVER_COLUMNS: tuple[Column, ...] = (
    Column(
        "as_id",
        "string",
        "Id of the authorization server (issuer); flows.authorization_server refers to it.",
        required=True,
        unique=True,
        aliases=("id", "authorization_server", "as", "issuer", "idp", "name"),
    ),
    Column(
        "product",
        "string",
        'Identity product and version, e.g. "Keycloak 26.4" or "Microsoft Entra ID".',
        default="",
        aliases=("vendor", "software", "idp_product"),
    ),
    Column(
        "issues_dpop",
        "boolean",
        "Issues DPoP-bound access tokens (cnf.jkt) when the client presents a DPoP proof at the "
        "token endpoint (RFC 9449 §5, §6).",
        default=False,
        default_doc="true if any flow of this authorization server uses binding dpop, else false",
        aliases=("dpop", "dpop_bound_access_tokens", "supports_dpop"),
    ),
    Column(
        "issues_mtls",
        "boolean",
        "Issues certificate-bound access tokens (cnf.x5t#S256) to clients that authenticate "
        "with mutual TLS (RFC 8705 §3).",
        default=False,
        default_doc="true if any flow of this authorization server uses binding mtls, else false",
        aliases=(
            "mtls",
            "tls_client_certificate_bound_access_tokens",
            "certificate_bound",
            "supports_mtls",
        ),
    ),
    Column(
        "binds_refresh_tokens",
        "boolean",
        "Binds refresh tokens issued to public clients to the client's DPoP key or certificate "
        "(RFC 9449 §5, RFC 8705 §4), so a stolen refresh token is useless without the key.",
        default=False,
        default_doc="equal to issues_dpop",
        aliases=("binds_refresh_token", "refresh_token_binding", "rt_binding"),
    ),
    Column(
        "supports_token_exchange",
        "boolean",
        "The token endpoint supports OAuth 2.0 Token Exchange (RFC 8693 §2), so a forwarding "
        "resource server can swap a token for one scoped to the downstream service.",
        default=False,
        default_doc="true if any flow of this authorization server has token_exchange, else false",
        aliases=("token_exchange", "rfc8693", "supports_rfc8693"),
    ),
)

FLOWS = TableSpec(
    "flows",
    "flows.csv",
    "OAuth flows",
    "One row per OAuth flow: a client calling one resource server along one request path.",
    FLOW_COLUMNS,
    primary_key=("flow_id",),
)
SERVICES = TableSpec(
    "services",
    "services.csv",
    "Resource servers",
    "One row per resource server: sensitivity, supported bindings, replay defences and the "
    "downstream services it calls with forwarded tokens (the blast-radius graph).",
    SERVICE_COLUMNS,
    primary_key=("service_id",),
)
AUTHORIZATION_SERVERS = TableSpec(
    "authorization_servers",
    "authorization_servers.csv",
    "Authorization servers",
    "One row per authorization server (token issuer): which sender-constrained tokens it can "
    "issue (DPoP, RFC 9449; certificate-bound, RFC 8705), whether it binds refresh tokens and "
    "whether it supports token exchange (RFC 8693). Optional: when the file is missing, one row "
    "per distinct flows.authorization_server is derived from the flows.",
    AUTHORIZATION_SERVER_COLUMNS,
    primary_key=("as_id",),
)


# --- reference tables -------------------------------------------------------------------------

_SOURCE = Column(
    "source",
    "string",
    "Where the value comes from (document, file @ commit, or the derivation).",
    required=True,
)
_STATUS = Column(
    "status",
    "category",
    "sourced (stated by the source), derived (arithmetic/logic on sourced facts) or "
    "assumption (unsourced, tunable).",
    required=True,
    allowed=STATUSES,
)

REFERENCE_TABLES: Mapping[str, TableSpec] = {
    "token_lifetimes": TableSpec(
        "token_lifetimes",
        "reference/token_lifetimes.csv",
        "Default token lifetimes of identity products",
        "Default access- and refresh-token lifetimes of major identity products; the generator "
        "draws lifetimes from these anchors.",
        (
            Column("row_id", "string", "Stable id of the row.", required=True, unique=True),
            Column("product", "string", "Identity product or profile.", required=True),
            Column("setting", "string", "Product setting or token kind the value describes."),
            Column(
                "token",
                "category",
                "Which token the value applies to.",
                required=True,
                allowed=("access", "refresh", "refresh_idle", "session", "other"),
            ),
            Column(
                "value_s",
                "integer",
                "The lifetime in seconds; empty when the product has no fixed value.",
                unit="seconds",
                minimum=0,
                nullable=True,
            ),
            Column("note", "string", "Conditions and caveats."),
            _SOURCE,
            _STATUS,
        ),
        primary_key=("row_id",),
    ),
    "dpop_implementations": TableSpec(
        "dpop_implementations",
        "reference/dpop_implementations.csv",
        "DPoP proof acceptance in implementations",
        "DPoP iat acceptance windows, jti replay stores and nonce behaviour of major "
        "implementations, plus the tight/medium/loose presets the generator draws from.",
        (
            Column(
                "implementation", "string", "Implementation or preset.", required=True, unique=True
            ),
            Column("where", "string", "File, class or document the values come from."),
            Column(
                "iat_past_s",
                "integer",
                "Accepted proof age.",
                unit="seconds",
                minimum=0,
                nullable=True,
            ),
            Column(
                "iat_future_s",
                "integer",
                "Accepted future iat.",
                unit="seconds",
                minimum=0,
                nullable=True,
            ),
            Column(
                "jti_cache",
                "category",
                "jti replay store.",
                allowed=("none", "per_instance", "shared", "optional", "unknown"),
            ),
            Column(
                "nonce",
                "category",
                "Server nonce support.",
                allowed=("none", "optional", "required", "unknown"),
            ),
            Column(
                "nonce_lifetime_s",
                "integer",
                "Lifetime of a served nonce.",
                unit="seconds",
                minimum=0,
                nullable=True,
            ),
            Column(
                "preset",
                "category",
                "Which generator preset the row defines or falls in.",
                allowed=("tight", "medium", "loose", ""),
            ),
            Column("note", "string", "Details."),
            _SOURCE,
            _STATUS,
        ),
        primary_key=("implementation",),
    ),
    "token_binding_timeline": TableSpec(
        "token_binding_timeline",
        "reference/token_binding_timeline.csv",
        "Token Binding timeline",
        "What shipped and what was removed for Token Binding (RFC 8471-8473) in browsers, TLS "
        "stacks, proxies and drafts. Chrome only ever had it behind a flag; Microsoft Edge 130 "
        "(2024-10-17) removed the last browser support.",
        (
            Column("row_id", "string", "Stable id of the row.", required=True, unique=True),
            Column("date", "string", "ISO date, month (YYYY-MM) or year; empty if unknown."),
            Column(
                "date_precision",
                "category",
                "Precision of date.",
                allowed=("day", "month", "year", "range", "unknown"),
                required=True,
            ),
            Column(
                "component",
                "category",
                "What kind of thing the event concerns.",
                allowed=(
                    "browser",
                    "os",
                    "tls_stack",
                    "proxy",
                    "standard",
                    "draft",
                    "webauthn",
                    "claim",
                ),
                required=True,
            ),
            Column("actor", "string", "Vendor, product or body.", required=True),
            Column(
                "event",
                "category",
                "What happened.",
                allowed=(
                    "intent",
                    "implemented_flag",
                    "implemented_module",
                    "shipped",
                    "announced_deprecation",
                    "removed",
                    "declined",
                    "published",
                    "expired",
                    "never_implemented",
                    "successor",
                    "correction",
                ),
                required=True,
            ),
            Column("description", "string", "The event in words.", required=True),
            _SOURCE,
            _STATUS,
        ),
        primary_key=("row_id",),
    ),
    "breaches": TableSpec(
        "breaches",
        "reference/breaches.csv",
        "Token-theft breach anchors",
        "Public incidents where tokens or keys were stolen and replayed: artefact, how it was "
        "stolen and replayed, time to detection, and whether sender-constraining would help.",
        (
            Column("incident_id", "string", "Stable id.", required=True, unique=True),
            Column("incident", "string", "Name of the incident.", required=True),
            Column("start", "string", "First attacker activity (ISO date or month)."),
            Column("detected", "string", "Detection date (ISO date or month)."),
            Column(
                "detection_delay_days",
                "integer",
                "Days from first activity to detection.",
                unit="days",
                minimum=0,
                nullable=True,
            ),
            Column("artefact", "string", "What was stolen.", required=True),
            Column(
                "artefact_kind",
                "category",
                "Class of the stolen artefact.",
                allowed=(
                    "oauth_user_token",
                    "session_token",
                    "signing_key",
                    "api_token",
                    "oauth_integration_token",
                ),
                required=True,
            ),
            Column("how_stolen", "string", "How it was obtained."),
            Column("how_replayed", "string", "How it was used."),
            Column("exposure_channel", "string", "Matching flows.exposure_channels value(s)."),
            Column(
                "sender_constraint_helps",
                "category",
                "Would a sender-constrained token have stopped the replay.",
                allowed=("yes", "partly", "no"),
                required=True,
            ),
            Column("note", "string", "Caveats."),
            _SOURCE,
            _STATUS,
        ),
        primary_key=("incident_id",),
    ),
}

#: Reference tables owned by the models (documented in data/reference/MODEL_PARAMETERS.md).
MODEL_REFERENCE_TABLES = ("model_parameters", "component_support", "adoption_timeline")


# --- Frictionless Table Schema ----------------------------------------------------------------

_FRICTIONLESS_TYPE = {
    "string": "string",
    "category": "string",
    "boolean": "boolean",
    "integer": "integer",
    "number": "number",
    "date": "string",
}


def frictionless_field(col: Column) -> dict[str, Any]:
    """The Frictionless Table Schema field descriptor for ``col``."""
    field: dict[str, Any] = {
        "name": col.name,
        "type": _FRICTIONLESS_TYPE[col.kind],
        "description": col.meaning,
    }
    if col.kind == "boolean":
        field["trueValues"] = ["true", "True", "TRUE", "1"]
        field["falseValues"] = ["false", "False", "FALSE", "0"]
    constraints: dict[str, Any] = {}
    if col.required:
        constraints["required"] = True
    if col.unique:
        constraints["unique"] = True
    if col.allowed and col.list_sep is None:
        constraints["enum"] = list(col.allowed)
    if col.minimum is not None:
        constraints["minimum"] = col.minimum
    if col.maximum is not None:
        constraints["maximum"] = col.maximum
    if col.allowed and col.list_sep is not None:
        item = "|".join(col.allowed)
        sep = "\\" + col.list_sep if col.list_sep in ";|" else col.list_sep
        constraints["pattern"] = f"^$|^({item})({sep}({item}))*$"
    if col.pattern:
        constraints["pattern"] = col.pattern
    if constraints:
        field["constraints"] = constraints
    if col.unit:
        field["unit"] = col.unit
    if not col.required:
        field["default"] = col.default_text()
    if col.aliases:
        field["aliases"] = list(col.aliases)
    return field


def table_schema(spec: TableSpec) -> dict[str, Any]:
    """Frictionless Table Schema for ``spec`` (without foreign keys)."""
    schema: dict[str, Any] = {
        "fields": [frictionless_field(c) for c in spec.columns],
        "missingValues": [""],
    }
    if spec.primary_key:
        schema["primaryKey"] = list(spec.primary_key)
    return schema
