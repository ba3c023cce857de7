"""Tests for tokenlib.analysis.report_bundle: the single-file report.html and the PDF.

A small hand-made report folder (manifest, index, two presentation pages, the appendix and
references pages, a PNG and an SVG figure) stands in for a built report, so these run in
about a second; the PDF tests need headless Chromium (``pytest.mark.browser``).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
import struct
import subprocess
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tokenlib.analysis import report_bundle
from tokenlib.analysis.report_bundle import PdfError, write_pdf, write_single_html

CHROMIUM = report_bundle.find_chromium()
PDFINFO = shutil.which("pdfinfo")


def _png(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG (red pixels), built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" viewBox="0 0 40 20">'
    '<rect width="40" height="20" fill="#36c"/></svg>'
)

_NB_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>
<title>{title}</title>
<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>
<script type="text/x-mathjax-config">MathJax.Hub.Config({{tex2jax: {{}}}});</script>
<script src="https://cdn.jsdelivr.net/npm/mathjax@2/MathJax.js?config=TeX-AMS_CHTML"></script>
<link rel="stylesheet" href="https://cdn.example.com/theme.css">
<link rel="stylesheet" href="../page.css">
<style type="text/css">
:root {{ --jp-ui-font-size1: 13px; }}
.jp-OutputArea-output {{ overflow-x: auto; }}
.banner {{ background: url(../figures/bg.png); }}
</style>
</head>
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
"""


def _page(title: str, body: str, *, top: str = "", bottom: str = "") -> str:
    """An nbconvert-like page; ``top``/``bottom`` go outside <main>, as report.py puts its
    navigation and provenance banner."""
    return (
        _NB_HEAD.format(title=title)
        + f"{top}\n<main>\n{body}\n</main>\n{bottom}\n</body>\n</html>\n"
    )


def _nav(prev: str, nxt: str) -> str:
    return (
        '<nav class="report-nav"><a href="../index.html">Index</a> '
        f'<a href="{prev}">Previous page</a> <a href="{nxt}">Next page</a></nav>'
    )


_BANNER = '<div class="provenance">Synthetic inventory: profile saas, seed 7, 5,000 flows.</div>'


