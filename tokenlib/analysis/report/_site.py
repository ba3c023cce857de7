"""The site: index page, summary, headline table, single-file bundle and the final swap."""

from __future__ import annotations

import html
import importlib
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenlib._atomic import atomic_write_text
from tokenlib.analysis.report._base import (
    APPENDIX_PAGE,
    HEADLINE_CSV,
    REFERENCES_PAGE,
    REPORT_TITLE,
    NotebookPage,
    Provenance,
)
from tokenlib.analysis.report._figures import figure_title
from tokenlib.analysis.report._format import _basis_label, _labels, _span
from tokenlib.analysis.report._takeaways import _finite, read_headline, takeaways
from tokenlib.analysis.report._templates import _INDEX

# ---------------------------------------------------------------------------------------------
# Navigation and provenance banner on every page.


class _Site:
    """Page order, titles, banner and navigation of one report."""

    def __init__(
        self,
        pages: Sequence[NotebookPage],
        extras: Sequence[str],
        provenance: Provenance,
        generated: str,
    ) -> None:
        self.pages = list(pages)
        self.provenance = provenance
        self.generated = generated
        self.titles: dict[str, str] = {"index.html": "Summary"}
        for p in pages:
            self.titles[p.presentation] = p.title
            self.titles[p.page] = f"{p.title} (with code)"
        self.titles[APPENDIX_PAGE] = "Appendix: model parameters"
        self.titles[REFERENCES_PAGE] = "References"
        self.presentation = ["index.html", *(p.presentation for p in pages), *extras]
        self.code = ["index.html", *(p.page for p in pages)]
        self.extras = list(extras)
        self.variant = {p.presentation: p.page for p in pages}
        self.variant.update({p.page: p.presentation for p in pages})

    def banner(self) -> str:
        prov = self.provenance
        notes = "".join(f" Note: {html.escape(n)}." for n in prov.notes)
        return (
            f'<div class="provenance" role="note"><strong>Inventory:</strong> '
            f"{html.escape(prov.sentence())}{notes} "
            f'<span class="generated">Report generated {html.escape(self.generated)}.</span>'
            "</div>"
        )

    def nav(self, rel: str) -> str:
        order = self.code if rel.startswith("pages/") else self.presentation
        here = os.path.dirname(rel) or "."

        def link(target: str, text: str, cls: str) -> str:
            href = os.path.relpath(target, here).replace(os.sep, "/")
            return f'<a class="{cls}" href="{html.escape(href)}">{text}</a>'

        i = order.index(rel) if rel in order else -1
        prev = (
            link(order[i - 1], f"\u2190 {html.escape(self.titles[order[i - 1]])}", "prev")
            if i > 0
            else '<span class="prev"></span>'
        )
        nxt = (
            link(order[i + 1], f"{html.escape(self.titles[order[i + 1]])} \u2192", "next")
            if 0 <= i < len(order) - 1
            else '<span class="next"></span>'
        )
        middle = [link("index.html", "Index", "index")] if rel != "index.html" else []
        if rel in self.variant:
            other = self.variant[rel]
            middle.append(
                link(
                    other, "with code" if other.startswith("pages/") else "without code", "variant"
                )
            )
        return (
            f'<nav class="report-nav" aria-label="pages">{prev}'
            f'<span class="middle">{" · ".join(middle)}</span>{nxt}</nav>'
        )

    def decorate(self, rel: str, text: str) -> str:
        """Insert the style, navigation and banner into a rendered page."""
        head = f"<style>{_SITE_CSS}</style>"
        text = text.replace("</head>", head + "\n</head>", 1) if "</head>" in text else head + text
        top = f'<header class="report-top">{self.nav(rel)}\n{self.banner()}</header>'
        bottom = f'<footer class="report-bottom">{self.nav(rel)}</footer>'
        match = re.search(r"<body[^>]*>", text)
        at = match.end() if match else 0
        text = text[:at] + "\n" + top + text[at:]
        cut = text.rfind("</body>")
        return text[:cut] + bottom + "\n" + text[cut:] if cut >= 0 else text + bottom

    def decorate_all(self, tmp: Path) -> None:
        for rel in [*self.presentation[1:], *self.code[1:]]:
            path = tmp / rel
            if path.exists():
                atomic_write_text(path, self.decorate(rel, path.read_text(encoding="utf-8")))


