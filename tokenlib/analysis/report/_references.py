"""The parameter appendix and the references page, with public sources only."""

from __future__ import annotations

import contextlib
import csv
import html
import re
from pathlib import Path

from tokenlib._atomic import atomic_write_text
from tokenlib.analysis.report._base import APPENDIX_PAGE, REFERENCES_PAGE
from tokenlib.analysis.report._format import _labels
from tokenlib.analysis.report._templates import _PAGE, _PAGE_CSS

# ---------------------------------------------------------------------------------------------
# Appendix (model parameters) and references.

_BRIEF_REF = re.compile(
    r"""\s*\((?:see\s+)?(?:domain[- ])?brief\s+§[^()]*\)
    |(?:domain[- ])?brief\s+§[\d.]+
      (?:(?:\s*(?:,|and|/)\s*§?[\d.]+)|\s+A\d+[a-z]?|\s+model\s+defaults
         |\s+assumption(?:\s+A\d+[a-z]?)?)*\s*[:;,]?\s*
    |\bper\s+§[\d.]+
    |\s*;?\s*ecosystem-\d{4}-\d{2}\s+§[\d.]+""",
    re.X | re.I,
)


def public_source(text: str) -> str:
    """A source text without internal notes (references to the unpublished domain brief)."""
    s = _BRIEF_REF.sub(" ", str(text))
    s = re.sub(r"\(\s*[;,:]?\s*\)", "", s)
    s = re.sub(r"\(\s*[;,:]\s*", "(", s)
    s = re.sub(r"[;,:]\s*\)", ")", s)
    s = re.sub(r"\s+([;,:)])", r"\1", s)
    s = re.sub(r"([;,:])(\s*[;,:])+", r"\1", s)
    s = re.sub(r"\s{2,}", " ", s).strip(" ;,:")
    s = re.sub(r"^\(([^()]*)\)", r"\1", s).strip(" ;,:")
    if s.count("(") > s.count(")"):
        s += ")"
    return s[:1].upper() + s[1:] if s else s


_RFC_TITLES = {
    "6749": "The OAuth 2.0 Authorization Framework",
    "6750": "The OAuth 2.0 Authorization Framework: Bearer Token Usage",
    "7591": "OAuth 2.0 Dynamic Client Registration Protocol",
    "8471": "The Token Binding Protocol Version 1.0",
    "8472": "Transport Layer Security (TLS) Extension for Token Binding Protocol Negotiation",
    "8473": "Token Binding over HTTP",
    "8693": "OAuth 2.0 Token Exchange",
    "8705": "OAuth 2.0 Mutual-TLS Client Authentication and Certificate-Bound Access Tokens",
    "8707": "Resource Indicators for OAuth 2.0",
    "9068": "JSON Web Token (JWT) Profile for OAuth 2.0 Access Tokens",
    "9440": "Client-Cert HTTP Header Field",
    "9449": "OAuth 2.0 Demonstrating Proof of Possession (DPoP)",
    "9700": "Best Current Practice for OAuth 2.0 Security",
}
#: every report cites these, whether or not a reference table names them
_CORE_RFCS = ("6750", "8705", "8471", "8472", "8473", "9068", "9440", "9449", "9700", "8693",
              "8707", "7591")  # fmt: skip
_OTHER_STANDARDS = (
    (
        "FAPI 2.0 Security Profile",
        "OpenID Foundation",
        "https://openid.net/specs/fapi-security-profile-2_0-final.html",
    ),
    (
        "OAuth 2.0 for Browser-Based Applications (draft-ietf-oauth-browser-based-apps)",
        "IETF OAuth working group draft",
        "https://datatracker.ietf.org/doc/draft-ietf-oauth-browser-based-apps/",
    ),
    (
        "OWASP Non-Human Identities Top 10",
        "OWASP",
        "https://owasp.org/www-project-non-human-identities-top-10/",
    ),
)
_LINKABLE = re.compile(
    r"(?P<url>https?://[^\s<>\"')]+)"
    r"|(?P<rfced>rfc-editor\.org/info/rfc\d{4})"
    r"|\bRFC\s?(?P<rfc>\d{4})"
    r"|\b(?P<draft>draft-[a-z0-9]+(?:-[a-z0-9]+)+)"
    r"|\b(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9])(?:\s+PR\s+#(?P<pr>\d+)|#(?P<issue>\d+))"
)


