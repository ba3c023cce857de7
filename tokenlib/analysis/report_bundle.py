"""Something to send: the report as one self-contained HTML file and as a PDF (issue 9).

:func:`write_single_html` folds a built report folder into ``report.html``: the executive
summary and headline table of ``index.html``, then every presentation page in the order of
``manifest.json`` (then the parameter appendix and the references, when present). Figures
become ``data:`` URIs, page CSS is inlined once, scripts are dropped (nbconvert's require.js /
MathJax / widget loaders included), links between pages become in-document anchors and links
to files that are not part of the document (code pages, notebooks, CSV exports) lose their
``href`` but keep their text. Only ``<a href="http(s)://…">`` citations point outside the
file. ``@media print`` rules put each page on a new sheet and keep figures in one piece.

:func:`write_pdf` prints that file with headless Chromium (``--print-to-pdf``). Without a
Chromium binary it prints one line on stderr and returns ``None``, so ``make report`` still
succeeds; install the Debian/Ubuntu package ``chromium`` (or point ``TOKENLIB_CHROMIUM`` at a
Chrome/Chromium binary) to get the PDF.

What the index contributes, in order of preference: the element(s) between the comments
``<!-- report:summary -->`` and ``<!-- /report:summary -->``; else the elements with id
``executive-summary`` / ``summary`` and the ``table.headline`` (with the heading just before
it); else the start of the index up to its first "Notebooks / Pages / Figures / Data"
heading. Navigation (``<nav>``, ``role="navigation"``, classes ``nav``, ``report-nav``,
``pager``) is dropped everywhere; the provenance banner (class ``provenance`` or ``banner``)
is kept once, at the top.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import mimetypes
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tokenlib._atomic import atomic_write_text

__all__ = [
    "APPENDIX_PAGES",
    "PDF_NAME",
    "SINGLE_HTML",
    "PdfError",
    "find_chromium",
    "presentation_pages",
    "write_pdf",
    "write_single_html",
]

SINGLE_HTML = "report.html"
PDF_NAME = "report.pdf"
#: Presentation pages that follow the notebook pages when they exist.
APPENDIX_PAGES = ("presentation/appendix_parameters.html", "presentation/references.html")
#: Chromium flags that work headless here (also as root, in containers, offline).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
)
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CHROMIUM_PATHS = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/snap/bin/chromium",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
SUMMARY_SECTION = "summary"
_SUMMARY_START = "<!-- report:summary -->"
_SUMMARY_END = "<!-- /report:summary -->"
_INDEX_TAIL_HEADINGS = re.compile(
    r"^\s*(notebooks?|pages?|figures?|figure gallery|gallery|data|downloads?)\b", re.I
)
_VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr".split()  # noqa: SIM905
)
_DROP_TAGS = frozenset({"script", "noscript", "nav", "iframe", "object", "embed", "base", "meta"})
_NAV_CLASSES = frozenset({"nav", "navigation", "report-nav", "page-nav", "pager"})
_BANNER_CLASSES = frozenset({"provenance", "banner", "report-banner"})
_URL_ATTRS = frozenset({"src", "href", "xlink:href", "poster", "data", "action", "formaction"})
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.I)
_CSS_IMPORT = re.compile(r"@import\b[^;]*;?", re.I)
_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)</style\s*>", re.I | re.S)
_LINK_TAG = re.compile(r"<link\b[^>]*>", re.I)
_BODY = re.compile(r"<body\b([^>]*)>(.*?)(?:</body\s*>|\Z)", re.I | re.S)
_HEADING_BEFORE = re.compile(r"<h[1-4]\b[^>]*>(?:(?!<h[1-6]\b).)*?</h[1-4]\s*>\s*\Z", re.I | re.S)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.I | re.S)


class PdfError(RuntimeError):
    """Chromium was found but did not produce a PDF (crashed, timed out, wrote nothing)."""


# ---------------------------------------------------------------------------------------------
# Which pages, in which order.


def presentation_pages(report_dir: Path) -> list[str]:
    """Presentation pages of a built report, relative to it, in reading order.

    Order: ``manifest.json`` "pages" (code page ``pages/X.html`` maps to
    ``presentation/X.html``; entries may also be objects with a ``presentation`` key), else its
    "presentation" list, else ``presentation/NN_*.html`` sorted; then :data:`APPENDIX_PAGES`.
    Only pages that exist are returned, each once.
    """
    manifest_path = report_dir / "manifest.json"
    manifest: dict[str, Any] = {}
    if manifest_path.exists():
        loaded = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest = loaded if isinstance(loaded, dict) else {}
    candidates: list[str] = []
    for entry in manifest.get("pages") or ():
        if isinstance(entry, Mapping):
            entry = entry.get("presentation") or entry.get("page") or ""
        if isinstance(entry, str) and entry:
            candidates.append(f"presentation/{posixpath.basename(entry)}")
    candidates.extend(str(p) for p in manifest.get("presentation") or () if isinstance(p, str))
    if not candidates:
        candidates = sorted(
            f"presentation/{p.name}"
            for p in (report_dir / "presentation").glob("[0-9][0-9]_*.html")
        )
    candidates.extend(APPENDIX_PAGES)
    seen: list[str] = []
    for rel in candidates:
        rel = posixpath.normpath(rel)
        if rel not in seen and (report_dir / rel).is_file():
            seen.append(rel)
    return seen


# ---------------------------------------------------------------------------------------------
# Single-file HTML.


@dataclass
class _Page:
    rel: str  # path relative to the report folder, e.g. "presentation/00_overview.html"
    section: str  # id of its <section> in the single file
    title: str
    styles: list[str]
    body_attrs: str
    body: str
    ids: dict[str, str] = field(default_factory=dict)  # original id -> id in the single file


def write_single_html(report_dir: Path, *, title: str) -> Path:
    """Write ``report_dir/report.html``: one self-contained file; see the module docstring."""
    report_dir = Path(report_dir)
    rels = presentation_pages(report_dir)
    index_path = report_dir / "index.html"
    if not rels and not index_path.is_file():
        raise FileNotFoundError(f"{report_dir} has neither index.html nor presentation pages")
    pages: list[_Page] = []
    index_css = ""
    if index_path.is_file():
        index_text = index_path.read_text(encoding="utf-8")
        index_css = "\n".join(_STYLE_BLOCK.findall(_head(index_text)))
        pages.append(
            _Page(
                rel="index.html",
                section=SUMMARY_SECTION,
                title="Executive summary",
                styles=[],
                body_attrs="",
                body=_summary_fragment(index_text),
            )
        )
    for rel in rels:
        text = (report_dir / rel).read_text(encoding="utf-8")
        head, (attrs, body) = _head(text), _body(text)
        pages.append(
            _Page(
                rel=rel,
                section=_section_id(rel),
                title=_title(text) or posixpath.basename(rel),
                styles=_STYLE_BLOCK.findall(head) + _linked_css(head, report_dir, rel),
                body_attrs=attrs,
                body=body,
            )
        )
    _assign_ids(pages)
    sections = {p.rel: p for p in pages}
    rewritten: list[str] = []
    banner_seen = False
    for page in pages:
        rewriter = _Rewriter(report_dir, page, sections, drop_banners=banner_seen)
        rewriter.feed(page.body)
        rewriter.close()
        banner_seen = banner_seen or rewriter.banner_kept
        rewritten.append(
            f'<section class="bundle-section" id="{html.escape(page.section)}">\n'
            f"{rewriter.output()}\n</section>"
        )
    css: list[str] = []
    for page in pages:
        for block in page.styles:
            block = _inline_css_urls(block, report_dir, page.rel)
            if block.strip() and block not in css:
                css.append(block)
    if index_css:
        css.append(_scope_css(_inline_css_urls(index_css, report_dir, "index.html"), "#summary"))
    css.append(_BUNDLE_CSS)
    body_attrs = next((p.body_attrs for p in pages if p.body_attrs.strip()), "")
    document = _DOCUMENT.format(
        title=html.escape(title),
        styles="\n".join(f"<style>\n{block}\n</style>" for block in css),
        body_attrs=_body_attributes(body_attrs),
        generated=_generated(report_dir),
        toc="\n".join(
            f'<li><a href="#{html.escape(p.section)}">{html.escape(p.title)}</a></li>'
            for p in pages
        ),
        sections="\n".join(rewritten),
    )
    target = report_dir / SINGLE_HTML
    atomic_write_text(target, document)
    return target


def _head(text: str) -> str:
    match = re.search(r"<body\b", text, re.I)
    return text[: match.start()] if match else ""


def _body(text: str) -> tuple[str, str]:
    """The attributes and the content of a page's <body> (all of it: banners sit outside
    nbconvert's <main>)."""
    match = _BODY.search(text)
    if match is None:
        return "", text
    return match.group(1), match.group(2)