def _make_report(root: Path) -> Path:
    out = root / "reports"
    for sub in ("pages", "presentation", "figures", "exports", "notebooks"):
        (out / sub).mkdir(parents=True)
    (out / "figures" / "fig.png").write_bytes(_png())
    (out / "figures" / "bg.png").write_bytes(_png(1, 1))
    (out / "figures" / "fig.svg").write_text(_SVG)
    (out / "exports" / "recommendations.csv").write_text("flow_id\n1\n")
    (out / "page.css").write_text(".local-sheet { color: #123456; }\n")
    (out / "manifest.json").write_text(
        json.dumps(
            {
                "generated": "2026-01-02 03:04 UTC",
                "pages": ["pages/00_alpha.html", "pages/01_beta.html"],
                "presentation": ["presentation/00_alpha.html", "presentation/01_beta.html"],
                "figures": ["fig"],
                "exports": ["recommendations.csv"],
            }
        )
    )
    (out / "index.html").write_text(
        """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>idx</title>
<style>
body { font-family: sans-serif; max-width: 1100px; }
table { border-collapse: collapse; width: 100%; }
@media print { .s { color: black; } }
</style></head><body>
<nav><a href="presentation/00_alpha.html">Start</a></nav>
"""
        + _BANNER
        + """
<section id="executive-summary"><h2>Executive summary</h2>
<ol><li>Binding removes 36% of usable stolen tokens
 (<a href="presentation/00_alpha.html#why">why</a>).</li>
<li>Code for analysts: <a href="pages/01_beta.html">with code</a>.</li></ol></section>
<h2>Headline numbers</h2>
<table class="headline"><tr><th>Finding</th><th>Value</th></tr>
<tr><td>Flows that could enforce DPoP today</td><td>45% (23–72%)</td></tr></table>
<h2>Notebooks</h2>
<table><tr><td><a href="presentation/00_alpha.html">Alpha</a></td>
<td><a href="notebooks/00_alpha.ipynb">.ipynb</a></td></tr></table>
<h2>Figures</h2><div class="gallery"><img src="figures/fig.png" alt="gallery figure"></div>
<h2>Data</h2><ul><li><a href="exports/recommendations.csv">recommendations.csv</a></li></ul>
</body></html>
"""
    )
    (out / "presentation" / "00_alpha.html").write_text(
        _page(
            "00 · Alpha",
            _nav("../index.html", "01_beta.html")
            + _BANNER
            + """
<div class="jp-Cell" id="cell-id=0">
<h1 id="Alpha">Alpha<a class="anchor-link" href="#Alpha">¶</a></h1>
<p id="why">Why: see <a href="01_beta.html#Beta-detail">the detail in Beta</a>,
<a href="#Alpha">this page's top</a>, <a href="../pages/00_alpha.html">the code</a>,
<a href="../exports/recommendations.csv">the CSV</a> and
<a href="https://www.rfc-editor.org/rfc/rfc9449">RFC 9449</a>.</p>
<img src="../figures/fig.png" alt="A figure saved next to the page">
<img src="data:image/png;base64,"""
            + base64.b64encode(_png(2, 2)).decode()
            + """" alt="An inline figure">
<p style="background-image: url('../figures/bg.png')">styled</p>
<script>console.log("notebook output script")</script>
</div>""",
        )
    )
    (out / "presentation" / "01_beta.html").write_text(
        _page(
            "01 · Beta",
            top=_nav("00_alpha.html", "appendix_parameters.html") + _BANNER,
            bottom="<footer>Page footer</footer>" + _nav("00_alpha.html", "appendix.html"),
            body="""
<div class="jp-Cell" id="cell-id=0"><h1 id="Beta">Beta</h1>
<h2 id="Beta-detail">Detail</h2>
<img src="../figures/fig.svg" alt="An SVG figure">
<p>Back to <a href="00_alpha.html#why">Alpha's reason</a>
and the <a href="references.html#rfc9449">references</a>.</p>
<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><defs>
<linearGradient id="g"><stop offset="0"/></linearGradient></defs>
<rect width="10" height="10" fill="url(#g)"/></svg>
</div>""",
        )
    )
    (out / "presentation" / "appendix_parameters.html").write_text(
        _page("Appendix · Parameters", '<h1 id="Parameters">Parameters</h1><p>Table.</p>')
    )
    (out / "presentation" / "references.html").write_text(
        _page(
            "References",
            '<h1>References</h1><p id="rfc9449"><a href="https://www.rfc-editor.org/rfc/'
            'rfc9449">RFC 9449, OAuth 2.0 DPoP</a></p>',
        )
    )
    (out / "presentation" / "99_not_in_manifest.html").write_text(_page("Stray", "<p>x</p>"))
    for name in ("00_alpha", "01_beta"):
        (out / "pages" / f"{name}.html").write_text(_page(name, "<p>code</p>"))
    return out


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    return _make_report(tmp_path)


