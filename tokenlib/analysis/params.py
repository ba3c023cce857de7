"""Named, tunable parameters of the replay, blast-radius and deployability models.

Every number the models use lives in ``data/reference/model_parameters.csv`` with an ``id``
(``A*`` = assumption from the domain brief's register §6 or added by the models, ``S*`` =
sourced, ``D*`` = derived), a plausible ``low``/``high`` range for sensitivity analysis, a unit,
a ``status`` (``sourced`` / ``derived`` / ``assumption``) and a ``source``.
``data/reference/MODEL_PARAMETERS.md`` documents every row; its parameter section is rendered
by :func:`parameter_markdown` (``python -m tokenlib.analysis.params`` rewrites it).
``ModelParameters`` is the frozen value object the models take;
``ModelParameters.from_reference()`` loads it and ``.replace(**overrides)`` returns a tuned copy
(values outside ``[low, high]`` are allowed, a sweep may want them, but must be finite and
non-negative).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "LABELS",
    "STATUSES",
    "CryptoCosts",
    "ModelParameters",
    "ParameterError",
    "ParameterSpec",
    "load_crypto_costs",
    "parameter_label",
    "parameter_markdown",
    "parameter_specs",
    "parameter_table",
    "reference_dir",
    "write_parameter_docs",
]

STATUSES = ("sourced", "derived", "assumption")
_COLUMNS = ("id", "name", "value", "low", "high", "unit", "status", "source", "description")


class ParameterError(ValueError):
    """A parameter file or override is invalid; the message names the parameter and the file.

    ``code`` is a stable machine-readable reason (``missing_column``, ``not_found``,
    ``duplicate``, ``unknown_name``, ``bad_status``, ``no_source``, ``not_a_number``,
    ``out_of_range``, ``missing_parameter``, ``unknown_override``, ``invalid_value``).
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def reference_dir() -> Path:
    """Directory holding the bundled reference tables (``data/reference``)."""
    return Path(__file__).resolve().parents[2] / "data" / "reference"


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    """One row of ``model_parameters.csv``: metadata of a parameter."""

    id: str
    name: str
    value: float
    low: float
    high: float
    unit: str
    status: str
    source: str
    description: str