_SITE_CSS = """
.report-top, .report-bottom { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px;
  margin: 0 auto; padding: 0 1em; box-sizing: border-box; }
.report-nav { display: flex; justify-content: space-between; gap: 1em; align-items: baseline;
  padding: .6em 0; border-bottom: 1px solid #ddd; }
.report-bottom .report-nav { border-bottom: 0; border-top: 1px solid #ddd; margin-top: 2em; }
.report-nav a { color: #0b57d0; text-decoration: none; }
.report-nav a:hover { text-decoration: underline; }
.report-nav .prev, .report-nav .next { flex: 1 1 0; } .report-nav .next { text-align: right; }
.report-nav .middle { flex: 0 0 auto; }
.provenance { background: #fff8e1; border: 1px solid #ecd9a0; border-radius: 4px;
  padding: .5em .8em; margin: .6em 0 1em; color: #3b3b3b; overflow-wrap: anywhere; }
.provenance .generated { color: #666; }
"""


# ---------------------------------------------------------------------------------------------
# Index page.


def _summary_html(rows: Mapping[str, Mapping[str, Any]] | None, site: _Site) -> str:
    """The executive summary (takeaways) and the full headline table."""
    e = html.escape
    if rows is None:
        return (
            '<section id="executive-summary"><h2>Summary</h2>'
            '<p class="missing">No headline numbers: <code>exports/headline_numbers.csv</code> '
            "was not written (the overview notebook did not run, or it failed). The pages "
            "below are complete; rerun the report with every notebook for the summary.</p>"
            "</section>"
        )
    pages = {p.name[:2]: p for p in site.pages}
    items = []
    for t in takeaways(rows, flows=site.provenance.flows):
        page = pages.get(t.page_prefix)
        see = (
            f' · <a href="{e(page.presentation)}" title="{e(page.title)}">'
            f"See page {e(page.name[:2])} \u2192</a>"
            if page
            else ""
        )
        row = rows[t.metric_id]
        span = (
            f"Range over the assumptions: {_span(row['low'], row['high'])}"
            if _finite(row) and row["low"] != row["high"]
            else "No range: counted from the inventory"
            if row.get("basis") == "inventory"
            else "No range"
        )
        cls = "holds" if t.holds else "does-not-hold"
        items.append(
            f'<li class="{cls}"><p>{e(t.sentence)}</p><p class="meta">{e(span)} · '
            f"Basis: {e(_basis_label(t.basis))}{see}</p></li>"
        )
    body = "\n".join(items) or "<li>No takeaway could be computed on this inventory.</li>"
    return (
        '<section id="executive-summary"><h2>Summary</h2>'
        '<p class="lead">Every number compares with <strong>today\'s inventory</strong> (the '
        "flows as they are). Ranges cover 90% of outcomes when every assumption varies over its "
        "range; <em>Basis</em> says whether a number is counted from the inventory, sourced, or "
        "rests on assumptions.</p>"
        f'<ol class="takeaways">\n{body}\n</ol></section>\n' + _headline_table(rows)
    )


def _clean_finding(text: str) -> str:
    """A headline sentence without register ids (``(A23a)``, ``A23a-c``)."""
    text = re.sub(r"\s*\((?:[ASD]\d+[a-z]?(?:[-\u2013][a-z])?(?:,\s*)?)+\)", "", text)
    text = re.sub(r",?\s*[^,;()]*\b[ASD]\d+[a-z]?[-\u2013][a-z]\b", "", text)
    return re.sub(r"\s+([,;.)])", r"\1", text)


def _headline_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    e = html.escape
    cells = []
    for row in rows.values():
        unit = str(row.get("unit", "share"))
        if _finite(row):
            value = _labels().fmt_range(row["value"], row["low"], row["high"], unit)
        else:
            value = "not computed"
        baseline = str(row.get("baseline", ""))
        baseline = baseline if baseline and baseline != "none" else "a level, not a change"
        cells.append(
            f"<tr><td>{e(_clean_finding(str(row.get('finding', ''))))}</td>"
            f'<td class="num">{e(str(value))}</td>'
            f"<td>{e(baseline)}</td>"
            f"<td>{e(_basis_label(str(row.get('basis', ''))))}</td></tr>"
        )
    return (
        '<h2 id="headline-numbers">Headline numbers</h2>\n<table class="headline">\n'
        "<thead><tr><th>Finding</th><th>Value (range over the assumptions)</th>"
        "<th>Compared with</th><th>Basis</th></tr></thead>\n<tbody>\n"
        + "\n".join(cells)
        + "\n</tbody></table>"
    )