class _Doc(HTMLParser):
    """Every tag with its attributes, ids, and the text outside style/script."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: list[str] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append((tag, values))
        if values.get("id"):
            self.ids.append(str(values["id"]))
        if tag in {"style", "script"}:
            self._in.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if dict(attrs).get("id"):
            self.ids.append(str(dict(attrs)["id"]))

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "style":
            self.styles.append(data)
        elif not self._in:
            self.text.append(data)

    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def _parse(path: Path) -> _Doc:
    doc = _Doc()
    doc.feed(path.read_text(encoding="utf-8"))
    doc.close()
    return doc


_REFERENCE_ATTRS = ("src", "href", "xlink:href", "srcset", "poster", "data", "action")


def test_single_file_is_self_contained(report_dir: Path) -> None:
    before = sorted(p.relative_to(report_dir) for p in report_dir.rglob("*"))
    out = write_single_html(report_dir, title="Token binding report")
    assert out == report_dir / "report.html"
    after = sorted(p.relative_to(report_dir) for p in report_dir.rglob("*"))
    assert sorted({*before, Path("report.html")}) == after, "exactly one new file"
    text = out.read_text(encoding="utf-8")
    doc = _parse(out)
    assert not [t for t, _ in doc.tags if t in {"script", "link", "iframe", "object", "embed"}]
    for needle in ("MathJax", "require.js", "cdn.", "cdnjs", "../", "figures/", "exports/"):
        assert needle not in text, f"{needle!r} left in report.html"
    offenders = []
    for tag, attrs in doc.tags:
        for key in _REFERENCE_ATTRS:
            value = (attrs.get(key) or "").strip()
            if not value or value.startswith(("#", "data:")):
                continue
            if tag == "a" and key == "href" and re.match(r"(https?|mailto):", value):
                continue  # citations stay links
            offenders.append(f"<{tag} {key}={value[:80]!r}>")
    assert not offenders, f"references outside the file: {offenders}"
    css = "\n".join(doc.styles)
    assert "@import" not in css
    urls = re.findall(r"url\(\s*['\"]?([^'\")]*)", css)
    assert all(u.startswith(("data:", "#")) for u in urls), urls
    assert "color: #123456" in css, "a local stylesheet is inlined"


def test_images_are_inlined_as_data_uris(report_dir: Path) -> None:
    doc = _parse(write_single_html(report_dir, title="T"))
    srcs = [str(a.get("src")) for t, a in doc.tags if t == "img"]
    assert len(srcs) == 3, "two figures from page 00, one from page 01; not the index gallery"
    assert sum(s.startswith("data:image/png;base64,") for s in srcs) == 2
    assert sum(s.startswith("data:image/svg+xml;base64,") for s in srcs) == 1
    png = next(s for s in srcs if s.startswith("data:image/png"))
    assert base64.b64decode(png.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    styled = next(a for t, a in doc.tags if t == "p" and "url(" in (a.get("style") or ""))
    assert "data:image/png;base64," in str(styled["style"])


def test_pages_in_manifest_order_then_appendix_and_references(report_dir: Path) -> None:
    assert report_bundle.presentation_pages(report_dir) == [
        "presentation/00_alpha.html",
        "presentation/01_beta.html",
        "presentation/appendix_parameters.html",
        "presentation/references.html",
    ]
    doc = _parse(write_single_html(report_dir, title="T"))
    sections = [str(a["id"]) for t, a in doc.tags if "bundle-section" in (a.get("class") or "")]
    assert sections == [
        "summary",
        "p-00_alpha",
        "p-01_beta",
        "p-appendix_parameters",
        "p-references",
    ]
    text = doc.visible()
    text = text[text.index("Binding removes") :]  # after the table of contents
    order = [text.index(s) for s in ("Binding", "Why: see", "Detail", "Table.", "RFC 9449, ")]
    assert order == sorted(order)
    assert "Stray" not in text, "only the manifest's pages (and appendix/references)"


def test_summary_comes_from_the_index_without_its_lists(report_dir: Path) -> None:
    doc = _parse(write_single_html(report_dir, title="Token binding report"))
    text = doc.visible()
    assert "<title>Token binding report</title>" in (report_dir / "report.html").read_text()
    assert "Binding removes 36% of usable stolen tokens" in text
    assert "Headline numbers" in text
    assert "45% (23–72%)" in text
    assert "Notebooks" not in text
    assert "gallery figure" not in text
    assert "recommendations.csv" not in text, "the index's download list is not copied"
    assert text.count("Synthetic inventory") == 1, "the provenance banner appears once"
    assert "Next page" not in text, "page navigation dropped"
    assert "Previous page" not in text
    css = "\n".join(doc.styles)
    assert "#summary table" in css, "the index's CSS applies to the summary only"
    assert re.search(r"#summary\s*\{[^}]*max-width: 1100px", css)


def test_summary_markers_choose_what_the_index_contributes(report_dir: Path) -> None:
    (report_dir / "index.html").write_text(
        "<!DOCTYPE html><html><head><title>idx</title></head><body>"
        '<header><nav class="report-nav"><a href="presentation/00_alpha.html">Next</a></nav>'
        f"{_BANNER}</header>\n<p>Before the summary.</p>\n<!-- report:summary -->\n"
        '<section id="executive-summary"><h2>Summary</h2><p>Takeaway one.</p></section>\n'
        '<h2>Headline numbers</h2><table class="headline"><tr><td>45%</td></tr></table>\n'
        "<!-- /report:summary -->\n<h2>Notebooks</h2><p>After the summary.</p></body></html>"
    )
    text = _parse(write_single_html(report_dir, title="T")).visible()
    for wanted in ("Takeaway one.", "Headline numbers", "45%", "Synthetic inventory"):
        assert wanted in text
    for unwanted in ("Before the summary.", "Notebooks", "After the summary.", "Next"):
        assert unwanted not in text
    assert text.count("Synthetic inventory") == 1
    assert text.index("Synthetic inventory") < text.index("Takeaway one.")
    assert "Page footer" in text, "content outside <main> is kept; only navigation is dropped"


def test_links_become_anchors_that_resolve(report_dir: Path) -> None:
    doc = _parse(write_single_html(report_dir, title="T"))
    ids = doc.ids
    assert len(ids) == len(set(ids)), "element ids stay unique across pages"
    hrefs = [(str(a["href"]), a) for t, a in doc.tags if t == "a" and a.get("href")]
    internal = [h for h, _ in hrefs if h.startswith("#")]
    assert internal, "links between pages became in-document anchors"
    unresolved = [h for h in internal if h[1:] not in ids]
    assert not unresolved, f"anchors without a target: {unresolved}"
    external = sorted({h for h, _ in hrefs if not h.startswith("#")})
    assert external == ["https://www.rfc-editor.org/rfc/rfc9449"]
    # the targets are the right ones
    by_text = _anchor_texts(report_dir / "report.html")
    beta_detail = str(by_text["the detail in Beta"])
    assert beta_detail.startswith("#")
    assert "Beta-detail" in beta_detail
    assert by_text["Alpha's reason"] == by_text["why"] == "#why"
    assert by_text["the code"] == "#p-00_alpha", "a code page link goes to its presentation"
    assert by_text["with code"] == "#p-01_beta"
    assert by_text["references"] == "#rfc9449"
    assert by_text["the CSV"] is None, "a file outside the document is not linked"
    assert by_text["this page's top"] == "#Alpha"
    assert str(by_text["RFC 9449"]).startswith("https://")


def _anchor_texts(path: Path) -> dict[str, str | None]:
    class Anchors(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: dict[str, str | None] = {}
            self._href: list[str | None] = []
            self._text: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                self._href.append(dict(attrs).get("href"))
                self._text = []

        def handle_data(self, data: str) -> None:
            self._text.append(data)

        def handle_endtag(self, tag: str) -> None:
            if tag == "a" and self._href:
                self.found[" ".join("".join(self._text).split())] = self._href.pop()

    parser = Anchors()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.found


def test_print_css_breaks_pages_and_keeps_figures_whole(report_dir: Path) -> None:
    css = "\n".join(_parse(write_single_html(report_dir, title="T")).styles)
    print_rules = css[css.index("@media print") :]
    assert re.search(r"\.bundle-section\s*\{[^}]*break-before:\s*page", print_rules)
    assert re.search(r"img[^{]*\{[^}]*break-inside:\s*avoid", print_rules)
    assert re.search(r"max-width:\s*100%", css), "figures never wider than the page"


def test_manifest_without_presentation_list_maps_code_pages(report_dir: Path) -> None:
    manifest = json.loads((report_dir / "manifest.json").read_text())
    del manifest["presentation"]
    manifest["pages"] = [
        {"page": "pages/01_beta.html", "presentation": "presentation/01_beta.html"},
        "pages/00_alpha.html",
    ]
    (report_dir / "manifest.json").write_text(json.dumps(manifest))
    assert report_bundle.presentation_pages(report_dir)[:2] == [
        "presentation/01_beta.html",
        "presentation/00_alpha.html",
    ]


# ---------------------------------------------------------------------------------------------
# PDF


def _fake_chromium(tmp_path: Path, body: str) -> Path:
    """A stand-in browser: a shell script that records its arguments, then runs ``body``."""
    script = tmp_path / "fake-chromium"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$$" "$@" > "{tmp_path}/args"\n'
        'for a in "$@"; do case "$a" in --print-to-pdf=*) OUT="${a#--print-to-pdf=}";; esac; done\n'
        + body
        + "\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_pdf_without_chromium_returns_none_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKENLIB_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert report_bundle.find_chromium() is None
    html = tmp_path / "report.html"
    html.write_text("<p>x</p>")
    assert write_pdf(html, tmp_path / "report.pdf") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "chromium" in err.lower()
    assert not (tmp_path / "report.pdf").exists()


def test_pdf_command_line_and_atomic_result(tmp_path: Path) -> None:
    browser = _fake_chromium(tmp_path, 'printf "%%PDF-1.4 fake" > "$OUT"')
    html = tmp_path / "report.html"
    html.write_text("<p>x</p>")
    pdf = write_pdf(html, tmp_path / "out" / "report.pdf", chromium=str(browser))
    assert pdf == tmp_path / "out" / "report.pdf"
    assert pdf.read_bytes() == b"%PDF-1.4 fake"
    args = (tmp_path / "args").read_text().splitlines()[1:]
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer"):
        assert flag in args
    profile = next(a.split("=", 1)[1] for a in args if a.startswith("--user-data-dir="))
    assert not Path(profile).exists(), "the fresh profile is removed afterwards"
    assert args[-1] == html.resolve().as_uri()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.pdf"]


def test_pdf_failure_raises_and_leaves_nothing(tmp_path: Path) -> None:
    browser = _fake_chromium(tmp_path, 'echo "crashed" >&2; exit 3')
    html = tmp_path / "report.html"
    html.write_text("<p>x</p>")
    with pytest.raises(PdfError, match="crashed"):
        write_pdf(html, tmp_path / "report.pdf", chromium=str(browser))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["args", "fake-chromium", "report.html"]


def test_pdf_timeout_kills_the_browser(tmp_path: Path) -> None:
    browser = _fake_chromium(tmp_path, f'sleep 60 & echo $! > "{tmp_path}/helper"; wait')
    html = tmp_path / "report.html"
    html.write_text("<p>x</p>")
    started = time.monotonic()
    with pytest.raises(PdfError, match="within 1 s"):
        write_pdf(html, tmp_path / "report.pdf", chromium=str(browser), timeout=1)
    assert time.monotonic() - started < 15
    browser_pid = int((tmp_path / "args").read_text().splitlines()[0])
    helper_pid = int((tmp_path / "helper").read_text())
    deadline = time.monotonic() + 5
    while _alive(helper_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(browser_pid), "the browser is killed"
    assert not _alive(helper_pid), "and its helpers (its process group)"
    assert not (tmp_path / "report.pdf").exists()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a non-reaping init counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in {"Z", "X"}


def _page_count(pdf: Path) -> int | None:
    if PDFINFO is None:
        return None
    info = subprocess.run([PDFINFO, str(pdf)], capture_output=True, text=True, check=True)
    match = re.search(r"^Pages:\s+(\d+)", info.stdout, re.M)
    assert match, info.stdout
    return int(match.group(1))


@pytest.mark.browser
def test_pdf_of_the_single_file(report_dir: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium binary (Debian package 'chromium', installed by .ci/run)")
    html = write_single_html(report_dir, title="Token binding report")
    pdf = write_pdf(html, report_dir / "report.pdf", chromium=CHROMIUM, timeout=120)
    assert pdf == report_dir / "report.pdf"
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(data) > 5_000
    pages = _page_count(pdf)
    if pages is not None:  # poppler-utils: cover + contents, summary, 4 pages on their own sheets
        assert 5 <= pages <= 10, pages
    leftovers = [p.name for p in report_dir.iterdir() if p.name.startswith(".")]
    assert not leftovers