@dataclass(frozen=True, slots=True)
class ModelParameters:
    """All model parameters as plain floats (defaults mirror the bundled CSV).

    The register ids are given in the comments; ``parameter_specs()`` holds the metadata.
    """

    rho_jwt: float = 0.2  # A1a
    rho_introspection: float = 0.9  # A1b
    e_rs: float = 0.9  # A2
    p_inj: float = 0.01  # A3
    p_key_non_extractable: float = 0.05  # A4a
    p_key_software: float = 0.8  # A4b
    p_key_hsm: float = 0.01  # A4c
    p_key_platform: float = 0.05  # A4d
    pi_persist: float = 0.3  # A5
    share_terminating: float = 0.7  # A6
    rt_absolute_default_s: float = 2_592_000.0  # A7
    proof_leak_delay_max_s: float = 60.0  # A8
    as_session_max_s: float = 36_000.0  # A9
    q_secret: float = 0.1  # A10
    p_attacker_first: float = 0.1  # A11
    p_new_flow: float = 0.5  # A12
    p_client_cred: float = 0.3  # A13
    cert_lifetime_manual_s: float = 31_536_000.0  # A14a
    cert_lifetime_automated_s: float = 7_776_000.0  # A14b
    cert_lifetime_spiffe_s: float = 3_600.0  # A14c
    lateral_hops: float = 2.0  # A15
    traffic_exponent: float = 0.5  # A16
    w_at_rest_copy: float = 0.4  # A17a
    w_in_transit_token_and_proof: float = 0.2  # A17b
    w_live_client_compromise: float = 0.2  # A17c
    w_key_exfiltration: float = 0.1  # A17d
    w_refresh_token_theft: float = 0.1  # A17e
    w_issuer_key_compromise: float = 0.0  # A17f
    cost_client_change_days: float = 5.0  # A18a
    cost_rs_change_days: float = 3.0  # A18b
    cost_hop_change_days: float = 2.0  # A18c
    cost_nonce_days: float = 1.0  # A18d
    engineer_day_usd: float = 800.0  # A18e
    cpu_usd_per_core_hour: float = 0.05  # A18f
    horizon_days: float = 365.0  # A18g
    dpop_sign_cost_s: float = 1e-4  # A19a
    dpop_verify_cost_s: float = 1.5e-4  # A19b
    mtls_request_cost_s: float = 0.0  # A19c
    nonce_lifetime_threshold_s: float = 3_600.0  # A20
    min_relative_reduction: float = 0.05  # A21
    min_p_deploy: float = 0.25  # A22
    ttu_fast_share: float = 0.5  # A23a
    ttu_fast_mean_s: float = 60.0  # A23b
    ttu_slow_mean_s: float = 86_400.0  # A23c
    scope_factor_read: float = 0.5  # A24a
    scope_factor_write: float = 1.0  # A24b
    scope_factor_admin: float = 2.0  # A24c
    env_factor_staging: float = 0.3  # A25a
    env_factor_dev: float = 0.1  # A25b
    p_store_no_channel: float = 0.1  # A26
    cost_lifetime_days: float = 0.5  # A27a
    cost_rt_rotation_days: float = 1.0  # A27b
    cost_audience_days: float = 2.0  # A27c
    cost_token_exchange_days: float = 5.0  # A27d
    cost_key_storage_days: float = 3.0  # A27e
    cost_bff_days: float = 15.0  # A27f
    cost_enforcement_test_days: float = 0.5  # A27g
    short_lifetime_s: float = 300.0  # A28
    revocation_delay_s: float = 432_000.0  # A29 (was S1: an anchored assumption)
    issuer_key_window_s: float = 2_764_800.0  # S2
    dpop_iat_past_default_s: float = 60.0  # D1
    nonce_lifetime_s: float = 180.0  # D3
    source: str = field(default="defaults", compare=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ParameterError(
                    f"parameter {f.name!r} must be a number, got {value!r}", code="invalid_value"
                )
            if not math.isfinite(value) or value < 0:
                raise ParameterError(
                    f"parameter {f.name!r} must be finite and >= 0, got {value!r}",
                    code="invalid_value",
                )
            object.__setattr__(self, f.name, float(value))
        for name in _PROBABILITIES:
            if getattr(self, name) > 1.0:
                raise ParameterError(
                    f"parameter {name!r} is a probability, got {getattr(self, name)}",
                    code="invalid_value",
                )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Names of the numeric parameters (the CSV ``name`` column)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "source")

    @classmethod
    def from_reference(cls, path: str | os.PathLike[str] | None = None) -> ModelParameters:
        """Load values from ``model_parameters.csv`` (bundled copy by default).

        The measured DPoP sign/verify costs from ``benchmarks/results/dpop.json`` are not merged
        here; use ``with_measured_costs()`` for that, so loading stays deterministic.
        """
        specs = parameter_specs(path)
        values = {s.name: s.value for s in specs}
        return cls(**values, source=str(path) if path is not None else "reference")

    def replace(self, **overrides: float) -> ModelParameters:
        """Return a copy with some values changed; unknown names raise ``ParameterError``."""
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise ParameterError(
                f"unknown model parameter(s): {', '.join(unknown)}", code="unknown_override"
            )
        tag = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        return dataclasses.replace(self, **overrides, source=f"{self.source}+{tag}")

    def with_measured_costs(self, costs: CryptoCosts | None = None) -> ModelParameters:
        """Copy with DPoP sign/verify costs from tokenlib's own benchmark when available."""
        c = load_crypto_costs() if costs is None else costs
        if c.status != "sourced":
            return self
        return self.replace(dpop_sign_cost_s=c.sign_s, dpop_verify_cost_s=c.verify_s)

    def as_dict(self) -> dict[str, float]:
        """Numeric values by name."""
        return {n: float(getattr(self, n)) for n in self.names()}

    def p_key_for(self, key_storage: str) -> float:
        """``p_key`` (A4) for a ``key_storage`` value of the inventory schema."""
        return {
            "none": self.p_key_software,
            "software": self.p_key_software,
            "webcrypto_non_extractable": self.p_key_non_extractable,
            "platform_keystore": self.p_key_platform,
            "hsm_tpm": self.p_key_hsm,
        }[key_storage]

    def scenario_weight(self, scenario: str) -> float:
        """Relative theft-scenario weight (A17a-f) used by the exposure metric."""
        if scenario.startswith("refresh_token_theft"):
            return self.w_refresh_token_theft
        return float(getattr(self, f"w_{scenario}"))