def _write_index(
    tmp: Path,
    site: _Site,
    figures: Sequence[str],
    exports: Sequence[str],
    meta: Mapping[str, Any],
) -> None:
    e = html.escape
    rows = read_headline(tmp / "exports" / HEADLINE_CSV)
    titles = {name: figure_title(tmp / "figures", name) for name in figures}
    owner = {f: p for p in site.pages for f in p.figures}
    page_rows = "\n".join(
        f'<tr><td><a href="{e(p.presentation)}">{e(p.title)}</a>'
        f'<div class="s">{e(p.summary)}</div></td>'
        f'<td><a href="{e(p.page)}">with code</a></td>'
        f'<td><a href="{e(p.notebook)}">notebook (.ipynb)</a></td>'
        f'<td class="num">{p.seconds:.0f} s</td></tr>'
        for p in site.pages
    )
    extra_rows = "\n".join(
        f'<tr><td><a href="{e(rel)}">{e(site.titles[rel])}</a></td><td></td><td></td><td></td></tr>'
        for rel in site.extras
    )
    gallery = []
    for name in figures:
        page = owner.get(name)
        source = f' · from <a href="{e(page.presentation)}">{e(page.title)}</a>' if page else ""
        gallery.append(
            f'<figure><a href="figures/{e(name)}.svg"><img src="figures/{e(name)}.png" '
            f'alt="{e(titles[name])}"></a>'
            f"<figcaption>{e(titles[name])}{source} · "
            f'<a href="figures/{e(name)}.png">PNG</a> · <a href="figures/{e(name)}.svg">SVG</a>'
            "</figcaption></figure>"
        )
    downloads = "\n".join(f'<li><a href="exports/{e(x)}">{e(x)}</a></li>' for x in exports)
    facts = " · ".join(
        f"{e(str(k))} {e(str(v))}" for k, v in meta.items() if v is not None and k != "inventory"
    )
    text = _INDEX.format(
        title=e(REPORT_TITLE),
        css=_SITE_CSS,
        top=site.nav("index.html") + "\n" + site.banner(),
        bottom=site.nav("index.html"),
        facts=facts,
        summary=_summary_html(rows, site),
        rows=page_rows + ("\n" + extra_rows if extra_rows else ""),
        gallery="\n".join(gallery) or "<p>No figures.</p>",
        downloads=downloads or "<li>none</li>",
    )
    atomic_write_text(tmp / "index.html", text)
    manifest = {
        "title": REPORT_TITLE,
        "generated": site.generated,
        **meta,
        "provenance": site.provenance.to_dict(),
        "pages": [p.page for p in site.pages],
        "presentation": site.presentation[1:],
        "figures": list(figures),
        "figure_titles": titles,
        "exports": list(exports),
    }
    atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")


def _write_bundle(tmp: Path) -> tuple[str, ...]:
    """report.html and report.pdf via tokenlib.analysis.report_bundle (when importable); then
    link them from the index."""
    try:
        bundle: Any = importlib.import_module("tokenlib.analysis.report_bundle")
    except ImportError:
        return ()
    written: list[str] = []
    try:
        single = Path(bundle.write_single_html(tmp, title=REPORT_TITLE))
        written.append(single.name)
        pdf = bundle.write_pdf(single, tmp / "report.pdf")
        if pdf is not None:
            written.append(Path(pdf).name)
    except Exception as exc:  # the page folder is the report; the bundle is a convenience
        print(
            f"warning: single-file report incomplete: {type(exc).__name__}: {exc}", file=sys.stderr
        )
    if written:
        index = tmp / "index.html"
        links = " · ".join(
            f'<a href="{html.escape(name)}">{"PDF" if name.endswith(".pdf") else "one HTML file"}'
            f" ({html.escape(name)})</a>"
            for name in written
        )
        text = index.read_text(encoding="utf-8").replace(
            "<!-- report:downloads -->", f'<p class="send">To send: {links}</p>', 1
        )
        atomic_write_text(index, text)
    return tuple(written)


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp`` with two renames; restore the old report if one fails."""
    old: Path | None = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.rename(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