def _title(text: str) -> str:
    match = _TITLE.search(text)
    return " ".join(html.unescape(match.group(1)).split()) if match else ""


def _section_id(rel: str) -> str:
    stem = posixpath.splitext(posixpath.basename(rel))[0]
    return "p-" + re.sub(r"[^A-Za-z0-9_-]+", "-", stem)


def _generated(report_dir: Path) -> str:
    try:
        manifest = json.loads((report_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    value = manifest.get("generated") if isinstance(manifest, dict) else None
    return f"Generated {html.escape(str(value))}" if value else ""


def _body_attributes(attrs: str) -> str:
    """The first page's <body> attributes (nbconvert's theme hooks) plus the bundle class."""
    match = re.search(r"""\bclass\s*=\s*(?:"([^"]*)"|'([^']*)')""", attrs)
    if match is None:
        return f'{attrs} class="tokenlib-bundle"'.strip()
    classes = (match.group(1) or match.group(2) or "") + " tokenlib-bundle"
    return (attrs[: match.start()] + f'class="{classes.strip()}"' + attrs[match.end() :]).strip()


def _linked_css(head: str, report_dir: Path, rel: str) -> list[str]:
    """Local ``<link rel=stylesheet>`` files of a page's head (remote ones are dropped)."""
    out = []
    for tag in _LINK_TAG.findall(head):
        attrs = dict(re.findall(r"""([\w:-]+)\s*=\s*["']([^"']*)["']""", tag))
        if "stylesheet" not in attrs.get("rel", "").lower():
            continue
        path = _local_file(attrs.get("href", ""), report_dir, rel)
        if path is not None:
            out.append(path.read_text(encoding="utf-8", errors="replace"))
    return out


# -- the index's summary ----------------------------------------------------------------------


def _summary_fragment(index_text: str) -> str:
    _, body = _body(index_text)
    finder = _ElementFinder(body)
    banners = finder.spans(lambda tag, a: bool(_classes(a) & _BANNER_CLASSES))
    start, end = body.find(_SUMMARY_START), body.find(_SUMMARY_END)
    if 0 <= start < end:
        banner = [body[s:e] for s, e in banners[:1] if not start <= s < end]
        return "\n".join([*banner, body[start + len(_SUMMARY_START) : end]])
    summary = finder.spans(lambda tag, a: a.get("id") in {"executive-summary", SUMMARY_SECTION})
    headline = finder.spans(lambda tag, a: tag == "table" and "headline" in _classes(a))
    if summary or headline:
        chosen = _outermost(banners[:1] + summary + headline)
        parts = []
        for start, end in chosen:
            heading = _HEADING_BEFORE.search(body[:start]) if (start, end) in headline else None
            if heading and not any(a <= heading.start() < b for a, b in chosen):
                start = heading.start()  # "Headline numbers" goes with its table
            parts.append(body[start:end])
        return "\n".join(parts)
    for h_start, h_end in finder.spans(lambda tag, a: tag in {"h2", "h3"}):
        text = html.unescape(re.sub(r"<[^>]+>", "", body[h_start:h_end]))
        if _INDEX_TAIL_HEADINGS.match(text):
            return body[:h_start]
    return body


def _outermost(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans = sorted(set(spans))
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and s < out[-1][1]:
            continue
        out.append((s, e))
    return out


def _classes(attrs: Mapping[str, str | None]) -> set[str]:
    return set((attrs.get("class") or "").split())


class _ElementFinder(HTMLParser):
    """Character spans of elements (start tag to end tag) matching a predicate."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self.text = text
        self._lines = [0]
        for match in re.finditer("\n", text):
            self._lines.append(match.end())
        self.elements: list[tuple[str, dict[str, str | None], int, int]] = []
        self._open: list[tuple[str, dict[str, str | None], int]] = []
        self.feed(text)
        self.close()
        for tag, attrs, start in self._open:  # unclosed: runs to the end
            self.elements.append((tag, attrs, start, len(text)))

    def _offset(self) -> int:
        line, col = self.getpos()
        return self._lines[line - 1] + col

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self._offset()
        if tag in _VOID:
            end = self.text.find(">", start) + 1
            self.elements.append((tag, dict(attrs), start, end))
        else:
            self._open.append((tag, dict(attrs), start))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self._offset()
        self.elements.append((tag, dict(attrs), start, self.text.find(">", start) + 1))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                end = self.text.find(">", self._offset()) + 1
                for open_tag, attrs, start in self._open[i:]:
                    self.elements.append((open_tag, attrs, start, end))
                del self._open[i:]
                return

    def spans(self, pred: Callable[[str, dict[str, str | None]], bool]) -> list[tuple[int, int]]:
        return sorted((s, e) for tag, attrs, s, e in self.elements if pred(tag, attrs))


# -- ids and links ----------------------------------------------------------------------------


class _IdCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key == "id" and value:
                self.ids.append(value)

    handle_startendtag = handle_starttag


def _assign_ids(pages: Sequence[_Page]) -> None:
    """Keep each page's element ids unless an earlier page (or a section) already uses them."""
    used = {p.section for p in pages} | {"contents", "cover"}
    for page in pages:
        collector = _IdCollector()
        collector.feed(page.body)
        collector.close()
        for old in dict.fromkeys(collector.ids):
            new, n = old, 1
            while new in used:
                new = f"{page.section}-{old}" if n == 1 else f"{page.section}-{old}-{n}"
                n += 1
            used.add(new)
            page.ids[old] = new


def _local_file(url: str, report_dir: Path, rel: str) -> Path | None:
    """The file a relative URL of page ``rel`` points at, if it is inside the report folder."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(rel), unquote(parts.path)))
    if path.startswith(("../", "/")) or path == "..":
        return None
    candidate = report_dir / path
    return candidate if candidate.is_file() else None


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix.lower() == ".svg":
        mime = "image/svg+xml"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _inline_css_urls(css: str, report_dir: Path, rel: str) -> str:
    css = _CSS_IMPORT.sub("", css)

    def repl(match: re.Match[str]) -> str:
        url = next((g for g in match.groups() if g is not None), "").strip()
        if url.lower().startswith("data:") or url.startswith("#"):
            return match.group(0)
        path = _local_file(url, report_dir, rel)
        return f'url("{_data_uri(path)}")' if path is not None else "none"

    return _CSS_URL.sub(repl, css)


class _Rewriter(HTMLParser):
    """Re-emit a page body with local resources inlined and links made in-document."""

    def __init__(
        self,
        report_dir: Path,
        page: _Page,
        sections: Mapping[str, _Page],
        *,
        drop_banners: bool,
    ) -> None:
        super().__init__(convert_charrefs=False)
        self.report_dir = report_dir
        self.page = page
        self.sections = sections
        self.drop_banners = drop_banners
        self.banner_kept = False
        self.out: list[str] = []
        self._skip: list[str] = []  # open tags of a dropped element
        self._in_style = False

    def output(self) -> str:
        return "".join(self.out)

    # parser callbacks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, self.get_starttag_text() or "", closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, self.get_starttag_text() or "", closed=True)

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            elif tag in self._skip:
                del self._skip[self._skip.index(tag) :]
            return
        if tag == "style":
            self._in_style = False
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_style:
            data = _inline_css_urls(data, self.report_dir, self.page.rel)
        self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        if not self._skip:
            self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if not self._skip:
            self.out.append(f"&#{name};")

    def unknown_decl(self, data: str) -> None:
        if not self._skip:
            self.out.append(f"<![{data}]>")

    # comments, doctype and processing instructions are dropped

    # helpers

    def _start(
        self, tag: str, attrs: list[tuple[str, str | None]], raw: str, *, closed: bool
    ) -> None:
        if self._skip:
            if not closed and tag not in _VOID:
                self._skip.append(tag)
            return
        values = dict(attrs)
        if self._dropped(tag, values):
            if not closed and tag not in _VOID:
                self._skip.append(tag)
            return
        if tag == "link":
            self._link(values)
            return
        changed = False
        new_attrs: list[tuple[str, str | None]] = []
        for key, value in attrs:
            new_value = self._attribute(tag, key, value)
            changed = changed or new_value != value
            if new_value is not None or value is None:
                new_attrs.append((key, new_value))
        if tag == "style":
            self._in_style = not closed
        if not changed:
            self.out.append(raw)
            return
        rendered = "".join(
            f" {k}" if v is None else f' {k}="{html.escape(v, quote=True)}"' for k, v in new_attrs
        )
        self.out.append(f"<{tag}{rendered}{' /' if closed else ''}>")

    def _dropped(self, tag: str, attrs: Mapping[str, str | None]) -> bool:
        classes = _classes(attrs)
        if tag in _DROP_TAGS or attrs.get("role") == "navigation" or classes & _NAV_CLASSES:
            return True
        if classes & _BANNER_CLASSES or attrs.get("id") == "provenance":
            if self.drop_banners:
                return True
            self.banner_kept = True
        return False

    def _link(self, attrs: Mapping[str, str | None]) -> None:
        if "stylesheet" in (attrs.get("rel") or "").lower():
            path = _local_file(attrs.get("href") or "", self.report_dir, self.page.rel)
            if path is not None:
                css = path.read_text(encoding="utf-8", errors="replace")
                css = _inline_css_urls(css, self.report_dir, self.page.rel)
                self.out.append(f"<style>\n{css}\n</style>")

    def _attribute(self, tag: str, key: str, value: str | None) -> str | None:
        if value is None:
            return None
        if key == "id":
            return self.page.ids.get(value, value)
        if key == "style":
            return _inline_css_urls(value, self.report_dir, self.page.rel)
        if key == "srcset":
            return value if value.strip().lower().startswith("data:") else None
        if key not in _URL_ATTRS:
            return value
        url = value.strip()
        if url.lower().startswith("data:"):
            return value
        if url.startswith("#"):
            return "#" + self._fragment(self.page, url[1:])
        scheme = urlsplit(url).scheme.lower()
        if tag == "a" and key == "href":
            if scheme in {"http", "https", "mailto"}:
                return value
            return self._anchor(url)  # another page of the document, or no link at all
        if scheme:
            return None  # remote resources: nothing outside the file is loaded
        path = _local_file(url, self.report_dir, self.page.rel)
        return _data_uri(path) if path is not None else None

    def _anchor(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not parts.path:
            return None
        target = posixpath.normpath(
            posixpath.join(posixpath.dirname(self.page.rel), unquote(parts.path))
        )
        page = self.sections.get(target)
        if page is None and target.startswith("pages/"):  # code page -> its presentation
            page = self.sections.get("presentation/" + target.removeprefix("pages/"))
        if page is None:
            return None
        if parts.fragment:
            return "#" + self._fragment(page, parts.fragment)
        return "#" + page.section

    @staticmethod
    def _fragment(page: _Page, fragment: str) -> str:
        for candidate in (fragment, unquote(fragment)):
            if candidate in page.ids:
                return page.ids[candidate]
        return fragment


# -- CSS scoping for the index's stylesheet ---------------------------------------------------


def _scope_css(css: str, scope: str) -> str:
    """Prefix every selector with ``scope`` (``body``, ``html`` and ``:root`` become it)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    out: list[str] = []
    i = 0
    while i < len(css):
        brace = css.find("{", i)
        if brace < 0:
            break
        prelude = css[i:brace].strip()
        end = _matching_brace(css, brace)
        block = css[brace + 1 : end]
        if prelude.startswith("@"):
            keyword = prelude.split()[0].lower()
            if keyword in {"@media", "@supports", "@container", "@layer"}:
                out.append(f"{prelude} {{\n{_scope_css(block, scope)}\n}}")
            else:
                out.append(f"{prelude} {{{block}}}")
        elif prelude:
            out.append(f"{_scope_selectors(prelude, scope)} {{{block}}}")
        i = end + 1
    return "\n".join(out)


def _matching_brace(css: str, start: int) -> int:
    depth = 0
    for j in range(start, len(css)):
        if css[j] == "{":
            depth += 1
        elif css[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(css)


def _scope_selectors(selectors: str, scope: str) -> str:
    scoped = []
    for selector in _split_top(selectors):
        selector = selector.strip()
        root = re.match(r"^(?:html|:root)?\s*(?:body\b)?", selector)
        if root and root.group(0).strip():
            rest = selector[root.end() :]
            scoped.append(f"{scope}{rest}")
        else:
            scoped.append(f"{scope} {selector}")
    return ", ".join(scoped)


def _split_top(selectors: str) -> Iterable[str]:
    depth, start = 0, 0
    for j, ch in enumerate(selectors):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            yield selectors[start:j]
            start = j + 1
    yield selectors[start:]


_BUNDLE_CSS = """
body.tokenlib-bundle { max-width: 1180px; margin: 0 auto; padding: 0 24px 48px;
  box-sizing: border-box; overflow-wrap: break-word; }
.tokenlib-bundle img, .tokenlib-bundle svg, .tokenlib-bundle video { max-width: 100%;
  height: auto; }
.tokenlib-bundle pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.tokenlib-bundle table { max-width: 100%; }
.tokenlib-bundle td, .tokenlib-bundle th { overflow-wrap: break-word; }
.tokenlib-bundle .jp-OutputArea-output { max-width: 100%; }
.bundle-cover { padding: 24px 0 8px; }
.bundle-cover h1 { margin-bottom: .2em; }
.bundle-cover .generated { color: #555; }
.bundle-contents ol { columns: 2; column-gap: 2em; }
.bundle-section { border-top: 1px solid #ddd; margin-top: 2em; padding-top: 1em; }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body.tokenlib-bundle { max-width: none; padding: 0; font-size: 10.5pt; }
  .bundle-contents { break-after: page; }
  .bundle-contents ol { columns: 1; }
  .bundle-section { break-before: page; border-top: none; margin-top: 0; padding-top: 0; }
  .bundle-section:first-of-type { break-before: auto; }
  h1, h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
  img, svg, figure, tr, .jp-OutputArea-output img, .jp-RenderedImage {
    break-inside: avoid; page-break-inside: avoid; }
  .jp-OutputArea-output, .jp-RenderedHTMLCommon, .jp-Cell-outputArea {
    overflow: visible !important; }
  .tokenlib-bundle table { font-size: 8.5pt; table-layout: auto; }
  .tokenlib-bundle pre { font-size: 8.5pt; }
  a { color: inherit; }
}
"""

_DOCUMENT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{styles}
</head>
<body {body_attrs}>
<header class="bundle-cover" id="cover">
<h1>{title}</h1>
<p class="generated">{generated}</p>
</header>
<div class="bundle-contents" id="contents">
<h2>Contents</h2>
<ol>
{toc}
</ol>
</div>
{sections}
</body>
</html>
"""


# ---------------------------------------------------------------------------------------------
# PDF.


def find_chromium() -> str | None:
    """A Chromium/Chrome binary: ``$TOKENLIB_CHROMIUM``, then PATH, then the usual places."""
    explicit = os.environ.get("TOKENLIB_CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) or Path(explicit).is_file() else None
    for name in _CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in _CHROMIUM_PATHS if os.access(p, os.X_OK)), None)


def write_pdf(
    html: Path, pdf: Path, *, chromium: str | None = None, timeout: float = 120
) -> Path | None:
    """Print ``html`` to ``pdf`` with headless Chromium; ``None`` when no Chromium is installed.

    Runs Chromium with a fresh profile (removed afterwards) and kills its whole process group
    when it takes longer than ``timeout`` seconds. Raises :class:`PdfError` when Chromium runs
    but produces no PDF; the target is replaced atomically, never left half written.
    """
    binary = chromium or find_chromium()
    if binary is None:
        print(
            f"{Path(pdf).name} skipped: no Chromium found (install the 'chromium' package "
            "or set TOKENLIB_CHROMIUM to a Chrome/Chromium binary)",
            file=sys.stderr,
        )
        return None
    source, target = Path(html).resolve(), Path(pdf)
    if not source.is_file():
        raise FileNotFoundError(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="tokenlib-chromium-"))
    fd, partial_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".pdf", dir=target.parent)
    os.close(fd)
    partial = Path(partial_name)
    command = [
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--no-pdf-header-footer",
        f"--print-to-pdf={partial}",
        source.as_uri(),
    ]
    try:
        proc = subprocess.Popen(  # noqa: S603 - a browser binary the caller chose or we found
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise PdfError(f"chromium did not print {source.name} within {timeout:g} s") from None
        finally:
            _kill_group(proc)  # helpers it left behind
            if proc.stderr is not None:
                proc.stderr.close()
        data = partial.read_bytes() if partial.exists() else b""
        if not data.startswith(b"%PDF"):
            tail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
            raise PdfError(
                f"chromium exited {proc.returncode} without a PDF of {source.name}: "
                + " | ".join(tail)
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(profile, ignore_errors=True)
    return target


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