#: Short human labels of every parameter, for findings and figures (ids stay in brackets).
LABELS: dict[str, str] = {
    "rho_jwt": "revocation reaching a JWT-validating resource server",
    "rho_introspection": "revocation reaching an introspecting resource server",
    "e_rs": "resource servers enforcing the binding",
    "p_inj": "certificate-header injection at a forwarding hop",
    "p_key_non_extractable": "key theft, non-extractable browser key",
    "p_key_software": "key theft, software key",
    "p_key_hsm": "key theft, HSM or TPM key",
    "p_key_platform": "key theft, mobile platform keystore",
    "pi_persist": "thieves defeating refresh-token rotation",
    "share_terminating": "industry share of paths with a TLS-terminating hop",
    "rt_absolute_default_s": "refresh-token lifetime when none is recorded",
    "proof_leak_delay_max_s": "delay before a captured proof reaches the attacker",
    "as_session_max_s": "remaining authorization-server session",
    "q_secret": "credentials found in reachable data",
    "p_attacker_first": "attacker beating the legitimate request",
    "p_new_flow": "browser attacker starting a new login with its own key",
    "p_client_cred": "client credentials stolen with a refresh token",
    "cert_lifetime_manual_s": "certificate lifetime, manual management",
    "cert_lifetime_automated_s": "certificate lifetime, automated PKI",
    "cert_lifetime_spiffe_s": "certificate lifetime, SPIFFE",
    "lateral_hops": "lateral hops followed",
    "traffic_exponent": "weight of traffic volume",
    "w_at_rest_copy": "likelihood of a copy at rest",
    "w_in_transit_token_and_proof": "likelihood of a capture in transit",
    "w_live_client_compromise": "likelihood of a live client compromise",
    "w_key_exfiltration": "likelihood of a credential-store copy",
    "w_refresh_token_theft": "likelihood of refresh-token theft",
    "w_issuer_key_compromise": "likelihood of an issuer-key compromise",
    "cost_client_change_days": "effort to change a client",
    "cost_rs_change_days": "effort to change a resource server",
    "cost_hop_change_days": "effort to reconfigure a hop",
    "cost_nonce_days": "effort to add server nonces",
    "engineer_day_usd": "cost of an engineer-day",
    "cpu_usd_per_core_hour": "cost of a CPU core-hour",
    "horizon_days": "cost horizon",
    "dpop_sign_cost_s": "CPU time to sign a DPoP proof",
    "dpop_verify_cost_s": "CPU time to verify a DPoP proof",
    "mtls_request_cost_s": "extra CPU time per mTLS request",
    "nonce_lifetime_threshold_s": "token lifetime above which nonces are required (policy)",
    "min_relative_reduction": "smallest exposure reduction worth deploying (policy)",
    "min_p_deploy": "smallest deployment probability recommended (policy)",
    "ttu_fast_share": "share of thieves using a token at once",
    "ttu_fast_mean_s": "time to use, automated thieves",
    "ttu_slow_mean_s": "time to use, other thieves",
    "scope_factor_read": "weight of read-only scopes",
    "scope_factor_write": "weight of write scopes",
    "scope_factor_admin": "weight of administrative scopes",
    "env_factor_staging": "weight of staging flows",
    "env_factor_dev": "weight of development flows",
    "p_store_no_channel": "credential store reachable without a leaking channel",
    "cost_lifetime_days": "effort to shorten token lifetimes",
    "cost_rt_rotation_days": "effort to rotate refresh tokens",
    "cost_audience_days": "effort to restrict audiences",
    "cost_token_exchange_days": "effort to exchange tokens at a forwarding service",
    "cost_key_storage_days": "effort to move keys to non-exportable storage",
    "cost_bff_days": "effort to add a backend-for-frontend",
    "cost_enforcement_test_days": "effort to test binding enforcement",
    "short_lifetime_s": "target of the shorter-lifetime control",
    "revocation_delay_s": "delay from theft to revocation",
    "issuer_key_window_s": "window of a stolen issuer key",
    "dpop_iat_past_default_s": "DPoP proof age accepted when none is recorded",
    "nonce_lifetime_s": "lifetime of a server nonce",
}


def parameter_label(name: str) -> str:
    """``"label (id)"`` for a parameter name, e.g. ``"resource servers enforcing the binding
    (A2)"``; the name itself when it is unknown."""
    ids = {spec.name: spec.id for spec in parameter_specs()}
    if name not in ids:
        return name
    return f"{LABELS.get(name, name)} ({ids[name]})"


_PROBABILITIES = (
    "rho_jwt",
    "rho_introspection",
    "e_rs",
    "p_inj",
    "p_key_non_extractable",
    "p_key_software",
    "p_key_hsm",
    "p_key_platform",
    "pi_persist",
    "share_terminating",
    "q_secret",
    "p_attacker_first",
    "p_new_flow",
    "p_client_cred",
    "min_relative_reduction",
    "min_p_deploy",
    "ttu_fast_share",
    "p_store_no_channel",
)


