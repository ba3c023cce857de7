"""The probe's outputs: terminal table, JSON, JUnit XML and an HTML page.

Every value that came from the server (status, ``WWW-Authenticate``, error code, notes
quoting them) is escaped where it lands: control and bidi characters become visible
``\\xNN`` escapes in the terminal, XML and HTML; HTML is entity-escaped on top.

JSON contract (``--json``, version ``tokenlib_probe: 1``): one object with ``target``,
``method``, ``mode`` (``rs``/``as``), ``binding``, ``started_at``, ``seconds``,
``requests_sent``, ``summary`` (``passed``, ``failed``, ``not_applicable``,
``must_failed``) and ``checks``: a list of objects with ``id``, ``title``, ``rfc``,
``severity`` (``must``/``should``/``info``), ``status``
(``passed``/``failed``/``not_applicable``), ``observed_status`` (int or null),
``www_authenticate`` (string or null), ``error`` (string or null), ``note``, ``sends``,
``expects`` and ``binding``. Names are stable; new keys may be added.

JUnit: one ``<testsuite>`` (inside ``<testsuites>``) with one ``<testcase>`` per check
(``classname`` ``tokenlib.probe.<group>``, ``name`` ``<id>: <title>``); a failed check has
a ``<failure type="must|should|info">``, a not-applicable one ``<skipped>``.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from typing import Final

from tokenlib._atomic import atomic_write_bytes
from tokenlib.probe._text import html_safe, terminal_safe, xml_safe
from tokenlib.probe.runner import CheckResult, ProbeReport

__all__ = ["render_html", "render_json", "render_junit", "render_table", "write_report"]

_MARK: Final = {"passed": "pass", "failed": "FAIL", "not_applicable": "n/a"}


def _observed(r: CheckResult) -> str:
    if r.observed_status is None:
        return "-"
    return f"{r.observed_status} {r.error or ''}".rstrip()


def render_table(report: ProbeReport, *, width: int = 100) -> str:
    """A plain-text table for a terminal: one line per check, server values escaped."""
    rows = [("result", "sev", "check", "observed", "rfc")]
    for r in report.results:
        rows.append(
            (
                _MARK[r.status],
                r.severity,
                r.id,
                terminal_safe(_observed(r), limit=32),
                r.check.rfc,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append(("  ".join(cells) + "  " + row[4])[: max(width, 60)].rstrip())
    lines.append("")
    for r in report.results:
        if r.status == "failed":
            lines.append(f"FAIL {r.id} ({r.severity}): {r.check.title}")
            lines.append(f"     sent: {r.check.sends}; expected: {r.check.expects}")
            lines.append(f"     got: {terminal_safe(r.note)}")
            if r.www_authenticate:
                lines.append(f"     WWW-Authenticate: {terminal_safe(r.www_authenticate)}")
    summary = (
        f"{report.count('passed')} passed, {report.count('failed')} failed "
        f"({len(report.must_failures)} must-level), {report.count('not_applicable')} not "
        f"applicable; {report.requests_sent} requests in {report.seconds:.1f} s to "
        f"{terminal_safe(report.target)} ({report.binding}-bound token)"
    )
    lines.append(summary)
    return "\n".join(lines) + "\n"


def render_json(report: ProbeReport) -> str:
    """The JSON contract (see the module docstring); ASCII only, so no raw control
    characters can reach a terminal that prints it."""
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=True) + "\n"


def render_junit(report: ProbeReport) -> bytes:
    """JUnit XML (the schema CI systems read: testsuites/testsuite/testcase/failure)."""
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        {
            "name": xml_safe(f"tokenlib probe {report.target}"),
            "tests": str(len(report.results)),
            "failures": str(report.count("failed")),
            "errors": "0",
            "skipped": str(report.count("not_applicable")),
            "time": f"{report.seconds:.3f}",
            "timestamp": report.started_at,
        },
    )
    suites.set("tests", str(len(report.results)))
    suites.set("failures", str(report.count("failed")))
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"tokenlib.probe.{r.id.split('.', 1)[0]}",
                "name": xml_safe(f"{r.id}: {r.check.title}"),
                "time": "0",
            },
        )
        if r.status == "failed":
            failure = ET.SubElement(
                case,
                "failure",
                {"type": r.severity, "message": xml_safe(f"[{r.severity}] {r.note}", limit=500)},
            )
            failure.text = "\n".join(
                xml_safe(line)
                for line in (
                    r.check.rfc,
                    f"sent: {r.check.sends}",
                    f"expected: {r.check.expects}",
                    f"observed status: {r.observed_status}",
                    f"WWW-Authenticate: {r.www_authenticate or '-'}",
                    f"note: {r.note}",
                )
            )
        elif r.status == "not_applicable":
            ET.SubElement(case, "skipped", {"message": xml_safe(r.note, limit=500)})
    ET.indent(suites)
    data: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


_CSS: Final = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 0 auto 2em;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .45em .5em; text-align: left;
         vertical-align: top; overflow-wrap: anywhere; }
th { border-bottom: 2px solid #999; }
.s { color: #555; font-size: .9em; }
.facts { color: #555; font-size: .9em; }
td.failed { color: #D55E00; font-weight: bold; }
td.passed { color: #009E73; }
td.not_applicable { color: #777; }
code { font-size: .9em; }
"""


def render_html(report: ProbeReport) -> str:
    """One self-contained HTML page in the report's style; everything escaped."""
    e = html_safe
    rows = []
    for r in report.results:
        observed = _observed(r)
        challenge = r.www_authenticate or ""
        rows.append(
            f'<tr><td class="{e(r.status)}">{e(r.status.replace("_", " "))}</td>'
            f"<td>{e(r.severity)}</td>"
            f'<td><strong>{e(r.check.title)}</strong><div class="s"><code>{e(r.id)}</code> · '
            f"sends {e(r.check.sends)}; expects {e(r.check.expects)}</div></td>"
            f"<td>{e(r.check.rfc)}</td>"
            f'<td>{e(observed)}<div class="s">{e(challenge)}</div>'
            f'<div class="s">{e(r.note)}</div></td></tr>'
        )
    verdict = (
        f"{len(report.must_failures)} must-level failure(s)"
        if report.must_failures
        else "no must-level failure"
    )
    body = (
        f"<h1>Sender-constraint probe: {e(report.target)}</h1>"
        f'<p class="facts">{e(report.method)} · {e(report.binding)}-bound token · '
        f"{report.requests_sent} requests in {report.seconds:.1f} s · started "
        f"{e(report.started_at)} · {report.count('passed')} passed, "
        f"{report.count('failed')} failed, {report.count('not_applicable')} not applicable · "
        f"<strong>{e(verdict)}</strong></p>"
        "<table><thead><tr><th>Result</th><th>Severity</th><th>Check</th><th>Source</th>"
        "<th>Observed</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        '<p class="s">Basis: each check sends one request built from the token and key '
        "given to the probe; a refusal is any 4xx answer, an acceptance any 2xx. Checks "
        "marked not applicable were not sent (reason in the row).</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tokenlib probe: {e(report.target)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def write_report(
    report: ProbeReport,
    *,
    junit: str | os.PathLike[str] | None = None,
    html: str | os.PathLike[str] | None = None,
    json_file: str | os.PathLike[str] | None = None,
) -> None:
    """Write the requested files atomically (nothing half-written on error)."""
    if junit is not None:
        atomic_write_bytes(junit, render_junit(report))
    if html is not None:
        atomic_write_bytes(html, render_html(report).encode("utf-8"))
    if json_file is not None:
        atomic_write_bytes(json_file, render_json(report).encode("ascii"))
