"""``tokenlib probe``: audit whether a live server really enforces its sender constraint.

Point it at a resource server with one valid DPoP-bound (RFC 9449) or certificate-bound
(RFC 8705) access token and the client's key; it sends the catalogue of checks
(:data:`RS_CHECKS`: Bearer downgrade, every malformed / replayed / stale proof variant of
the FAPI 2.0 conformance suite's DPoP resource-server negatives, server nonces, missing /
foreign / injected client certificates, an unprotected endpoint) and reports per check
passed / failed / not applicable with what the server answered::

    from tokenlib.probe import probe, render_table
    report = probe("https://api.example.com/orders/42", token=at, key="dpop-key.pem",
                   verify="ca.pem")
    print(render_table(report)); report.exit_code  # 1 when a must-level check failed

:func:`probe_token_endpoint` runs the authorization-server checks (:data:`AS_CHECKS`) at a
token endpoint. Outputs: :func:`render_table`, :func:`render_json`, :func:`render_junit`,
:func:`render_html`. Loopback-safe by design: a few dozen requests at a bounded rate, no
redirects, nothing sent to any origin but the target's.
"""

from __future__ import annotations

from tokenlib.probe.build import PlannedRequest
from tokenlib.probe.catalogue import AS_CHECKS, CHECKS, RS_CHECKS, Check, check_by_id
from tokenlib.probe.report import (
    render_html,
    render_json,
    render_junit,
    render_table,
    write_report,
)
from tokenlib.probe.runner import (
    MAX_REQUESTS,
    CheckResult,
    ProbeInputError,
    ProbeReport,
    plan,
    probe,
    probe_token_endpoint,
)

__all__ = [
    "AS_CHECKS",
    "CHECKS",
    "MAX_REQUESTS",
    "RS_CHECKS",
    "Check",
    "CheckResult",
    "PlannedRequest",
    "ProbeInputError",
    "ProbeReport",
    "check_by_id",
    "plan",
    "probe",
    "probe_token_endpoint",
    "render_html",
    "render_json",
    "render_junit",
    "render_table",
    "write_report",
]