def _number(raw: str, *, column: str, row: int, where: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ParameterError(
            f"{where}: row {row}: column {column!r} is not a number: {raw!r}", code="not_a_number"
        ) from None
    if not math.isfinite(value):
        raise ParameterError(
            f"{where}: row {row}: column {column!r} is not finite: {raw!r}", code="not_a_number"
        )
    return value


@lru_cache(maxsize=8)
def _read_specs(path: str) -> tuple[ParameterSpec, ...]:
    where = path
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise ParameterError(
                    f"{where}: missing column(s): {', '.join(missing)}", code="missing_column"
                )
            rows = list(reader)
    except FileNotFoundError:
        raise ParameterError(f"{where}: parameter file not found", code="not_found") from None
    specs: list[ParameterSpec] = []
    seen_ids: set[str] = set()
    seen_names: set[str] = set()
    known = set(ModelParameters.names())
    for i, r in enumerate(rows, start=2):
        pid, name, status = r["id"].strip(), r["name"].strip(), r["status"].strip()
        if pid in seen_ids or name in seen_names:
            raise ParameterError(
                f"{where}: row {i}: duplicate id or name {pid!r}/{name!r}", code="duplicate"
            )
        if name not in known:
            raise ParameterError(
                f"{where}: row {i}: unknown parameter name {name!r}", code="unknown_name"
            )
        if status not in STATUSES:
            raise ParameterError(
                f"{where}: row {i}: status {status!r} not in {STATUSES}", code="bad_status"
            )
        if not r["source"].strip():
            raise ParameterError(
                f"{where}: row {i}: parameter {name!r} has no source", code="no_source"
            )
        value = _number(r["value"], column="value", row=i, where=where)
        low = _number(r["low"], column="low", row=i, where=where)
        high = _number(r["high"], column="high", row=i, where=where)
        if not low <= value <= high:
            raise ParameterError(
                f"{where}: row {i}: {name!r} needs low <= value <= high", code="out_of_range"
            )
        seen_ids.add(pid)
        seen_names.add(name)
        specs.append(
            ParameterSpec(
                id=pid,
                name=name,
                value=value,
                low=low,
                high=high,
                unit=r["unit"].strip(),
                status=status,
                source=r["source"].strip(),
                description=r["description"].strip(),
            )
        )
    absent = sorted(known - seen_names)
    if absent:
        raise ParameterError(
            f"{where}: parameter(s) missing from the file: {', '.join(absent)}",
            code="missing_parameter",
        )
    return tuple(specs)


def parameter_specs(path: str | os.PathLike[str] | None = None) -> tuple[ParameterSpec, ...]:
    """Validated metadata rows of the parameter file (bundled copy by default)."""
    p = Path(path) if path is not None else reference_dir() / "model_parameters.csv"
    return _read_specs(str(p.resolve()))


def parameter_table(params: ModelParameters | None = None) -> Any:
    """DataFrame of every parameter: metadata plus the value in use (``current``).

    ``overridden`` is True where ``params`` differs from the reference value.
    """
    import pandas as pd

    specs = parameter_specs()
    current = (params or ModelParameters.from_reference()).as_dict()
    df = pd.DataFrame([dataclasses.asdict(s) for s in specs])
    df["current"] = df["name"].map(current).astype(float)
    df["overridden"] = ~(
        (df["current"] - df["value"]).abs() <= 1e-12 * df["value"].abs().clip(lower=1)
    )
    return df


DOCS_BEGIN = "<!-- BEGIN parameters: generated by tokenlib.analysis.params.parameter_markdown -->"
DOCS_END = "<!-- END parameters -->"


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def parameter_markdown(path: str | os.PathLike[str] | None = None) -> str:
    """Markdown table and glossary of every parameter (the generated part of MODEL_PARAMETERS.md).

    One table row per CSV row (id, name, value, low, high, unit, status, source) followed by the
    description of each parameter; ``data/reference/MODEL_PARAMETERS.md`` holds this text
    between :data:`DOCS_BEGIN` and :data:`DOCS_END`, and a test checks that they agree.
    """
    specs = parameter_specs(path)
    lines = [
        "| id | name | value | low | high | unit | status | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in specs:
        lines.append(
            f"| {s.id} | `{s.name}` | {_fmt(s.value)} | {_fmt(s.low)} | {_fmt(s.high)} "
            f"| {_cell(s.unit)} | {s.status} | {_cell(s.source)} |"
        )
    lines += ["", "### What each parameter means", ""]
    for s in specs:
        text = s.description.rstrip(".")
        lines.append(f"- **{s.id} `{s.name}`**: {_cell(text)}.")
    return "\n".join(lines) + "\n"


def write_parameter_docs(doc: str | os.PathLike[str] | None = None) -> bool:
    """Rewrite the generated section of ``MODEL_PARAMETERS.md``; True if the file changed.

    Raises ``ParameterError`` (code ``not_found``) when the file lacks the two marker lines.
    """
    p = Path(doc) if doc is not None else reference_dir() / "MODEL_PARAMETERS.md"
    text = p.read_text(encoding="utf-8")
    start, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if start < 0 or end < start:
        raise ParameterError(f"{p}: generated-section markers not found", code="not_found")
    new = text[: start + len(DOCS_BEGIN)] + "\n" + parameter_markdown() + text[end:]
    if new == text:
        return False
    p.write_text(new, encoding="utf-8")
    return True


@dataclass(frozen=True, slots=True)
class CryptoCosts:
    """Per-request DPoP CPU costs (seconds) and where they came from."""

    sign_s: float
    verify_s: float
    status: str
    source: str


def _find_number(
    obj: Any, words: tuple[str, ...], avoid: tuple[str, ...]
) -> tuple[str, float] | None:
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, Mapping):
            for k, v in node.items():
                key = f"{prefix}.{k}" if prefix else str(k)
                low = key.lower()
                if (
                    isinstance(v, int | float)
                    and not isinstance(v, bool)
                    and all(w in low for w in words)
                    and not any(a in low for a in avoid)
                    and v > 0
                ):
                    return key, float(v)
                stack.append((key, v))
    return None


def _to_seconds(key: str, value: float) -> float:
    k = key.lower()
    if k.endswith(("_ns", "ns_per_op")) or "nanos" in k:
        return value * 1e-9
    if k.endswith(("_us", "us_per_op", "_µs")) or "micro" in k:
        return value * 1e-6
    if k.endswith(("_ms", "ms_per_op")) or "milli" in k:
        return value * 1e-3
    if "per_s" in k or "ops" in k or "per_sec" in k:
        return 1.0 / value
    return value


def load_crypto_costs(path: str | os.PathLike[str] | None = None) -> CryptoCosts:
    """Read DPoP create/verify cost from ``benchmarks/results/dpop.json`` if the DPoP benchmark ran.

    The keys are searched by name (``create``/``sign`` and ``verify``; units from suffixes
    ``_ns``/``_us``/``_ms``/``_s`` or ``ops_per_s``). A missing or unreadable file gives the
    documented defaults A19a/A19b with status ``assumption``.
    """
    p = (
        Path(path)
        if path is not None
        else reference_dir().parents[1] / "benchmarks" / "results" / "dpop.json"
    )
    default = ModelParameters()
    fallback = CryptoCosts(
        default.dpop_sign_cost_s, default.dpop_verify_cost_s, "assumption", "defaults A19a/A19b"
    )
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return fallback
    timings = data.get("timings") if isinstance(data, Mapping) else None
    if isinstance(timings, Mapping) and {"create_proof", "verify_proof"} <= set(timings):
        # tokenlib's own benchmarks/bench_dpop.py layout: timings.<op>.median in ``unit``
        unit = str(data.get("unit", "microseconds")).lower()
        scale = next(
            (f for w, f in (("nano", 1e-9), ("micro", 1e-6), ("milli", 1e-3)) if w in unit), 1.0
        )
        try:
            c = float(timings["create_proof"]["median"]) * scale
            v = float(timings["verify_proof"]["median"]) * scale
        except (KeyError, TypeError, ValueError):
            return fallback
        return CryptoCosts(c, v, "sourced", f"{p.name}: timings.create_proof/verify_proof median")
    avoid = ("ratio", "target", "_vs_")
    sign = _find_number(data, ("create",), ("verify", *avoid)) or _find_number(
        data, ("sign",), ("verify", *avoid)
    )
    verify = _find_number(data, ("verify",), ("cache", "replay", "redis", "nonce", *avoid))
    if sign is None or verify is None:
        return fallback
    return CryptoCosts(
        _to_seconds(*sign), _to_seconds(*verify), "sourced", f"{p.name}: {sign[0]}, {verify[0]}"
    )


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    print("updated" if write_parameter_docs() else "unchanged")