def _linked(text: str) -> str:
    """HTML-escaped ``text`` with links for URLs, RFCs, drafts and GitHub issues / PRs."""
    out: list[str] = []
    pos = 0
    for m in _LINKABLE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        label = html.escape(m.group(0))
        if m.group("url"):
            href = m.group("url")
        elif m.group("rfced"):
            href = "https://www." + m.group("rfced")
        elif m.group("rfc"):
            href = f"https://www.rfc-editor.org/rfc/rfc{m.group('rfc')}"
        elif m.group("draft"):
            href = f"https://datatracker.ietf.org/doc/{m.group('draft')}/"
        elif m.group("pr"):
            href = f"https://github.com/{m.group('repo')}/pull/{m.group('pr')}"
        else:
            href = f"https://github.com/{m.group('repo')}/issues/{m.group('issue')}"
        out.append(f'<a href="{html.escape(href)}">{label}</a>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _reference_tables() -> dict[str, list[dict[str, str]]]:
    from tokenlib.analysis.inventory import data_dir

    tables: dict[str, list[dict[str, str]]] = {}
    with contextlib.suppress(FileNotFoundError):
        for path in sorted((data_dir() / "reference").glob("*.csv")):
            with path.open(encoding="utf-8", newline="") as fh:
                tables[path.stem] = [dict(r) for r in csv.DictReader(fh)]
    return tables


_NOT_A_REFERENCE = re.compile(
    r"^(derived|model assumption|date and|share is|no |documented default|policy assumption|"
    r"probability|services\.|authorization_servers\.|bearer|certificate management|nothing|"
    r"headers|forward|an AS|RS must|TLS end)",
    re.I,
)


def _drop_shared_unit(a: str, b: str) -> str:
    """``"1 engineer-day"``, ``"20 engineer-days"`` -> ``"1"`` (the range says the unit once)."""
    ma = re.match(r"^([-\u2212$]?[\d.,]+)\s+(\D.*)$", a)
    mb = re.match(r"^([-\u2212$]?[\d.,]+)\s+(\D.*)$", b)
    if ma and mb:
        ua, ub = ma.group(2), mb.group(2)
        if ua == ub or ub.replace("days", "day").replace("hops", "hop") == ua:
            return ma.group(1)
        if ua.split(" ", 1)[-1] == ub.split(" ", 1)[-1] and " " in ua and " " in ub:
            return f"{ma.group(1)} {ua.split(' ', 1)[0]}"
    return a


def _appendix_page() -> str:
    from tokenlib.analysis.params import parameter_table

    lab = _labels()
    table = parameter_table()
    rows = []
    for r in table.to_dict("records"):
        unit = str(r["unit"])
        value = lab.fmt_value(r["current"], unit)
        if r.get("overridden"):
            value += f" (reference {lab.fmt_value(r['value'], unit)})"
        low, high = r["low"], r["high"]
        if low == high:
            span = "fixed"
        else:
            a, b = lab.fmt_value(low, unit), lab.fmt_value(high, unit)
            if a.endswith("%") and b.endswith("%"):
                a = a[:-1]
            a = _drop_shared_unit(a, b)
            span = f"{a}\u2013{b}"
        source = public_source(str(r["source"])) or (
            "No published source" if r["status"] == "assumption" else ""
        )
        rows.append(
            f"<tr><td><strong>{html.escape(str(lab.label('parameter', r['name'])))}</strong>"
            f'<div class="s">{html.escape(public_source(str(r["description"])))}</div></td>'
            f"<td>{html.escape(str(r['id']))}</td>"
            f'<td class="num">{html.escape(value)}</td><td class="num">{html.escape(span)}</td>'
            f"<td>{html.escape(str(r['status']).capitalize())}</td>"
            f"<td>{_linked(source)}</td></tr>"
        )
    counts = table["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    body = (
        "<h1>Appendix: model parameters</h1>"
        f"<p>Every parameter of the models ({len(table)}: {html.escape(summary)}), with the value "
        "used for the point estimates and the range each one is varied over for the ranges "
        "shown in this report. An <em>assumption</em> has no published value; its range is "
        "what the report tests. The project ships the same table as a CSV file for "
        "spreadsheets.</p>"
        '<table class="params"><thead><tr><th>Parameter</th><th>Id</th><th>Value</th>'
        "<th>Range</th><th>Status</th><th>Source</th></tr></thead><tbody>"
        + "\n".join(rows)
        + "</tbody></table>"
    )
    return _PAGE.format(title="Appendix: model parameters", css=_PAGE_CSS, body=body)


def _references_page() -> str:
    tables = _reference_tables()
    texts = [
        str(row.get(col, ""))
        for rows in tables.values()
        for row in rows
        for col in ("source", "note", "description")
    ]
    joined = " ".join(texts)
    rfcs = list(_CORE_RFCS)
    for number in sorted(set(re.findall(r"\bRFC\s?(\d{4})", joined))):
        if number not in rfcs:
            rfcs.append(number)
    standards = [
        f'<li><a href="https://www.rfc-editor.org/rfc/rfc{n}">RFC {n}</a>: '
        f"{html.escape(_RFC_TITLES.get(n, 'IETF RFC'))}</li>"
        for n in sorted(rfcs)
    ]
    standards += [
        f'<li><a href="{html.escape(url)}">{html.escape(title)}</a> ({html.escape(who)})</li>'
        for title, who, url in _OTHER_STANDARDS
    ]
    drafts = sorted(
        set(re.findall(r"\bdraft-[a-z0-9]+(?:-[a-z0-9]+)+", joined))
        - {"draft-ietf-oauth-browser-based-apps", "draft-dpop"}
    )
    standards += [
        f'<li><a href="https://datatracker.ietf.org/doc/{d}/">{d}</a> (IETF draft, expired or '
        "superseded)</li>"
        for d in drafts
    ]
    incidents = []
    for row in tables.get("breaches", []):
        period = " to ".join(x for x in (row.get("start", ""), row.get("detected", "")) if x)
        incidents.append(
            f"<li><strong>{html.escape(row.get('incident', ''))}</strong> "
            f"({html.escape(period)}): {_linked(public_source(row.get('source', '')))}</li>"
        )
    seen: set[str] = set()
    vendor = []
    subjects = {
        "token_lifetimes": ("product", "setting"),
        "dpop_implementations": ("implementation", "where"),
        "token_binding_timeline": ("actor", "date"),
        "adoption_timeline": ("component", "date"),
    }
    for table_name, (a, b) in subjects.items():
        for row in tables.get(table_name, []):
            source = public_source(row.get("source", ""))
            if not source or source in seen or _NOT_A_REFERENCE.match(source):
                continue
            seen.add(source)
            subject = " · ".join(
                str(row.get(k, "")).replace("_", " ") for k in (a, b) if row.get(k)
            )
            vendor.append(f"<li><strong>{html.escape(subject)}</strong>: {_linked(source)}</li>")
    body = (
        "<h1>References</h1>"
        "<p>Standards, vendor documentation and incident write-ups behind the numbers of this "
        "report. Each row of the project's reference tables names its source; links are "
        "given where the source has a stable address.</p>"
        "<h2>Standards and specifications</h2><ul>" + "\n".join(standards) + "</ul>"
        "<h2>Incidents</h2><ul>" + ("\n".join(incidents) or "<li>none</li>") + "</ul>"
        "<h2>Vendor documentation, release notes and source code</h2><ul>"
        + ("\n".join(vendor) or "<li>none</li>")
        + "</ul>"
    )
    return _PAGE.format(title="References", css=_PAGE_CSS, body=body)


def _write_extra_pages(tmp: Path) -> list[str]:
    """The parameter appendix and the references page (presentation variant only)."""
    (tmp / "presentation").mkdir(exist_ok=True)
    atomic_write_text(tmp / APPENDIX_PAGE, _appendix_page())
    atomic_write_text(tmp / REFERENCES_PAGE, _references_page())
    return [APPENDIX_PAGE, REFERENCES_PAGE]
